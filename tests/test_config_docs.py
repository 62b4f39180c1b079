"""docs/config.md is generated from the settings Structs and must not go stale."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import REPO


def test_config_reference_matches_the_code() -> None:
    run = subprocess.run([sys.executable, str(REPO / "scripts" / "gen_config_docs.py"), "--check"],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr


def test_every_setting_is_documented() -> None:
    text = (REPO / "docs" / "config.md").read_text()
    for row in text.splitlines():
        if row.startswith("| `BATON_"):
            assert row.rstrip(" |").split("|")[-1].strip(), f"no description: {row}"
