"""The codec server: decrypts (and encrypts) payloads for the Temporal Web UI and CLI.

It follows Temporal's codec server contract: ``POST /decode`` and ``POST /encode`` take and return
``{"payloads": [...]}`` with each payload in protobuf JSON form (``metadata`` values and ``data``
base64). The Web UI adds an ``X-Namespace`` header; one key ring serves every namespace its
workers share, so the header is accepted and not needed. The same routes are also served under a
namespace segment (``/{namespace}/decode``) for endpoints templated with ``{namespace}``.

Whoever can call it can read every borrower's details, so it refuses, in this order, each with
one JSON line naming what is wrong (``{"detail": "host: ..."}``):

- a ``Host`` header that is not a name of the address it serves (400): a page on another site
  whose name an attacker re-points at 127.0.0.1 (DNS rebinding) is same-origin to the browser,
  so CORS alone would not stop it, but its requests carry the attacker's name;
- a browser at an origin not listed (CORS);
- a request without the token (401), always required: ``Authorization: Bearer <token>``, or the
  token as a path segment, ``/token/<token>/decode``, for the Web UI, which cannot send a fixed
  header but calls ``<endpoint>/decode`` under any endpoint it is given;
- a body that is not UTF-8, not JSON, not ``{"payloads": [...]}`` or not base64 where the
  contract says base64 (400).

See docs/pii-protection.md.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import urlsplit

from fastapi import FastAPI, Request, Response
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse
from google.protobuf import json_format
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send
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
from overdue.serving import serve_asgi, stored_token, token_matches
from overdue.stack import port_or_free

ORIGINS_ENV = "OVERDUE_CODEC_ORIGINS"
TOKEN_ENV = "OVERDUE_CODEC_TOKEN"
HOSTS_ENV = "OVERDUE_CODEC_HOSTS"
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8081
# The embedded stack's Web UI, under both names a browser may use for it.
DEFAULT_ORIGINS = ("http://localhost:8233", "http://127.0.0.1:8233")
KEY_FILE_NAME = "encryption-keys.json"
TOKEN_FILE_NAME = "codec-token"
MIN_TOKEN_LENGTH = 16
# The path segment that carries the token for a client that cannot send a header (the Web UI).
TOKEN_SEGMENT = "token"
# The names a loopback address answers to; a browser may use any of them.
LOOPBACK_NAMES = frozenset({"127.0.0.1", "localhost", "::1"})
WILDCARD_HOSTS = frozenset({"", "0.0.0.0", "::"})
# Protobuf JSON's bytes: standard or URL-safe base64, padding optional. Protobuf's own parser
# skips what it cannot read, so a mangled payload would otherwise decode to other bytes.
_BASE64 = re.compile(r"[A-Za-z0-9+/_-]*={0,2}")

Transform = Callable[[Sequence[Payload]], Awaitable[list[Payload]]]


class CodecSettingError(ValueError):
    """A codec server setting that cannot be served; the message names it."""


class BadBody(ValueError):
    """A request body the codec server cannot read; the message names what is wrong."""


def origins_from_env(env: Mapping[str, str] | None = None) -> list[str]:
    """The UI origins allowed to call the codec server: ``OVERDUE_CODEC_ORIGINS`` or the default."""
    listed = (os.environ if env is None else env).get(ORIGINS_ENV, "")
    origins = [origin.strip().rstrip("/") for origin in listed.split(",") if origin.strip()]
    return origins or list(DEFAULT_ORIGINS)


def hosts_from_env(env: Mapping[str, str] | None = None) -> list[str]:
    """The extra host names ``OVERDUE_CODEC_HOSTS`` lists (comma-separated), if any."""
    listed = (os.environ if env is None else env).get(HOSTS_ENV, "")
    return [name.strip() for name in listed.split(",") if name.strip()]


def check_token(token: str | None) -> str:
    """The codec server's token, refused when missing or too short to be a secret.

    Raises:
        CodecSettingError: the message names ``OVERDUE_CODEC_TOKEN``.
    """
    token = (token or "").strip()
    if not token:
        raise CodecSettingError(
            f"{TOKEN_ENV}: is not set; the codec server decrypts borrowers' details and does"
            " not start without a token"
        )
    if len(token) < MIN_TOKEN_LENGTH:
        raise CodecSettingError(f"{TOKEN_ENV}: must be at least {MIN_TOKEN_LENGTH} characters")
    if not re.fullmatch(r"[A-Za-z0-9._~-]+", token):
        # It may travel as a path segment (for the Web UI): only characters a URL keeps as they are.
        raise CodecSettingError(
            f"{TOKEN_ENV}: may hold only letters, digits, '.', '_', '~' and '-'"
        )
    return token


def allowed_hosts(host: str, extra: Iterable[str] = ()) -> frozenset[str]:
    """The host names a codec server listening on ``host`` answers to.

    A loopback address answers to every loopback name; a named address to its name; an address
    of every interface (``0.0.0.0``) to the names in ``extra`` only, which it then needs.

    Raises:
        CodecSettingError: listening on every interface with no name given.
    """
    names = {name.strip().strip("[]").lower() for name in extra if name.strip()}
    bound = host.strip().strip("[]").lower()
    if bound in LOOPBACK_NAMES:
        names |= LOOPBACK_NAMES
    elif bound not in WILDCARD_HOSTS:
        names.add(bound)
    elif not names:
        raise CodecSettingError(
            f"allowed_host: listening on {host or 'every interface'} needs the host names"
            f" browsers and clients use for it (--allowed-host, or {HOSTS_ENV}), so that a"
            " request under another name (DNS rebinding) is refused"
        )
    return frozenset(names)


class HostCheck:
    """Refuses a request whose ``Host`` header names no address this server serves."""

    def __init__(self, app: ASGIApp, hosts: frozenset[str]) -> None:
        self._app = app
        self._hosts = hosts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            given = Headers(scope=scope).get("host", "")
            try:
                name = urlsplit(f"//{given}").hostname or ""
            except ValueError:  # a malformed port, or brackets that do not close
                name = ""
            if name not in self._hosts:
                refusal = JSONResponse(
                    {
                        "detail": f"host: {given!r} is not a name of this codec server"
                        f" (it answers to {', '.join(sorted(self._hosts))})"
                    },
                    status_code=400,
                )
                await refusal(scope, receive, send)
                return
        await self._app(scope, receive, send)


def parse_payloads(body: bytes) -> Payloads:
    """A request body as the contract has it: ``{"payloads": [...]}`` in protobuf JSON.

    Raises:
        BadBody: the message names what is wrong (``body``, ``payloads``, or one field).
    """
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as problem:
        raise BadBody(f"body: is not UTF-8 text (byte {problem.start})") from None
    try:
        document: Any = json.loads(text)
    except json.JSONDecodeError as problem:
        raise BadBody(f"body: is not JSON ({problem.msg} at column {problem.colno})") from None
    listed = document.get("payloads") if isinstance(document, dict) else None
    if not isinstance(listed, list) or not all(isinstance(p, dict) for p in listed):
        raise BadBody('payloads: expected {"payloads": [...]}, a list of payload objects')
    for n, payload in enumerate(listed):
        metadata = payload.get("metadata", {})
        fields = [("data", payload.get("data", ""))]
        if isinstance(metadata, dict):
            fields += [(f"metadata.{key}", value) for key, value in metadata.items()]
        for field, value in fields:
            if not isinstance(value, str) or not _is_base64(value):
                raise BadBody(f"payloads[{n}].{field}: is not base64")
    try:
        return json_format.ParseDict(document, Payloads())
    except json_format.ParseError as problem:
        raise BadBody(f"payloads: {problem}") from None


def _is_base64(text: str) -> bool:
    return bool(_BASE64.fullmatch(text)) and len(text.rstrip("=")) % 4 != 1


def create_app(
    codec: PayloadCodec,
    *,
    origins: Sequence[str],
    token: str,
    hosts: frozenset[str] = LOOPBACK_NAMES,
) -> FastAPI:
    """The codec server for ``codec``.

    Args:
        codec: Encrypts and decrypts the payloads (the workers' own codec).
        origins: Browser origins allowed by CORS: the Temporal Web UI's, exactly.
        token: Every request must carry it, as a bearer token or a ``/token/<token>`` prefix.
        hosts: The host names it answers to (``allowed_hosts``); the loopback names by default.
    """
    token = check_token(token)
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
    # Added last, so it runs first: a rebound name is refused before anything else answers.
    app.add_middleware(HostCheck, hosts=hosts)

    def authorised(request: Request) -> bool:
        in_path = request.path_params.get("token")
        if in_path is not None:
            return token_matches(in_path, token)
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
            received = parse_payloads(await request.body())
            payloads = await transform(received.payloads)
        except (BadBody, PayloadDecryptionError) as problem:
            return JSONResponse({"detail": str(problem)}, status_code=400)
        body = json_format.MessageToJson(Payloads(payloads=payloads))
        return Response(body, media_type="application/json")

    prefixes = (
        "",
        "/{namespace}",
        f"/{TOKEN_SEGMENT}/{{token}}",
        f"/{TOKEN_SEGMENT}/{{token}}/{{namespace}}",
    )
    for prefix in prefixes:
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
    token: str,
    extra_hosts: Iterable[str] = (),
) -> None:
    """Serve the codec server on ``host:port`` until ``stop`` is set.

    Raises:
        CodecSettingError: the token is missing or weak, or ``host`` is every interface and
            ``extra_hosts`` names none.
    """
    app = create_app(codec, origins=origins, token=token, hosts=allowed_hosts(host, extra_hosts))
    await serve_asgi(app, host, port, stop)


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
    token: str  # the codec server's token
    token_source: str  # where it is: OVERDUE_CODEC_TOKEN, or the file in the data dir

    @property
    def endpoint(self) -> str:
        """The codec server's address, for the CLI (with ``--codec-auth``) and stack.json."""
        return f"http://{DEFAULT_HOST}:{self.port}"

    @property
    def ui_endpoint(self) -> str:
        """The endpoint the Web UI is given: the token travels in its path, since the UI of the
        dev server can send no header of ours. It reaches whoever can open the UI, who can read
        the decoded payloads there anyway."""
        return f"{self.endpoint}/{TOKEN_SEGMENT}/{self.token}"

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
            token=self.token,
        )


def stack_codec_token(config: Config) -> tuple[str, str]:
    """The token of the stack's codec server, and where it is: ``OVERDUE_CODEC_TOKEN`` when
    set, else a token generated once and kept in the data dir, readable by its owner only.

    Raises:
        CodecSettingError: ``OVERDUE_CODEC_TOKEN`` is set but unusable.
    """
    if config.codec_token:
        return check_token(config.codec_token), TOKEN_ENV
    path = config.home / TOKEN_FILE_NAME
    return stored_token(path, check_token), str(path)


def prepare_stack_codec(config: Config) -> StackCodec:
    """Keys and a token for an encrypted embedded stack, and the port of its codec server.

    Keys configured in the environment are used as they are. Otherwise the stack keeps its own
    key file in the data dir, created (mode 0600) on first use and reused after, so that what one
    run encrypted the next still reads. The token likewise (``stack_codec_token``).

    Raises:
        CodecSettingError: ``OVERDUE_CODEC_TOKEN`` is set but unusable.
    """
    created = None
    if not (config.encryption_keys or config.encryption_key_file):
        key_file = config.home / KEY_FILE_NAME
        if not key_file.exists():
            created = create_key_file(key_file)
        config = replace(config, encryption_key_file=key_file)
    token, token_source = stack_codec_token(config)
    port = port_or_free(DEFAULT_PORT)
    return StackCodec(
        config=config,
        codec=codec_for(config),
        port=port,
        created_key=created,
        token=token,
        token_source=token_source,
    )
