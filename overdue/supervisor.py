"""Supervision of what ``overdue up`` runs: restart what dies, give up when restarts keep failing.

Each component (the Temporal dev server, PostgreSQL, the worker, the HTTP API, the codec server)
is watched from the moment it first runs. When one ends while the stack is meant to run, the
supervisor says so on stderr — which component, its exit code, the tail of its log — and starts
it again after a backoff (1 s, doubling to 30 s at most). A run of a minute or more counts as a
success and resets the backoff. After five failures in a row (a restart that did not start, or a
run shorter than a minute) it gives up: :meth:`Supervisor.run` raises :class:`ComponentFailed`,
``overdue up`` stops everything else and exits with code 3. The policy is in docs/decisions.md.

:meth:`Supervisor.health` reports each component as it is at that moment, for ``/healthz``.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

State = Literal["up", "restarting", "failed"]
LOG_TAIL_LINES = 10
POLL_SECONDS = 0.5  # how often a process is looked at; a death is reported within this


class ComponentFailed(RuntimeError):
    """A component kept failing after its restarts; the message names it and says why."""


@dataclass(frozen=True)
class RestartPolicy:
    """How often, and how patiently, a component that died is started again."""

    first_backoff: float = 1.0
    max_backoff: float = 30.0
    max_failures: int = 5  # failures in a row before giving up
    stable_after: float = 60.0  # a run at least this long resets the count

    def backoff(self, failures: int) -> float:
        """The wait before the restart that follows ``failures`` failures in a row (>= 1)."""
        return float(min(self.max_backoff, self.first_backoff * 2 ** (failures - 1)))


@dataclass(frozen=True)
class Exit:
    """How a component ended: the process's exit code if it is a process, and what is known."""

    code: int | None
    detail: str


class Component(Protocol):
    """Something the supervisor watches and restarts."""

    name: str

    def alive(self) -> bool:
        """Whether it runs now (asked at every health request, so cheap)."""
        ...

    def describe(self) -> dict[str, Any]:
        """What identifies the running instance (pid, address), for the health report."""
        ...

    async def wait(self) -> Exit:
        """Return once it has ended."""
        ...

    async def restart(self) -> None:
        """Start it again; raises when it cannot be started."""
        ...

    def log_tail(self) -> str:
        """The last lines of its log, or '' when it has none."""
        ...


class ProcessComponent:
    """A server process (ours or a daemon's), watched by polling: nothing to await on a daemon."""

    def __init__(
        self,
        name: str,
        *,
        pid: Callable[[], int | None],
        exit_code: Callable[[], int | None],
        restart: Callable[[], Coroutine[Any, Any, None]],
        log: Path | None,
        describe: Callable[[], dict[str, Any]] | None = None,
    ) -> None:
        self.name = name
        self._pid = pid
        self._exit_code = exit_code
        self._restart = restart
        self._log = log
        self._describe = describe or dict

    def alive(self) -> bool:
        return self._exit_code() is None and self._pid() is not None

    def describe(self) -> dict[str, Any]:
        return {"pid": self._pid(), **self._describe()}

    async def wait(self) -> Exit:
        while self.alive():
            await asyncio.sleep(POLL_SECONDS)
        code = self._exit_code()
        return Exit(code, describe_exit(code))

    async def restart(self) -> None:
        await self._restart()

    def log_tail(self) -> str:
        return tail(self._log) if self._log else ""


class TaskComponent:
    """A coroutine of this process (the worker, a server of the event loop), run as a task."""

    def __init__(self, name: str, run: Callable[[], Coroutine[Any, Any, None]]) -> None:
        self.name = name
        self._run = run
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=self.name)

    def alive(self) -> bool:
        return self._task is not None and not self._task.done()

    def describe(self) -> dict[str, Any]:
        return {}

    async def wait(self) -> Exit:
        assert self._task is not None
        # asyncio.wait neither raises what the task raised nor cancels it with the watcher.
        await asyncio.wait({self._task})
        if self._task.cancelled():
            return Exit(None, "cancelled")
        problem = self._task.exception()
        if problem is None:
            return Exit(None, "returned")
        return Exit(None, f"{type(problem).__name__}: {problem}")

    async def restart(self) -> None:
        self.start()

    def log_tail(self) -> str:
        return ""

    async def finish(self) -> None:
        """Wait for the task to end (after the stop event was set); its failure is reported."""
        if self._task is not None:
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await self._task


def describe_exit(code: int | None) -> str:
    if code is None:
        return "exit code unknown (not our child)"
    if code < 0:
        return f"killed by signal {-code}"
    return f"exit code {code}"


def tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    """The last ``lines`` lines of a log file, or a note that it cannot be read."""
    try:
        with path.open("rb") as file:
            file.seek(0, 2)
            file.seek(max(0, file.tell() - 16_384))
            text = file.read().decode(errors="replace")
    except OSError as problem:
        return f"(log {path} unreadable: {problem.strerror})"
    return "\n".join(text.splitlines()[-lines:])


@dataclass
class _Watch:
    state: State = "up"
    restarts: int = 0
    failures: int = 0
    since: float = 0.0
    last_exit: str | None = None


class Supervisor:
    """Watches components until stopped; restarts them by its policy, or gives up."""

    def __init__(
        self,
        report: Callable[[str], None],
        policy: RestartPolicy | None = None,
    ) -> None:
        self.policy = policy or RestartPolicy()
        self._report = report
        self._components: list[Component] = []
        self._watches: dict[str, _Watch] = {}

    def add(self, component: Component) -> None:
        """Watch ``component``, which is running now."""
        self._components.append(component)
        self._watches[component.name] = _Watch(since=time.monotonic())

    def health(self) -> dict[str, dict[str, Any]]:
        """Each component's state now: ``up`` only if it runs at this moment."""
        report: dict[str, dict[str, Any]] = {}
        for component in self._components:
            watch = self._watches[component.name]
            alive = component.alive()
            # Dead but not yet noticed by its watcher (at most POLL_SECONDS): down, not up.
            status = ("up" if alive else "down") if watch.state == "up" else watch.state
            entry: dict[str, Any] = {"status": status, "restarts": watch.restarts}
            if alive:
                entry.update(component.describe())
            if watch.last_exit:
                entry["last_exit"] = watch.last_exit
            report[component.name] = entry
        return report

    async def run(self, stop: asyncio.Event) -> None:
        """Supervise until ``stop`` is set.

        Raises:
            ComponentFailed: a component failed ``max_failures`` times in a row.
        """
        watchers = [asyncio.create_task(self._watch(c, stop)) for c in self._components]
        stopping = asyncio.create_task(stop.wait())
        try:
            done, _ = await asyncio.wait({stopping, *watchers}, return_when=asyncio.FIRST_COMPLETED)
            for finished in done:
                if finished is not stopping:
                    finished.result()  # a watcher ends early only by giving up
        finally:
            for task in (stopping, *watchers):
                task.cancel()
            await asyncio.gather(stopping, *watchers, return_exceptions=True)

    async def _watch(self, component: Component, stop: asyncio.Event) -> None:
        watch = self._watches[component.name]
        while True:
            ended = await component.wait()
            if stop.is_set():
                return
            ran = time.monotonic() - watch.since
            if ran >= self.policy.stable_after:
                watch.failures = 0
            watch.failures += 1
            watch.state = "restarting"
            watch.last_exit = ended.detail
            self._report(_death_line(component, ended, ran))
            await self._restart(component, watch, stop)
            if stop.is_set():
                return

    async def _restart(self, component: Component, watch: _Watch, stop: asyncio.Event) -> None:
        """Start ``component`` again after a backoff, until it starts or the failures run out."""
        while True:
            if watch.failures >= self.policy.max_failures:
                watch.state = "failed"
                raise ComponentFailed(
                    f"{component.name} failed {watch.failures} times in a row"
                    f" (last: {watch.last_exit}); giving up"
                )
            delay = self.policy.backoff(watch.failures)
            self._report(f"{component.name}: restarting in {delay:g} s")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), delay)
            if stop.is_set():
                return
            try:
                await component.restart()
            except Exception as problem:
                watch.failures += 1
                watch.last_exit = f"restart failed: {problem}"
                self._report(f"{component.name}: restart failed: {problem}")
                continue
            watch.restarts += 1
            watch.state = "up"
            watch.since = time.monotonic()
            self._report(f"{component.name}: restarted ({_identity(component)})")
            return


def _identity(component: Component) -> str:
    described = component.describe()
    return ", ".join(f"{key} {value}" for key, value in described.items()) or "running"


def _death_line(component: Component, ended: Exit, ran: float) -> str:
    line = f"{component.name} stopped after {ran:.0f} s: {ended.detail}"
    log = component.log_tail()
    return f"{line}; last lines of its log:\n{log}" if log else line
