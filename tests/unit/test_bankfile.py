"""Bank-file lines checked field by field, before anything is stored."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from overdue.bankfile import NotABankFile, read_bank_file

NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
HEADER = "payment_id,loan_id,amount,currency,paid_at,reference\n"


def _errors(text: str) -> list[str]:
    return [str(e) for e in read_bank_file(text, now=NOW).errors]


def test_good_lines_become_payments_in_minor_units() -> None:
    book = read_bank_file(
        HEADER
        + "P-1,L-1,125.50,USD,2026-03-02,stmt 17\n"
        + "P-2,L-2,5000,jpy,2026-03-02T09:30:00+09:00,\n",
        now=NOW,
    )
    assert book.errors == []
    first, second = (line.incoming for line in book.lines)
    assert [line.line for line in book.lines] == [2, 3]
    assert (first.loan_id, first.payment.amount_minor, first.payment.currency) == (
        "L-1",
        12_550,
        "USD",
    )
    assert first.reference == "stmt 17"
    assert first.payment.paid_at == datetime(2026, 3, 2, tzinfo=UTC)
    assert first.payment.source == "bankfile"
    assert (second.payment.amount_minor, second.payment.currency) == (5000, "JPY")
    assert second.payment.paid_at == datetime(2026, 3, 2, 0, 30, tzinfo=UTC)
    assert second.reference is None


def test_reference_column_is_optional() -> None:
    book = read_bank_file("payment_id,loan_id,amount,currency,paid_at\nP,L,1,USD,2026-03-01\n")
    assert len(book.lines) == 1 and book.errors == []


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("P-1,L-1,-5,USD,2026-03-02,", "line 2: amount: must be positive, got -5"),
        ("P-1,L-1,0,USD,2026-03-02,", "line 2: amount: must be positive, got 0"),
        ("P-1,L-1,ten,USD,2026-03-02,", "line 2: amount: 'ten' is not a decimal amount"),
        ("P-1,L-1,1.005,USD,2026-03-02,", "line 2: amount: 1.005 has more than 2 decimal"),
        ("P-1,L-1,1.5,JPY,2026-03-02,", "line 2: amount: 1.5 has more than 0 decimal"),
        ("P-1,L-1,1,XXX,2026-03-02,", "line 2: currency: unknown currency 'XXX'"),
        ("P-1,L-1,1,USD,02/03/2026,", "line 2: paid_at: '02/03/2026' is not an ISO date"),
        (
            "P-1,L-1,1,USD,2026-03-11T12:00:00Z,",
            "line 2: paid_at: 2026-03-11T12:00:00+00:00 is in the future",
        ),
        (",L-1,1,USD,2026-03-02,", "line 2: payment_id: is required"),
        ("P 1,L-1,1,USD,2026-03-02,", "line 2: payment_id: use letters, digits"),
        ("P-1,,1,USD,2026-03-02,", "line 2: loan_id: is required"),
        ("P-1,L-1,1,USD,2026-03-02," + "x" * 141, "line 2: reference: at most 140 characters"),
        ("P-1,L-1,1,USD,2026-03-02,ref,extra", "line 2: line: has more cells than the header"),
    ],
)
def test_a_bad_line_is_reported_by_line_and_field(line: str, expected: str) -> None:
    book = read_bank_file(HEADER + line + "\n", now=NOW)
    assert book.lines == []
    assert str(book.errors[0]).startswith(expected)


def test_bad_lines_are_skipped_and_the_good_ones_kept() -> None:
    book = read_bank_file(
        HEADER
        + "P-1,L-1,10.00,USD,2026-03-02,\n"
        + "P-2,L-1,-1,USD,2026-03-02,\n"
        + "P-3,L-1,10.00,USD,2026-03-02,\n"
        + "P-1,L-1,10.00,USD,2026-03-02,\n",
        now=NOW,
    )
    assert [line.incoming.payment.payment_id for line in book.lines] == ["P-1", "P-3"]
    assert [str(e) for e in book.errors] == [
        "line 3: amount: must be positive, got -1",
        "line 5: payment_id: P-1 is already on line 2",
    ]


def test_every_problem_of_a_line_is_named() -> None:
    assert _errors(HEADER + ",L-1,-1,USD,yesterday,\n") == [
        "line 2: payment_id: is required",
        "line 2: amount: must be positive, got -1",
        "line 2: paid_at: 'yesterday' is not an ISO date (2026-03-02) or date and time"
        " (2026-03-02T09:30:00Z)",
    ]


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("", "it is empty"),
        ("\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "it holds binary data"),
        ("loan_id,borrower_id\nL,B\n", "its header lacks payment_id, amount, currency, paid_at"),
        ("just some words\n", "its header lacks payment_id, loan_id"),
    ],
)
def test_a_file_that_is_no_bank_file_is_one_problem(text: str, problem: str) -> None:
    with pytest.raises(NotABankFile, match=problem):
        read_bank_file(text)


def test_a_naive_time_is_utc() -> None:
    book = read_bank_file(HEADER + "P-1,L,1,USD,2026-03-02T09:30,\nP-2,L,1,USD, 2026-03-02 ,\n")
    assert [line.incoming.payment.paid_at for line in book.lines] == [
        datetime(2026, 3, 2, 9, 30, tzinfo=UTC),
        datetime(2026, 3, 2, tzinfo=UTC),
    ]
