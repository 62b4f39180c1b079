"""The Dockerfile that builds the one image of the six Baton services, read as text."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest


def instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    out, buf = [], ""
    for line in path.read_text(encoding="utf-8").splitlines():
        stripped = line.strip()
        if not buf and (not stripped or stripped.startswith("#")):
            continue
        if stripped.startswith("#"):
            continue  # a comment inside a continued instruction
        if stripped.endswith("\\"):
            buf += stripped[:-1] + " "
            continue
        buf += stripped
        word, _, args = buf.partition(" ")
        out.append((word.upper(), args.strip()))
        buf = ""
    return out


@pytest.fixture(scope="module")
def dockerfile(repo) -> list[tuple[str, str]]:
    return instructions(repo / "Dockerfile")


def final_stage(dockerfile: list[tuple[str, str]]) -> list[tuple[str, str]]:
    last_from = max(i for i, (word, _) in enumerate(dockerfile) if word == "FROM")
    return dockerfile[last_from:]


def test_every_base_image_is_python_3_11_slim_pinned(dockerfile):
    stages = set()
    for word, args in dockerfile:
        if word != "FROM":
            continue
        parts = args.split()
        image = [p for p in parts if not p.startswith("--")][0]
        if image in stages:
            continue  # FROM an earlier stage
        assert re.fullmatch(r"python:3\.11(\.\d+)?-slim-bookworm(@sha256:[0-9a-f]{64})?", image), image
        if len(parts) >= 3 and parts[-2].upper() == "AS":
            stages.add(parts[-1])


def test_the_image_runs_as_a_non_root_user(dockerfile):
    users = [args for word, args in final_stage(dockerfile) if word == "USER"]
    assert users, "the final stage sets no USER: the services would run as root"
    user = users[-1].split(":")[0]
    assert user not in ("root", "0"), users[-1]


def test_every_package_is_installed_from_the_pinned_versions(dockerfile, repo):
    installs = [shlex.split(args) for word, args in dockerfile if word == "RUN" and "pip install" in args]
    assert len(installs) == 1, "one pip install of all the packages"
    words = installs[0]
    assert any(words[i] in ("-c", "--constraint") and words[i + 1] == "constraints.txt"
               for i in range(len(words) - 1)), "pip install must use -c constraints.txt"
    assert "-e" not in words and "--editable" not in words, "the image installs the packages, not links to them"
    wanted = {"./libs/common", "./cli"} | {f"./{p.parent.relative_to(repo)}"
                                           for p in repo.glob("services/*/pyproject.toml")}
    missing = wanted - {w.rstrip("/") for w in words}
    assert not missing, f"the image does not install {sorted(missing)}"


def test_the_sources_the_install_needs_are_copied(dockerfile):
    copied = {a.split()[0] for w, a in dockerfile if w == "COPY" and not a.startswith("--from")}
    assert {"constraints.txt", "libs/common", "services", "cli"} <= copied, copied
    assert "." not in copied, "copy only what the image needs"


def test_ffmpeg_is_installed_for_the_transcode_service(dockerfile):
    runs = " ".join(args for word, args in final_stage(dockerfile) if word == "RUN")
    assert re.search(r"apt-get install\b[^;&]*\bffmpeg\b", runs), "the runtime stage must install ffmpeg"


def test_build_leftovers_and_secrets_stay_out_of_the_build_context(repo):
    ignored = {line.strip() for line in (repo / ".dockerignore").read_text().splitlines()
               if line.strip() and not line.startswith("#")}
    for entry in (".git", ".venv", "**/*.egg-info", "**/__pycache__", ".env", "tests"):
        assert entry in ignored, f".dockerignore should list {entry}"
