"""Contact outcomes and dispute resolutions from the outside world, checked before they are sent.

Outcomes reach a collection as the ``contact_outcome`` signal, which cannot refuse anything, so
every source's report is checked here first: its form against ``workflows.limits`` (ids, free
text without control characters, bounded lengths), before anything is connected to
(``check_outcome_fields``), then against the loan as its running collection sees it (currency,
balance, the borrower's today in collection time). Every problem is an ``OutcomeInvalid`` whose
message names the field at fault.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime
from zoneinfo import ZoneInfo

from workflows import limits
from workflows.limits import LimitError
from workflows.money import AmountError, format_minor, to_minor
from workflows.types import (
    CollectionStatus,
    ContactOutcome,
    DisputeResolution,
    Hardship,
    Promise,
    ReviewDecision,
)
from workflows.vocabulary import CONVERSATION_CHANNELS, ComplaintCategory, Review, Situation

# The workflow's vocabulary, so that codes it adds are accepted at once. "none" is the absence
# of a situation, not something a conversation reveals.
SITUATION_CODES: tuple[str, ...] = tuple(s for s in Situation if s != Situation.NONE)
HARDSHIP_TERMS = ("short", "long")
# Who reports: a kind of source and a name, e.g. collector:ann, dialer:east-1, simulator:seed7.
SOURCE_PATTERN = re.compile(r"[a-z][a-z_]{0,31}:[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}")
DEFAULT_SOURCE = "collector:cli"


class OutcomeInvalid(ValueError):
    """An outcome or dispute resolution that cannot be sent; the message names the field."""


@dataclass(frozen=True)
class LoanView:
    """What an outcome is checked against: the loan as its running collection sees it."""

    loan_id: str
    currency: str
    outstanding_minor: int
    timezone: str
    collection_time: datetime

    @classmethod
    def from_status(cls, status: CollectionStatus) -> LoanView:
        return cls(
            loan_id=status.loan_id,
            currency=status.currency,
            outstanding_minor=status.outstanding_minor,
            timezone=status.timezone,
            collection_time=status.collection_time,
        )

    @property
    def today(self) -> date:
        """The borrower's local date at collection time: a promise's date is borrower-local."""
        return self.collection_time.astimezone(ZoneInfo(self.timezone)).date()


def outcome_from_fields(
    loan: LoanView,
    *,
    outcome_id: str,
    source: str = DEFAULT_SOURCE,
    at: datetime | None = None,
    right_party: bool = True,
    situation: str | None = None,
    promise_amount: str | None = None,
    promise_date: str | None = None,
    complaint: str | None = None,
    dispute: bool = False,
    hardship: str | None = None,
    hardship_reason: str | None = None,
    deceased_reported_by: str | None = None,
    cease: bool = False,
    refusal: bool = False,
    note: str | None = None,
    channel: str = "call",
) -> ContactOutcome:
    """Build an outcome from text fields (a collector's report), or raise ``OutcomeInvalid``.

    Args:
        loan: The loan as its running collection sees it.
        outcome_id: The outcome's unique id (the signal is idempotent by it).
        source: Who reports, as ``kind:name``.
        at: When the conversation took place; default the collection time of ``loan``.
        right_party: False when the borrower was not the one spoken to.
        situation: A situation code (see ``SITUATION_CODES``).
        promise_amount: Amount promised, in major units of the loan's currency ("12.50").
        promise_date: Date the borrower promised to pay by, ``YYYY-MM-DD``, borrower-local.
        complaint: A complaint category (``ComplaintCategory.ALL``).
        dispute: The borrower disputes the debt itself.
        hardship: ``short`` or ``long``, with ``hardship_reason``.
        hardship_reason: Why the borrower cannot pay.
        deceased_reported_by: Who reported the borrower's death.
        cease: The borrower asks that collection contact stop.
        refusal: The borrower wilfully refuses to pay.
        note: Free text.
        channel: How the conversation was held (``CONVERSATION_CHANNELS``): ``call`` (ours,
            outbound), ``inbound_call``, ``sms``, ``email`` or ``in_person``. A right-party
            conversation by phone counts for every conversation rule of the borrower.

    Raises:
        OutcomeInvalid: The first problem found; its message names the field.
    """
    check_outcome_fields(
        outcome_id=outcome_id,
        source=source,
        situation=situation,
        promise_amount=promise_amount,
        promise_date=promise_date,
        complaint=complaint,
        hardship=hardship,
        hardship_reason=hardship_reason,
        deceased_reported_by=deceased_reported_by,
        note=note,
        channel=channel,
    )
    promise = None
    promise_amount, promise_date = _text(promise_amount), _text(promise_date)
    if promise_amount is not None and promise_date is not None:
        try:
            amount_minor = to_minor(promise_amount, loan.currency)
        except AmountError as problem:
            raise OutcomeInvalid(f"promise_amount: {problem}") from None
        promise = Promise(
            amount_minor=amount_minor, due_date=date.fromisoformat(promise_date).isoformat()
        )
    term, reason = _text(hardship), _text(hardship_reason)
    outcome = ContactOutcome(
        outcome_id=(outcome_id or "").strip(),
        source=(source or "").strip(),
        at=at or loan.collection_time,
        right_party=right_party,
        situation=_blank_is_a_value(situation),
        promise=promise,
        complaint=_blank_is_a_value(complaint),
        dispute=dispute,
        hardship=Hardship(term, reason) if term is not None and reason is not None else None,
        death_reported_by=_blank_is_a_value(deceased_reported_by),
        cease=cease,
        refusal=refusal,
        note=_blank_is_a_value(note),
        channel=(channel or "").strip(),
    )
    check_outcome(outcome, loan)
    return outcome


def check_outcome_fields(
    *,
    outcome_id: str,
    source: str = DEFAULT_SOURCE,
    situation: str | None = None,
    promise_amount: str | None = None,
    promise_date: str | None = None,
    complaint: str | None = None,
    hardship: str | None = None,
    hardship_reason: str | None = None,
    deceased_reported_by: str | None = None,
    note: str | None = None,
    channel: str = "call",
) -> None:
    """The checks of ``outcome_from_fields`` that need no loan: made before anything is
    connected to, so that a malformed report is refused at once. Arguments as there.

    Raises:
        OutcomeInvalid: The first problem found; its message names the field.
    """
    _check_id("outcome_id", (outcome_id or "").strip())
    _check_source((source or "").strip())
    _check_choices(
        channel=(channel or "").strip(),
        situation=_blank_is_a_value(situation),
        complaint=_blank_is_a_value(complaint),
    )
    promise_amount, promise_date = _text(promise_amount), _text(promise_date)
    if promise_amount is not None or promise_date is not None:
        if promise_amount is None:
            raise OutcomeInvalid("promise_amount: a promise needs an amount and a date")
        if promise_date is None:
            raise OutcomeInvalid("promise_date: a promise needs an amount and a date")
        try:
            sign, _, _ = limits.check_amount_text(promise_amount)
        except LimitError as problem:
            raise OutcomeInvalid(f"promise_amount: {problem}") from None
        if sign == "-":
            raise OutcomeInvalid(f"promise_amount: must be positive, got {promise_amount}")
        try:
            date.fromisoformat(promise_date)
        except ValueError:
            raise OutcomeInvalid(
                f"promise_date: {limits.shown(promise_date)} is not a date (YYYY-MM-DD)"
            ) from None
    term, reason = _text(hardship), _text(hardship_reason)
    if reason is not None and term is None:
        raise OutcomeInvalid("hardship_reason: given without a hardship term (short or long)")
    if term is not None and reason is None:
        raise OutcomeInvalid("hardship_reason: a hardship needs a reason")
    if term is not None and term not in HARDSHIP_TERMS:
        raise OutcomeInvalid(f"hardship: must be short or long, got {limits.shown(term)}")
    for name, value, limit in (
        ("hardship_reason", hardship_reason, limits.SHORT_TEXT_MAX),
        ("deceased_reported_by", deceased_reported_by, limits.SHORT_TEXT_MAX),
    ):
        if value is not None:
            _check_text(name, value, limit)
    if note is not None:
        _check_text("note", note, limits.NOTE_MAX, multiline=True)


def check_outcome(outcome: ContactOutcome, loan: LoanView) -> None:
    """Refuse an outcome the collection could not act on, naming the field.

    Raises:
        OutcomeInvalid: The first problem found.
    """
    _check_id("outcome_id", outcome.outcome_id)
    _check_source(outcome.source)
    if outcome.at.tzinfo is None:
        raise OutcomeInvalid("at: must carry a time zone")
    _check_choices(
        channel=outcome.channel, situation=outcome.situation, complaint=outcome.complaint
    )
    if outcome.promise is not None:
        _check_promise(outcome.promise, loan)
    if outcome.hardship is not None:
        if outcome.hardship.term not in HARDSHIP_TERMS:
            raise OutcomeInvalid(
                f"hardship: must be short or long, got {limits.shown(outcome.hardship.term)}"
            )
        _check_text("hardship_reason", outcome.hardship.reason, limits.SHORT_TEXT_MAX)
    if outcome.death_reported_by is not None:
        _check_text("deceased_reported_by", outcome.death_reported_by, limits.SHORT_TEXT_MAX)
    if outcome.note is not None:
        _check_text("note", outcome.note, limits.NOTE_MAX, multiline=True)
    if not outcome.right_party:
        # Only the borrower can promise, dispute the debt, plead hardship, ask to cease or
        # refuse; a third party can report a death, complain, or leave a note.
        for name, given in (
            ("promise_amount", outcome.promise is not None),
            ("dispute", outcome.dispute),
            ("hardship", outcome.hardship is not None),
            ("cease", outcome.cease),
            ("refusal", outcome.refusal),
        ):
            if given:
                raise OutcomeInvalid(
                    f"{name}: only the borrower can report this, and this outcome is not a"
                    " right-party conversation"
                )
    if not any(
        (
            outcome.situation,
            outcome.promise,
            outcome.complaint,
            outcome.dispute,
            outcome.hardship,
            outcome.death_reported_by,
            outcome.cease,
            outcome.refusal,
            outcome.note,
        )
    ):
        raise OutcomeInvalid(
            "outcome: reports nothing; give at least one of situation, promise, complaint,"
            " dispute, hardship, death report, cease, refusal or note"
        )


def resolution_from_fields(
    *,
    resolution_id: str,
    upheld: bool,
    rejected: bool,
    at: datetime,
    note: str | None = None,
) -> DisputeResolution:
    """Build a dispute resolution from a reviewer's flags, or raise ``OutcomeInvalid``."""
    if upheld == rejected:
        raise OutcomeInvalid("resolution: give exactly one of upheld or rejected")
    resolution = DisputeResolution(
        resolution_id=(resolution_id or "").strip(),
        upheld=upheld,
        at=at,
        note=_blank_is_a_value(note),
    )
    check_resolution(resolution)
    return resolution


def check_resolution(resolution: DisputeResolution) -> None:
    """Refuse a malformed dispute resolution, naming the field."""
    _check_id("resolution_id", resolution.resolution_id)
    if resolution.at.tzinfo is None:
        raise OutcomeInvalid("at: must carry a time zone")
    if resolution.note is not None:
        _check_text("note", resolution.note, limits.NOTE_MAX, multiline=True)


def _check_source(source: str) -> None:
    if not SOURCE_PATTERN.fullmatch(source):
        raise OutcomeInvalid(
            f"source: expected kind:name such as collector:ann, got {limits.shown(source)}"
        )


def _check_choices(*, channel: str, situation: str | None, complaint: str | None) -> None:
    """The fields that name one of a vocabulary's codes."""
    if channel not in CONVERSATION_CHANNELS:
        raise OutcomeInvalid(
            f"channel: {limits.shown(channel)} is not one of {', '.join(CONVERSATION_CHANNELS)}"
        )
    if situation is not None and situation not in SITUATION_CODES:
        raise OutcomeInvalid(
            f"situation: unknown code {limits.shown(situation)}; expected one of"
            f" {', '.join(SITUATION_CODES)}"
        )
    if complaint is not None and complaint not in ComplaintCategory.ALL:
        raise OutcomeInvalid(
            f"complaint: {limits.shown(complaint)} is not one of {', '.join(ComplaintCategory.ALL)}"
        )


def _check_promise(promise: Promise, loan: LoanView) -> None:
    if promise.amount_minor <= 0:
        shown = format_minor(promise.amount_minor, loan.currency)
        raise OutcomeInvalid(f"promise_amount: must be positive, got {shown}")
    if promise.amount_minor > loan.outstanding_minor:
        raise OutcomeInvalid(
            f"promise_amount: {format_minor(promise.amount_minor, loan.currency)} is more than"
            f" the outstanding {format_minor(loan.outstanding_minor, loan.currency)}"
            f" {loan.currency}"
        )
    try:
        due = date.fromisoformat(promise.due_date)
    except ValueError:
        raise OutcomeInvalid(
            f"promise_date: {limits.shown(promise.due_date)} is not a date (YYYY-MM-DD)"
        ) from None
    if due < loan.today:
        raise OutcomeInvalid(
            f"promise_date: {due} is in the past; the borrower's today is {loan.today}"
        )
    try:
        # Judged on the borrower's calendar in collection time, which a compressed clock moves
        # ahead of the wall clock's.
        limits.check_promise_date(due, loan.today)
    except LimitError as problem:
        raise OutcomeInvalid(f"promise_date: {problem}") from None


def _check_id(name: str, value: str) -> None:
    try:
        limits.check_id(value)
    except LimitError as problem:
        raise OutcomeInvalid(f"{name}: {problem}") from None


def _check_text(name: str, value: str, limit: int, *, multiline: bool = False) -> None:
    try:
        limits.check_text(value, max_length=limit, multiline=multiline)
    except LimitError as problem:
        raise OutcomeInvalid(f"{name}: {problem}") from None


def _text(value: str | None) -> str | None:
    """An optional text field: None when not given or blank."""
    value = (value or "").strip()
    return value or None


def _blank_is_a_value(value: str | None) -> str | None:
    # `--note ""` was given on purpose: keep it, so that the check names the field, instead of
    # reading it as "no note" and refusing the outcome for reporting nothing.
    return None if value is None else value.strip()


def decision_from_fields(
    *, decision_id: str, review: str, outcome: str, by: str, at: datetime, note: str | None = None
) -> ReviewDecision:
    """A person's review decision, checked, or ``OutcomeInvalid`` naming the field."""
    decision = ReviewDecision(
        decision_id=(decision_id or "").strip(),
        review=(review or "").strip(),
        outcome=(outcome or "").strip(),
        by=(by or "").strip(),
        at=at,
        note=note,
    )
    _check_id("decision_id", decision.decision_id)
    if decision.review not in Review.OUTCOMES:
        raise OutcomeInvalid(f"review: must be one of {', '.join(Review.OUTCOMES)}")
    allowed = Review.OUTCOMES[decision.review]
    if decision.outcome not in allowed:
        raise OutcomeInvalid(f"outcome: for {decision.review}, one of {', '.join(allowed)}")
    if not decision.by:
        raise OutcomeInvalid("by: name who decided, e.g. ops:ann")
    _check_text("by", decision.by, limits.SHORT_TEXT_MAX)
    if note is not None:
        _check_text("note", note, limits.NOTE_MAX, multiline=True)
    return decision
