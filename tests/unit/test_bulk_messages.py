"""What a bulk signal may carry (``overdue.bulk``): the signal names, the input checked as the
workflow checks it, and the confirmation threshold."""

from __future__ import annotations

import pytest
from temporalio import workflow

from overdue.bulk import (
    NOT_IN_BULK,
    SIGNALS,
    BulkError,
    checked_message,
    confirm_threshold,
    new_job_id,
    parse_input,
)
from workflows.collection.workflow import LoanCollection
from workflows.limits import check_id
from workflows.types import DisputeResolution, HoldRequest


def test_every_signal_of_the_workflow_is_offered_or_refused_with_a_reason() -> None:
    defined = workflow._Definition.must_from_class(LoanCollection)
    assert set(SIGNALS) | set(NOT_IN_BULK) == {name for name in defined.signals if name}
    assert not set(SIGNALS) & set(NOT_IN_BULK)


def test_a_pause_is_checked_as_the_workflow_checks_it() -> None:
    message = checked_message("pause", {"reason": "fraud sweep", "operator": "ops:ann"})
    assert message == HoldRequest(reason="fraud sweep", operator="ops:ann")
    with pytest.raises(BulkError, match=r"^--input: reason: is required"):
        checked_message("pause", {"operator": "ops:ann"})
    with pytest.raises(BulkError, match=r"^--input: operator: is required"):
        checked_message("pause", {"reason": "x"})
    with pytest.raises(BulkError, match=r"^--input: reason: is required to pause"):
        checked_message("pause", {"reason": "  ", "operator": "ops:ann"})
    with pytest.raises(BulkError, match=r"^--input: reason: is not text"):
        checked_message("pause", {"reason": 5, "operator": "ops:ann"})
    with pytest.raises(BulkError, match=r"^--input: payload: is not a JSON object"):
        checked_message("pause", ["x"])


def test_a_resume_needs_no_reason() -> None:
    assert checked_message("resume", {}) == HoldRequest()


def test_other_messages_name_the_field_at_fault() -> None:
    resolution = checked_message(
        "dispute_resolved",
        {"resolution_id": "R-1", "upheld": False, "at": "2026-12-01T10:00:00+00:00"},
    )
    assert isinstance(resolution, DisputeResolution)
    with pytest.raises(BulkError, match=r"^--input: at: is required"):
        checked_message("dispute_resolved", {"resolution_id": "R-1", "upheld": False})
    with pytest.raises(BulkError, match=r"^--input: upheld: is not true or false"):
        checked_message(
            "dispute_resolved", {"resolution_id": "R-1", "upheld": "maybe", "at": "2026-12-01"}
        )
    with pytest.raises(BulkError, match=r"^--input: resolution_id: use letters"):
        checked_message(
            "dispute_resolved",
            {"resolution_id": "R 1", "upheld": False, "at": "2026-12-01T10:00:00+00:00"},
        )


def test_unknown_and_one_loan_signals_are_refused_naming_the_signal() -> None:
    with pytest.raises(BulkError, match=r"^NAME: unknown signal 'stop'; use one of pause"):
        checked_message("stop", {})
    with pytest.raises(BulkError, match=r"^NAME: payment_received cannot be sent in bulk"):
        checked_message("payment_received", {})


def test_the_input_must_be_json() -> None:
    assert parse_input('{"a": 1}') == {"a": 1}
    with pytest.raises(BulkError, match=r"^--input: is not JSON"):
        parse_input("{reason: x}")


def test_the_threshold_comes_from_the_option_then_the_environment() -> None:
    assert confirm_threshold(None, {}) == 10
    assert confirm_threshold(None, {"OVERDUE_BULK_CONFIRM_ABOVE": "3"}) == 3
    assert confirm_threshold(0, {"OVERDUE_BULK_CONFIRM_ABOVE": "3"}) == 0
    with pytest.raises(BulkError, match=r"^OVERDUE_BULK_CONFIRM_ABOVE: is not a whole number"):
        confirm_threshold(None, {"OVERDUE_BULK_CONFIRM_ABOVE": "ten"})


def test_job_ids_fit_the_id_rule_so_they_serve_as_request_ids() -> None:
    job_id = new_job_id("review_decided")
    assert check_id(job_id) == job_id
    assert job_id.startswith("bulk-review-decided-")
    assert new_job_id("pause") != new_job_id("pause")
