"""Custom search attributes: how operations find loans in the Temporal Web UI.

None of them carries PII: ids, stages, counts, amounts and times only.
"""

from __future__ import annotations

from temporalio.common import SearchAttributeKey

LOAN_ID = SearchAttributeKey.for_keyword("LoanId")
COLLECTION_STAGE = SearchAttributeKey.for_keyword("CollectionStage")
DAYS_PAST_DUE = SearchAttributeKey.for_int("DaysPastDue")
OUTSTANDING_MINOR = SearchAttributeKey.for_int("OutstandingMinor")
SITUATION = SearchAttributeKey.for_keyword("Situation")
BROKEN_PROMISES = SearchAttributeKey.for_int("BrokenPromises")
NEXT_CONTACT_AT = SearchAttributeKey.for_datetime("NextContactAt")

ALL = (
    LOAN_ID,
    COLLECTION_STAGE,
    DAYS_PAST_DUE,
    OUTSTANDING_MINOR,
    SITUATION,
    BROKEN_PROMISES,
    NEXT_CONTACT_AT,
)
