"""Fuzzing every edge in process: loan-book rows, bank-file lines, API bodies, CLI arguments.

Hostile values (control characters, exponents, 20-digit and million-digit amounts, years 1 and
9999, megabyte ids) are mixed into otherwise good inputs. Whatever comes in, only the project's
own refusals may come out, each naming its field (and its line, for a file); what is accepted is
within the limits of ``workflows.limits``; a file's good lines are kept beside its bad ones.

The default run is small enough for CI; ``OVERDUE_FUZZ_EXAMPLES=2000`` runs a longer one.
(``tests/integration/test_input_fuzz.py`` sends the same kind of input to the real ledger.)
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi.exceptions import RequestValidationError
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from overdue.api import _validation_failed
from overdue.api_bodies import OutcomeIn, PaymentIn
from overdue.bankfile import read_bank_file
from overdue.cli import _guarded
from overdue.cli.common import app
from overdue.loans import CSV_COLUMNS, read_loan_book
from overdue.stack import free_port
from tests.fuzzing import (
    BANK_COLUMNS,
    FUZZ,
    GOOD_BANK_LINE,
    GOOD_LOAN,
    NOW,
    OUTCOME_BODY,
    PAYMENT_BODY,
    TEXT,
    TODAY,
    as_csv,
    body_of,
    mutated,
)
from workflows import limits


def _assert_named(errors: list[Any], columns: tuple[str, ...]) -> None:
    for error in errors:
        assert error.line is not None and error.line >= 2, error
        head = error.field.split("[")[0].split(".")[0]
        assert head in {*columns, "line"}, error
        assert "\n" not in str(error) and len(str(error)) < 400, error


def _within_limits(text: str) -> None:
    assert limits.check_text(text, max_length=limits.NAME_MAX)


# --- loan books -----------------------------------------------------------------------------


@FUZZ
@given(st.lists(mutated(GOOD_LOAN, CSV_COLUMNS), min_size=1, max_size=4))
def test_a_loan_book_keeps_its_good_rows_and_names_its_bad_ones(rows: list[dict[str, str]]) -> None:
    # Every row gets its own loan id (unless fuzz replaced it), so only the fuzz can spoil one.
    rows = [
        {**row, "loan_id": f"L-{n}"} if row["loan_id"] == "L-1" else row
        for n, row in enumerate(rows, start=1)
    ]
    book = read_loan_book(as_csv(CSV_COLUMNS, rows))
    _assert_named(book.errors, CSV_COLUMNS)
    bad_lines = {e.line for e in book.errors}
    assert len(book.loans) + len(bad_lines) == len(rows)  # every line is a loan or is named
    for loan in book.loans:
        limits.check_id(loan.loan_id)
        limits.check_id(loan.borrower.borrower_id)
        _within_limits(loan.borrower.name)
        _within_limits(loan.product)
        limits.check_minor(loan.outstanding_minor)
        limits.check_minor(loan.principal_minor)
        limits.check_due_date(date.fromisoformat(loan.due_date), TODAY)
        for contact in loan.contacts:
            limits.check_id(contact.contact_id)
            _within_limits(contact.name)
            _within_limits(contact.relation)


@FUZZ
@given(st.text(max_size=2000))
def test_any_text_as_a_loan_book_is_named_lines_or_one_refusal(text: str) -> None:
    try:
        book = read_loan_book(",".join(CSV_COLUMNS) + "\n" + text)
    except csv.Error:  # the CLI says it is no CSV loan book
        return
    _assert_named(book.errors, CSV_COLUMNS)


# --- bank files -----------------------------------------------------------------------------


@FUZZ
@given(st.lists(mutated(GOOD_BANK_LINE, BANK_COLUMNS), min_size=1, max_size=4))
def test_a_bank_file_keeps_its_good_lines_and_names_its_bad_ones(
    rows: list[dict[str, str]],
) -> None:
    rows = [
        {**row, "payment_id": f"P-{n}"} if row["payment_id"] == "P-1" else row
        for n, row in enumerate(rows, start=1)
    ]
    bank_file = read_bank_file(as_csv(BANK_COLUMNS, rows), now=NOW)
    _assert_named(bank_file.errors, BANK_COLUMNS)
    assert len(bank_file.lines) + len({e.line for e in bank_file.errors}) == len(rows)
    for item in bank_file.lines:
        payment = item.incoming.payment
        assert limits.payment_problem(payment, NOW) is None
        if item.incoming.reference is not None:
            limits.check_text(item.incoming.reference, max_length=limits.REFERENCE_MAX)


# --- API bodies -----------------------------------------------------------------------------

OUTCOME_FIELDS = (*OutcomeIn.model_fields, "unknown_field")


def _refused_as_the_api_answers(model: type[PaymentIn | OutcomeIn], body: dict[str, Any]) -> None:
    """Validate as FastAPI does; a refusal must be the API's one-line JSON 422 naming a field."""
    try:
        model.model_validate(body)
    except ValidationError as error:
        response = _validation_failed(  # type: ignore[arg-type]
            None,
            RequestValidationError([{**e, "loc": ("body", *e["loc"])} for e in error.errors()]),
        )
        answer = json.loads(bytes(response.body))
        assert response.status_code == 422
        assert answer["field"] and answer["error"].startswith(answer["field"]), answer
        assert answer["field"].split(".")[0] in {*body, *model.model_fields}, answer
        assert "\n" not in answer["error"]


@FUZZ
@given(body_of(PAYMENT_BODY, (*PaymentIn.model_fields, "unknown_field")))
def test_a_payment_body_is_valid_within_limits_or_a_named_422(body: dict[str, Any]) -> None:
    try:
        checked = PaymentIn.model_validate(body)
    except ValidationError:
        _refused_as_the_api_answers(PaymentIn, body)
        return
    assert limits.payment_problem(checked.incoming().payment, datetime.now(UTC)) is None


@FUZZ
@given(body_of(OUTCOME_BODY, OUTCOME_FIELDS))
def test_an_outcome_body_is_valid_within_limits_or_a_named_422(body: dict[str, Any]) -> None:
    try:
        checked = OutcomeIn.model_validate(body)
    except ValidationError:
        _refused_as_the_api_answers(OutcomeIn, body)
        return
    for text in (checked.hardship_reason, checked.deceased_reported_by):
        if text is not None:
            limits.check_text(text, max_length=limits.SHORT_TEXT_MAX)
    if checked.note is not None:
        limits.check_text(checked.note, max_length=limits.NOTE_MAX, multiline=True)


# --- CLI arguments --------------------------------------------------------------------------

# Arguments that contain a NUL cannot be passed to a process; everything else can.
ARG = TEXT.filter(lambda text: "\x00" not in text and "\ud800" not in text)
COMMANDS = {
    "pay": lambda a: ["pay", a[0], a[1], "--payment-id", a[2], "--source", a[3]],
    "pay --currency": lambda a: ["pay", "L-1", a[0], "--payment-id", "P-1", "--currency", a[1]],
    "outcome": lambda a: ["outcome", a[0], "--outcome-id", a[1], "--note", a[2]],
    "outcome promise": lambda a: [
        *("outcome", "L-1", "--outcome-id", "OUT-1"),
        *("--promise-amount", a[0], "--promise-date", a[1], "--source", a[2]),
    ],
    "outcome hardship": lambda a: [
        *("outcome", "L-1", "--outcome-id", "OUT-1", "--hardship", a[0]),
        *("--hardship-reason", a[1], "--deceased-reported-by", a[2]),
    ],
    "pause": lambda a: ["pause", a[0], "--reason", a[1], "--by", a[2], "--request-id", a[3]],
    "dispute-resolved": lambda a: ["dispute-resolved", a[0], "--resolution-id", a[1], "--upheld"],
    "decide": lambda a: [
        *("decide", a[0], "--review", "hardship", "--outcome", "approved"),
        *("--decision-id", a[1], "--by", a[2], "--note", a[3]),
    ],
    "status": lambda a: ["status", a[0]],
    "borrower": lambda a: ["borrower", a[0]],
}
# What a command says when its arguments passed and it then found no stack to talk to.
NO_STACK = ("cannot reach Temporal", "DATABASE_URL is not set", "cannot reach the ledger")


@pytest.fixture(scope="module")
def no_stack(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The environment of a machine where nothing runs: every connection is refused at once."""
    return {
        "TEMPORAL_ADDRESS": f"127.0.0.1:{free_port()}",
        "OVERDUE_HOME": str(tmp_path_factory.mktemp("no-stack")),
    }


def _run_cli(args: list[str], env: dict[str, str]) -> tuple[int, str]:
    stderr = io.StringIO()
    with pytest.MonkeyPatch.context() as patch, contextlib.redirect_stderr(stderr):
        for name in ("DATABASE_URL", "OVERDUE_DEBUG", "TEMPORAL_NAMESPACE"):
            patch.delenv(name, raising=False)
        for name, value in env.items():
            patch.setenv(name, value)
        code = _guarded(lambda: app(args, prog_name="overdue"))
    return code, stderr.getvalue()


@FUZZ
@given(st.sampled_from(sorted(COMMANDS)), st.lists(ARG, min_size=4, max_size=4))
def test_a_cli_argument_is_refused_in_one_line_naming_its_field(
    no_stack: dict[str, str], command: str, args: list[str]
) -> None:
    argv = COMMANDS[command](args)
    code, stderr = _run_cli(argv, no_stack)
    lines = stderr.strip().splitlines()
    assert "Traceback" not in stderr
    if code == 2 and lines and lines[0].startswith("Usage:"):
        return  # click's own usage error (an argument that looks like an option)
    assert code == 2, (argv, code, stderr)
    assert len(lines) == 1 and lines[0].startswith("error: "), (argv, stderr)
    message = lines[0].removeprefix("error: ")
    if not message.startswith(NO_STACK):
        field = message.split(":")[0]
        assert field.isidentifier() and field.islower(), (argv, message)


def test_the_fuzz_suite_is_sized_by_the_environment() -> None:
    # The README's testing section documents the variable; keep the two in step.
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    assert "OVERDUE_FUZZ_EXAMPLES" in readme
