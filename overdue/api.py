"""The HTTP API for payment services and the core system: report payments and contact
outcomes, read a loan, put a loan in the loan book.

Built on FastAPI: request and response bodies are pydantic models, so the OpenAPI document
(``/openapi.json``, browsable at ``/docs``) is the contract. Every ``/v1`` route needs
``Authorization: Bearer <token>``. Every refusal is one JSON object that names the field at
fault: ``{"error": "amount: must be positive, got -5", "field": "amount"}``, plus the standard
``detail`` list on a 422.

A payment is stored in the outbox (``overdue.outbox``) before it is delivered: 200 means the
collection applied it (the body has the balance after it), 202 that Temporal could not take it
now and the relay will deliver it.

A loan put in the loan book (``PUT /v1/loans/{loan_id}``) is checked and stored as a line of
``overdue loans sync`` is (``overdue.loanbook``): by version, in one transaction.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar

import asyncpg
from fastapi import APIRouter, Depends, FastAPI, Path, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import HTTPBearer
from starlette.exceptions import HTTPException as StarletteHTTPException

from activities.situations import outcome_facts
from overdue import db
from overdue.api_bodies import (
    OUTCOME_FORM_FIELDS,
    BookLoanOut,
    BookLoanPut,
    ErrorOut,
    OutcomeIn,
    OutcomeOut,
    PaymentIn,
    PaymentOut,
)
from overdue.client import (
    PaymentInvalid,
    UnknownLoan,
    loan_status,
    loan_view,
    send_outcome,
)
from overdue.config import Config
from overdue.loanbook import Change, store
from overdue.outbox import (
    ClientProvider,
    Outbox,
    OutboxEntry,
    PaymentIdConflict,
    TemporalClients,
    TemporalUnavailable,
    unreachable,
)
from overdue.outcomes import OutcomeInvalid, check_outcome_fields, outcome_from_fields
from overdue.schemas import (
    ID_SCHEMA_PATTERN,
    Invalid,
    describe,
    field_name,
)
from overdue.serving import serve_asgi, stored_token, token_matches
from overdue.stack import port_is_free, port_or_free
from workflows import limits

API_TOKEN_ENV = "OVERDUE_API_TOKEN"
API_ADDRESS_ENV = "OVERDUE_API_ADDRESS"
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000
TOKEN_FILE = "api-token"
MIN_TOKEN_LENGTH = 16
# A read or a signal that takes longer means Temporal (or every worker) is not answering.
TEMPORAL_TIMEOUT = 10.0
HEALTH_TIMEOUT = 3.0  # a ledger slower than this to answer `SELECT 1` is reported down
FIELD_PREFIX = re.compile(r"^([a-z_]+)[: ]")
log = logging.getLogger("overdue.api")
T = TypeVar("T")
# Each component's status beside the API, by name: {"status": "up" | ..., details}.
HealthReport = Callable[[], dict[str, dict[str, Any]]]

# --- settings -------------------------------------------------------------------------------


def check_token(token: str | None) -> str:
    """The bearer token, refused when it is missing or too short to be a secret.

    Raises:
        ValueError: the message names ``OVERDUE_API_TOKEN``.
    """
    token = (token or "").strip()
    if not token:
        raise ValueError(f"{API_TOKEN_ENV}: is not set; the API does not start without a token")
    if len(token) < MIN_TOKEN_LENGTH:
        raise ValueError(f"{API_TOKEN_ENV}: must be at least {MIN_TOKEN_LENGTH} characters")
    return token


def parse_address(text: str) -> tuple[str, int]:
    """``host:port`` into its parts.

    Raises:
        ValueError: the message names ``OVERDUE_API_ADDRESS``.
    """
    host, _, port = text.strip().rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(
            f"{API_ADDRESS_ENV}: expected host:port such as 127.0.0.1:8000, got {text!r}"
        )
    return host.strip("[]"), int(port)


def stack_token(config: Config) -> tuple[str, str]:
    """The token ``overdue up`` serves with, and where it is: ``OVERDUE_API_TOKEN`` when set,
    else a token generated once and kept in the data dir, readable by its owner only."""
    if config.api_token:
        return check_token(config.api_token), API_TOKEN_ENV
    path = config.home / TOKEN_FILE
    return stored_token(path, check_token), str(path)


@dataclass(frozen=True)
class ApiSettings:
    """Where the API listens and the bearer token it accepts."""

    host: str
    port: int
    token: str

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"


def api_settings(
    config: Config, *, host: str | None = None, port: int | None = None
) -> ApiSettings:
    """The settings of ``overdue api``: flags over ``OVERDUE_API_ADDRESS`` over the default.

    Raises:
        ValueError: the token is missing or weak, or the address is malformed; the message
            names the variable or the option.
    """
    token = check_token(config.api_token)
    default_host, default_port = (
        parse_address(config.api_address) if config.api_address else (DEFAULT_HOST, DEFAULT_PORT)
    )
    port = default_port if port is None else port
    if not 0 < port < 65536:
        raise ValueError(f"port: must be between 1 and 65535, got {port}")
    return ApiSettings(host or default_host, port, token)


def stack_api_settings(config: Config) -> tuple[ApiSettings, str]:
    """The settings of the API ``overdue up`` runs, and where its token is.

    Without ``OVERDUE_API_ADDRESS`` it listens on 127.0.0.1:8000, or on a free port when that
    one is taken (as the stack does for Temporal). A named address must be free.

    Raises:
        ValueError: a bad setting, or the named address is taken.
    """
    token, where = stack_token(config)
    if config.api_address:
        host, port = parse_address(config.api_address)
        if not port_is_free(port):
            raise ValueError(f"{API_ADDRESS_ENV}: port {port} is in use")
    else:
        host, port = DEFAULT_HOST, port_or_free(DEFAULT_PORT)
    return ApiSettings(host, port, token), where


# --- errors ---------------------------------------------------------------------------------


class ApiError(Exception):
    """A refusal with its HTTP status; ``message`` starts with the field it names."""

    def __init__(self, status: int, message: str, *, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers


def field_of(message: str) -> str | None:
    """The field a message names: its first word, as in ``amount: must be positive``."""
    found = FIELD_PREFIX.match(message)
    return found.group(1) if found else None


def _error(
    status: int,
    message: str,
    *,
    detail: list[dict[str, Any]] | None = None,
    headers: dict[str, str] | None = None,
    field: str | None = None,
) -> JSONResponse:
    body: dict[str, Any] = {"error": message, "field": field or field_of(message)}
    if detail is not None:
        body["detail"] = detail
    return JSONResponse(body, status_code=status, headers=headers)


def _validation_failed(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = list(exc.errors())
    detail = [
        {"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")}
        for e in errors
    ]
    first = errors[0] if errors else {}
    loc = [str(part) for part in first.get("loc", ())]
    # Named as a sync file's errors are (schemas.field_errors): ``schedule[1].amount_paid``,
    # with the entry a whole-table rule points at.
    at = (first.get("ctx") or {}).get("at", ())
    inside = (*first.get("loc", ())[1:], *at)
    name = field_name(inside) if first.get("type") != "json_invalid" else ""
    name = name or (loc[0] if loc else "body")
    # Worded as every other input's errors are (overdue.schemas): "amount: is required".
    message = describe(first) if first else "is invalid"
    if first.get("type") == "json_invalid":
        message = f"is not valid JSON ({first.get('msg')})"
    elif loc == ["body"] and not at:
        message = f"a JSON object is required ({first.get('msg')})"
    # The field is given, not read back from the message: ``schedule[0].amount_paid`` is no word.
    return _error(422, f"{name}: {message}", detail=detail, field=name)


def _http_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 400:  # a body FastAPI could not even decode (not UTF-8 text)
        return _error(422, f"body: is not valid JSON ({exc.detail})")
    headers = dict(exc.headers) if exc.headers else None
    return _error(exc.status_code, str(exc.detail), headers=headers)


def _failed(_: Request, exc: Exception) -> JSONResponse:
    # Nothing a caller sends should get here: every input is checked first. If something does,
    # the caller still gets the one JSON error shape, and the log the cause.
    log.error("500: %s: %s", type(exc).__name__, exc, exc_info=exc)
    message = "the request could not be processed; the log has the cause"
    return JSONResponse({"error": message, "field": None}, status_code=500)


def _refused(_: Request, exc: Exception) -> JSONResponse:
    if isinstance(exc, ApiError):
        return _error(exc.status, exc.message, headers=exc.headers)
    if isinstance(exc, UnknownLoan):
        return _error(404, str(exc.args[0]))
    if isinstance(exc, PaymentIdConflict):
        return _error(409, str(exc))
    if isinstance(exc, PaymentInvalid | OutcomeInvalid):
        return _error(422, str(exc))
    # Where Temporal or the database runs is not the caller's business: the log has it.
    log.warning("503: %s: %s", type(exc).__name__, exc)
    if isinstance(exc, TemporalUnavailable):
        loan_unconfirmed = field_of(str(exc)) == "loan_id"
        message = str(exc) if loan_unconfirmed else "temporal: unreachable now; try again later"
        return _error(503, message, headers={"Retry-After": "5"})
    return _error(
        503,
        "database: the ledger is unreachable now; try again later",
        headers={"Retry-After": "5"},
    )


def _rejection(entry: OutboxEntry) -> ApiError:
    message = entry.last_error or "payment: rejected"
    # The ledger refuses a payment id it holds with other details: the same conflict as ours.
    status = 409 if field_of(message) == "payment_id" else 422
    return ApiError(status, message)


class BearerToken(HTTPBearer):
    """The bearer-token check of every ``/v1`` route, and its security scheme in the OpenAPI."""

    def __init__(self, token: str) -> None:
        super().__init__(
            auto_error=False,
            scheme_name="bearerAuth",
            description=f"The token in {API_TOKEN_ENV} (`overdue up` keeps one in the data dir).",
        )
        self._expected = check_token(token)

    async def __call__(self, request: Request) -> None:  # type: ignore[override]
        credentials = await super().__call__(request)
        given = credentials.credentials if credentials is not None else ""
        if not token_matches(given, self._expected):
            raise ApiError(
                401,
                "authorization: a valid bearer token is required",
                headers={"WWW-Authenticate": "Bearer"},
            )


PathId = Annotated[
    str, Path(min_length=1, max_length=limits.ID_MAX_LENGTH, pattern=ID_SCHEMA_PATTERN)
]

# --- the app --------------------------------------------------------------------------------

ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorOut, "description": "Missing or wrong bearer token."},
    404: {"model": ErrorOut, "description": "Unknown loan."},
    422: {"model": ErrorOut, "description": "Invalid input; `field` names it."},
    503: {"model": ErrorOut, "description": "Temporal or the ledger is unreachable; retry."},
}


def create_app(
    client_provider: ClientProvider,
    pool: asyncpg.Pool,
    token: str,
    *,
    outbox: Outbox | None = None,
    temporal_timeout: float = TEMPORAL_TIMEOUT,
    health: HealthReport | None = None,
) -> FastAPI:
    """The API, wired to its Temporal client, the ledger pool and the bearer token.

    Args:
        client_provider: Gives the Temporal client, or raises ``TemporalUnavailable``.
        pool: The ledger's connection pool (the outbox lives there too).
        token: The bearer token every ``/v1`` request must carry.
        outbox: The payment outbox; default one on ``pool`` and ``client_provider``.
        temporal_timeout: How long a read or a signal may wait for Temporal.
        health: The state of what runs beside the API (``overdue up``'s supervisor), added to
            ``/healthz``.
    """
    outbox = outbox or Outbox(pool, client_provider)

    async def temporal(call: Callable[[], Awaitable[T]]) -> T:
        try:
            return await asyncio.wait_for(call(), temporal_timeout)
        except Exception as problem:
            if unreachable(problem) and not isinstance(problem, TemporalUnavailable):
                raise TemporalUnavailable(f"not answering ({type(problem).__name__})") from None
            raise

    app = FastAPI(
        title="overdue — payment services API",
        version="1",
        description=(
            "Report payments received and contact outcomes to the collection of overdue loans,"
            " and read where a loan stands. Amounts are decimal strings in major units."
        ),
    )
    app.add_exception_handler(RequestValidationError, _validation_failed)
    app.add_exception_handler(Exception, _failed)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    for refusal in (
        ApiError,
        UnknownLoan,
        PaymentInvalid,
        OutcomeInvalid,
        TemporalUnavailable,
        OSError,
        asyncpg.PostgresConnectionError,
        asyncpg.InterfaceError,
    ):
        app.add_exception_handler(refusal, _refused)

    v1 = APIRouter(prefix="/v1", dependencies=[Depends(BearerToken(token))], responses=ERRORS)

    @v1.post(
        "/payments",
        response_model=PaymentOut,
        status_code=200,
        responses={
            202: {"model": PaymentOut, "description": "Stored; delivered when Temporal answers."},
            409: {"model": ErrorOut, "description": "Payment id reused with other details."},
        },
        summary="Report a payment received (idempotent by payment_id)",
    )
    async def post_payment(body: PaymentIn) -> JSONResponse:
        """Store the payment, then apply it to the loan's collection.

        200: applied; the body has the balance after it. A repeat of the same payment id,
        loan, amount and currency answers as the first did, with ``replayed: true``.
        202: Temporal could not take it now; it is stored and will be applied exactly once.
        """
        submitted = await outbox.submit(body.incoming())
        entry = submitted.entry
        if entry.status == "rejected":
            raise _rejection(entry)
        out = PaymentOut.of(entry, replayed=submitted.replayed)
        status = 202 if entry.status == "pending" else 200
        headers = {"Location": f"/v1/payments/{entry.payment.payment_id}"}
        return JSONResponse(out.model_dump(mode="json"), status_code=status, headers=headers)

    @v1.get("/payments/{payment_id}", response_model=PaymentOut, summary="A stored payment")
    async def get_payment(payment_id: PathId) -> PaymentOut:
        """Where a payment stands: applied, still queued (with its delivery attempts), rejected."""
        entry = await outbox.get(payment_id)
        if entry is None:
            raise ApiError(404, f"payment_id: no payment {payment_id!r} was reported here")
        return PaymentOut.of(entry)

    @v1.get("/loans/{loan_id}", summary="Where a loan stands")
    async def get_loan(loan_id: PathId) -> dict[str, Any]:
        """The loan live from its collection, its full record from the ledger, and the
        payments still queued for it (not yet in the balance)."""
        client = await client_provider()
        view = await temporal(lambda: loan_status(client, pool, loan_id))
        view["queued_payments"] = [
            PaymentOut.of(e).model_dump(mode="json") for e in await outbox.pending_for(loan_id)
        ]
        return view

    @v1.put(
        "/loans/{loan_id}",
        response_model=BookLoanOut,
        status_code=200,
        responses={
            201: {"model": BookLoanOut, "description": "Added to the loan book."},
            409: {"model": ErrorOut, "description": "This version was stored with other content."},
        },
        summary="Put a loan in the loan book (idempotent by loan id and version)",
    )
    async def put_loan(loan_id: PathId, body: BookLoanPut) -> JSONResponse:
        """Store the loan, its borrower, references and schedule, as ``overdue loans sync``
        stores a line: all of it in one transaction, or nothing.

        201: added. 200: updated (a newer version), unchanged (the same version and content
        again), or stale (an older version than the book holds: not stored, ``book_version``
        says which the book holds). 409: the book holds this version with other content.
        """
        if body.loan_id is not None and body.loan_id != loan_id:
            raise ApiError(
                422, f"loan_id: is {body.loan_id!r} in the body but {loan_id!r} in the path"
            )
        book_loan = body.model_copy(update={"loan_id": loan_id}).to_book_loan()
        try:
            change = await store(pool, book_loan)
        except Invalid as conflict:  # the one refusal left once the body is valid: `version`
            raise ApiError(409, str(conflict.errors[0])) from None
        held = book_loan.version
        if change == Change.STALE:
            held = await pool.fetchval("SELECT version FROM book.loans WHERE loan_id = $1", loan_id)
        out = BookLoanOut.of(loan_id, book_loan.version, change, held)
        return JSONResponse(
            out.model_dump(mode="json"),
            status_code=201 if change == Change.ADDED else 200,
            headers={"Location": f"/v1/loans/{loan_id}"},
        )

    @v1.post(
        "/loans/{loan_id}/outcomes",
        response_model=OutcomeOut,
        status_code=202,
        responses={409: {"model": ErrorOut, "description": "Collection ended; id reused."}},
        summary="Report a contact outcome (idempotent by outcome_id)",
    )
    async def post_outcome(loan_id: PathId, body: OutcomeIn) -> OutcomeOut:
        """Check the outcome against the running collection and signal ``contact_outcome``."""
        # What needs no loan is refused first (422), whether or not the loan exists.
        form = body.model_dump(include=OUTCOME_FORM_FIELDS)
        form["promise_date"] = body.promise_date.isoformat() if body.promise_date else None
        check_outcome_fields(**form)
        client = await client_provider()
        try:
            loan = await temporal(lambda: loan_view(client, loan_id))
        except OutcomeInvalid as ended:
            raise ApiError(409, str(ended)) from None
        fields = body.model_dump(exclude={"promise_date"})
        outcome = outcome_from_fields(
            loan,
            promise_date=body.promise_date.isoformat() if body.promise_date else None,
            **fields,
        )
        try:
            await temporal(lambda: send_outcome(client, loan_id, outcome, pool=pool))
        except OutcomeInvalid as conflict:  # ended meanwhile, or the id is another loan's
            raise ApiError(409, str(conflict)) from None
        return OutcomeOut(
            loan_id=loan_id,
            outcome_id=outcome.outcome_id,
            source=outcome.source,
            channel=outcome.channel,
            at=outcome.at,
            right_party=outcome.right_party,
            facts=outcome_facts(outcome),
            signalled=True,
        )

    app.include_router(v1)

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> JSONResponse:
        """Each component's status; 503 when any is not up, so a probe sees a partial outage."""
        components = {"database": await _database_status(pool)}
        if health is not None:
            components.update(health())
        up = all(part["status"] == "up" for part in components.values())
        return JSONResponse(
            {"status": "ok" if up else "down", "components": components},
            status_code=200 if up else 503,
        )

    return app


async def _database_status(pool: asyncpg.Pool) -> dict[str, Any]:
    """Whether the ledger answers now, within HEALTH_TIMEOUT."""
    try:
        await asyncio.wait_for(pool.fetchval("SELECT 1"), HEALTH_TIMEOUT)
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as problem:
        return {"status": "down", "error": f"{type(problem).__name__}: {problem}"}
    return {"status": "up"}


async def run_api(
    config: Config,
    settings: ApiSettings,
    stop: asyncio.Event,
    *,
    health: HealthReport | None = None,
) -> None:
    """Serve the API and relay queued payments until ``stop`` is set.

    Temporal may be down when this starts: payments are then stored and relayed once it is up.
    ``health`` adds the state of what runs beside the API to ``/healthz``.
    """
    assert config.database_url is not None
    pool = await db.create_pool(config.database_url, max_size=10)
    try:
        await db.migrate(pool)  # the outbox must exist before the first payment
        clients = TemporalClients(config)
        outbox = Outbox(pool, clients)
        app = create_app(clients, pool, settings.token, outbox=outbox, health=health)
        await asyncio.gather(
            serve_asgi(app, settings.host, settings.port, stop), outbox.relay(stop)
        )
    finally:
        await pool.close()
