"""The compose file's `temporal-namespace` script, run for real against the dev server.

No Docker engine is needed: the script is plain sh over the `temporal` CLI, which the dev server's
wheel installs too. It runs twice on a namespace of its own, as a restarted stack runs it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import yaml
from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import ListSearchAttributesRequest
from temporalio.client import Client

from overdue.stack import SEARCH_ATTRIBUTES, EmbeddedStack

pytestmark = pytest.mark.integration

COMPOSE = Path(__file__).parents[2] / "docker-compose.yml"


def run_namespace_script(temporal_address: str, namespace: str) -> subprocess.CompletedProcess[str]:
    service = yaml.safe_load(COMPOSE.read_text())["services"]["temporal-namespace"]
    script = service["command"][0].replace("$$", "$")  # compose's escape for the shell's `$`
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("TEMPORAL_")},
        **{k: str(v) for k, v in service["environment"].items()},
        "TEMPORAL_ADDRESS": temporal_address,
        "NAMESPACE": namespace,
        "RETENTION": "1d",
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
    }
    assert service["entrypoint"] == ["/bin/sh", "-ec"]
    return subprocess.run(
        ["/bin/sh", "-ec", script], env=env, capture_output=True, text=True, timeout=120
    )


async def test_the_script_creates_the_namespace_and_every_search_attribute(
    stack: EmbeddedStack,
) -> None:
    namespace = f"compose-{uuid.uuid4().hex[:8]}"
    for _ in range(2):
        result = run_namespace_script(stack.temporal_address, namespace)
        assert result.returncode == 0, result.stdout + result.stderr
        assert f"namespace {namespace} ready" in result.stdout

    client = await Client.connect(stack.temporal_address)
    listed = await client.operator_service.list_search_attributes(
        ListSearchAttributesRequest(namespace=namespace)
    )
    created = {
        name: kind
        for name, kind in SEARCH_ATTRIBUTES.items()
        if listed.custom_attributes.get(name)
        == IndexedValueType.Value(f"INDEXED_VALUE_TYPE_{kind.upper()}")
    }
    assert created == SEARCH_ATTRIBUTES
