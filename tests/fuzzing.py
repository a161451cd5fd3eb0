"""Fuzzing inputs: hostile values and the good inputs they are mixed into.

Shared by the in-process fuzz suite (``tests/unit/test_input_fuzz.py``) and the one that reaches
the real ledger (``tests/integration/test_input_fuzz.py``). ``OVERDUE_FUZZ_EXAMPLES`` sets how
many examples each property runs (default: small enough for CI).
"""

from __future__ import annotations

import csv
import io
import os
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

EXAMPLES = int(os.environ.get("OVERDUE_FUZZ_EXAMPLES", "60"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
NOW = datetime.now(UTC)
TODAY = NOW.date()

# --- hostile values -------------------------------------------------------------------------

HOSTILE = st.sampled_from(
    [
        "",
        " ",
        "a\x00b",
        "\x07",
        "x\x1b[2J",
        "line\nbreak",
        "\u2028",
        "\ud800",
        "1e999997",
        "1E5",
        "-5",
        "0",
        "1.005",
        "99999999999999999999",
        "92233720368547758.08",
        "NaN",
        "Infinity",
        "1_000",
        "0001-01-01",
        "9999-12-31",
        "2030-01-01",
        "9999-12-31T23:59:59-14:00",
        "0001-01-01T00:00:00+14:00",
        "P" * 3000,
        "x" * 70,
        "L-1;",
        "|||",
        '"',
        "Ł",
        "李娜",
    ]
)
TEXT = st.one_of(HOSTILE, st.text(max_size=40), st.text(alphabet=st.characters(), max_size=300))
# A value for any field: hostile, random, or what a good input would hold there.
GOOD_LOAN = {
    "loan_id": "L-1",
    "borrower_id": "B-1",
    "borrower_name": "Ann Lee",
    "phone": "+15550001000",
    "timezone": "America/Chicago",
    "product": "personal",
    "principal": "800.00",
    "outstanding": "250.00",
    "currency": "USD",
    "due_date": (TODAY - timedelta(days=3)).isoformat(),
    "jurisdiction": "us",
    "contacts": "R-1|Eve Fox|+15550005000|friend",
}
GOOD_BANK_LINE = {
    "payment_id": "P-1",
    "loan_id": "L-1",
    "amount": "10.00",
    "currency": "USD",
    "paid_at": TODAY.isoformat(),
    "reference": "statement line 1",
}
BANK_COLUMNS = tuple(GOOD_BANK_LINE)
LOAN_COLUMNS = tuple(GOOD_LOAN)


def mutated(good: dict[str, str], columns: tuple[str, ...]) -> st.SearchStrategy[dict[str, str]]:
    """A good row with a few of its cells replaced by fuzz."""
    return st.dictionaries(st.sampled_from(columns), TEXT, max_size=3).map(
        lambda bad: {**good, **bad}
    )


def as_csv(columns: tuple[str, ...], rows: list[dict[str, str]]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


JSON_VALUES = st.one_of(
    TEXT,
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=True, allow_infinity=True),
    st.lists(st.integers(), max_size=2),
)
PAYMENT_BODY = {
    "payment_id": "P-1",
    "loan_id": "L-1",
    "amount": "10.00",
    "currency": "USD",
    "paid_at": NOW.isoformat(),
    "reference": "statement",
}
OUTCOME_BODY = {"outcome_id": "OUT-1", "note": "called back"}


def body_of(good: dict[str, Any], fields: tuple[str, ...]) -> st.SearchStrategy[dict[str, Any]]:
    return st.dictionaries(st.sampled_from(fields), JSON_VALUES, max_size=3).map(
        lambda bad: {**good, **bad}
    )
