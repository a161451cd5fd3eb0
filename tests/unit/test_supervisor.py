"""The supervisor's policy on components of this process: restart with backoff, then give up."""

from __future__ import annotations

import asyncio

import pytest

from overdue.supervisor import ComponentFailed, RestartPolicy, Supervisor, TaskComponent

QUICK = RestartPolicy(first_backoff=0.01, max_backoff=0.04, max_failures=3, stable_after=60)


def test_the_backoff_doubles_up_to_its_ceiling() -> None:
    policy = RestartPolicy()
    assert [policy.backoff(n) for n in range(1, 8)] == [1, 2, 4, 8, 16, 30, 30]


async def test_a_component_that_dies_once_is_restarted_and_reported() -> None:
    runs: list[int] = []
    stop = asyncio.Event()
    reported: list[str] = []

    async def worker() -> None:
        runs.append(len(runs))
        if len(runs) == 1:
            raise ConnectionError("lost the server")
        await stop.wait()

    supervisor = Supervisor(report=reported.append, policy=QUICK)
    component = TaskComponent("worker", worker)
    component.start()
    supervisor.add(component)
    supervising = asyncio.create_task(supervisor.run(stop))
    async with asyncio.timeout(10):
        while supervisor.health()["worker"]["restarts"] < 1:
            await asyncio.sleep(0.01)
    health = supervisor.health()["worker"]
    assert health["status"] == "up"
    assert health["last_exit"] == "ConnectionError: lost the server"
    stop.set()
    await supervising
    await component.finish()
    assert len(runs) == 2
    assert reported[0].startswith("worker stopped after 0 s: ConnectionError: lost the server")
    assert reported[-1] == "worker: restarted (running)"


async def test_a_component_that_keeps_dying_makes_the_supervisor_give_up() -> None:
    async def broken() -> None:
        raise OSError("port 8000 is taken")

    stop = asyncio.Event()
    supervisor = Supervisor(report=lambda _line: None, policy=QUICK)
    component = TaskComponent("api", broken)
    component.start()
    supervisor.add(component)
    with pytest.raises(ComponentFailed, match=r"api failed 3 times in a row .*port 8000"):
        async with asyncio.timeout(10):
            await supervisor.run(stop)
    assert supervisor.health()["api"]["status"] == "failed"


async def test_a_dead_component_is_down_before_its_watcher_notices() -> None:
    async def ends() -> None:
        return None

    supervisor = Supervisor(report=lambda _line: None, policy=QUICK)
    component = TaskComponent("codec-server", ends)
    component.start()
    supervisor.add(component)
    await component.finish()
    assert supervisor.health()["codec-server"]["status"] == "down"
