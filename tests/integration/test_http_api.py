"""The HTTP API against the dev server, the production worker and PostgreSQL.

The app is served in-process through httpx's ASGI transport; Temporal, the worker and the ledger
are real. The outbox tests point the API at a closed port, as when Temporal is down.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import pytest
from temporalio.client import Client
from temporalio.worker import Worker

from overdue.api import create_app
from overdue.config import Config
from overdue.outbox import Backoff, Outbox, TemporalClients
from overdue.stack import free_port
from tests.integration.support import API_AUTH as AUTH
from tests.integration.support import API_TOKEN as TOKEN
from tests.integration.support import (
    Loans,
    asgi_client,
    clients_of,
    eventually,
    past_due_loan,
    start_until_opened,
)
from workflows.collection import LoanCollection
from workflows.types import workflow_id_for

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def down_clients(config: Config) -> TemporalClients:
    """Clients of a Temporal that is down: nothing listens on the port."""
    return TemporalClients(Config(home=config.home, temporal_address=f"127.0.0.1:{free_port()}"))


async def _start_loan(client: Client, pool: asyncpg.Pool, loans: Loans, label: str) -> str:
    loan_id = loans.new_id(f"http-{label}-{uuid.uuid4().hex[:6]}")
    return await start_until_opened(client, pool, past_due_loan(loan_id, outstanding_minor=50_000))


def _payment(loan_id: str, amount: str = "100.00", **fields: Any) -> dict[str, Any]:
    return {
        "payment_id": f"PAY-{uuid.uuid4().hex[:12]}",
        "loan_id": loan_id,
        "amount": amount,
        "currency": "USD",
        "paid_at": datetime.now(UTC).isoformat(),
        **fields,
    }


async def _outstanding(client: Client, loan_id: str) -> tuple[int, list[str]]:
    status = await client.get_workflow_handle_for(
        LoanCollection.run, workflow_id_for(loan_id)
    ).query(LoanCollection.status)
    return status.outstanding_minor, status.applied_payment_ids


async def _ledger_rows(pool: asyncpg.Pool, payment_id: str) -> int:
    count: int = await pool.fetchval(
        "SELECT count(*) FROM payments WHERE payment_id = $1", payment_id
    )
    return count


async def _assert_applied_once(
    client: Client, pool: asyncpg.Pool, loan_id: str, payment_id: str, outstanding_minor: int
) -> None:
    """The payment is in the ledger once and applied once by the collection, leaving this owed."""
    assert await _ledger_rows(pool, payment_id) == 1
    outstanding, applied_ids = await _outstanding(client, loan_id)
    assert outstanding == outstanding_minor and applied_ids.count(payment_id) == 1


# --- auth and the document ------------------------------------------------------------------


async def test_every_route_needs_the_bearer_token(api: httpx.AsyncClient) -> None:
    for headers in (
        {},
        {"Authorization": "Bearer wrong-token-of-some-length"},
        {"Authorization": f"Basic {TOKEN}"},
    ):
        for method, path in (
            ("POST", "/v1/payments"),
            ("GET", "/v1/payments/P-1"),
            ("GET", "/v1/loans/L-1"),
            ("POST", "/v1/loans/L-1/outcomes"),
        ):
            response = await api.request(method, path, headers=headers, json={})
            assert response.status_code == 401, (method, path, headers, response.text)
            assert response.headers["WWW-Authenticate"] == "Bearer"
            assert response.json()["field"] == "authorization"
    assert (await api.get("/healthz")).json() == {
        "status": "ok",
        "components": {"database": {"status": "up"}},
    }


async def test_the_openapi_document_lists_the_endpoints_and_the_bearer_scheme(
    api: httpx.AsyncClient,
) -> None:
    document = (await api.get("/openapi.json")).json()
    assert {"/v1/payments", "/v1/loans/{loan_id}", "/v1/loans/{loan_id}/outcomes"} <= set(
        document["paths"]
    )
    assert document["components"]["securitySchemes"]["bearerAuth"] == {
        "type": "http",
        "scheme": "bearer",
        "description": "The token in OVERDUE_API_TOKEN (`overdue up` keeps one in the data dir).",
    }
    post = document["paths"]["/v1/payments"]["post"]
    assert post["security"] == [{"bearerAuth": []}]
    assert {"200", "202", "401", "404", "409", "422", "503"} <= set(post["responses"])
    schema = document["components"]["schemas"]["PaymentIn"]
    assert schema["properties"]["amount"]["type"] == "string"
    assert schema["additionalProperties"] is False
    assert (await api.get("/docs")).status_code == 200


# --- payments -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        ({"amount": None}, "amount", "is required"),
        ({"amount": 12.5}, "amount", 'must be a decimal string such as "125.00"'),
        ({"amount": "-5"}, "amount", "must be positive, got -5"),
        ({"amount": "0"}, "amount", "must be positive"),
        ({"amount": "1.005"}, "amount", "more than 2 decimal places"),
        ({"amount": "lots"}, "amount", "is not a decimal amount"),
        ({"currency": "XXX"}, "currency", "unknown currency"),
        ({"currency": "EUR"}, "currency", "does not match the loan's USD"),
        ({"paid_at": "2026-03-02T09:30:00"}, "paid_at", "timezone"),
        ({"paid_at": "2999-01-01T00:00:00Z"}, "paid_at", "is in the future"),
        ({"payment_id": "has spaces"}, "payment_id", "use letters, digits"),
        ({"payment_id": None}, "payment_id", "is required"),
        ({"ammount": "1.00"}, "ammount", "is not a known field"),
        ({"reference": "x" * 141}, "reference", "at most 140 characters"),
    ],
)
async def test_bad_input_is_422_naming_the_field(
    api: httpx.AsyncClient,
    client: Client,
    pool: asyncpg.Pool,
    loans: Loans,
    change: dict[str, Any],
    field: str,
    message: str,
) -> None:
    loan_id = loans.ids[0] if loans.ids else await _start_loan(client, pool, loans, "bad")
    body = {k: v for k, v in {**_payment(loan_id), **change}.items() if v is not None}
    response = await api.post("/v1/payments", json=body, headers=AUTH)
    assert response.status_code == 422, response.text
    problem = response.json()
    assert problem["field"] == field
    assert problem["error"].startswith(f"{field}: ") and message in problem["error"], problem
    stored = await pool.fetchval(
        "SELECT count(*) FROM payment_outbox WHERE payment_id = $1", body.get("payment_id")
    )
    assert stored == 0


async def test_a_body_that_is_not_json_is_422_naming_the_body(api: httpx.AsyncClient) -> None:
    response = await api.post(
        "/v1/payments",
        content=b"\x89PNG garbage",
        headers={**AUTH, "Content-Type": "application/json"},
    )
    assert response.status_code == 422
    assert response.json()["field"] == "body"
    assert response.json()["error"].startswith("body: is not valid JSON")
    listed = await api.post("/v1/payments", json=["a", "list"], headers=AUTH)
    assert (listed.status_code, listed.json()["field"]) == (422, "body")


async def test_an_unknown_loan_is_404(api: httpx.AsyncClient) -> None:
    paid = await api.post("/v1/payments", json=_payment("NO-SUCH-LOAN"), headers=AUTH)
    assert (paid.status_code, paid.json()["field"]) == (404, "loan_id")
    read = await api.get("/v1/loans/NO-SUCH-LOAN", headers=AUTH)
    assert (read.status_code, read.json()["field"]) == (404, "loan_id")
    told = await api.post(
        "/v1/loans/NO-SUCH-LOAN/outcomes", json={"outcome_id": "O-404"}, headers=AUTH
    )
    assert (told.status_code, told.json()["field"]) == (404, "loan_id")
    missing = await api.get("/v1/payments/NO-SUCH-PAYMENT", headers=AUTH)
    assert (missing.status_code, missing.json()["field"]) == (404, "payment_id")


async def test_a_payment_is_applied_once_and_a_repeat_answers_the_same(
    api: httpx.AsyncClient, client: Client, pool: asyncpg.Pool, loans: Loans
) -> None:
    loan_id = await _start_loan(client, pool, loans, "pay")
    body = _payment(loan_id, "125.00", reference="stmt 17")

    first = await api.post("/v1/payments", json=body, headers=AUTH)
    assert first.status_code == 200, first.text
    applied = first.json()
    assert applied["status"] == "applied" and applied["replayed"] is False
    assert (applied["amount_minor"], applied["outstanding_minor"]) == (12_500, 37_500)
    assert (applied["outstanding"], applied["reference"]) == ("375.00", "stmt 17")
    assert first.headers["Location"] == f"/v1/payments/{body['payment_id']}"

    again = await api.post("/v1/payments", json=body, headers=AUTH)
    assert again.status_code == 200
    assert again.json() == {**applied, "replayed": True}
    assert await _ledger_rows(pool, body["payment_id"]) == 1
    assert (await _outstanding(client, loan_id))[0] == 37_500

    for change in ({"amount": "125.01"}, {"currency": "EUR"}, {"loan_id": loans.ids[0]}):
        reused = await api.post("/v1/payments", json={**body, **change}, headers=AUTH)
        assert reused.status_code in (409, 422), reused.text
        assert reused.json()["field"] in ("payment_id", "currency")
    reused = await api.post("/v1/payments", json={**body, "amount": "1.00"}, headers=AUTH)
    assert (reused.status_code, reused.json()["field"]) == (409, "payment_id")
    assert reused.json()["error"] == (
        f"payment_id: {body['payment_id']} is already recorded with another loan, amount or"
        " currency"
    )
    # A refused payment is real money someone reported: the audit log keeps it, once per
    # refused version however often it is repeated.
    assert (
        await api.post("/v1/payments", json={**body, "amount": "1.00"}, headers=AUTH)
    ).status_code == 409
    refused = await pool.fetch(
        "SELECT actor, details FROM audit_log WHERE loan_id = $1 AND action = 'payment_conflict'"
        " AND details->>'amount_minor' = '100'",
        loan_id,
    )
    assert len(refused) == 1
    assert refused[0]["actor"] == "payment:api"

    stored = (await api.get(f"/v1/payments/{body['payment_id']}", headers=AUTH)).json()
    assert stored == applied


async def test_concurrent_repeats_apply_once(
    api: httpx.AsyncClient, client: Client, pool: asyncpg.Pool, loans: Loans
) -> None:
    loan_id = await _start_loan(client, pool, loans, "race")
    body = _payment(loan_id, "50.00")
    answers = await asyncio.gather(
        *(api.post("/v1/payments", json=body, headers=AUTH) for _ in range(5))
    )
    assert {a.status_code for a in answers} <= {200, 202}
    assert sum(not a.json()["replayed"] for a in answers) == 1
    await _assert_applied_once(client, pool, loan_id, body["payment_id"], 45_000)


async def test_a_payment_id_applied_by_a_signal_is_a_conflict_with_other_details(
    api: httpx.AsyncClient, client: Client, pool: asyncpg.Pool, loans: Loans
) -> None:
    loan_id = await _start_loan(client, pool, loans, "signal")
    body = _payment(loan_id, "20.00")
    assert (await api.post("/v1/payments", json=body, headers=AUTH)).status_code == 200
    await pool.execute("DELETE FROM payment_outbox WHERE payment_id = $1", body["payment_id"])
    # The outbox no longer knows it, the ledger does.
    other = await api.post("/v1/payments", json={**body, "amount": "21.00"}, headers=AUTH)
    assert (other.status_code, other.json()["field"]) == (409, "payment_id")
    same = await api.post("/v1/payments", json=body, headers=AUTH)
    assert same.status_code == 200 and same.json()["outstanding_minor"] == 48_000
    assert await _ledger_rows(pool, body["payment_id"]) == 1


# --- reading a loan and reporting outcomes --------------------------------------------------


async def test_get_a_loan(
    api: httpx.AsyncClient, client: Client, pool: asyncpg.Pool, loans: Loans
) -> None:
    loan_id = await _start_loan(client, pool, loans, "get")
    await api.post("/v1/payments", json=_payment(loan_id, "10.00"), headers=AUTH)
    response = await api.get(f"/v1/loans/{loan_id}", headers=AUTH)
    assert response.status_code == 200, response.text
    view = response.json()
    assert (view["loan_id"], view["workflow_status"], view["stage"]) == (
        loan_id,
        "running",
        "early",
    )
    assert (view["outstanding_minor"], view["outstanding"], view["currency"]) == (
        49_000,
        "490.00",
        "USD",
    )
    assert [p["amount_minor"] for p in view["payments"]] == [1_000]
    assert view["queued_payments"] == []
    bad = await api.get("/v1/loans/bad%20id", headers=AUTH)
    assert (bad.status_code, bad.json()["field"]) == (422, "loan_id")


async def test_report_an_outcome(
    api: httpx.AsyncClient, client: Client, pool: asyncpg.Pool, loans: Loans
) -> None:
    loan_id = await _start_loan(client, pool, loans, "outcome")
    tomorrow = (datetime.now(UTC) + timedelta(days=3)).date().isoformat()
    body = {
        "outcome_id": f"OUT-{uuid.uuid4().hex[:10]}",
        "source": "dialer:east-1",
        "promise_amount": "200.00",
        "promise_date": tomorrow,
        "channel": "sms",
    }
    response = await api.post(f"/v1/loans/{loan_id}/outcomes", json=body, headers=AUTH)
    assert response.status_code == 202, response.text
    told = response.json()
    assert (told["outcome_id"], told["source"], told["channel"], told["signalled"]) == (
        body["outcome_id"],
        "dialer:east-1",
        "sms",
        True,
    )
    assert told["facts"]["promise"]["amount_minor"] == 20_000

    async def recorded() -> Any:
        return await pool.fetchrow(
            "SELECT loan_id FROM contact_outcomes WHERE outcome_id = $1", body["outcome_id"]
        )

    await eventually(recorded, what="the outcome in the ledger")
    # The same outcome id on another loan is a conflict.
    other = await _start_loan(client, pool, loans, "outcome2")
    reused = await api.post(f"/v1/loans/{other}/outcomes", json=body, headers=AUTH)
    assert (reused.status_code, reused.json()["field"]) == (409, "outcome_id")

    for change, field in (
        ({"promise_date": "03/02/2026"}, "promise_date"),
        ({"promise_amount": "-1"}, "promise_amount"),
        ({"promise_date": None}, "promise_date"),
        ({"situation": "bored"}, "situation"),
        ({"dispute": "yes"}, "dispute"),
        ({"source": "nobody"}, "source"),
        ({"channel": "fax"}, "channel"),
        ({"channel": ""}, "channel"),
    ):
        bad = {k: v for k, v in {**body, **change, "outcome_id": "O-bad"}.items() if v is not None}
        refused = await api.post(f"/v1/loans/{loan_id}/outcomes", json=bad, headers=AUTH)
        assert (refused.status_code, refused.json()["field"]) == (422, field), refused.text


# --- the outbox -----------------------------------------------------------------------------


async def test_with_temporal_down_a_payment_is_queued_then_relayed_once(
    client: Client,
    pool: asyncpg.Pool,
    loans: Loans,
    worker: Worker,
    down_clients: TemporalClients,
) -> None:
    loan_id = await _start_loan(client, pool, loans, "outbox")
    down = Outbox(pool, down_clients, backoff=Backoff(first=0.05))
    body = _payment(loan_id, "80.00")
    async with asgi_client(create_app(down_clients, pool, TOKEN, outbox=down)) as api_down:
        queued = await api_down.post("/v1/payments", json=body, headers=AUTH)
        assert queued.status_code == 202, queued.text
        answer = queued.json()
        assert (answer["status"], answer["outstanding_minor"], answer["attempts"]) == (
            "queued",
            None,
            1,
        )
        assert "cannot reach Temporal" in answer["last_error"]
        # A retry while Temporal is still down is the same queued payment.
        retried = await api_down.post("/v1/payments", json=body, headers=AUTH)
        assert (retried.status_code, retried.json()["replayed"]) == (202, True)
        # A loan the ledger does not know cannot be confirmed: nothing is stored.
        unknown = await api_down.post("/v1/payments", json=_payment("NOT-YET"), headers=AUTH)
        assert (unknown.status_code, unknown.json()["field"]) == (503, "loan_id")
        assert unknown.headers["Retry-After"]
        assert (await api_down.get(f"/v1/loans/{loan_id}", headers=AUTH)).status_code == 503
    row = await pool.fetchrow(
        "SELECT * FROM payment_outbox WHERE payment_id = $1", body["payment_id"]
    )
    assert (row["status"], row["loan_id"], row["amount_minor"]) == ("pending", loan_id, 8_000)
    assert await _ledger_rows(pool, body["payment_id"]) == 0
    assert (await _outstanding(client, loan_id))[0] == 50_000

    # Temporal is back: the relay (two of them, as two API replicas) delivers it once.
    stop = asyncio.Event()
    relays = [
        asyncio.create_task(Outbox(pool, clients_of(client)).relay(stop, idle=0.05))
        for _ in range(2)
    ]

    async def delivered() -> Any:
        return await pool.fetchval(
            "SELECT status = 'delivered' FROM payment_outbox WHERE payment_id = $1",
            body["payment_id"],
        )

    try:
        await eventually(delivered, what="the relay delivering the payment")
    finally:
        stop.set()
        await asyncio.gather(*relays)
    await _assert_applied_once(client, pool, loan_id, body["payment_id"], 42_000)

    # A relay that died after delivering, before recording it: the payment is delivered again,
    # and nothing changes.
    await pool.execute(
        "UPDATE payment_outbox SET status = 'pending', next_attempt_at = now() - interval '1 s'"
        " WHERE payment_id = $1",
        body["payment_id"],
    )
    assert await Outbox(pool, clients_of(client)).deliver_due() >= 1
    entry = await Outbox(pool, clients_of(client)).get(body["payment_id"])
    assert entry is not None and entry.status == "delivered"
    assert entry.result is not None and entry.result.duplicate is True
    await _assert_applied_once(client, pool, loan_id, body["payment_id"], 42_000)


async def test_a_worker_that_does_not_answer_in_time_leaves_the_payment_queued(
    client: Client, pool: asyncpg.Pool, loans: Loans, worker: Worker
) -> None:
    loan_id = await _start_loan(client, pool, loans, "slow")
    # A deadline no update can meet: Temporal is up, but the answer comes too late.
    hasty = Outbox(pool, clients_of(client), delivery_timeout=0.001)
    async with asgi_client(create_app(clients_of(client), pool, TOKEN, outbox=hasty)) as api:
        body = _payment(loan_id, "30.00")
        queued = await api.post("/v1/payments", json=body, headers=AUTH)
        assert queued.status_code == 202, queued.text
        # The deadline cuts the update itself (TimeoutError, or the SDK's own
        # WorkflowUpdateRPCTimeoutOrCancelledError when it was cancelled mid-call).
        assert "Timeout" in queued.json()["last_error"]

    async def relayed() -> bool:
        # The relay's next round; on a loaded machine one may time out again, and is retried.
        await pool.execute(
            "UPDATE payment_outbox SET next_attempt_at = now() WHERE payment_id = $1",
            body["payment_id"],
        )
        await Outbox(pool, clients_of(client)).deliver_due()
        entry = await Outbox(pool, clients_of(client)).get(body["payment_id"])
        return entry is not None and entry.status == "delivered"

    await eventually(relayed, what="the relay delivering the payment")
    await _assert_applied_once(client, pool, loan_id, body["payment_id"], 47_000)


async def test_with_the_ledger_down_nothing_is_accepted(
    client: Client, database_url: str, loans: Loans, pool: asyncpg.Pool
) -> None:
    loan_id = loans.ids[0] if loans.ids else await _start_loan(client, pool, loans, "nodb")
    gone = await asyncpg.create_pool(database_url, min_size=1, max_size=1)
    assert gone is not None
    await gone.close()
    async with asgi_client(create_app(clients_of(client), gone, TOKEN)) as api:
        response = await api.post("/v1/payments", json=_payment(loan_id), headers=AUTH)
    assert response.status_code == 503, response.text
    assert response.json() == {
        "error": "database: the ledger is unreachable now; try again later",
        "field": "database",
    }
    assert response.headers["Retry-After"]
