"""The orchestrator's ETH key from a go-livepeer keystore (Web3 Secret Storage v3 JSON).

``-ethKeystorePath`` names the file, or a folder holding one; ``-ethPassword``
is the password or a file holding it. scrypt or pbkdf2 as the KDF, AES-128-CTR,
and the keccak MAC checked before the key is used. Errors are ConfigErrors that
name the setting and never the password.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from pathlib import Path

from Crypto.Cipher import AES
from Crypto.Util import Counter

from baton_common.errors import ConfigError
from baton_common.pm import address_of, keccak256

__all__ = ["load_keystore"]


def _password(value: str) -> str:
    path = Path(value)
    try:
        if value and path.is_file():
            return path.read_text().strip()
    except OSError:
        pass
    return value


def _keystore_file(value: str) -> Path:
    path = Path(value)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.is_file())
        if len(files) != 1:
            raise ConfigError(f"BATON_NEGOTIATOR_ETH_KEYSTORE_PATH: {path} must hold exactly one keystore file, "
                              f"found {len(files)}")
        return files[0]
    return path


def load_keystore(path: str, password: str) -> tuple[bytes, bytes]:
    """(private key, address) from the keystore at ``path``."""
    file = _keystore_file(path)
    try:
        data = json.loads(file.read_text())
        crypto = data.get("crypto") or data["Crypto"]
        kdf, params = crypto["kdf"], crypto["kdfparams"]
        salt = bytes.fromhex(params["salt"])
        secret = _password(password).encode()
        if kdf == "scrypt":
            derived = hashlib.scrypt(secret, salt=salt, n=params["n"], r=params["r"], p=params["p"],
                                     dklen=params["dklen"], maxmem=2**31 - 1)
        elif kdf == "pbkdf2":
            derived = hashlib.pbkdf2_hmac("sha256", secret, salt, params["c"], params["dklen"])
        else:
            raise ConfigError(f"BATON_NEGOTIATOR_ETH_KEYSTORE_PATH: unsupported kdf {kdf!r}")
        ciphertext = bytes.fromhex(crypto["ciphertext"])
        mac = keccak256(derived[16:32] + ciphertext)
        if not hmac.compare_digest(mac, bytes.fromhex(crypto["mac"])):
            raise ConfigError("BATON_NEGOTIATOR_ETH_PASSWORD (-ethPassword) does not open the keystore")
        if crypto["cipher"] != "aes-128-ctr":
            raise ConfigError(f"BATON_NEGOTIATOR_ETH_KEYSTORE_PATH: unsupported cipher {crypto['cipher']!r}")
        iv = int.from_bytes(bytes.fromhex(crypto["cipherparams"]["iv"]), "big")
        cipher = AES.new(derived[:16], AES.MODE_CTR, counter=Counter.new(128, initial_value=iv))
        key = cipher.decrypt(ciphertext)
    except ConfigError:
        raise
    except OSError as exc:
        raise ConfigError(f"BATON_NEGOTIATOR_ETH_KEYSTORE_PATH: cannot read {file}: {exc.strerror}") from None
    except (ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"BATON_NEGOTIATOR_ETH_KEYSTORE_PATH: {file} is not a keystore file "
                          f"({type(exc).__name__})") from None
    return key, address_of(key)
