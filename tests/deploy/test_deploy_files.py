"""The shipped deploy files parse, are well-formed, and never start an open admin API.

No container engine runs here, so each file is checked as far as it can be without one:
the Containerfile's final-stage `ENV` fed to the control plane's own settings parser,
compose's YAML and its required-variable interpolation, env.example's lines, and the
Kubernetes objects' structure and cross-references (selectors, Services, ConfigMaps,
the admin token's Secret), and each data plane's worker count following its CPU limit (fed to
the data plane's settings parser as compose's interpolation or the Downward API would give it).
"""

from __future__ import annotations

import math
import re
import shlex
from collections.abc import Mapping
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest
import yaml

from control_plane.settings import Settings
from data_plane.settings import Settings as DataPlaneSettings
from shared.settings import SettingError

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
REQUIRED_VARIABLE = re.compile(r"\$\{(?P<name>[A-Z_][A-Z0-9_]*):\?(?P<message>[^}]+)\}")
DEFAULTED_VARIABLE = re.compile(r"\$\{(?P<name>[A-Z_][A-Z0-9_]*):-(?P<default>[^}]*)\}")
DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
WORKLOADS = ("Deployment", "StatefulSet", "DaemonSet")


# -- the Containerfile -----------------------------------------------------------------------------


def containerfile_env() -> dict[str, str]:
    """The `ENV` variables of the Containerfile's final stage (continuation lines joined)."""
    text = (DEPLOY / "Containerfile").read_text().replace("\\\n", " ")
    stages = re.split(r"(?m)^FROM ", text)
    env: dict[str, str] = {}
    for line in stages[-1].splitlines():
        if line.startswith("ENV "):
            for assignment in shlex.split(line[len("ENV ") :]):
                name, _, value = assignment.partition("=")
                env[name] = value
    return env


def test_the_image_listens_beyond_loopback_and_bakes_in_no_token() -> None:
    env = containerfile_env()

    assert env["FFAAS_CONTROL_PLANE_HOST"] == "0.0.0.0", env
    assert "FFAAS_ADMIN_TOKEN" not in env, "a token in the image would be shared by every installation"
    assert "FFAAS_ALLOW_INSECURE_ADMIN" not in env


def test_the_images_control_plane_refuses_to_start_without_a_token() -> None:
    env = containerfile_env()

    with pytest.raises(SettingError, match="FFAAS_ADMIN_TOKEN") as refused:
        Settings.from_environ(env)
    assert "0.0.0.0 (FFAAS_CONTROL_PLANE_HOST)" in str(refused.value)
    assert Settings.from_environ({**env, "FFAAS_ADMIN_TOKEN": "t"}).admin_token == "t"
    assert "-e FFAAS_ADMIN_TOKEN=" in (DEPLOY / "Containerfile").read_text(), (
        "the header shows how to pass it"
    )


# -- compose ---------------------------------------------------------------------------------------


def compose() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    return document


def interpolate(value: str, environ: Mapping[str, str]) -> str:
    """Compose's `${NAME:?message}` (the variable's value, or the error compose stops with) and
    `${NAME:-default}` (its value, or the default when unset or empty)."""

    def required(match: re.Match[str]) -> str:
        if not environ.get(match["name"]):
            raise LookupError(f"required variable {match['name']} is missing a value: {match['message']}")
        return environ[match["name"]]

    def defaulted(match: re.Match[str]) -> str:
        return environ.get(match["name"]) or match["default"]

    return DEFAULTED_VARIABLE.sub(defaulted, REQUIRED_VARIABLE.sub(required, value))


def env_file(path: Path) -> dict[str, str]:
    """The variables an env file sets: its `NAME=value` lines (comments and blank lines skipped)."""
    variables = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, separator, value = line.partition("=")
            assert separator, f"{path.name}: not NAME=value: {line!r}"
            variables[name.strip()] = value
    return variables


def test_compose_requires_the_admin_token_with_a_message() -> None:
    control_plane = compose()["services"]["control-plane"]
    token = control_plane["environment"]["FFAAS_ADMIN_TOKEN"]

    required = REQUIRED_VARIABLE.fullmatch(token)
    assert required is not None, f"not a required variable: {token!r}"
    assert required["name"] == "FFAAS_ADMIN_TOKEN"
    assert "openssl rand" in required["message"], required["message"]
    with pytest.raises(LookupError, match="FFAAS_ADMIN_TOKEN"):
        interpolate(token, {})
    with pytest.raises(LookupError, match="FFAAS_ADMIN_TOKEN"):
        interpolate(token, {"FFAAS_ADMIN_TOKEN": ""})


def test_composes_control_plane_starts_with_the_token_given() -> None:
    control_plane = compose()["services"]["control-plane"]
    environ = {
        **containerfile_env(),
        **env_file(DEPLOY / control_plane["env_file"]),
        **{
            name: interpolate(str(value), {"FFAAS_ADMIN_TOKEN": "from-the-shell"})
            for name, value in control_plane["environment"].items()
        },
    }

    settings = Settings.from_environ(environ)

    assert (settings.host, settings.admin_token, settings.admin_api_exposed) == (
        "0.0.0.0",
        "from-the-shell",
        False,
    )
    assert control_plane["command"] == ["python", "-m", "control_plane"]


def test_every_compose_plane_gets_the_same_required_token() -> None:
    services = compose()["services"]
    planes = {name: service for name, service in services.items() if "build" in service}

    assert set(planes) == {"control-plane", "data-plane-a", "data-plane-b"}
    tokens = {service["environment"]["FFAAS_ADMIN_TOKEN"] for service in planes.values()}
    assert tokens == {services["control-plane"]["environment"]["FFAAS_ADMIN_TOKEN"]}


def test_compose_publishes_the_admin_api_on_the_hosts_loopback_only() -> None:
    assert compose()["services"]["control-plane"]["ports"] == ["127.0.0.1:3000:3000"]


def test_compose_services_are_well_formed() -> None:
    document = compose()
    services = document["services"]
    volumes = set(document.get("volumes", {}))
    for name, service in services.items():
        if "build" in service:
            assert service["build"] == {"context": "..", "dockerfile": "deploy/Containerfile"}, name
            assert (DEPLOY / service["env_file"]).is_file(), name
        else:
            assert isinstance(service["image"], str), name
        for dependency in service.get("depends_on", []):
            assert dependency in services, f"{name} depends on unknown {dependency}"
        for volume in service.get("volumes", []):
            assert volume.partition(":")[0] in volumes, f"{name} mounts an undeclared volume {volume}"


@pytest.mark.parametrize("shell", [{}, {"DATA_PLANE_CPUS": "4"}])
def test_each_compose_data_plane_runs_one_worker_per_cpu_of_its_limit(shell: dict[str, str]) -> None:
    shell = {**shell, "FFAAS_ADMIN_TOKEN": "from-the-shell"}
    services = compose()["services"]
    data_planes = {
        name: service
        for name, service in services.items()
        if service.get("command", [])[-1:] == ["data_plane"]
    }
    assert set(data_planes) == {"data-plane-a", "data-plane-b"}
    for name, service in data_planes.items():
        cpus = interpolate(str(service["cpus"]), shell)
        environ = {
            **containerfile_env(),
            **env_file(DEPLOY / service["env_file"]),
            **{key: interpolate(str(value), shell) for key, value in service["environment"].items()},
        }

        assert cpus.isdigit() and int(cpus) >= 1, f"{name}: cpus {cpus!r} is not a whole number of CPUs"
        assert (
            DataPlaneSettings.from_environ(environ).workers
            == int(cpus)
            == int(shell.get("DATA_PLANE_CPUS", 2))
        ), name


# -- env.example -----------------------------------------------------------------------------------


def test_env_example_documents_the_token_and_never_opens_the_admin_api() -> None:
    text = (DEPLOY / "env.example").read_text()

    assert env_file(DEPLOY / "env.example").get("FFAAS_ALLOW_INSECURE_ADMIN", "0") == "0"
    assert "FFAAS_ADMIN_TOKEN" not in env_file(DEPLOY / "env.example"), "an empty token would mean none"
    assert re.search(r"(?m)^# FFAAS_ADMIN_TOKEN=.*required", text), text
    assert re.search(r"(?m)^# FFAAS_ALLOW_INSECURE_ADMIN=0$", text), text


# -- Kubernetes ------------------------------------------------------------------------------------


def kubernetes_objects() -> list[dict[str, Any]]:
    return [
        document
        for document in yaml.safe_load_all((DEPLOY / "kubernetes" / "ffaas.yaml").read_text())
        if document is not None
    ]


def by_kind(kind: str) -> dict[str, dict[str, Any]]:
    return {obj["metadata"]["name"]: obj for obj in kubernetes_objects() if obj["kind"] == kind}


def containers(workload: dict[str, Any]) -> list[dict[str, Any]]:
    pod_spec: dict[str, Any] = workload["spec"]["template"]["spec"]
    return list(pod_spec["containers"])


def test_kubernetes_objects_are_well_formed() -> None:
    objects = kubernetes_objects()
    config_maps = by_kind("ConfigMap")
    services = by_kind("Service")
    assert {obj["kind"] for obj in objects} >= {"ConfigMap", "StatefulSet", "Deployment", "Service"}
    for obj in objects:
        assert obj["apiVersion"] == ("apps/v1" if obj["kind"] in WORKLOADS else "v1"), obj
        assert DNS_LABEL.fullmatch(obj["metadata"]["name"]), obj["metadata"]
        if obj["kind"] in WORKLOADS:
            spec = obj["spec"]
            labels = spec["template"]["metadata"]["labels"]
            assert spec["selector"]["matchLabels"].items() <= labels.items(), obj["metadata"]
            if obj["kind"] == "StatefulSet":
                assert spec["serviceName"] in services, obj["metadata"]
            for container in containers(obj):
                assert DNS_LABEL.fullmatch(container["name"]) and container["image"], container
                ports = {port["containerPort"] for port in container.get("ports", [])}
                assert all(isinstance(port, int) for port in ports), container
                probe = container.get("readinessProbe", {}).get("httpGet")
                assert probe is None or probe["port"] in ports, container
                for source in container.get("envFrom", []):
                    assert source["configMapRef"]["name"] in config_maps, source
        if obj["kind"] == "Service":
            selected = obj["spec"]["selector"].items()
            assert any(
                selected <= workload["spec"]["template"]["metadata"]["labels"].items()
                for workload in objects
                if workload["kind"] in WORKLOADS
            ), f"Service {obj['metadata']['name']} selects no workload"


def test_the_kubernetes_control_plane_takes_its_token_from_a_secret() -> None:
    header = (DEPLOY / "kubernetes" / "ffaas.yaml").read_text()
    (control_plane,) = containers(by_kind("StatefulSet")["ffaas-control-plane"])
    token = {variable["name"]: variable for variable in control_plane["env"]}["FFAAS_ADMIN_TOKEN"]

    reference = token["valueFrom"]["secretKeyRef"]
    assert not reference.get("optional", False), "the pod must not start without its Secret"
    assert "value" not in token, "the token itself must not be in the manifest"
    # The Secret is made per installation, with its own random value, as the header says.
    command = f"kubectl create secret generic {reference['name']} --from-literal={reference['key']}="
    assert command in header, f"the header does not show `{command}...`"
    assert "openssl rand" in header
    config_map = by_kind("ConfigMap")["ffaas-config"]["data"]
    assert "FFAAS_ADMIN_TOKEN" not in config_map and "FFAAS_ALLOW_INSECURE_ADMIN" not in config_map
    environ = {**containerfile_env(), **config_map, "FFAAS_ADMIN_TOKEN": "from-the-secret"}
    assert Settings.from_environ(environ).admin_api_exposed is False
    with pytest.raises(SettingError, match="FFAAS_ADMIN_TOKEN"):
        Settings.from_environ({**containerfile_env(), **config_map})


def test_kubernetes_data_planes_take_the_same_token_from_the_same_secret() -> None:
    """Data planes accept replays only with the token derived from the control plane's."""
    (control_plane,) = containers(by_kind("StatefulSet")["ffaas-control-plane"])
    (data_plane,) = containers(by_kind("Deployment")["ffaas-data-plane"])

    def token_source(container: dict[str, Any]) -> Any:
        return {variable["name"]: variable for variable in container["env"]}["FFAAS_ADMIN_TOKEN"]["valueFrom"]

    assert token_source(data_plane) == token_source(control_plane)


def cpu_quantity(text: str) -> Fraction:
    """A Kubernetes CPU quantity ("2", "1.5", "1500m") in CPUs."""
    return Fraction(text[:-1]) / 1000 if text.endswith("m") else Fraction(text)


def test_kubernetes_data_planes_run_one_worker_per_cpu_of_their_limit() -> None:
    (data_plane,) = containers(by_kind("Deployment")["ffaas-data-plane"])
    limit = cpu_quantity(str(data_plane["resources"]["limits"]["cpu"]))
    workers = {variable["name"]: variable for variable in data_plane["env"]}["FFAAS_DATA_PLANE_WORKERS"]
    source = workers["valueFrom"]["resourceFieldRef"]

    assert "value" not in workers, "a fixed count would not follow the limit"
    assert (source["containerName"], source["resource"]) == (data_plane["name"], "limits.cpu"), source
    assert limit.denominator == 1 and limit >= 1, (
        f"{limit} CPUs: the Downward API rounds it up, set whole CPUs"
    )
    # The Downward API gives ceil(limit / divisor): what the data plane then reads.
    given = math.ceil(limit / cpu_quantity(str(source.get("divisor", "1"))))
    environ = {
        **containerfile_env(),
        **by_kind("ConfigMap")["ffaas-config"]["data"],
        "FFAAS_DATA_PLANE_WORKERS": str(given),
    }
    assert DataPlaneSettings.from_environ(environ).workers == limit
    assert cpu_quantity(str(data_plane["resources"]["requests"]["cpu"])) <= limit
