"""The local Triton: the ``tritonserver`` binary inside the ``nvidia-pytriton`` wheel, on the CPU.

``baton up`` and the test fixture start Triton through :func:`command`, which
lays out a backend directory with the Python backend and the stub matching the
running interpreter, and sets the library path and ``PATH`` the stub needs:

- the wheel's libraries find each other by RPATH relative to the wheel, so
  ``site-packages/nvidia_pytriton.libs`` goes on ``LD_LIBRARY_PATH``, after the
  running interpreter's own lib directory (else the stub loads the system
  libpython and fails);
- the venv's ``bin`` comes first on ``PATH`` so the stub's Python finds torch.

``baton-triton`` (this module's :func:`main`) runs the server in the foreground
with those settings, so a supervisor can run it like any other process.
In compose, Triton runs from its own image instead (``deploy/triton/Dockerfile``).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import shutil
import sys
import sysconfig
from dataclasses import dataclass
from pathlib import Path

__all__ = ["TritonInstall", "command", "find_install", "main"]


@dataclass(frozen=True)
class TritonInstall:
    """Where the wheel put the server, the Python backend and its stubs."""

    root: Path
    """``site-packages/pytriton/tritonserver``."""
    libs: Path
    """``site-packages/nvidia_pytriton.libs``."""

    @property
    def binary(self) -> Path:
        return self.root / "bin" / "tritonserver"

    def stub(self) -> Path:
        version = f"{sys.version_info.major}.{sys.version_info.minor}"
        return self.root / "python_backend_stubs" / version / "triton_python_backend_stub"


def find_install() -> TritonInstall:
    """The wheel's server; RuntimeError saying how to install it when absent."""
    spec = importlib.util.find_spec("pytriton")  # not imported: only its files are needed
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(
            "no local tritonserver: install the inference models extra "
            "(pip install --no-deps nvidia-pytriton==0.7.0, as ./dev does)"
        )
    root = Path(next(iter(spec.submodule_search_locations))) / "tritonserver"
    install = TritonInstall(root=root, libs=root.parent.parent / "nvidia_pytriton.libs")
    if not install.binary.is_file():
        raise RuntimeError(f"nvidia-pytriton has no server binary at {install.binary}")
    if not install.stub().is_file():
        raise RuntimeError(f"nvidia-pytriton has no Python backend stub for Python {sys.version_info[:2]}")
    return install


def backend_directory(install: TritonInstall, where: Path) -> Path:
    """``where/python``: the Python backend with the stub of the running interpreter."""
    python = where / "python"
    python.mkdir(parents=True, exist_ok=True)
    source = install.root / "backends" / "python"
    files = {name: source / name for name in ("libtriton_python.so", "triton_python_backend_utils.py")}
    files["triton_python_backend_stub"] = install.stub()
    for name, src in files.items():
        dst = python / name
        if not dst.exists() or dst.stat().st_size != src.stat().st_size:  # a restart reuses the copies
            shutil.copy2(src, dst)
    return where


def environment(install: TritonInstall, base: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ if base is None else base)
    libdir = sysconfig.get_config_var("LIBDIR") or ""
    paths = [p for p in (libdir, str(install.libs), env.get("LD_LIBRARY_PATH", "")) if p]
    env["LD_LIBRARY_PATH"] = ":".join(paths)
    env["PATH"] = f"{Path(sys.executable).parent}:{env.get('PATH', '')}"
    return env


def command(
    state: Path, *, http_port: int, grpc_port: int, metrics_port: int, repository: Path | None = None
) -> tuple[list[str], dict[str, str]]:
    """The argv and environment of a local Triton in explicit model control, its files under ``state``."""
    install = find_install()
    backends = backend_directory(install, state / "backends")
    repository = repository or state / "repository"
    repository.mkdir(parents=True, exist_ok=True)
    argv = [
        str(install.binary),
        f"--model-repository={repository}",
        f"--backend-directory={backends}",
        "--model-control-mode=explicit",
        "--strict-readiness=false",
        "--exit-on-error=false",
        "--exit-timeout-secs=5",
        f"--http-port={http_port}",
        f"--grpc-port={grpc_port}",
        f"--metrics-port={metrics_port}",
        "--allow-cpu-metrics=true",
        "--log-verbose=0",
    ]
    return argv, environment(install)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="baton-triton", description="Run the local tritonserver (CPU) for Baton.")
    parser.add_argument("--state", type=Path, required=True, help="folder for the backend and repository")
    parser.add_argument("--http-port", type=int, default=8000)
    parser.add_argument("--grpc-port", type=int, default=8001)
    parser.add_argument("--metrics-port", type=int, default=8002)
    args = parser.parse_args(argv)
    try:
        cmd, env = command(args.state, http_port=args.http_port, grpc_port=args.grpc_port,
                           metrics_port=args.metrics_port)
    except RuntimeError as exc:
        print(f"baton-triton: {exc}", file=sys.stderr)
        sys.exit(2)
    os.execve(cmd[0], cmd, env)


if __name__ == "__main__":
    main()
