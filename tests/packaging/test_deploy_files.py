"""Structural checks of the deployment files: they agree with each other and with the server.

These read the files; they build no image and apply nothing to a cluster. They check that the
Dockerfile runs as a non-root user with a gRPC health check on the port the server listens on,
that the Kubernetes probes and the Service point at the container's gRPC port and the scrape
annotations at its metrics port, and that the systemd unit runs unprivileged with a restart policy.
Whether the image builds, or the manifest is accepted by a cluster, is not tested here.
(tests/packaging/test_wheel.py runs the image's health check script against a real server.)
"""

from __future__ import annotations

import configparser
import re
import tomllib
from pathlib import Path
from typing import Any

import yaml

from coord_server.config import Settings, specs

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_PORT = int(Settings().listen.rsplit(":", 1)[1])


def _port(address: str) -> int:
    return int(address.rsplit(":", 1)[1])


# -- Dockerfile ------------------------------------------------------------------------------------


def _instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order, comments dropped and continuation lines joined."""
    text = (ROOT / "Dockerfile").read_text()
    lines = [line for line in text.splitlines() if not line.lstrip().startswith("#")]
    joined = re.sub(r"\\\n", " ", "\n".join(lines))
    found = []
    for line in joined.splitlines():
        if line.strip():
            word, _, rest = line.strip().partition(" ")
            found.append((word.upper(), " ".join(rest.split())))
    return found


def _final_stage() -> list[tuple[str, str]]:
    steps = _instructions()
    last_from = max(i for i, (word, _) in enumerate(steps) if word == "FROM")
    return steps[last_from:]


def test_dockerfile_builds_on_python_slim() -> None:
    steps = _instructions()
    args = dict(rest.split("=", 1) for word, rest in steps if word == "ARG" and "=" in rest)
    images = [rest.split()[0] for word, rest in steps if word == "FROM"]
    resolved = [re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], image) for image in images]
    assert resolved and all(image == "python:3.11-slim" for image in resolved), resolved


def test_dockerfile_runs_as_a_non_root_user() -> None:
    users = [rest for word, rest in _final_stage() if word == "USER"]
    assert users, "the final stage has no USER"
    user = users[-1].split(":")[0]
    assert user not in {"root", "0"}, users[-1]
    # Numeric, so that Kubernetes' runAsNonRoot can check it without reading /etc/passwd.
    assert user.isdigit(), users[-1]
    # Nothing after the USER line switches back to root.
    last_user = max(i for i, (word, _) in enumerate(_final_stage()) if word == "USER")
    assert all(word != "USER" for word, _ in _final_stage()[last_user + 1 :])


def test_dockerfile_healthcheck_asks_grpc_health_on_the_listen_port() -> None:
    final = _final_stage()
    checks = [rest for word, rest in final if word == "HEALTHCHECK"]
    assert len(checks) == 1, checks
    assert "CMD" in checks[0] and "healthcheck.py" in checks[0], checks[0]
    script_path = re.search(r'"(/[^"]*healthcheck\.py)"', checks[0])
    assert script_path, checks[0]
    copies = [rest for word, rest in final if word == "COPY" and rest.endswith(script_path.group(1))]
    assert copies == [f"deploy/docker/healthcheck.py {script_path.group(1)}"], copies
    script = (ROOT / "deploy" / "docker" / "healthcheck.py").read_text()
    assert "grpc_health.v1" in script and "COORD_LISTEN" in script
    env = " ".join(rest for word, rest in final if word == "ENV")
    listen = re.search(r"COORD_LISTEN=(\S+)", env)
    assert listen, "the image sets no COORD_LISTEN"
    exposed = [int(rest.split("/")[0]) for word, rest in final if word == "EXPOSE"]
    assert exposed == [_port(listen.group(1))] == [DEFAULT_PORT]


def test_dockerfile_entrypoint_is_the_console_script() -> None:
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    entrypoints = [rest for word, rest in _final_stage() if word == "ENTRYPOINT"]
    assert entrypoints == ['["coord-server"]']
    assert "coord-server" in scripts


def test_dockerfile_copies_only_what_dockerignore_lets_in() -> None:
    """Each COPY source exists and is re-included by a ``!`` line of .dockerignore (which starts
    by excluding everything)."""
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    patterns = [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]
    assert patterns[0] == "*", patterns[:1]
    allowed = [p[1:].rstrip("/") for p in patterns if p.startswith("!")]
    for word, rest in _instructions():
        if word != "COPY" or rest.startswith("--from"):
            continue
        *sources, _ = rest.split()
        for source in sources:
            assert (ROOT / source).exists(), source
            assert any(source == a or source.startswith(a + "/") for a in allowed), source


# -- Kubernetes ------------------------------------------------------------------------------------


def _manifests() -> dict[str, dict[str, Any]]:
    with (ROOT / "deploy" / "kubernetes" / "coord.yaml").open() as file:
        documents = [doc for doc in yaml.safe_load_all(file) if doc]
    return {doc["kind"]: doc for doc in documents}


def _container() -> dict[str, Any]:
    containers = _manifests()["Deployment"]["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    container: dict[str, Any] = containers[0]
    return container


def _container_env() -> dict[str, str]:
    return {e["name"]: e.get("value", "") for e in _container()["env"]}


def _container_ports() -> dict[str, int]:
    return {p["name"]: p["containerPort"] for p in _container()["ports"]}


def test_kubernetes_probes_ask_grpc_health_on_the_container_grpc_port() -> None:
    ports = _container_ports()
    assert ports["grpc"] == _port(_container_env()["COORD_LISTEN"]) == DEFAULT_PORT
    container = _container()
    for probe in ("readinessProbe", "livenessProbe"):
        assert container[probe]["grpc"]["port"] == ports["grpc"], probe
        assert container[probe]["grpc"].get("service", "") == "", probe  # the whole server


def test_kubernetes_service_routes_to_the_pods_grpc_port() -> None:
    manifests = _manifests()
    service = manifests["Service"]["spec"]
    pod_labels = manifests["Deployment"]["spec"]["template"]["metadata"]["labels"]
    assert service["selector"].items() <= pod_labels.items()
    assert manifests["Deployment"]["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    grpc = next(p for p in service["ports"] if p["name"] == "grpc")
    assert grpc["targetPort"] in {"grpc", _container_ports()["grpc"]}


def test_kubernetes_scrape_annotations_name_the_metrics_port() -> None:
    annotations = _manifests()["Deployment"]["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    metrics = _container_ports()["metrics"]
    assert int(annotations["prometheus.io/port"]) == metrics == 9464
    assert _port(_container_env()["COORD_METRICS_LISTEN"]) == metrics


def test_kubernetes_pod_runs_as_the_image_user_without_privileges() -> None:
    pod = _manifests()["Deployment"]["spec"]["template"]["spec"]
    image_user = next(rest for word, rest in reversed(_final_stage()) if word == "USER").split(":")[0]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert str(pod["securityContext"]["runAsUser"]) == image_user
    context = _container()["securityContext"]
    assert context["allowPrivilegeEscalation"] is False
    assert context["capabilities"]["drop"] == ["ALL"]


def test_kubernetes_network_policy_opens_only_the_two_ports() -> None:
    policy = _manifests()["NetworkPolicy"]["spec"]
    opened = {p["port"] for rule in policy["ingress"] for p in rule["ports"]}
    assert opened == set(_container_ports().values())


# -- systemd ---------------------------------------------------------------------------------------


def _unit() -> configparser.ConfigParser:
    unit = configparser.ConfigParser(strict=False, interpolation=None, comment_prefixes=("#", ";"))
    unit.optionxform = str  # type: ignore[assignment,method-assign]  # keys are case-sensitive
    unit.read(ROOT / "deploy" / "systemd" / "coord.service")
    return unit


def test_systemd_unit_runs_coord_server_unprivileged_with_a_restart_policy() -> None:
    service = _unit()["Service"]
    assert service["User"] not in {"", "root", "0"}
    assert service["ExecStart"].split()[0].endswith("/coord-server")
    assert service["EnvironmentFile"].startswith("/")
    assert service["Restart"] in {"on-failure", "always"}
    assert service["RestartPreventExitStatus"] == "2"  # configuration errors: no restart loop
    for key, value in {
        "NoNewPrivileges": "yes",
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
        "CapabilityBoundingSet": "",
    }.items():
        assert service[key] == value, key


def test_systemd_environment_file_example_holds_only_known_settings() -> None:
    known = {spec.env for _, spec in specs()}
    text = (ROOT / "deploy" / "systemd" / "coord.env").read_text()
    names = re.findall(r"^#?(COORD_[A-Z_]+)=", text, re.M)
    assert names
    assert set(names) <= known, set(names) - known


# -- license ---------------------------------------------------------------------------------------


def test_license_is_apache_2_and_declared() -> None:
    text = (ROOT / "LICENSE").read_text()
    assert "Apache License\n                           Version 2.0, January 2004" in text
    assert "END OF TERMS AND CONDITIONS" in text
    assert tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["license"] == "Apache-2.0"
