"""The time-skipping test server of the session: on a port of its own, and started again if it died.

A free port is only free until someone binds it: another suite on the machine may take it between
our look and the server's bind. The server then exits, or, worse, a client reaches the other
process on that port. So the server counts as started only when it answers its test service *and*
the process listening on the port is our own child; otherwise it is started again on another
port. Before each test the server must still answer and its clock still move; if not, a new one
is started, so that one dead or stuck server fails one test at most.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import timedelta

import psutil
from temporalio.api.testservice.v1 import SleepRequest
from temporalio.service import RetryConfig, RPCError
from temporalio.testing import WorkflowEnvironment

from overdue.stack import free_port, register_search_attributes

START_ATTEMPTS = 3
# The Java server starts in about a second; on a loaded machine it can take far longer, and the
# SDK's default (5 s) then fails the whole session.
STARTUP_TIMEOUT = timedelta(seconds=60)
# The client's retries of transient errors (UNAVAILABLE and the like), on a loaded machine: for a
# minute rather than the SDK's 10 s.
RETRY = RetryConfig(max_interval_millis=2_000, max_elapsed_time_millis=60_000, max_retries=60)
HEALTH_TIMEOUT = 15.0
SKIP_A_MILLISECOND = SleepRequest()
SKIP_A_MILLISECOND.duration.FromTimedelta(timedelta(milliseconds=1))
log = logging.getLogger(__name__)


def listener(port: int) -> psutil.Process | None:
    """Our child process that listens on ``port``, if there is one."""
    for child in psutil.Process().children(recursive=True):
        with contextlib.suppress(psutil.Error):
            if child.status() == psutil.STATUS_ZOMBIE:
                continue
            for conn in child.net_connections(kind="tcp"):
                if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == port:
                    return child
    return None


class TestServer:
    """Starts the time-skipping server, and starts it again when it no longer answers."""

    __test__ = False  # not a test class

    def __init__(self, binary: str) -> None:
        self.binary = binary
        self.env: WorkflowEnvironment | None = None
        self.process: psutil.Process | None = None
        self.port: int | None = None
        self.starts = 0

    async def ready(self) -> WorkflowEnvironment:
        """The running environment, or a new one if the server died or stopped answering."""
        if self.env is not None and await self._answers():
            return self.env
        if self.env is not None:
            log.warning("the time-skipping server on port %s died; starting another", self.port)
            await self.stop()
        self.env = await self._start()
        return self.env

    async def stop(self) -> None:
        env, self.env = self.env, None
        if env is not None:
            with contextlib.suppress(Exception):  # already dead
                await env.shutdown()

    async def _start(self) -> WorkflowEnvironment:
        problems: list[str] = []
        for _ in range(START_ATTEMPTS):
            port = free_port()
            try:
                env = await WorkflowEnvironment.start_time_skipping(
                    port=port,
                    test_server_existing_path=self.binary,
                    test_server_startup_timeout=STARTUP_TIMEOUT,
                    retry_config=RETRY,
                )
            except RuntimeError as error:  # it exited, or never answered: the port was taken
                problems.append(f"port {port}: {error}")
                continue
            process = listener(port)
            if process is None:  # what answered is someone else's server
                problems.append(f"port {port}: answered by a process that is not ours")
                await env.shutdown()
                continue
            await register_search_attributes(env.client, "default")
            self.process, self.port = process, port
            self.starts += 1
            return env
        raise RuntimeError("the time-skipping test server did not start: " + "; ".join(problems))

    async def _answers(self) -> bool:
        assert self.env is not None and self.process is not None
        with contextlib.suppress(psutil.Error):
            if self.process.status() == psutil.STATUS_ZOMBIE:
                return False
        if not self.process.is_running():
            return False
        for _ in range(3):
            try:
                async with asyncio.timeout(HEALTH_TIMEOUT):
                    await self.env.get_current_time()
                    # Its clock must still move: a workflow terminated while one of its
                    # activities ran leaves it stopped for good.
                    await self.env.client.test_service.unlock_time_skipping_with_sleep(
                        SKIP_A_MILLISECOND, timeout=timedelta(seconds=HEALTH_TIMEOUT)
                    )
                return True
            except (RPCError, TimeoutError):
                await asyncio.sleep(1)
        return False
