"""Which strategy collects a loan: segments, and champion/challenger splits within them.

The assignment file (``assignment.toml``, beside the strategy files) lists segments in order. A
loan belongs to the first segment whose every condition holds (jurisdiction, product, amount
band, risk score); a segment without conditions takes every loan. Each segment names its
champion and splits its loans between strategies by declared shares, in percent: a stable hash
of the segment and the loan id puts a loan in the same arm every time it is asked, on every
worker, so a split is reproducible and a loan keeps its strategy.

The file is checked by ``AssignmentIn``; every problem names its field (``segments[1].split``).
A folder without the file assigns every loan the ``default`` strategy.
"""

from __future__ import annotations

import hashlib
import tomllib
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, model_validator

from overdue.schemas import invalid, validate
from workflows.commands import SegmentFacts
from workflows.money import AMOUNT_BANDS

ASSIGNMENT_FILE = "assignment.toml"
DEFAULT_STRATEGY = "default"
BUCKETS = 10_000  # the hash's resolution: a share of 0.01% is one bucket


class SegmentIn(BaseModel):
    """One segment: its conditions (each optional) and its split."""

    model_config = ConfigDict(extra="forbid", defer_build=True)

    name: str = Field(min_length=1, max_length=64)
    jurisdiction: list[str] | None = None
    product: list[str] | None = None
    amount_band: list[str] | None = None
    min_risk_score: int | None = Field(default=None, ge=0)
    max_risk_score: int | None = Field(default=None, ge=0)
    champion: str = Field(min_length=1)
    split: dict[str, int]

    @model_validator(mode="after")
    def _sound(self) -> SegmentIn:
        for band in self.amount_band or []:
            if band not in AMOUNT_BANDS:
                raise invalid(f"{band!r} is not one of {', '.join(AMOUNT_BANDS)}", at="amount_band")
        if any(share < 0 for share in self.split.values()):
            raise invalid("a share is negative", at="split")
        if sum(self.split.values()) != 100:
            raise invalid(f"shares add up to {sum(self.split.values())}, not 100", at="split")
        if self.champion not in self.split:
            raise invalid(f"{self.champion!r} has no share in the split", at="champion")
        return self

    def matches(self, loan: SegmentFacts) -> bool:
        """Whether the loan meets every condition the segment sets."""
        checks = (
            self.jurisdiction is None or loan.jurisdiction in self.jurisdiction,
            self.product is None or loan.product in self.product,
            self.amount_band is None or loan.amount_band in self.amount_band,
            self.min_risk_score is None
            or (loan.risk_score is not None and loan.risk_score >= self.min_risk_score),
            self.max_risk_score is None
            or (loan.risk_score is not None and loan.risk_score <= self.max_risk_score),
        )
        return all(checks)


class AssignmentIn(BaseModel):
    """The assignment file: segments, in the order they are tried."""

    model_config = ConfigDict(extra="forbid", defer_build=True)

    segments: list[SegmentIn] = Field(min_length=1)

    @model_validator(mode="after")
    def _named_once(self) -> AssignmentIn:
        names = [s.name for s in self.segments]
        if len(set(names)) != len(names):
            raise invalid("two segments have one name", at="segments")
        return self


@dataclass(frozen=True)
class Assignment:
    """Where a loan lands: its segment, its strategy, and whether that is the champion."""

    segment: str
    strategy: str
    champion: bool


def read_assignment(folder: Path) -> AssignmentIn | None:
    """The folder's assignment file, checked; None when there is none.

    Raises:
        overdue.schemas.Invalid: naming every offending field.
        tomllib.TOMLDecodeError: the file is not TOML.
    """
    path = folder / ASSIGNMENT_FILE
    if not path.is_file():
        return None
    with path.open("rb") as file:
        return validate(AssignmentIn, tomllib.load(file))


def assign(rules: AssignmentIn | None, loan: SegmentFacts) -> Assignment:
    """The strategy that collects ``loan``: the first matching segment's arm for its hash.

    A loan no segment takes is collected by the default strategy, outside every experiment.
    """
    segment = next((s for s in (rules.segments if rules else []) if s.matches(loan)), None)
    if segment is None:
        return Assignment("", DEFAULT_STRATEGY, champion=True)
    bucket, threshold = _bucket(segment.name, loan.loan_id), 0
    arms = [name for name, share in segment.split.items() if share > 0]
    for strategy in arms[:-1]:
        threshold += segment.split[strategy] * BUCKETS // 100
        if bucket < threshold:
            return Assignment(segment.name, strategy, strategy == segment.champion)
    return Assignment(segment.name, arms[-1], arms[-1] == segment.champion)


def _bucket(segment: str, loan_id: str) -> int:
    """A stable bucket in ``[0, BUCKETS)``: the same loan, the same segment, the same arm."""
    digest = hashlib.sha256(f"{segment}\x00{loan_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % BUCKETS
