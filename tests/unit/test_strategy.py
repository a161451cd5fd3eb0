"""Loading and checking the strategy file: bad values are errors that name the field."""

from __future__ import annotations

import copy
import tomllib
from collections.abc import Callable
from typing import Any

import pytest

from activities.strategy import parse_strategy
from workflows.queue import CaseDeadlines
from workflows.strategy import Slot, StageBands

from .support import DEFAULT_STRATEGY_PATH, default_strategy


def raw() -> dict[str, Any]:
    with DEFAULT_STRATEGY_PATH.open("rb") as f:
        return tomllib.load(f)


RAW = raw()


def test_default_strategy_loads() -> None:
    strategy = default_strategy()
    assert strategy.name == "default"
    assert strategy.stages == StageBands(middle=6, late=19, legal=29)
    assert strategy.slots == [
        Slot("morning", 8 * 60, 11 * 60),
        Slot("midday", 11 * 60, 14 * 60),
        Slot("afternoon", 14 * 60, 17 * 60),
        Slot("evening", 17 * 60, 22 * 60),
    ]
    assert strategy.min_gap_minutes == 90
    assert strategy.max_calls_per_day == 3
    assert strategy.sms_after_unanswered == 4
    assert strategy.contacts_after_unanswered == 8
    assert strategy.referral_after_days == 10
    assert strategy.case_deadlines == CaseDeadlines(
        review=5, dispute=5, death=3, estate=10, complaint=8
    )
    for template in (
        "early_reminder",
        "late_firm",
        "no_answer_nudge",
        "reference_relay",
        "reference_locate",
    ):
        assert template in strategy.messages


def test_default_strategy_is_within_the_law() -> None:
    # The strategy may only be stricter: fewer calls a day than cn's 6 unanswered cap.
    strategy = default_strategy()
    assert strategy.max_calls_per_day < 6
    assert all(0 <= s.start_minute < s.end_minute <= 24 * 60 for s in strategy.slots)


@pytest.mark.parametrize("template", ["reference_relay", "reference_locate"])
def test_reference_script_never_mentions_the_debt(template: str) -> None:
    text = default_strategy().messages[template].lower()
    for word in ("debt", "overdue", "payment", "loan", "$loan_id", "account", "owe"):
        assert word not in text


def _set(*path: str | int, value: Any) -> Callable[[dict[str, Any]], None]:
    def change(data: dict[str, Any]) -> None:
        node: Any = data
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value

    return change


def _drop(*path: str | int) -> Callable[[dict[str, Any]], None]:
    def change(data: dict[str, Any]) -> None:
        node: Any = data
        for key in path[:-1]:
            node = node[key]
        del node[path[-1]]

    return change


BAD = {
    "stages out of order": (_set("stages", "late", value=5), r"stages"),
    "legal before late": (_set("stages", "legal", value=19), r"stages"),
    "middle at dpd 1": (_set("stages", "middle", value=1), r"stages"),
    "slot 25:00": (_set("slots", 0, "start", value="25:00"), r"slots\[0\]\.start"),
    "slot 8am": (_set("slots", 1, "end", value="8am"), r"slots\[1\]\.end"),
    "slot 12:75": (_set("slots", 2, "start", value="12:75"), r"slots\[2\]\.start"),
    "slot 08:-5": (_set("slots", 2, "start", value="08:-5"), r"slots\[2\]\.start"),
    "slot ends before start": (_set("slots", 3, "end", value="16:00"), r"slots\[3\]"),
    "slot start not a string": (_set("slots", 0, "start", value=8), r"slots\[0\]\.start"),
    "zero gap": (_set("cadence", "min_gap_minutes", value=0), r"min_gap_minutes"),
    "zero calls a day": (_set("cadence", "max_calls_per_day", value=0), r"max_calls_per_day"),
    "zero sms threshold": (
        _set("cadence", "sms_after_unanswered", value=0),
        r"sms_after_unanswered",
    ),
    "cadence not a number": (
        _set("cadence", "max_calls_per_day", value="three"),
        r"max_calls_per_day",
    ),
    "stage not a number": (_set("stages", "late", value="late"), r"stages\.late"),
    "unknown stage": (_set("stages", "mid", value=3), r"mid"),
    "missing name": (_drop("name"), r"name"),
    "missing cadence": (_drop("cadence"), r"cadence"),
    "missing stages": (_drop("stages"), r"stages"),
    "missing slots": (_drop("slots"), r"slots"),
    "missing messages": (_drop("messages"), r"messages"),
    "missing reference_locate": (
        _drop("messages", "en-US", "reference_locate"),
        r"reference_locate",
    ),
    "missing reference_relay": (_drop("messages", "en-US", "reference_relay"), r"reference_relay"),
    "empty reference_locate": (
        _set("messages", "en-US", "reference_locate", value=" "),
        r"messages\.en-US\.reference_locate",
    ),
    "empty Chinese reference_relay": (
        _set("messages", "zh-CN", "reference_relay", value=" "),
        r"messages\.zh-CN\.reference_relay",
    ),
    "missing min_gap_minutes": (_drop("cadence", "min_gap_minutes"), r"min_gap_minutes"),
    "missing referral_after_days": (
        _drop("cadence", "referral_after_days"),
        r"referral_after_days",
    ),
    "missing slot end": (_drop("slots", 0, "end"), r"end"),
    "no working days for a dispute": (_set("people", "dispute", value=0), r"people\.dispute"),
    "unknown kind of case": (_set("people", "appeal", value=3), r"people\.appeal"),
}


@pytest.mark.parametrize(("change", "field"), list(BAD.values()), ids=list(BAD))
def test_bad_strategy_is_a_value_error_naming_the_field(
    change: Callable[[dict[str, Any]], None], field: str
) -> None:
    data = copy.deepcopy(RAW)
    change(data)
    with pytest.raises(ValueError, match=field):
        parse_strategy(data)


def test_slot_may_end_at_midnight() -> None:
    data = copy.deepcopy(RAW)
    data["slots"][3]["end"] = "24:00"
    assert parse_strategy(data).slots[3].end_minute == 24 * 60
