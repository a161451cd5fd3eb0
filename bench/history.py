"""How heavy the workflow's history is per outreach action: the replay corpus beside the engine.

    .venv/bin/python bench/history.py [--histories tests/replay/histories] [--actions 10,40]
        [--timer-seconds 0.05] [--detail referred] [--corpus-only] [--json]

**The corpus.** It reads the committed histories (one file per run of a continue-as-new chain,
``<story>-run<N>.json``) and groups them by story; the ``before-…`` stories, older versions of a
story kept for compatibility, are reported apart. For each story: runs, events over all runs,
outreach actions (``ActivityTaskScheduled`` of ``place_call``, ``send_sms`` or ``serve_notice``,
the last being letters; and a ``core_local_activity`` marker of one of these types, should an
action ever run as a local activity), events per action, and where the events go:

- workflow tasks: ``WorkflowTaskScheduled``/``Started``/``Completed`` (and failed, timed out);
- timers: ``TimerStarted``/``TimerFired``/``TimerCanceled``;
- search attributes: ``UpsertWorkflowSearchAttributes``;
- outreach activities: every ``ActivityTask*`` event of an outreach action's activity;
- other activities: every ``ActivityTask*`` event of the other activities (ledger, strategy...);
- markers (``MarkerRecorded``): local activities, patches (``workflow.patched``), others;
- signals (``WorkflowExecutionSignaled``), updates (``WorkflowExecutionUpdate*``), and the runs'
  own start and end (started, continued-as-new, completed).

**The engine.** On a real Temporal dev server (the embedded stack, in a temporary data dir, as
``bench/throughput.py`` starts it) with a worker in this process, a minimal workflow defined here
makes ``N`` actions, each one timer (``workflow.sleep``) then one no-op activity, for each ``N``
of ``--actions``; its events per action are read from its real history, with the same counting.
That is the raw figure of the engine for an outreach cadence of one wait and one action:
11 events per action (2 timer, 3 activity, two workflow tasks of 3) plus 5 per run. The dev server
fires timers on a tick of about a second, so an action takes about a second and the default
``--actions 10,40`` (run side by side) about 45 s, the stack's start included.

**The goals** of the product issue, against the corpus as measured: at most 10 events per
outreach action on average over the ``referred`` story, and at most 450 events for the whole
``referred`` story; each line says PASS or FAIL.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import binascii
import json
import os
import re
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from temporalio import activity, workflow
from temporalio.client import Client
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

from overdue.config import Config
from overdue.connection import connect
from overdue.stack import EmbeddedStack, free_port

HISTORIES = Path(__file__).resolve().parent.parent / "tests" / "replay" / "histories"
OLD_PREFIX = "before-"
RUN_FILE = re.compile(r"^(?P<story>.+)-run(?P<run>\d+)\.json$")

# The outreach actions: activity type -> channel.
OUTREACH = {"place_call": "call", "send_sms": "sms", "serve_notice": "letter"}
# The SDK's history markers: a local activity's result, and a patch (``workflow.patched``).
MARKER_LOCAL_ACTIVITY = "core_local_activity"
MARKER_PATCH = "core_patch"

# Where events go, in the order of the tables.
CATEGORIES = (
    "workflow tasks",
    "timers",
    "search attributes",
    "outreach activities",
    "other activities",
    "markers: local activities",
    "markers: patches",
    "markers: other",
    "signals",
    "updates",
    "run start/end",
    "other",
)
SHORT = {
    "workflow tasks": "wf tasks",
    "timers": "timers",
    "search attributes": "search attrs",
    "outreach activities": "outreach act.",
    "other activities": "other act.",
    "markers: local activities": "LA markers",
    "markers: patches": "patch markers",
    "markers: other": "other markers",
    "signals": "signals",
    "updates": "updates",
    "run start/end": "run start/end",
    "other": "other",
}
RUN_EVENTS = {
    "WorkflowExecutionStarted",
    "WorkflowExecutionContinuedAsNew",
    "WorkflowExecutionCompleted",
    "WorkflowExecutionFailed",
    "WorkflowExecutionTimedOut",
    "WorkflowExecutionTerminated",
    "WorkflowExecutionCanceled",
    "WorkflowExecutionCancelRequested",
}

GOAL_STORY = "referred"
GOAL_EVENTS_PER_ACTION = 10.0
GOAL_STORY_EVENTS = 450


def event_type(event: Mapping[str, Any]) -> str:
    """``TimerStarted`` from ``EVENT_TYPE_TIMER_STARTED`` (or from itself)."""
    name = str(event.get("eventType", ""))
    if name.startswith("EVENT_TYPE_"):
        return "".join(part.capitalize() for part in name[len("EVENT_TYPE_") :].split("_"))
    return name


def _attributes(event: Mapping[str, Any]) -> Mapping[str, Any]:
    for key, value in event.items():
        if key.endswith("EventAttributes") and isinstance(value, Mapping):
            return value
    return {}


def _payload_json(details: Mapping[str, Any], key: str) -> dict[str, Any]:
    """The JSON object in a marker's ``details[key]`` payload; {} when absent or unreadable
    (an encrypted payload, say)."""
    try:
        data = details[key]["payloads"][0]["data"]
        value = json.loads(base64.b64decode(data))
    except (KeyError, IndexError, TypeError, ValueError, binascii.Error):
        return {}
    return value if isinstance(value, dict) else {}


def marker(event: Mapping[str, Any]) -> tuple[str, str]:
    """(category, name): a local activity and its type, a patch and its id, or another marker."""
    attrs = _attributes(event)
    name = str(attrs.get("markerName", ""))
    details = attrs.get("details", {}) or {}
    if name == MARKER_LOCAL_ACTIVITY:
        kind = _payload_json(details, "data").get("activity_type", "?")
        return "markers: local activities", f"local activity {kind}"
    if name == MARKER_PATCH:
        patch = _payload_json(details, "patch-data").get("id", "?")
        return "markers: patches", f"patch {patch}"
    return "markers: other", f"marker {name}"


@dataclass
class Story:
    """One story's runs, counted together."""

    name: str
    old_version: bool = False
    runs: list[str] = field(default_factory=list)
    events: int = 0
    actions: Counter[str] = field(default_factory=Counter)  # channel (or "local") -> count
    categories: Counter[str] = field(default_factory=Counter)
    event_types: Counter[str] = field(default_factory=Counter)
    activity_types: Counter[str] = field(default_factory=Counter)  # scheduled, by type
    markers: Counter[str] = field(default_factory=Counter)  # "patch <id>", "local activity <t>"

    @property
    def action_count(self) -> int:
        return sum(self.actions.values())

    @property
    def events_per_action(self) -> float | None:
        return self.events / self.action_count if self.action_count else None

    def add_run(
        self, label: str, events: Iterable[Mapping[str, Any]], outreach: Mapping[str, str]
    ) -> None:
        """Count one run's ``events``; ``outreach`` maps the action activities to channels."""
        self.runs.append(label)
        scheduled: dict[str, str] = {}  # ActivityTaskScheduled event id -> activity type
        for event in events:
            kind = event_type(event)
            self.events += 1
            self.event_types[kind] += 1
            self.categories[self._category(event, kind, scheduled, outreach)] += 1

    def _category(
        self,
        event: Mapping[str, Any],
        kind: str,
        scheduled: dict[str, str],
        outreach: Mapping[str, str],
    ) -> str:
        if kind.startswith("WorkflowTask"):
            return "workflow tasks"
        if kind.startswith("Timer"):
            return "timers"
        if kind == "UpsertWorkflowSearchAttributes":
            return "search attributes"
        if kind.startswith("ActivityTask"):
            attrs = _attributes(event)
            if kind == "ActivityTaskScheduled":
                activity_type = str(attrs.get("activityType", {}).get("name", "?"))
                scheduled[str(event.get("eventId", ""))] = activity_type
                self.activity_types[activity_type] += 1
                if activity_type in outreach:
                    self.actions[outreach[activity_type]] += 1
            else:
                activity_type = scheduled.get(str(attrs.get("scheduledEventId", "")), "?")
            return "outreach activities" if activity_type in outreach else "other activities"
        if kind == "MarkerRecorded":
            category, name = marker(event)
            self.markers[name] += 1
            if name.startswith("local activity ") and name.split(" ", 2)[2] in outreach:
                self.actions["local"] += 1
            return category
        if kind == "WorkflowExecutionSignaled":
            return "signals"
        if kind.startswith("WorkflowExecutionUpdate"):
            return "updates"
        if kind in RUN_EVENTS:
            return "run start/end"
        return "other"

    def as_dict(self) -> dict[str, Any]:
        per_action = self.events_per_action
        return {
            "story": self.name,
            "old_version": self.old_version,
            "runs": len(self.runs),
            "events": self.events,
            "actions": self.action_count,
            "actions_by_channel": dict(self.actions),
            "events_per_action": round(per_action, 2) if per_action is not None else None,
            "by_category": {c: self.categories[c] for c in CATEGORIES if self.categories[c]},
            "by_event_type": dict(self.event_types.most_common()),
            "activities_scheduled": dict(self.activity_types.most_common()),
            "markers": dict(self.markers.most_common()),
        }


def read_corpus(directory: Path) -> list[Story]:
    """Every story of ``directory``, runs in order; a file not named ``-runN`` is a story alone."""
    runs: dict[str, list[tuple[int, Path]]] = {}
    for path in directory.glob("*.json"):
        match = RUN_FILE.match(path.name)
        story, run = (match["story"], int(match["run"])) if match else (path.stem, 1)
        runs.setdefault(story, []).append((run, path))
    stories = []
    for name in sorted(runs):
        story = Story(name, old_version=name.startswith(OLD_PREFIX))
        for _, path in sorted(runs[name]):
            story.add_run(path.name, json.loads(path.read_text())["events"], OUTREACH)
        stories.append(story)
    return stories


# The engine: a minimal workflow, N times one timer then one no-op activity.

ENGINE_ACTIVITY = "engine_action"


@activity.defn(name=ENGINE_ACTIVITY)
async def engine_action() -> None:
    """Does nothing: the action's cost in history is the engine's alone."""


@dataclass
class EngineInput:
    actions: int
    timer_seconds: float


@workflow.defn(name="HistoryBenchEngine")
class EngineActions:
    @workflow.run
    async def run(self, params: EngineInput) -> None:
        for _ in range(params.actions):
            await workflow.sleep(params.timer_seconds)
            await workflow.execute_activity(
                engine_action, start_to_close_timeout=timedelta(seconds=30)
            )


async def engine(client: Client, counts: list[int], timer_seconds: float) -> list[Story]:
    """Run the minimal workflow once per count in ``counts`` and count its real histories."""
    task_queue = f"history-bench-{uuid.uuid4().hex[:8]}"
    # Unsandboxed: the workflow is defined in this script; the sandbox changes no event.
    async with Worker(
        client,
        task_queue=task_queue,
        workflows=[EngineActions],
        activities=[engine_action],
        workflow_runner=UnsandboxedWorkflowRunner(),
    ):

        async def one(count: int) -> Story:
            started = time.monotonic()
            handle = await client.start_workflow(
                EngineActions.run,
                EngineInput(count, timer_seconds),
                id=f"history-bench-{count}-{uuid.uuid4().hex[:8]}",
                task_queue=task_queue,
            )
            await handle.result()
            history = await handle.fetch_history()
            story = Story(f"engine, {count} actions")
            story.add_run(handle.id, history.to_json_dict()["events"], {ENGINE_ACTIVITY: "action"})
            log(
                f"engine: {count} actions, {story.events} events ({time.monotonic() - started:.1f} s)"
            )
            return story

        # Each run has a history of its own: running them side by side changes no figure.
        return list(await asyncio.gather(*(one(count) for count in counts)))


async def run_engine(counts: list[int], timer_seconds: float) -> list[Story]:
    with tempfile.TemporaryDirectory(prefix="overdue-bench-history-") as home:
        stack = EmbeddedStack(
            Config(home=Path(home)), temporal_port=free_port(), ui_port=free_port()
        )
        log("starting the embedded stack (Temporal dev server, PostgreSQL)")
        await stack.start()
        try:
            client = await connect(stack.running_config)
            return await engine(client, counts, timer_seconds)
        finally:
            await stack.stop()


# Goals and output.


@dataclass
class Goal:
    text: str
    limit: float
    measured: float | None

    @property
    def passed(self) -> bool:
        return self.measured is not None and self.measured <= self.limit

    def as_dict(self) -> dict[str, Any]:
        return {
            "goal": self.text,
            "limit": self.limit,
            "measured": self.measured,
            "result": "PASS" if self.passed else "FAIL",
        }


def goals(stories: list[Story]) -> list[Goal]:
    story = next((s for s in stories if s.name == GOAL_STORY), None)
    per_action = story.events_per_action if story else None
    return [
        Goal(
            f"at most {GOAL_EVENTS_PER_ACTION:g} events per outreach action on average over "
            f"the `{GOAL_STORY}` story",
            GOAL_EVENTS_PER_ACTION,
            round(per_action, 2) if per_action is not None else None,
        ),
        Goal(
            f"at most {GOAL_STORY_EVENTS} events for the whole `{GOAL_STORY}` story",
            GOAL_STORY_EVENTS,
            story.events if story else None,
        ),
    ]


def log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _num(value: float | None) -> str:
    return "—" if value is None else f"{value:.1f}"


def _actions(story: Story) -> str:
    channels = "/".join(str(story.actions[c]) for c in ("call", "sms", "letter"))
    local = f" +{story.actions['local']} local" if story.actions["local"] else ""
    return f"{story.action_count} ({channels}{local})"


def story_table(stories: list[Story]) -> list[str]:
    shown = [c for c in CATEGORIES if any(s.categories[c] for s in stories)]
    lines = [
        "| story | runs | events | actions (call/sms/letter) | events/action | "
        + " | ".join(SHORT[c] for c in shown)
        + " |",
        "|---" * (5 + len(shown)) + "|",
    ]
    for s in stories:
        cells = [s.name, str(len(s.runs)), str(s.events), _actions(s), _num(s.events_per_action)]
        cells += [str(s.categories[c]) for c in shown]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def detail_table(story: Story, engines: list[Story]) -> list[str]:
    """Per action, biggest first, beside the engine's per action (its largest run)."""
    base = max(engines, key=lambda e: e.action_count) if engines else None
    actions = story.action_count or 1
    head = f"| {story.name}: events by kind | events | per action | share |"
    rule = "|---|---|---|---|"
    if base is not None:
        head += f" {base.name}: per action |"
        rule += "---|"
    lines = [head, rule]
    for category, count in story.categories.most_common():
        row = f"| {category} | {count} | {count / actions:.2f} | {count / story.events:.0%} |"
        if base is not None:
            row += f" {base.categories[category] / base.action_count:.2f} |"
        lines.append(row)
    total = f"| all | {story.events} | {story.events / actions:.2f} | 100% |"
    if base is not None:
        total += f" {base.events / base.action_count:.2f} |"
    lines.append(total)
    return lines


def print_report(
    directory: Path,
    stories: list[Story],
    engines: list[Story],
    checked: list[Goal],
    detail: str,
) -> None:
    current = [s for s in stories if not s.old_version]
    old = [s for s in stories if s.old_version]
    files = sum(len(s.runs) for s in stories)
    print(f"Replay corpus: {directory} ({files} files, {len(stories)} stories)")
    print()
    print("\n".join(story_table(current)))
    if old:
        print()
        print(f"Old versions ({OLD_PREFIX}…, kept for compatibility, not the current code's):")
        print()
        print("\n".join(story_table(old)))
    chosen = next((s for s in stories if s.name == detail), None)
    if chosen is not None:
        print()
        print("\n".join(detail_table(chosen, engines)))
        kinds = ", ".join(f"{k} {n}" for k, n in chosen.event_types.most_common())
        print()
        print(f"{chosen.name} by event type: {kinds}")
        if chosen.markers:
            print(
                f"{chosen.name} markers: "
                + ", ".join(f"{k}: {n}" for k, n in chosen.markers.items())
            )
        others = {k: n for k, n in chosen.activity_types.items() if k not in OUTREACH}
        if others:
            print(
                f"{chosen.name} other activities scheduled: "
                + ", ".join(f"{k}: {n}" for k, n in sorted(others.items(), key=lambda i: -i[1]))
            )
    if engines:
        print()
        print("Raw engine (Temporal dev server, N times one timer then one no-op activity):")
        for e in engines:
            print(
                f"  {e.action_count} actions: {e.events} events, "
                f"{e.events / e.action_count:.3g} per action"
            )
        fewest = min(engines, key=lambda e: e.action_count)
        most = max(engines, key=lambda e: e.action_count)
        if most.action_count > fewest.action_count:
            step = (most.events - fewest.events) / (most.action_count - fewest.action_count)
            fixed = fewest.events - step * fewest.action_count
            print(f"  per added action: {step:g} events; per run, whatever N: {fixed:g}")
    print()
    print("Goals (product issue), against the corpus above:")
    for g in checked:
        measured = "missing" if g.measured is None else f"{g.measured:g}"
        print(f"  {'PASS' if g.passed else 'FAIL'}  {g.text}: {measured} (limit {g.limit:g})")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--histories", type=Path, default=HISTORIES, help="the corpus (tests/replay/histories)"
    )
    parser.add_argument(
        "--actions",
        type=lambda text: [int(n) for n in text.split(",")],
        default=[10, 40],
        help="the engine workflow's action counts, one run each (default 10,40)",
    )
    parser.add_argument(
        "--timer-seconds", type=float, default=0.05, help="the engine's timer per action (0.05)"
    )
    parser.add_argument(
        "--detail", default=GOAL_STORY, help=f"the story broken down per action ({GOAL_STORY})"
    )
    parser.add_argument(
        "--corpus-only", action="store_true", help="count the corpus, start no server"
    )
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()
    if any(n < 1 for n in args.actions):
        parser.error("--actions: every count must be at least 1")
    if not args.histories.is_dir():
        parser.error(f"--histories: no such directory: {args.histories}")
    return args


def main(args: argparse.Namespace) -> None:
    stories = read_corpus(args.histories)
    engines = [] if args.corpus_only else asyncio.run(run_engine(args.actions, args.timer_seconds))
    checked = goals(stories)
    if args.json:
        print(
            json.dumps(
                {
                    "histories": str(args.histories),
                    "stories": [s.as_dict() for s in stories if not s.old_version],
                    "old_versions": [s.as_dict() for s in stories if s.old_version],
                    "engine": [e.as_dict() for e in engines],
                    "goals": [g.as_dict() for g in checked],
                },
                indent=2,
            )
        )
    else:
        print_report(args.histories, stories, engines, checked, args.detail)


if __name__ == "__main__":
    main(parse_args())
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)  # the Temporal SDK can abort at interpreter exit (sdk-python#300)
