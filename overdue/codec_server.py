"""The codec server: decrypts (and encrypts) payloads for the Temporal Web UI and CLI.

It follows Temporal's codec server contract: ``POST /decode`` and ``POST /encode`` take and return
``{"payloads": [...]}`` with each payload in protobuf JSON form (``metadata`` values and ``data``
base64). The Web UI adds an ``X-Namespace`` header; one key ring serves every namespace its
workers share, so the header is accepted and not needed. The same routes are also served under a
namespace segment (``/{namespace}/decode``) for endpoints templated with ``{namespace}``.

Only the UI origins given may call it from a browser (CORS). When a token is configured
(``OVERDUE_CODEC_TOKEN``), every request needs ``Authorization: Bearer <token>``; see
docs/pii-protection.md for putting it behind the UI's sign-in.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, replace

from fastapi import FastAPI, Request, Response
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse
from google.protobuf import json_format
from temporalio.api.common.v1 import Payload, Payloads
from temporalio.converter import PayloadCodec

from overdue.codec import (
    EncryptionCodec,
    EncryptionKeyError,
    KeyRing,
    PayloadDecryptionError,
    create_key_file,
)
from overdue.config import Config
from overdue.serving import serve_asgi, token_matches
from overdue.stack import port_or_free

ORIGINS_ENV = "OVERDUE_CODEC_ORIGINS"
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8081
# The embedded stack's Web UI, under both names a browser may use for it.
DEFAULT_ORIGINS = ("http://localhost:8233", "http://127.0.0.1:8233")
KEY_FILE_NAME = "encryption-keys.json"

Transform = Callable[[Sequence[Payload]], Awaitable[list[Payload]]]


def origins_from_env(env: Mapping[str, str] | None = None) -> list[str]:
    """The UI origins allowed to call the codec server: ``OVERDUE_CODEC_ORIGINS`` or the default."""
    listed = (os.environ if env is None else env).get(ORIGINS_ENV, "")
    origins = [origin.strip().rstrip("/") for origin in listed.split(",") if origin.strip()]
    return origins or list(DEFAULT_ORIGINS)


def create_app(codec: PayloadCodec, *, origins: Sequence[str], token: str | None = None) -> FastAPI:
    """The codec server for ``codec``.

    Args:
        codec: Encrypts and decrypts the payloads (the workers' own codec).
        origins: Browser origins allowed by CORS: the Temporal Web UI's, exactly.
        token: When set, requests must carry ``Authorization: Bearer <token>``.
    """
    app = FastAPI(title="overdue codec server", docs_url=None, redoc_url=None, openapi_url=None)
    app.add_middleware(
        CORSMiddleware,
        allow_origins=list(origins),
        # The UI's "include cross-origin credentials" option sends cookies; allow it for the
        # listed origins only (never with a wildcard).
        allow_credentials=True,
        allow_methods=["POST"],
        allow_headers=["Content-Type", "X-Namespace", "Authorization"],
    )

    def authorised(request: Request) -> bool:
        if token is None:
            return True
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        return scheme.lower() == "bearer" and token_matches(given.strip(), token)

    async def apply(request: Request, transform: Transform) -> Response:
        if not authorised(request):
            return JSONResponse(
                {"detail": "authorization: a valid bearer token is required"},
                status_code=401,
                headers={"WWW-Authenticate": "Bearer"},
            )
        try:
            received = json_format.Parse(await request.body(), Payloads())
        except json_format.ParseError as problem:
            return JSONResponse({"detail": f"payloads: {problem}"}, status_code=400)
        try:
            payloads = await transform(received.payloads)
        except PayloadDecryptionError as problem:
            return JSONResponse({"detail": str(problem)}, status_code=400)
        body = json_format.MessageToJson(Payloads(payloads=payloads))
        return Response(body, media_type="application/json")

    for prefix in ("", "/{namespace}"):
        app.add_api_route(f"{prefix}/encode", _route(apply, codec.encode), methods=["POST"])
        app.add_api_route(f"{prefix}/decode", _route(apply, codec.decode), methods=["POST"])
    return app


def _route(
    apply: Callable[[Request, Transform], Awaitable[Response]], transform: Transform
) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        return await apply(request, transform)

    return endpoint


async def run_codec_server(
    codec: PayloadCodec,
    *,
    host: str,
    port: int,
    origins: Sequence[str],
    stop: asyncio.Event,
    token: str | None = None,
) -> None:
    """Serve the codec server on ``host:port`` until ``stop`` is set."""
    await serve_asgi(create_app(codec, origins=origins, token=token), host, port, stop)


def codec_for(config: Config) -> EncryptionCodec:
    """The codec of the configured keys; an error that says what to set when there are none."""
    ring = KeyRing.configured(config.encryption_keys, config.encryption_key_file)
    if ring is None:
        raise EncryptionKeyError(
            "encryption keys: set OVERDUE_ENCRYPTION_KEYS or OVERDUE_ENCRYPTION_KEY_FILE"
        )
    return EncryptionCodec(ring)


@dataclass(frozen=True)
class StackCodec:
    """The codec server of an encrypted embedded stack (``overdue up --encrypt``)."""

    config: Config  # the stack's configuration, with its keys
    codec: EncryptionCodec
    port: int
    created_key: str | None  # the id of a key made for this stack just now, if one was

    @property
    def endpoint(self) -> str:
        return f"http://{DEFAULT_HOST}:{self.port}"

    async def serve(self, ui_url: str | None, stop: asyncio.Event) -> None:
        """Serve until ``stop``, to the stack's Web UI (or the default origins without one)."""
        if ui_url is None:
            origins = list(DEFAULT_ORIGINS)
        else:
            # The browser may name the UI either way; both are the same local UI.
            origins = [ui_url, ui_url.replace("://127.0.0.1:", "://localhost:")]
        await run_codec_server(
            self.codec,
            host=DEFAULT_HOST,
            port=self.port,
            origins=origins,
            stop=stop,
            token=self.config.codec_token,
        )


def prepare_stack_codec(config: Config) -> StackCodec:
    """Keys for an encrypted embedded stack, and the port of its codec server.

    Keys configured in the environment are used as they are. Otherwise the stack keeps its own
    key file in the data dir, created (mode 0600) on first use and reused after, so that what one
    run encrypted the next still reads.
    """
    created = None
    if not (config.encryption_keys or config.encryption_key_file):
        key_file = config.home / KEY_FILE_NAME
        if not key_file.exists():
            created = create_key_file(key_file)
        config = replace(config, encryption_key_file=key_file)
    port = port_or_free(DEFAULT_PORT)
    return StackCodec(config=config, codec=codec_for(config), port=port, created_key=created)
