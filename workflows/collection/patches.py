"""Patch ids: each gates a change of the command sequence that running histories must not see.

``workflow.patched(ID)`` is true in new histories and in replays of histories that took the new
path, false in replays of older ones (docs/changing-workflows.md has the table and the rules).
"""

from __future__ import annotations

from temporalio import workflow

from workflows.types import CollectionState

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

# Half the history per outreach action, and the workflow core reshaped:
# - the ledger's short writes and the outreach actions run as local activities (one marker each,
#   inside the workflow task that woke for them);
# - search attributes are upserted once per wake, when the loop is about to sleep;
# - the loan wakes for the calendar only when a stage starts or the referral falls due, and not
#   at all while collection is paused: it wakes to act, or for a message;
# - a borrower call whose moment slipped into a slot already tried in the rotation (or out of
#   every slot) is planned again instead of made;
# - what operators see of the next contact is only what the current state allows.
# It is asked first thing in every run. In a history that takes it, every earlier patch holds
# (the code that recorded it had them all), so their markers are not written again.
LEAN_HISTORY = "lean-history"

# A contact on a compressed clock (demos, tests) takes place at its planned moment, however late
# in real time the timer fired: a simulation runs on its plan. Real clocks never ask.
COMPRESSED_CLOCK_ON_PLAN = "compressed-clock-on-plan"

# The Situation label is derived from the machine: an outcome's code that names a situation the
# machine is not in no longer shows. Asked only where an older history would have shown it.
SITUATION_FROM_MACHINE = "situation-from-machine"

# A letter an outcome calls for before the first day past due (a refusal notice, an estate
# inquiry) waits for it, as every other collection contact does. Asked only when one would
# have gone out early.
LETTERS_FROM_DPD_1 = "letters-from-dpd-1"

# A signal outside the limits (``workflows.limits``: an id, an amount, free text) is refused
# whole and audited, instead of being applied. Asked only when one arrives.
SIGNALS_WITHIN_LIMITS = "signals-within-limits"

# A signal whose payload does not decode to its message (a field missing or of the wrong type,
# no input at all) or a pause without a reason or an operator is refused whole and audited, like
# one outside the limits, instead of being dropped by the SDK's deserializer (or, for a pause,
# taken with defaults). Asked only when such a message arrives.
MALFORMED_SIGNALS_REFUSED = "malformed-signals-refused"

# The loan book: the collection keeps the whole balance beside the amount in collection (the
# ``TotalOutstandingMinor`` search attribute), and adds failed-debit fees to what is owed. Asked
# once, when the loan opens; the state then says which collections have it.
LOAN_BOOK = "loan-book"

# Borrower calls aim at the slot Thompson sampling chooses (``workflows.slots``), from priors
# a local activity reads from the ledger (``load_slot_priors``), instead of rotating blindly.
# Asked when a collection first plans a borrower call; the state then says which collections
# learn (``CollectionState.slot_learning`` is set), so one marker covers the loan's whole life.
LEARNING_SLOTS = "learning-slots"

# The work queue (``workflows.queue``): each wait on a person is a case with a deadline, in the
# ledger and the ``WaitingFor``/``Assignee`` search attributes, escalated when it passes. Asked
# each turn until taken; the state then says which collections have it (``CollectionState.cases``).
WORK_QUEUE = "work-queue"
# The Web UI as a collections console: a run publishes ``Currency``, ``OutstandingAmount``,
# ``OnHold``, ``LegalNoticeAt`` and ``Outreach``, shows the machine's state names as
# ``Situation``, and unsets ``NextContactAt`` before it continues as new. Asked as a run begins
# until a run takes it; the state then says so (``CollectionState.console``), so one marker
# covers the loan's whole life.
CONSOLE_ATTRIBUTES = "console-attributes"

# A stage change is written to the ledger by an activity, scheduled by a command of the workflow
# task that decided it, instead of a local activity run inside that task. Its audit entry is keyed
# by the change's ordinal in the collection, which only the accepted task knows: a task the
# server refuses (continue-as-new with a signal it has not seen yet) runs again on other input,
# and a local write of its first attempt would stand for a change the loan never made and take
# the key of the one it did make (docs/decisions.md, "Stage changes are written by an
# activity"). Asked at the first stage change of a lean history; the state then says so
# (``CollectionState.stage_changes_as_activities``), so one marker covers the loan's whole life.
STAGE_CHANGES_AS_ACTIVITIES = "stage-changes-as-activities"

# A collection opened on this code takes every gate above at once: one marker as its first run
# begins, instead of one for each gate (and one for ``lean-history`` in every run), each with its
# ``TemporalChangeVersion`` upsert. The state carries it (``CollectionState.gates_at_open``), so
# its later runs ask nothing (only a malformed signal arriving before the first run has its
# state asks its own gate). Running loans keep asking gate by gate: their first run is past.
# A gate added after this one is asked on its own until the next such bundle.
GATES_AT_OPEN = "gates-at-open"

BEFORE_LEAN = (
    APPLY_PAYMENTS_BEFORE_CONTINUE_AS_NEW,
    AUDIT_DENIED_CONTACTS,
    BORROWER_CONTACT_BUDGET,
    REPORTED_CONVERSATIONS_COUNT,
    TELL_SIBLINGS,
    REGISTRY_MISS_GOES_TO_REVIEW,
    SEARCH_ATTRIBUTES_ON_CHANGE,
)
# What a collection that took ``GATES_AT_OPEN`` holds without asking.
AT_OPEN = (
    *BEFORE_LEAN,
    LEAN_HISTORY,
    COMPRESSED_CLOCK_ON_PLAN,
    SITUATION_FROM_MACHINE,
    LETTERS_FROM_DPD_1,
    SIGNALS_WITHIN_LIMITS,
    LOAN_BOOK,
    LEARNING_SLOTS,
    MALFORMED_SIGNALS_REFUSED,
    WORK_QUEUE,
    CONSOLE_ATTRIBUTES,
    STAGE_CHANGES_AS_ACTIVITIES,
)
ALL = (*AT_OPEN, GATES_AT_OPEN)


def takes(state: CollectionState | None, patch_id: str, *, lean: bool = False) -> bool:
    """Whether this history takes the change ``patch_id`` gates.

    Without a marker when the collection took every gate as it opened, or when the gate is older
    than lean histories and this one is lean: the code that recorded it had them all. Otherwise
    as ``workflow.patched`` answers.
    """
    if state is not None and state.gates_at_open and patch_id in AT_OPEN:
        return True
    if lean and patch_id in BEFORE_LEAN:
        return True
    return workflow.patched(patch_id)
