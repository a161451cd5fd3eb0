"""Custom search attributes: how operations find loans in the Temporal Web UI.

None of them carries PII: ids, stages, counts, amounts and times only.
"""

from __future__ import annotations

from temporalio.common import SearchAttributeKey

LOAN_ID = SearchAttributeKey.for_keyword("LoanId")
COLLECTION_STAGE = SearchAttributeKey.for_keyword("CollectionStage")
DAYS_PAST_DUE = SearchAttributeKey.for_int("DaysPastDue")
OUTSTANDING_MINOR = SearchAttributeKey.for_int("OutstandingMinor")
# The whole unpaid balance, due or not, with fees and less payments, in major units of the
# loan's currency (``OutstandingMinor`` is the amount in collection: what is past due). A double:
# the dev server's visibility store holds three integer attributes, all taken. Set by
# collections that began with the loan book.
TOTAL_OUTSTANDING_AMOUNT = SearchAttributeKey.for_float("TotalOutstandingAmount")
# The strategy collecting the loan, ``name@version`` (``Strategy STARTS_WITH "gentle@"``): set
# by collections whose strategy the assignment rules chose.
STRATEGY = SearchAttributeKey.for_keyword("Strategy")
SITUATION = SearchAttributeKey.for_keyword("Situation")
BROKEN_PROMISES = SearchAttributeKey.for_int("BrokenPromises")
NEXT_CONTACT_AT = SearchAttributeKey.for_datetime("NextContactAt")
# When the missed instalment fell due: the borrower-local midnight that starts its due date. A
# loan wakes only to act, so ``DaysPastDue`` is as of its last wake; a filter exact to the day
# reads this instead (``DueDate < "2026-11-10T00:00:00Z"``: more than N days past due).
DUE_DATE = SearchAttributeKey.for_datetime("DueDate")
# The person or decision the loan waits on; unset when it waits on nobody. ``operations``: an
# activity gave up and the loan is held until someone repairs what failed and resumes it; else
# the kind of its first open case (``workflows.queue.CaseKind``: review, dispute, death, estate,
# complaint).
WAITING_FOR = SearchAttributeKey.for_keyword("WaitingFor")
# Who is on the case the loan waits on (``WaitingFor``): a person, or ``supervisor`` once the
# case is past its deadline. Set by collections that keep the work queue.
ASSIGNEE = SearchAttributeKey.for_keyword("Assignee")
# The console attributes (``patches.CONSOLE_ATTRIBUTES``): the list read as money, and the loans
# paused or served a legal notice found at all.
# The loan's ISO currency: ``OutstandingMinor`` and ``OutstandingAmount`` compare only within one.
CURRENCY = SearchAttributeKey.for_keyword("Currency")
# ``OutstandingMinor`` as money: the amount in collection in major units of ``Currency``.
OUTSTANDING_AMOUNT = SearchAttributeKey.for_float("OutstandingAmount")
# Collection is paused by a hold: an operator's, or the collection's own (``WaitingFor``).
ON_HOLD = SearchAttributeKey.for_bool("OnHold")
# When the legal notice was served (the dev server holds three datetime attributes: the last).
LEGAL_NOTICE_AT = SearchAttributeKey.for_datetime("LegalNoticeAt")
# What outreach last revealed while the situation is ``normal`` (``none``, ``no_answer``,
# ``contacted``, ``refusal``, ``promise_broken``); ``Situation`` is the machine's state.
OUTREACH = SearchAttributeKey.for_keyword("Outreach")

ALL = (
    LOAN_ID,
    COLLECTION_STAGE,
    DAYS_PAST_DUE,
    OUTSTANDING_MINOR,
    SITUATION,
    BROKEN_PROMISES,
    NEXT_CONTACT_AT,
    DUE_DATE,
    WAITING_FOR,
    TOTAL_OUTSTANDING_AMOUNT,
    STRATEGY,
    ASSIGNEE,
    CURRENCY,
    OUTSTANDING_AMOUNT,
    ON_HOLD,
    LEGAL_NOTICE_AT,
    OUTREACH,
)
