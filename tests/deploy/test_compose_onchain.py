"""compose.onchain.yaml: the chain service's on-chain wiring on top of compose.yaml, checked as a file.

No Docker engine runs here. The override is merged into compose.yaml the way
compose merges it (a service's environment and secrets add to the base, and
top-level secrets too), and the chain container's resulting environment is
loaded by the chain service's own settings loader, with its secret paths
pointing at a real keystore and password file.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from eth_account import Account

from baton_chain.config import ChainSettings
from baton_chain.keystore import load_account
from baton_common.config import load_settings

from .test_compose import INTERPOLATION, env, env_example, expand, strings

SECRETS_DIR = "/run/secrets/"


@pytest.fixture(scope="module")
def onchain(repo: Path) -> dict[str, Any]:
    return yaml.safe_load((repo / "compose.onchain.yaml").read_text(encoding="utf-8"))


def merged_chain(compose: dict[str, Any], onchain: dict[str, Any]) -> dict[str, Any]:
    base = compose["services"]["chain"]
    extra = onchain["services"]["chain"]
    return {**base, "environment": {**env(base), **env(extra)},
            "secrets": [*(base.get("secrets") or []), *(extra.get("secrets") or [])]}


def test_the_override_touches_only_the_chain_service(onchain):
    assert set(onchain) == {"services", "secrets"}
    assert set(onchain["services"]) == {"chain"}
    assert set(onchain["services"]["chain"]) == {"environment", "secrets"}


def test_compose_alone_stays_offchain_and_needs_no_key(compose):
    chain = compose["services"]["chain"]
    assert not chain.get("secrets"), "offchain, the chain service needs no secret file"
    assert expand(env(chain)["BATON_NETWORK"]) == "offchain"


def test_the_key_and_its_password_are_secret_files_outside_the_repository(onchain, repo):
    chain = onchain["services"]["chain"]
    assert set(chain["secrets"]) == set(onchain["secrets"]) == {"eth_keystore", "eth_password"}
    for name, secret in onchain["secrets"].items():
        path = Path(expand(secret["file"]))
        assert path.is_absolute() and repo not in path.parents, f"secret {name} must live outside the repo: {path}"
    e = env(chain)
    assert e["BATON_CHAIN_ETH_KEYSTORE_PATH"] == SECRETS_DIR + "eth_keystore"
    assert e["BATON_CHAIN_ETH_PASSWORD"] == SECRETS_DIR + "eth_password", "a file, never the password itself"


def test_the_override_passes_only_chain_settings(onchain, baton_env):
    names = set(env(onchain["services"]["chain"]))
    assert names <= baton_env, f"{sorted(names - baton_env)} are not in the settings contract"
    fields = {f"BATON_CHAIN_{name.upper()}" for name in ChainSettings.__struct_fields__}
    assert names <= fields, f"{sorted(names - fields)} are no chain settings"


def test_every_interpolated_variable_is_in_env_example_with_its_default(onchain, repo):
    documented = env_example(repo)
    used = [m for value in strings(onchain) for m in INTERPOLATION.finditer(value)]
    assert used
    for m in used:
        var = m.group(1) or m.group(4)
        assert var in documented, f"${{{var}}} is used in compose.onchain.yaml but not set in .env.example"
        if m.group(2) in (":-", "-"):
            assert documented[var] == m.group(3), (
                f"{var}: .env.example says {documented[var]!r}, compose.onchain.yaml defaults to {m.group(3)!r}")
    assert "# COMPOSE_FILE=compose.yaml:compose.onchain.yaml" in (repo / ".env.example").read_text()


def test_the_merged_chain_container_starts_on_chain_with_the_mounted_key(compose, onchain, tmp_path):
    """The chain container's environment, defaults filled in as on a fresh .env with the network and node set,
    loads into ChainSettings, and its keystore and password paths decrypt a real go-livepeer keystore."""
    chain = merged_chain(compose, onchain)
    environment = {k: expand(v) for k, v in env(chain).items()}
    environment.update(BATON_NETWORK="arbitrum-one-mainnet", BATON_CHAIN_ETH_URL="https://arb1.example/v3/KEY")
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    acct = Account.create()
    (secrets / "eth_keystore").write_text(json.dumps(Account.encrypt(acct.key, "pw with spaces", iterations=4096)))
    (secrets / "eth_password").write_text("pw with spaces\n")
    environment = {k: v.replace(SECRETS_DIR, f"{secrets}/") for k, v in environment.items()}
    settings = load_settings(ChainSettings, "chain", env=environment, argv=[])
    assert settings.controller == "0xD8E8328501E9645d16Cf49539efC04f734606ee4"
    assert settings.price_feed == "0x639Fe6ab55C921f74e7fac1ee960C0B6293ba612"
    assert settings.reward is None and settings.initialize_round is False
    assert settings.tx_timeout == 300.0 and settings.max_gas_price == 0
    assert sorted(chain["secrets"]) == ["eth_keystore", "eth_password"]
    account = load_account(settings.eth_keystore_path, settings.eth_password, settings.eth_acct_addr)
    assert account.address == acct.address
