"""Loading the collection strategy: tuning that lives in a file, recorded in history by this activity.

The TOML file is checked by ``StrategyIn``, a pydantic model of the file's tables that uses the
shared field rules of ``overdue.schemas``; the workflow receives the ``workflows.strategy.Strategy``
dataclass built from it. Every problem names its field: ``slots[2].start``, ``stages.late``.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PositiveInt,
    StrictBool,
    model_validator,
)
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.assignment import ASSIGNMENT_FILE, assign, read_assignment
from overdue.languages import ENGLISH, LANGUAGES, language_tag
from overdue.schemas import Currency, invalid, shown, validate
from workflows.commands import LoadStrategy
from workflows.outreach import REFERENCE_SCRIPTS
from workflows.queue import CaseDeadlines
from workflows.strategy import CrossLoanPolicy, Slot, StageBands, Strategy

CLOCK = re.compile(r"\s*(\d{1,2}):(\d{2})\s*")


def minute_of_day(value: object) -> int:
    """``HH:MM`` as minutes after local midnight, ``24:00`` included (a slot may end then)."""
    found = CLOCK.fullmatch(value) if isinstance(value, str) else None
    if found is None:
        raise invalid(f"expected HH:MM, got {shown(value)}")
    hours, minutes = int(found[1]), int(found[2])
    # "08:75" is no time, not 09:15.
    if minutes >= 60 or hours * 60 + minutes > 24 * 60:
        raise invalid(f"{shown(value)} is not a time of day")
    return hours * 60 + minutes


ClockTime = Annotated[int, BeforeValidator(minute_of_day)]
AtLeastOne = Annotated[int, Field(ge=1)]


class Table(BaseModel):
    """A table of the file. Keys it does not know are ignored, as before the model existed,
    except where a misspelt key would silently change the rules (``stages``, ``cross_loan``)."""

    # TOML has typed numbers: `version = 3` is still the text "3".
    # defer_build: built when a strategy is first read, not when the CLI or the worker starts.
    model_config = ConfigDict(extra="ignore", coerce_numbers_to_str=True, defer_build=True)


class StagesIn(Table):
    model_config = ConfigDict(extra="forbid")

    middle: int = StageBands.middle
    late: int = StageBands.late
    legal: int = StageBands.legal

    @model_validator(mode="after")
    def _in_order(self) -> StagesIn:
        if not 1 < self.middle < self.late < self.legal:
            raise invalid("expected 1 < middle < late < legal")
        return self


class SlotIn(Table):
    name: str
    start: ClockTime
    end: ClockTime

    @model_validator(mode="after")
    def _start_before_end(self) -> SlotIn:
        if self.start >= self.end:
            raise invalid("start must be before end")
        return self


class CadenceIn(Table):
    min_gap_minutes: AtLeastOne
    max_calls_per_day: AtLeastOne
    sms_after_unanswered: AtLeastOne
    contacts_after_unanswered: int
    referral_after_days: int
    # Whether borrower calls aim at the slots the borrower answers in (``workflows.slots``), or
    # rotate blindly through them (the control of an experiment on learning).
    learn_slots: StrictBool = True


class PromisesIn(Table):
    grace_days: int
    broken_limit: int


class FeesIn(Table):
    failed_debit: dict[Currency, Annotated[int, Field(ge=0)]]


class ComplaintsIn(Table):
    routes: dict[str, str]


class DeceasedIn(Table):
    verification_days: int


class ArrangementsIn(Table):
    instalments: int
    interval_days: int
    forbearance_instalments: int


class CrossLoanIn(Table):
    """Every switch defaults to on, the stricter choice."""

    model_config = ConfigDict(extra="forbid")

    quiet_period: StrictBool = True
    cease: StrictBool = True
    weekly_calls: StrictBool = True


class PeopleIn(Table):
    """Working days a person has for each kind of case; then it goes to the supervisor."""

    model_config = ConfigDict(extra="forbid")

    review: PositiveInt = CaseDeadlines.review
    dispute: PositiveInt = CaseDeadlines.dispute
    death: PositiveInt = CaseDeadlines.death
    estate: PositiveInt = CaseDeadlines.estate
    complaint: PositiveInt = CaseDeadlines.complaint


class StrategyIn(Table):
    """A strategy file, checked."""

    name: str
    version: str
    stages: StagesIn
    cadence: CadenceIn
    slots: list[SlotIn]
    # Scripts by language (``[messages.zh-CN]``, ``[messages.en-US]``); flat ``[messages]``
    # entries are en-US, as every strategy file was written before languages.
    messages: dict[str, str | dict[str, str]]
    promises: PromisesIn
    fees: FeesIn
    complaints: ComplaintsIn
    deceased: DeceasedIn
    arrangements: ArrangementsIn
    cross_loan: CrossLoanIn = Field(default_factory=CrossLoanIn)
    people: PeopleIn = Field(default_factory=PeopleIn)

    @model_validator(mode="after")
    def _scripts(self) -> StrategyIn:
        languages = self.scripts()
        english = languages[ENGLISH]
        for language, scripts in languages.items():
            at = () if language == ENGLISH and ENGLISH not in self.messages else (language,)
            # Each reference script (the jurisdiction profile picks one) must have its words: a
            # reference is never called with an empty script, nor with another profile's.
            for template, _ in REFERENCE_SCRIPTS.values():
                if not scripts.get(template, "").strip():
                    raise invalid("the reference script is missing", at=("messages", *at, template))
            # Every borrower hears every script in their language: none may be missing from one.
            for template in sorted(english.keys() - scripts.keys()):
                raise invalid(f"missing in {language}", at=("messages", *at, template))
            for template in sorted(scripts.keys() - english.keys()):
                raise invalid(f"not in {ENGLISH}", at=("messages", *at, template))
        return self

    def scripts(self) -> dict[str, dict[str, str]]:
        """The scripts by language; en-US always among them (``messages``' flat entries).

        Raises:
            PydanticCustomError: a table for a language not shipped, or en-US given twice.
        """
        flat = {k: v for k, v in self.messages.items() if isinstance(v, str)}
        languages: dict[str, dict[str, str]] = {}
        for key, value in self.messages.items():
            if isinstance(value, str):
                continue
            try:
                languages[language_tag(key)] = dict(value)
            except ValueError:
                raise invalid(
                    f"no language {key}: expected {', '.join(LANGUAGES)}", at=("messages", key)
                ) from None
        if flat and ENGLISH in languages:
            raise invalid(f"give the {ENGLISH} scripts flat or in [messages.{ENGLISH}], not both")
        languages.setdefault(ENGLISH, flat)
        return languages

    def to_strategy(self) -> Strategy:
        """The ``Strategy`` dataclass the workflow receives."""
        cadence, arrangements = self.cadence, self.arrangements
        scripts = self.scripts()
        return Strategy(
            name=self.name,
            version=self.version,
            stages=StageBands(self.stages.middle, self.stages.late, self.stages.legal),
            slots=[Slot(s.name, s.start, s.end) for s in self.slots],
            min_gap_minutes=cadence.min_gap_minutes,
            max_calls_per_day=cadence.max_calls_per_day,
            sms_after_unanswered=cadence.sms_after_unanswered,
            contacts_after_unanswered=cadence.contacts_after_unanswered,
            referral_after_days=cadence.referral_after_days,
            learn_slots=cadence.learn_slots,
            messages=scripts.pop(ENGLISH),
            translations=scripts,
            promise_grace_days=self.promises.grace_days,
            broken_promise_limit=self.promises.broken_limit,
            failed_debit_fee_minor=dict(self.fees.failed_debit),
            complaint_routes=dict(self.complaints.routes),
            death_verification_days=self.deceased.verification_days,
            arrangement_instalments=arrangements.instalments,
            arrangement_interval_days=arrangements.interval_days,
            forbearance_instalments=arrangements.forbearance_instalments,
            cross_loan=CrossLoanPolicy(**self.cross_loan.model_dump()),
            case_deadlines=CaseDeadlines(**self.people.model_dump()),
        )


def parse_strategy(data: dict[str, Any]) -> Strategy:
    """Build and check a strategy from its TOML data.

    Raises:
        overdue.schemas.Invalid: a ``ValueError`` naming every offending field.
    """
    return validate(StrategyIn, data).to_strategy()


def read_strategy(path: Path) -> Strategy:
    with path.open("rb") as f:
        return parse_strategy(tomllib.load(f))


class StrategyActivities:
    """Reads strategies, and the rules that assign them to loans, from folders of TOML files.

    The first folder holding a file wins: a lender's folder (``OVERDUE_STRATEGIES``) needs only
    its own strategies and assignment, and the packaged ones fill in the rest.
    """

    def __init__(self, *folders: Path) -> None:
        self._folders = folders

    @activity.defn(name="load_strategy")
    async def load_strategy(self, request: LoadStrategy) -> Strategy:
        """The strategy named, or, for a loan, the one its segment and split assign it.

        Recorded in the loan's history, so the loan keeps it for its whole collection.
        """
        if request.loan is None:
            return self._read(request.name)
        try:
            rules = next((r for r in map(read_assignment, self._folders) if r is not None), None)
            assignment = assign(rules, request.loan)
        except (ValueError, tomllib.TOMLDecodeError) as problem:
            raise ApplicationError(
                f"{ASSIGNMENT_FILE}: {problem}", type="BadStrategy", non_retryable=True
            ) from None
        strategy = self._read(assignment.strategy)
        return replace(
            strategy, assigned=True, segment=assignment.segment, champion=assignment.champion
        )

    def _read(self, name: str) -> Strategy:
        found = [f / f"{name}.toml" for f in self._folders if (f / f"{name}.toml").is_file()]
        if not found:
            where = ", ".join(str(f) for f in self._folders)
            raise ApplicationError(f"no strategy named {name!r} in {where}", non_retryable=True)
        path = found[0]
        try:
            return read_strategy(path)
        except (ValueError, tomllib.TOMLDecodeError) as problem:
            raise ApplicationError(
                f"{path.name}: {problem}", type="BadStrategy", non_retryable=True
            ) from None
