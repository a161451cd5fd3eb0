"""Shared builders for the unit tests: the real default strategy and small record factories."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from activities.strategy import read_strategy
from workflows.strategy import Strategy
from workflows.types import AttemptRecord
from workflows.vocabulary import Channel, Outcome, Target

REPO = Path(__file__).parents[2]
DEFAULT_STRATEGY_PATH = REPO / "overdue" / "strategies" / "default.toml"

BORROWER_ID = "borrower-1"
CONTACT_IDS = ("contact-a", "contact-b", "contact-c")


def default_strategy() -> Strategy:
    """A fresh copy of the shipped default strategy (tests may mutate their copy)."""
    return read_strategy(DEFAULT_STRATEGY_PATH)


def local_dt(zone: str, *parts: int) -> datetime:
    """A borrower-local wall-clock time, returned in UTC as the planner stores times."""
    return datetime(*parts, tzinfo=ZoneInfo(zone)).astimezone(UTC)


def call(
    at: datetime,
    outcome: str = Outcome.NO_ANSWER,
    *,
    target: str = Target.BORROWER,
    target_id: str = BORROWER_ID,
    slot: str = "morning",
) -> AttemptRecord:
    return AttemptRecord(at, Channel.CALL, target, target_id, slot, outcome)


def sms(at: datetime, *, target_id: str = BORROWER_ID, slot: str = "morning") -> AttemptRecord:
    return AttemptRecord(at, Channel.SMS, Target.BORROWER, target_id, slot, Outcome.DELIVERED)
