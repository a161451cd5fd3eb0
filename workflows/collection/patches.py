"""Patch ids: each gates a change of the command sequence that running histories must not see.

``workflow.patched(ID)`` is true in new histories and in replays of histories that took the new
path, false in replays of older ones (docs/changing-workflows.md has the table and the rules).
"""

# An update waiting on a payment is answered by the run that received it, before continue-as-new.
APPLY_PAYMENTS_BEFORE_CONTINUE_AS_NEW = "apply-payments-before-continue-as-new"
# A contact the planner refuses at its moment is written to the audit log.
AUDIT_DENIED_CONTACTS = "audit-denied-contacts"
# Contacts take a place in the borrower's budget in the ledger, across all the borrower's loans.
BORROWER_CONTACT_BUDGET = "borrower-contact-budget"
# A right-party phone conversation that an outcome reports counts like an answered dialer call.
REPORTED_CONVERSATIONS_COUNT = "reported-conversations-count"
# A conversation or a cease request is told to the borrower's other running loans at once.
TELL_SIBLINGS = "tell-siblings"
# A registry's "not verified" goes to a person instead of ruling the death report out.
REGISTRY_MISS_GOES_TO_REVIEW = "registry-miss-goes-to-review"
# Search attributes are upserted only when a value changed: most workflow tasks upsert nothing.
SEARCH_ATTRIBUTES_ON_CHANGE = "search-attributes-on-change"

ALL = (
    APPLY_PAYMENTS_BEFORE_CONTINUE_AS_NEW,
    AUDIT_DENIED_CONTACTS,
    BORROWER_CONTACT_BUDGET,
    REPORTED_CONVERSATIONS_COUNT,
    TELL_SIBLINGS,
    REGISTRY_MISS_GOES_TO_REVIEW,
    SEARCH_ATTRIBUTES_ON_CHANGE,
)
