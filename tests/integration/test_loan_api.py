"""`PUT /v1/loans/{loan_id}`: the core system puts a loan in the loan book over HTTP, with the
checks of `overdue loans sync`, against the real ledger."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import pytest

from tests.integration.support import API_AUTH

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]

PREFIX = "PUT-"


@pytest.fixture(autouse=True)
async def _leave_the_book_as_found(pool: asyncpg.Pool) -> AsyncIterator[None]:
    # A delinquency scan in a later module would start these loans' collections.
    yield
    await pool.execute("DELETE FROM book.loans WHERE loan_id LIKE $1", PREFIX + "%")
    await pool.execute("DELETE FROM book.borrowers WHERE borrower_id LIKE $1", PREFIX + "%")


def _day(days_from_today: int) -> str:
    return (datetime.now(UTC).date() + timedelta(days=days_from_today)).isoformat()


def _ids(label: str) -> tuple[str, str]:
    run = uuid.uuid4().hex[:8]
    return f"{PREFIX}{label}-{run}", f"{PREFIX}B-{label}-{run}"


def _body(borrower_id: str, **fields: Any) -> dict[str, Any]:
    """A loan as a line of a JSON Lines sync file holds it, without its loan id."""
    return {
        "borrower_id": borrower_id,
        "borrower_name": "Ann Lee",
        "phone": "+12025550123",
        "timezone": "America/New_York",
        "product": "personal",
        "principal": "1200.00",
        "currency": "USD",
        "jurisdiction": "us",
        "contacts": [
            {"contact_id": "c1", "name": "Bo Chen", "phone": "+12025550199", "relation": "sibling"}
        ],
        "schedule": [
            {"due_date": _day(-20), "amount_due": "100.00", "amount_paid": "100.00"},
            {"due_date": _day(10), "amount_due": "100.00"},
        ],
        **fields,
    }


async def _book(pool: asyncpg.Pool, loan_id: str) -> dict[str, Any]:
    """What the book holds of the loan: its row, its schedule and its references."""
    row = await pool.fetchrow(
        "SELECT version, borrower_id, principal_minor, content_digest, synced_at"
        " FROM book.loans WHERE loan_id = $1",
        loan_id,
    )
    schedule = await pool.fetch(
        "SELECT due_date, amount_due_minor, amount_paid_minor FROM book.instalments"
        " WHERE loan_id = $1 ORDER BY seq",
        loan_id,
    )
    contacts = await pool.fetch(
        "SELECT contact_id FROM book.contacts WHERE loan_id = $1 ORDER BY contact_id", loan_id
    )
    return {
        "row": dict(row) if row is not None else None,
        "schedule": [tuple(r) for r in schedule],
        "contacts": [r["contact_id"] for r in contacts],
    }


async def _put(api: httpx.AsyncClient, loan_id: str, body: Any) -> httpx.Response:
    return await api.put(f"/v1/loans/{loan_id}", json=body, headers=API_AUTH)


async def test_versions_add_update_and_leave_the_book_alone(
    api: httpx.AsyncClient, pool: asyncpg.Pool
) -> None:
    loan_id, borrower_id = _ids("versions")
    v1 = _body(borrower_id, version=1)

    added = await _put(api, loan_id, v1)
    assert added.status_code == 201, added.text
    assert added.headers["Location"] == f"/v1/loans/{loan_id}"
    assert added.json() | {"message": ""} == {
        "loan_id": loan_id,
        "version": 1,
        "change": "added",
        "book_version": 1,
        "message": "",
    }
    first = await _book(pool, loan_id)
    assert first["row"] is not None
    assert (first["row"]["version"], first["row"]["principal_minor"]) == (1, 120_000)
    assert first["schedule"] == [
        (date.fromisoformat(_day(-20)), 10_000, 10_000),
        (date.fromisoformat(_day(10)), 10_000, 0),
    ]
    assert first["contacts"] == ["c1"]

    # The same version and content again (here with the loan id repeated in the body, as a sync
    # line has it): nothing is written, not even the sync time.
    again = await _put(api, loan_id, {**v1, "loan_id": loan_id})
    assert again.status_code == 200, again.text
    assert (again.json()["change"], again.json()["book_version"]) == ("unchanged", 1)
    assert await _book(pool, loan_id) == first

    # A newer version replaces the row, the schedule and the references whole.
    v2 = _body(
        borrower_id,
        version=2,
        contacts=[],
        schedule=[
            {"due_date": _day(-20), "amount_due": "100.00", "amount_paid": "100.00"},
            {"due_date": _day(10), "amount_due": "100.00", "amount_paid": "30.00"},
            {"due_date": _day(40), "amount_due": "100.00"},
        ],
    )
    updated = await _put(api, loan_id, v2)
    assert updated.status_code == 200, updated.text
    assert (updated.json()["change"], updated.json()["version"]) == ("updated", 2)
    second = await _book(pool, loan_id)
    assert second["row"] is not None and second["row"]["version"] == 2
    assert [r[2] for r in second["schedule"]] == [10_000, 3_000, 0]
    assert second["contacts"] == []

    # An older version arriving late is skipped, and the answer says which version the book has.
    stale = await _put(api, loan_id, v1)
    assert stale.status_code == 200, stale.text
    assert stale.json()["change"] == "stale"
    assert (stale.json()["version"], stale.json()["book_version"]) == (1, 2)
    assert "holds version 2" in stale.json()["message"]
    assert await _book(pool, loan_id) == second


async def test_the_same_version_with_other_content_is_409_and_changes_nothing(
    api: httpx.AsyncClient, pool: asyncpg.Pool
) -> None:
    loan_id, borrower_id = _ids("conflict")
    assert (await _put(api, loan_id, _body(borrower_id, version=3))).status_code == 201
    before = await _book(pool, loan_id)

    other = _body(borrower_id, version=3, principal="1500.00", borrower_name="Ann Lee-Smith")
    conflict = await _put(api, loan_id, other)
    assert conflict.status_code == 409, conflict.text
    problem = conflict.json()
    assert problem["field"] == "version"
    assert problem["error"].startswith("version: ")
    assert "was synced with other content" in problem["error"]
    assert await _book(pool, loan_id) == before
    name = await pool.fetchval(
        "SELECT name FROM book.borrowers WHERE borrower_id = $1", borrower_id
    )
    assert name == "Ann Lee"  # the borrower row is not half-written either


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        ({"version": 0}, "version", "at least 1"),
        ({"principal": 1200}, "principal", ""),  # a JSON number: amounts are text
        ({"currency": "US$"}, "currency", ""),
        ({"phone": "call me"}, "phone", ""),
        ({"borrower_name": None}, "borrower_name", ""),
        (
            {"schedule": [{"due_date": _day(-5), "amount_due": "10.00", "amount_paid": "20.00"}]},
            "schedule[0].amount_paid",
            "is more than amount_due",
        ),
        ({"schedule": []}, "schedule", "give a schedule, or due_date and outstanding"),
        ({"outstanding": "999.00"}, "outstanding", "does not match the schedule's unpaid total"),
    ],
)
async def test_a_bad_field_is_422_naming_it_and_nothing_is_stored(
    api: httpx.AsyncClient, pool: asyncpg.Pool, change: dict[str, Any], field: str, message: str
) -> None:
    loan_id, borrower_id = _ids("bad")
    body = {k: v for k, v in _body(borrower_id, **change).items() if v is not None}
    response = await _put(api, loan_id, body)
    assert response.status_code == 422, response.text
    problem = response.json()
    assert problem["field"] == field, problem
    assert problem["error"].startswith(f"{field}: ") and message in problem["error"], problem
    assert (await _book(pool, loan_id))["row"] is None
    assert not await pool.fetchval(
        "SELECT count(*) FROM book.borrowers WHERE borrower_id = $1", borrower_id
    )


async def test_the_body_may_not_name_another_loan(
    api: httpx.AsyncClient, pool: asyncpg.Pool
) -> None:
    loan_id, borrower_id = _ids("path")
    other, _ = _ids("body")
    response = await _put(api, loan_id, {**_body(borrower_id), "loan_id": other})
    assert response.status_code == 422, response.text
    assert response.json()["field"] == "loan_id"
    assert other in response.json()["error"] and loan_id in response.json()["error"]
    for either in (loan_id, other):
        assert (await _book(pool, either))["row"] is None

    # A path that is no loan id is refused before the body is read.
    bad_path = await _put(api, "bad%20id", _body(borrower_id))
    assert (bad_path.status_code, bad_path.json()["field"]) == (422, "loan_id")


async def test_a_body_that_is_no_loan_is_422_naming_the_body(api: httpx.AsyncClient) -> None:
    loan_id, _ = _ids("garbage")
    garbage = await api.put(
        f"/v1/loans/{loan_id}",
        content=b"{not json",
        headers={**API_AUTH, "Content-Type": "application/json"},
    )
    assert (garbage.status_code, garbage.json()["field"]) == (422, "body")
    assert garbage.json()["error"].startswith("body: is not valid JSON")
    listed = await _put(api, loan_id, ["a", "list"])
    assert (listed.status_code, listed.json()["field"]) == (422, "body")


async def test_without_the_token_nothing_is_stored(
    api: httpx.AsyncClient, pool: asyncpg.Pool
) -> None:
    loan_id, borrower_id = _ids("noauth")
    for headers in ({}, {"Authorization": "Bearer not-the-token-at-all"}):
        response = await api.put(f"/v1/loans/{loan_id}", json=_body(borrower_id), headers=headers)
        assert response.status_code == 401, response.text
        assert response.json()["field"] == "authorization"
        assert response.headers["WWW-Authenticate"] == "Bearer"
    assert (await _book(pool, loan_id))["row"] is None


async def test_the_openapi_document_describes_the_route(api: httpx.AsyncClient) -> None:
    document = (await api.get("/openapi.json")).json()
    put = document["paths"]["/v1/loans/{loan_id}"]["put"]
    assert {"200", "201", "401", "409", "422"} <= set(put["responses"])
    body = put["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    fields = document["components"]["schemas"][body.rsplit("/", 1)[1]]["properties"]
    assert {"version", "schedule", "borrower_id", "loan_id"} <= set(fields)
