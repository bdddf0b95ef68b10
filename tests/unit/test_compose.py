"""compose/ cannot be started here (no Docker engine), so this keeps it honest: variables,
images, commands and Dockerfile are checked against the code."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

import lineage_faust.settings as config_module
from lineage_faust.cli.main import main as cli
from lineage_faust.settings import parse_settings, refuse_open_bind

COMPOSE = Path(__file__).parents[2] / "compose"
SPEC = yaml.safe_load((COMPOSE / "docker-compose.yml").read_text())
SERVICES: dict[str, dict] = SPEC["services"]
READ_BY_SETTINGS = {
    name
    for path in Path(config_module.__file__).parent.glob("*.py")  # the settings package
    for name in re.findall(r'"(LINEAGE_[A-Z0-9_]+)"', path.read_text())
}
PINNED = re.compile(r"^[\w./-]+:(\d+)(\.\d+)+[\w.-]*(@sha256:[0-9a-f]{64})?$")


def app_services() -> list[str]:
    return [name for name, spec in SERVICES.items() if "build" in spec]


def test_the_deployment_has_what_the_issue_asks_for() -> None:
    assert {"kafka", "cassandra", "store-init", "topics-init", "worker", "api"} <= set(SERVICES)
    assert SERVICES["worker"]["deploy"]["replicas"] == 2
    assert "healthcheck" in SERVICES["cassandra"]
    for init in ("store-init", "topics-init"):  # both done before any worker starts
        condition = SERVICES["worker"]["depends_on"][init]["condition"]
        assert condition == "service_completed_successfully"
    assert SERVICES["topics-init"]["command"] == ["init-topics"]
    assert "KRaft" in (COMPOSE / "docker-compose.yml").read_text()
    assert SERVICES["kafka"]["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"


@pytest.mark.parametrize("service", app_services())
def test_every_lineage_variable_is_read_by_the_settings(service: str) -> None:
    env = {k: str(v) for k, v in SERVICES[service]["environment"].items()}
    lineage = {k for k in env if k.startswith("LINEAGE_")}
    assert lineage, service
    unknown = lineage - READ_BY_SETTINGS
    assert not unknown, f"{service} sets variables nothing reads: {sorted(unknown)}"
    settings = parse_settings(env)  # and the values themselves are valid
    assert settings.cassandra is not None and settings.kafka_bootstrap == "kafka:9092"


def test_the_api_listens_openly_only_with_credentials() -> None:
    env = {k: str(v) for k, v in SERVICES["api"]["environment"].items()}
    settings = parse_settings(env)
    assert settings.api_host == "0.0.0.0" and settings.api_auth.tokens
    assert refuse_open_bind(settings.api_host, settings.api_auth) is None
    assert env["LINEAGE_API_TOKENS"].startswith("${LINEAGE_API_TOKENS:?")  # no default secret


def test_the_settings_check_can_fail() -> None:
    assert "LINEAGE_STORE" in READ_BY_SETTINGS
    assert "LINEAGE_STORE_URL" not in READ_BY_SETTINGS


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_images_are_pinned(service: str) -> None:
    image = SERVICES[service].get("image")
    assert image, f"{service} has no image"
    assert PINNED.match(image), f"{service}: {image} is not pinned to a version"


def test_dockerfile_base_is_pinned_and_commands_exist() -> None:
    dockerfile = (COMPOSE / "Dockerfile").read_text()
    base = re.search(r"^FROM (\S+)", dockerfile, re.M)
    assert base and PINNED.match(base.group(1)), base
    for name in app_services():
        command = SERVICES[name]["command"][0]
        assert command in cli.commands, f"{name}: lineage-faust has no command {command!r}"
    for path in re.findall(r"^COPY (\S+) ", dockerfile, re.M):
        assert (COMPOSE.parent / path).exists(), path
