"""Static checks of the deployment files: docker-compose.yml, the Dockerfile, .env.example and
docs/deployment.md.

No Docker engine is needed. The compose file is validated against the Compose Specification's
JSON schema (the copy check-jsonschema ships, Apache-2.0), which is what `docker compose config`
checks before it interpolates; the rest are the properties a deploy relies on.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import typer
import yaml

from overdue.cli import app
from overdue.stack import SEARCH_ATTRIBUTES

ROOT = Path(__file__).parents[2]
COMPOSE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
ENV_EXAMPLE = ROOT / ".env.example"
DEPLOYMENT_DOC = ROOT / "docs" / "deployment.md"
OVERDUE_IMAGE = "overdue"
ONE_SHOT = {"temporal-schema", "temporal-namespace", "migrate"}
VARIABLE = re.compile(r"\$\{(?P<name>\w+)(?:(?P<op>:[-?])(?P<arg>[^}]*))?\}")
SECRET_NAME = re.compile(r"PASSWORD|PWD|TOKEN|KEYS|SECRET|API_KEY")


def interpolate(value: str) -> str:
    """``value`` as compose resolves it with an empty environment: defaults taken, required
    variables shown as ``<NAME>``, ``$$`` as ``$``."""

    def resolve(match: re.Match[str]) -> str:
        if match["op"] == ":-":
            return match["arg"]
        return f"<{match['name']}>"

    return VARIABLE.sub(resolve, value).replace("$$", "$")


@cache
def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return loaded


def services() -> dict[str, dict[str, Any]]:
    return dict(compose()["services"])


def environment(service: str) -> dict[str, str]:
    env = services()[service].get("environment", {})
    assert isinstance(env, dict), f"{service}: environment as a mapping, for these checks"
    return {name: str(value) for name, value in env.items()}


def long_running() -> list[str]:
    return [name for name in services() if name not in ONE_SHOT]


# --- docker-compose.yml ---------------------------------------------------------------------


def test_compose_file_is_valid_under_the_compose_specification() -> None:
    result = subprocess.run(
        [
            str(Path(sys.executable).parent / "check-jsonschema"),
            "--builtin-schema",
            "vendor.compose-spec",
            str(COMPOSE),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_stack_has_every_part() -> None:
    images = {name: interpolate(s["image"]).split(":")[0] for name, s in services().items()}
    assert images["postgres"] == "postgres"
    assert images["temporal"] == "temporalio/server"
    assert images["temporal-schema"] == images["temporal-namespace"] == "temporalio/admin-tools"
    assert images["temporal-ui"] == "temporalio/ui"
    for name in ("migrate", "worker", "api", "codec"):
        assert images[name] == OVERDUE_IMAGE
        assert services()[name]["build"] == "."


@pytest.mark.parametrize("service", sorted(compose()["services"]))
def test_every_image_tag_is_pinned(service: str) -> None:
    image = interpolate(services()[service]["image"])
    name, _, tag = image.rpartition(":")
    assert name and "/" not in tag, f"{service}: {image} has no tag"
    assert tag != "latest", f"{service}: {image}"
    assert re.fullmatch(r"\d+\.\d+(\.\d+)?", tag), f"{service}: {image} is not a release tag"


def test_temporal_server_and_its_tools_are_the_same_release() -> None:
    tags = {interpolate(services()[s]["image"]).split(":")[1] for s in ONE_SHOT - {"migrate"}}
    assert tags == {interpolate(services()["temporal"]["image"]).split(":")[1]}


@pytest.mark.parametrize("service", sorted(set(compose()["services"]) - ONE_SHOT))
def test_every_long_running_service_has_a_health_check(service: str) -> None:
    check = services()[service].get("healthcheck")
    assert check and check.get("test"), f"{service}: no healthcheck"
    assert not check.get("disable"), service
    assert services()[service].get("restart") == "unless-stopped", service


@pytest.mark.parametrize("service", sorted(ONE_SHOT))
def test_one_shot_services_are_not_restarted(service: str) -> None:
    assert services()[service].get("restart") == "no", service
    assert "healthcheck" not in services()[service], service


def test_dependencies_wait_for_health_or_completion() -> None:
    for name, service in services().items():
        depends_on = service.get("depends_on", {})
        assert isinstance(depends_on, dict), f"{name}: depends_on needs conditions"
        for dependency, how in depends_on.items():
            wanted = (
                "service_completed_successfully" if dependency in ONE_SHOT else "service_healthy"
            )
            assert how == {"condition": wanted}, f"{name} -> {dependency}: {how}"


def test_the_order_of_start() -> None:
    def needs(service: str) -> set[str]:
        return set(services()[service].get("depends_on", {}))

    assert needs("temporal-schema") == {"postgres"}
    assert needs("temporal") == {"temporal-schema"}
    assert needs("temporal-namespace") == {"temporal"}
    assert needs("migrate") == {"postgres"}
    for app_service in ("worker", "api"):
        assert needs(app_service) == {"migrate", "temporal-namespace"}, app_service


def test_the_worker_runs_several_replicas() -> None:
    replicas = interpolate(str(services()["worker"]["deploy"]["replicas"]))
    assert int(replicas) > 1
    assert "ports" not in services()["worker"], "replicas cannot share a published port"


def test_replicas_file_notices_on_one_shared_volume() -> None:
    assert "notices:/var/lib/overdue/notices" in services()["worker"]["volumes"]
    assert "notices" in compose()["volumes"]


def test_the_ui_decodes_payloads_through_the_codec_server() -> None:
    ui, codec = environment("temporal-ui"), environment("codec")
    assert interpolate(ui["TEMPORAL_ADDRESS"]) == "temporal:7233"
    endpoint = interpolate(ui["TEMPORAL_CODEC_ENDPOINT"])
    # The browser calls the codec server, so the endpoint is where its port is published.
    published_port = services()["codec"]["ports"][0].split(":")[-1]
    # With the codec server's token in its path: the UI cannot send a header of ours.
    assert endpoint == f"http://localhost:{published_port}/token/<OVERDUE_CODEC_TOKEN>"
    assert "--port" in services()["codec"]["command"]
    assert published_port in services()["codec"]["command"]
    # And the codec server lets exactly the UI's origin call it.
    assert codec["OVERDUE_CODEC_ORIGINS"] == ui["TEMPORAL_CORS_ORIGINS"]
    assert interpolate(codec["OVERDUE_CODEC_ORIGINS"]) == "http://localhost:8080"
    # It listens on every interface of its container: the names it answers to are given.
    assert "0.0.0.0" in services()["codec"]["command"]
    assert interpolate(codec["OVERDUE_CODEC_HOSTS"]) == "localhost,127.0.0.1"


def test_every_service_reaches_temporal_and_the_ledger_by_service_name() -> None:
    for name in ("migrate", "worker", "api"):
        env = environment(name)
        assert env["TEMPORAL_ADDRESS"] == "temporal:7233", name
        assert "@postgres:5432/overdue" in env["DATABASE_URL"], name
    assert environment("worker")["OVERDUE_METRICS_ADDRESS"] == "0.0.0.0:9464"


def test_secrets_come_from_the_environment_and_are_required() -> None:
    for name in services():
        for variable, value in environment(name).items():
            if not SECRET_NAME.search(variable):
                continue
            assert VARIABLE.fullmatch(value), f"{name}.{variable} is a literal: {value!r}"
            assert ":?" in value, f"{name}.{variable} must be required"
        url = environment(name).get("DATABASE_URL")
        if url:
            credentials = re.fullmatch(r"postgresql://(\$\{[^}]+\}):(\$\{[^}]+\})@.*", url)
            assert credentials, f"{name}: DATABASE_URL {url}"
            assert credentials[2].startswith("${POSTGRES_PASSWORD:?"), name


def test_the_env_example_names_every_variable_and_holds_no_secret() -> None:
    used = {m["name"] for m in VARIABLE.finditer(COMPOSE.read_text())}
    listed = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.partition("=")
            listed[name] = value
    assert used - {"OVERDUE_VERSION"} <= set(listed), used - set(listed)
    for name, value in listed.items():
        if SECRET_NAME.search(name):
            assert value == "", f".env.example must not hold a value for {name}"


def test_the_namespace_gets_every_search_attribute() -> None:
    env = environment("temporal-namespace")
    declared = {
        name: kind
        for kind in ("Keyword", "Int", "Double", "Bool", "Datetime")
        for name in env[f"{kind.upper()}_ATTRIBUTES"].split()
    }
    assert declared == SEARCH_ATTRIBUTES


def test_overdue_commands_in_compose_exist_with_their_options() -> None:
    commands = typer.main.get_command(app).commands  # type: ignore[attr-defined]
    for name in ("migrate", "worker", "api", "codec"):
        args = services()[name]["command"]
        command = commands.get(args[0])
        assert command is not None, f"{name}: `overdue {args[0]}` is not a command"
        known = {opt for param in command.params for opt in getattr(param, "opts", [])}
        for option in (arg for arg in args[1:] if arg.startswith("--")):
            assert option in known, f"{name}: `overdue {args[0]}` has no {option}"


# --- Dockerfile -----------------------------------------------------------------------------


def dockerfile_instructions() -> list[tuple[str, str]]:
    text = DOCKERFILE.read_text().replace("\\\n", " ")
    lines = [line.strip() for line in text.splitlines()]
    return [
        (line.split(None, 1)[0].upper(), line.split(None, 1)[1])
        for line in lines
        if line and not line.startswith("#")
    ]


def test_base_images_are_pinned_to_a_patch_release_the_project_supports() -> None:
    bases = [arg.split()[0] for kind, arg in dockerfile_instructions() if kind == "FROM"]
    assert bases
    requires = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    minimum = tuple(int(part) for part in requires.removeprefix(">=").split("."))
    for base in bases:
        match = re.fullmatch(r"python:(\d+)\.(\d+)\.(\d+)-slim-\w+", base)
        assert match, f"{base} is not pinned to a patch release"
        assert tuple(int(part) for part in match.groups()[:2]) >= minimum


def test_the_image_installs_the_project_and_runs_as_a_user() -> None:
    instructions = dockerfile_instructions()
    runs = " ".join(arg for kind, arg in instructions if kind == "RUN")
    assert re.search(r"pip install \.(\s|$)", runs)
    final_stage = instructions[max(i for i, (k, _) in enumerate(instructions) if k == "FROM") :]
    users = [arg for kind, arg in final_stage if kind == "USER"]
    assert users and users[-1] not in ("root", "0"), users
    assert ("ENTRYPOINT", '["overdue"]') in final_stage
    assert ("CMD", '["worker"]') in final_stage


def test_the_build_context_holds_what_the_image_copies() -> None:
    ignored = ENV_EXAMPLE.parent / ".dockerignore"
    allowed = {line[1:].rstrip("/") for line in ignored.read_text().splitlines() if line[:1] == "!"}
    for kind, arg in dockerfile_instructions():
        if kind == "COPY" and not arg.startswith("--from"):
            for source in arg.split()[:-1]:
                assert source in allowed, f"COPY {source} is excluded by .dockerignore"
                assert (ROOT / source).exists(), source


# --- docs/deployment.md ---------------------------------------------------------------------


def test_deployment_doc_registers_every_search_attribute_on_both_kinds_of_cluster() -> None:
    doc = DEPLOYMENT_DOC.read_text()
    self_hosted = dict(
        re.findall(r"temporal operator search-attribute create .*--name (\w+) --type (\w+)", doc)
    )
    assert self_hosted == SEARCH_ATTRIBUTES
    cloud = dict(re.findall(r'--search-attribute "(\w+)=(\w+)"', doc))
    assert cloud == SEARCH_ATTRIBUTES
