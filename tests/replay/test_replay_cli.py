"""``overdue replay --json`` prints one JSON document on stdout, and the SDK core's logs on stderr.

The command runs as an engineer runs it, in its own process: the core's log lines (a failing
workflow task on every replay of a diverging history, warnings about the server) are written by
the Rust core, outside Python's ``sys.stdout``, so only a real process shows where they go.
No server is needed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.replay.test_replay import HISTORIES, tampered_operator_hold

OVERDUE = str(Path(sys.executable).parent / "overdue")


def replay_json(
    tmp_path: Path, *files: Path, options: tuple[str, ...] = ()
) -> tuple[int, Any, str]:
    """Run ``overdue replay FILES --json``: exit code, stdout parsed as one JSON document (and
    nothing else: ``json.loads`` refuses anything after it), stderr."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OVERDUE_", "TEMPORAL_"))} | {
        "OVERDUE_HOME": str(tmp_path / "home")
    }  # no running stack, no keys
    done = subprocess.run(
        [OVERDUE, "replay", *map(str, files), "--json", *options],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert "Traceback" not in done.stderr, done.stderr
    assert "temporal core" not in done.stdout and "Failing workflow task" not in done.stdout
    return done.returncode, json.loads(done.stdout), done.stderr


def test_a_good_history_prints_one_json_document(tmp_path: Path) -> None:
    [good] = [p for p in HISTORIES if p.stem == "before-lean-history-operator-hold-run1"]
    code, report, _ = replay_json(tmp_path, good)
    assert code == 0
    assert (report["replayed"], report["failed"]) == (1, 0)
    [result] = report["results"]
    assert (result["ok"], result["source"], result["diverging"]) == (True, str(good), None)


def test_a_diverging_history_prints_one_json_document_and_the_core_logs_on_stderr(
    tmp_path: Path,
) -> None:
    history, changed_event_id = tampered_operator_hold()
    good = HISTORIES[0]
    tampered = tmp_path / "collection-L-z@run-3.json"
    tampered.write_text(json.dumps(history))

    code, report, stderr = replay_json(tmp_path, good, tampered)
    assert code == 1
    assert (report["replayed"], report["failed"]) == (2, 1)
    ok, failed = report["results"]
    assert (ok["ok"], ok["source"]) == (True, str(good))
    assert (failed["ok"], failed["workflow_id"], failed["run_id"]) == (
        False,
        "collection-L-z",
        "run-3",
    )
    assert "something_else" in failed["error"]
    assert failed["diverging"] == {
        "event_id": changed_event_id,
        "event_type": "EVENT_TYPE_ACTIVITY_TASK_SCHEDULED",
    }
    # The core did log the failing workflow task: on stderr, where it breaks no JSON.
    assert "Failing workflow task" in stderr, stderr


def test_with_jobs_a_diverging_history_prints_one_json_document(tmp_path: Path) -> None:
    """``--jobs 2``: the worker processes' output (the core's warnings) goes to stderr too."""
    history, changed_event_id = tampered_operator_hold()
    tampered = tmp_path / "collection-L-j@run-6.json"
    tampered.write_text(json.dumps(history))
    files = [*HISTORIES[:3], tampered]

    code, report, stderr = replay_json(tmp_path, *files, options=("--jobs", "2"))
    assert code == 1
    assert (report["replayed"], report["failed"]) == (4, 1)
    assert [r["source"] for r in report["results"]] == [str(f) for f in files]
    failed = report["results"][3]
    assert (failed["ok"], failed["workflow_id"], failed["run_id"]) == (
        False,
        "collection-L-j",
        "run-6",
    )
    assert failed["diverging"]["event_id"] == changed_event_id
    assert "Failing workflow task" in stderr, stderr


@pytest.mark.parametrize("sandbox", ["worker", "strict"])
def test_the_sandbox_options_replay_too(tmp_path: Path, sandbox: str) -> None:
    [good] = [p for p in HISTORIES if p.stem == "operator-hold-run1"]
    code, report, _ = replay_json(tmp_path, good, options=("--sandbox", sandbox))
    assert (code, report["replayed"], report["failed"]) == (0, 1, 0)
