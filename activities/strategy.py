"""Loading the collection strategy: tuning that lives in a file, recorded in history by this activity."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from temporalio import activity
from temporalio.exceptions import ApplicationError

from workflows.commands import LoadStrategy
from workflows.types import Slot, StageBands, Strategy


def _minutes(value: str, field: str) -> int:
    try:
        hours, minutes = value.split(":")
        total = int(hours) * 60 + int(minutes)
    except ValueError:
        raise ValueError(f"{field}: expected HH:MM, got {value!r}") from None
    if not 0 <= total <= 24 * 60:
        raise ValueError(f"{field}: {value!r} is not a time of day")
    return total


def parse_strategy(data: dict[str, Any]) -> Strategy:
    """Build and check a strategy from its TOML data. Errors name the offending field."""
    try:
        stages = StageBands(**{k: int(v) for k, v in data["stages"].items()})
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
            min_gap_minutes=int(cadence["min_gap_minutes"]),
            max_calls_per_day=int(cadence["max_calls_per_day"]),
            sms_after_unanswered=int(cadence["sms_after_unanswered"]),
            contacts_after_unanswered=int(cadence["contacts_after_unanswered"]),
            referral_after_days=int(cadence["referral_after_days"]),
            messages={str(k): str(v) for k, v in data["messages"].items()},
        )
    except KeyError as missing:
        raise ValueError(f"strategy is missing {missing.args[0]!r}") from None
    if not 1 < stages.middle < stages.late < stages.legal:
        raise ValueError("stages: expected 1 < middle < late < legal")
    for i, slot in enumerate(slots):
        if slot.start_minute >= slot.end_minute:
            raise ValueError(f"slots[{i}]: start must be before end")
    for name in ("min_gap_minutes", "max_calls_per_day", "sms_after_unanswered"):
        if getattr(strategy, name) < 1:
            raise ValueError(f"cadence.{name} must be at least 1")
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
