"""The orchestrator's key: go-livepeer's encrypted JSON keystore and its password (never logged)."""

from __future__ import annotations

import json
from pathlib import Path

from eth_account import Account
from eth_account.signers.local import LocalAccount

from baton_common.errors import ConfigError

__all__ = ["load_account"]


def _password(value: str) -> str:
    """go-livepeer's -ethPassword: a file holding the password if such a file exists, else the password itself."""
    path = Path(value)
    try:
        if value and path.is_file():
            return path.read_text().rstrip("\r\n")
    except OSError:
        pass
    return value


def _keystore_file(path: Path, address: str) -> Path:
    if path.is_file():
        return path
    if not path.is_dir():
        raise ConfigError(f"BATON_CHAIN_ETH_KEYSTORE_PATH (-ethKeystorePath): {path} is neither a file nor a folder")
    want = address.lower().removeprefix("0x")
    found = []
    for file in sorted(path.iterdir()):
        try:
            held = json.loads(file.read_text()).get("address", "").lower().removeprefix("0x")
        except (OSError, ValueError, AttributeError):
            continue
        if not want or held == want:
            found.append(file)
    if not found:
        raise ConfigError(f"no keystore for {address or 'any account'} in {path} (-ethKeystorePath, -ethAcctAddr)")
    if len(found) > 1 and not want:
        raise ConfigError(f"{path} holds several keystores: set BATON_CHAIN_ETH_ACCT_ADDR (-ethAcctAddr)")
    return found[0]


def load_account(keystore_path: str, password: str, address: str = "") -> LocalAccount:
    """Decrypt the keystore; ConfigError (naming the setting, never the password) on any failure."""
    file = _keystore_file(Path(keystore_path), address)
    try:
        key = Account.decrypt(json.loads(file.read_text()), _password(password))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        reason = "wrong password (-ethPassword)" if "MAC" in str(exc) else type(exc).__name__
        raise ConfigError(f"cannot decrypt keystore {file}: {reason}") from None
    account: LocalAccount = Account.from_key(key)
    if address and account.address.lower() != address.lower():
        raise ConfigError(f"keystore {file} holds {account.address}, not -ethAcctAddr {address}")
    return account
