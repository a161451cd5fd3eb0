"""Letters: notices that are really produced and stored, each served once per loan."""

from __future__ import annotations

from temporalio import workflow

from workflows import planner, rotation
from workflows.collection import patches, rules
from workflows.collection.context import Collection
from workflows.commands import NoticeRequest
from workflows.types import AttemptRecord, ServedNotice
from workflows.vocabulary import Channel, Outcome, Target

with workflow.unsafe.imports_passed_through():
    from activities.notices import NoticeActivities

# Asking the family for a death's documents is not collection: it may go out at any time.
DOCUMENTS_REQUEST = "death_documents_request"


async def serve_letter(
    c: Collection, kind: str, target: Target, facts: dict[str, str] | None = None
) -> bool:
    """Serve a notice of ``kind`` once, if the planner allows a letter to ``target`` now.

    Returns whether it was served.
    """
    state, loan = c.state, c.loan
    now = c.now()
    notice_key = f"{c.key}:{kind}"
    target_id = "estate" if target == Target.ESTATE else loan.borrower.borrower_id
    proposal = planner.Proposal(now, Channel.LETTER, target, target_id)
    if notice_key in state.notices:
        return False
    if (
        kind != DOCUMENTS_REQUEST
        and now < rules.first_contact_moment(loan, c.zone)
        and c.patched(patches.LETTERS_FROM_DPD_1)
    ):
        # No collection contact before DPD 1: the letter waits for it (``serve_waiting``).
        if kind not in state.letters_waiting:
            state.letters_waiting.append(kind)
        return False
    if not planner.check(c.profile, state.history, proposal, c.zone).allowed:
        return False
    record = await c.write(
        NoticeActivities.serve_notice,
        NoticeRequest(
            notice_key=notice_key,
            loan_id=loan.loan_id,
            kind=kind,
            days_past_due=c.dpd(now),
            outstanding_minor=state.outstanding_minor,
            currency=loan.currency,
            issued_at=now,
            facts=facts or {},
        ),
        f"serve {kind.replace('_', ' ')} letter",
    )
    state.notices.append(record.notice_key)
    state.served_notices.append(ServedNotice(record.notice_key, kind, now, record.sha256))
    return True


async def serve_waiting(c: Collection) -> None:
    """Serve the letters that waited for the first day past due, once it has come."""
    state = c.state
    if not state.letters_waiting or c.now() < rules.first_contact_moment(c.loan, c.zone):
        return
    waiting, state.letters_waiting = state.letters_waiting, []
    for kind in waiting:
        if kind == "refusal_notice":
            await serve_refusal_notice(c)
        else:
            await serve_letter(c, kind, Target.ESTATE)


async def serve_refusal_notice(c: Collection) -> None:
    """Wilful refusal: a notice that states, truthfully, the steps that will follow."""
    strategy = c.state.strategy
    legal_in_days = max(0, strategy.stages.legal - c.collection_dpd())
    await serve_letter(
        c,
        "refusal_notice",
        Target.BORROWER,
        {
            "legal_in_days": str(legal_in_days),
            "referral_after_days": str(strategy.referral_after_days),
        },
    )


async def serve_legal_notice(c: Collection) -> None:
    """The legal stage's formal notice; it counts as an outreach attempt (a letter)."""
    state = c.state
    facts = {"referral_after_days": str(state.strategy.referral_after_days)}
    if not await serve_letter(c, rules.LEGAL_NOTICE, Target.BORROWER, facts):
        return
    state.attempt_count += 1
    rotation.record_attempt(
        state.history,
        AttemptRecord(
            c.now(),
            Channel.LETTER,
            Target.BORROWER,
            c.loan.borrower.borrower_id,
            "letter",
            Outcome.SENT,
        ),
        c.slot_names(),
    )
