"""Loading the collection strategy: tuning that lives in a file, recorded in history by this activity."""

from __future__ import annotations

import tomllib
from dataclasses import fields
from pathlib import Path
from typing import Any

from temporalio import activity
from temporalio.exceptions import ApplicationError

from workflows.commands import LoadStrategy
from workflows.outreach import REFERENCE_SCRIPTS
from workflows.types import CrossLoanPolicy, Slot, StageBands, Strategy


def _minutes(value: str, field: str) -> int:
    try:
        hours, minutes = value.split(":")
        total = int(hours) * 60 + int(minutes)
        # Fix (tests/unit/test_strategy.py): "08:75" or "08:-5" were taken as 09:15 and 07:55.
        if not 0 <= int(minutes) < 60:
            raise ValueError(value)
    except (ValueError, AttributeError):  # AttributeError: not a string (fix, as above)
        raise ValueError(f"{field}: expected HH:MM, got {value!r}") from None
    if not 0 <= total <= 24 * 60:
        raise ValueError(f"{field}: {value!r} is not a time of day")
    return total


def _int(value: Any, field: str) -> int:
    # Fix (tests/unit/test_strategy.py): a bare int() error did not name the field.
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ValueError(f"{field}: expected a whole number, got {value!r}") from None


def _cross_loan(data: dict[str, Any]) -> CrossLoanPolicy:
    """The cross-loan policy: every switch defaults to on, the stricter choice."""
    known = {f.name for f in fields(CrossLoanPolicy)}
    for name, value in data.items():
        if name not in known:
            raise ValueError(f"cross_loan.{name}: unknown; known: {', '.join(sorted(known))}")
        if not isinstance(value, bool):
            raise ValueError(f"cross_loan.{name}: expected true or false, got {value!r}")
    return CrossLoanPolicy(**data)


def parse_strategy(data: dict[str, Any]) -> Strategy:
    """Build and check a strategy from its TOML data. Errors name the offending field."""
    try:
        stages = StageBands(**{k: _int(v, f"stages.{k}") for k, v in data["stages"].items()})
        cadence = data["cadence"]
        slots = [
            Slot(
                name=str(s["name"]),
                start_minute=_minutes(s["start"], f"slots[{i}].start"),
                end_minute=_minutes(s["end"], f"slots[{i}].end"),
            )
            for i, s in enumerate(data["slots"])
        ]
        strategy = Strategy(
            name=str(data["name"]),
            version=str(data["version"]),
            stages=stages,
            slots=slots,
            min_gap_minutes=_int(cadence["min_gap_minutes"], "cadence.min_gap_minutes"),
            max_calls_per_day=_int(cadence["max_calls_per_day"], "cadence.max_calls_per_day"),
            sms_after_unanswered=_int(
                cadence["sms_after_unanswered"], "cadence.sms_after_unanswered"
            ),
            contacts_after_unanswered=_int(
                cadence["contacts_after_unanswered"], "cadence.contacts_after_unanswered"
            ),
            referral_after_days=_int(cadence["referral_after_days"], "cadence.referral_after_days"),
            messages={str(k): str(v) for k, v in data["messages"].items()},
            promise_grace_days=_int(data["promises"]["grace_days"], "promises.grace_days"),
            broken_promise_limit=_int(data["promises"]["broken_limit"], "promises.broken_limit"),
            failed_debit_fee_minor={
                str(currency): _int(amount, f"fees.failed_debit.{currency}")
                for currency, amount in data["fees"]["failed_debit"].items()
            },
            complaint_routes={str(k): str(v) for k, v in data["complaints"]["routes"].items()},
            death_verification_days=_int(
                data["deceased"]["verification_days"], "deceased.verification_days"
            ),
            arrangement_instalments=_int(
                data["arrangements"]["instalments"], "arrangements.instalments"
            ),
            arrangement_interval_days=_int(
                data["arrangements"]["interval_days"], "arrangements.interval_days"
            ),
            forbearance_instalments=_int(
                data["arrangements"]["forbearance_instalments"],
                "arrangements.forbearance_instalments",
            ),
            cross_loan=_cross_loan(data.get("cross_loan", {})),
        )
    except KeyError as missing:
        raise ValueError(f"strategy is missing {missing.args[0]!r}") from None
    except (TypeError, AttributeError) as problem:
        # Fix (tests/unit/test_strategy.py): a misshapen file (an unknown stage name, a table
        # that is not a table) raised TypeError/AttributeError, which the activity does not turn
        # into a non-retryable BadStrategy, so the load was retried forever.
        raise ValueError(f"strategy is malformed: {problem}") from None
    if not 1 < stages.middle < stages.late < stages.legal:
        raise ValueError("stages: expected 1 < middle < late < legal")
    for i, slot in enumerate(slots):
        if slot.start_minute >= slot.end_minute:
            raise ValueError(f"slots[{i}]: start must be before end")
    for name in ("min_gap_minutes", "max_calls_per_day", "sms_after_unanswered"):
        if getattr(strategy, name) < 1:
            raise ValueError(f"cadence.{name} must be at least 1")
    # Each reference script (the jurisdiction profile picks one) must have its words: a
    # reference is never called with an empty script, nor with another profile's.
    for template, _ in REFERENCE_SCRIPTS.values():
        if not strategy.messages.get(template, "").strip():
            raise ValueError(f"messages.{template}: the reference script is missing")
    return strategy


def read_strategy(path: Path) -> Strategy:
    with path.open("rb") as f:
        return parse_strategy(tomllib.load(f))


class StrategyActivities:
    """Reads strategies from a folder of TOML files."""

    def __init__(self, folder: Path) -> None:
        self._folder = folder

    @activity.defn(name="load_strategy")
    async def load_strategy(self, request: LoadStrategy) -> Strategy:
        path = self._folder / f"{request.name}.toml"
        if not path.is_file():
            raise ApplicationError(
                f"no strategy named {request.name!r} in {self._folder}", non_retryable=True
            )
        try:
            return read_strategy(path)
        except (ValueError, tomllib.TOMLDecodeError) as problem:
            raise ApplicationError(
                f"{path.name}: {problem}", type="BadStrategy", non_retryable=True
            ) from None
