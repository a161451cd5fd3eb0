"""Serving an ASGI app (the HTTP API, the codec server) inside an asyncio program.

``overdue up`` runs several servers in one event loop beside the worker, so each is a uvicorn
``Server`` driven by the loop rather than ``uvicorn.run``, which would own the process and its
signal handlers.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import os
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import uvicorn


def token_matches(given: str, expected: str) -> bool:
    """Whether a bearer token is the expected one, in constant time.

    The digests compared are of equal length, so neither the token's content nor its length
    leaks through the time a refusal takes.
    """
    return hmac.compare_digest(
        hashlib.sha256(given.encode()).digest(), hashlib.sha256(expected.encode()).digest()
    )


def stored_token(path: Path, check: Callable[[str], str]) -> str:
    """The secret token kept in ``path``: the one there when ``check`` accepts it, else a new
    one, written readable by its owner only (the embedded stack's API and codec server tokens).

    ``check`` returns the token as it is to be used, or raises ``ValueError``.
    """
    try:
        return check(path.read_text())
    except (FileNotFoundError, ValueError):
        pass
    token = secrets.token_urlsafe(32)
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as file:
        file.write(token + "\n")
    os.chmod(path, 0o600)  # O_CREAT's mode does not apply to a file that existed
    return token


class _EmbeddedServer(uvicorn.Server):
    """A uvicorn server that leaves the signals to the program it runs in."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        # The caller owns the signals: Ctrl-C stops the whole stack, in order.
        yield


async def serve_asgi(app: Any, host: str, port: int, stop: asyncio.Event) -> None:
    """Serve ``app`` on ``host:port`` until ``stop`` is set, then shut down gracefully."""
    server = _EmbeddedServer(
        uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="on")
    )
    serving = asyncio.create_task(server.serve())
    stopping = asyncio.create_task(stop.wait())
    try:
        await asyncio.wait({serving, stopping}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        server.should_exit = True
        stopping.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await serving
