"""The collection's vocabularies: every closed set of values the workflow, the ledger, the search
attributes and the CLI share.

Each is a ``StrEnum`` whose values are the strings histories, the ledger and the search
attributes hold, so payloads written before these types existed decode into them.
"""

from __future__ import annotations

from enum import StrEnum, nonmember


class Stage(StrEnum):
    """Where a loan's collection stands: the stage region's states of the collection machine,
    and the final states it ends in. The values are the state ids, and the strings histories,
    the ledger and the ``CollectionStage`` search attribute hold."""

    EARLY = "early"
    MIDDLE = "middle"
    LATE = "late"
    LEGAL = "legal"
    CURED = "cured"  # paid in full
    REFERRED = "referred"  # handed to counsel after the legal stage
    DISPUTE_UPHELD = "dispute_upheld"  # the debt was disputed, and the dispute upheld
    ESTATE_CLAIM = "estate_claim"  # the borrower died; a claim is filed against the estate
    WRITTEN_OFF = "written_off"  # the borrower died; nothing is claimed

    OPEN = nonmember((EARLY, MIDDLE, LATE, LEGAL))
    CLOSED = nonmember((CURED, REFERRED, DISPUTE_UPHELD, ESTATE_CLAIM, WRITTEN_OFF))


class Channel(StrEnum):
    """How the collection reaches someone."""

    CALL = "call"
    SMS = "sms"
    LETTER = "letter"


class Target(StrEnum):
    """Whom a contact reaches."""

    BORROWER = "borrower"
    CONTACT = "contact"  # a reference the borrower named
    ESTATE = "estate"  # letters to the family or the estate of a deceased borrower


class Outcome(StrEnum):
    """What one contact attempt produced."""

    NO_ANSWER = "no_answer"
    BUSY = "busy"
    ANSWERED = "answered"  # a right-party conversation with the borrower
    WRONG_PARTY = "wrong_party"  # someone else answered the borrower's number
    RELAYED = "relayed"  # a third party agreed to pass a message on
    OBJECTED = "objected"  # a third party asked not to be contacted again
    DELIVERED = "delivered"
    FAILED = "failed"
    SENT = "sent"
    # Not an attempt yet: another loan's place held in the borrower's budget, for a contact
    # that is about to happen (``SharedContacts.attempts``).
    RESERVED = "reserved"
    # Not an attempt: the borrower's budget had no room at the contact moment; nothing was sent.
    DEFERRED = "deferred"

    UNANSWERED = nonmember((NO_ANSWER, BUSY))


class Situation(StrEnum):
    """Why the loan is overdue, as far as the collection knows (the ``Situation`` attribute)."""

    NONE = "none"
    NO_ANSWER = "no_answer"
    CONTACTED = "contacted"
    PROMISE = "promise"
    DISPUTE = "dispute"
    CEASED = "ceased"
    REFUSAL = "refusal"
    PROMISE_BROKEN = "promise_broken"
    DECEASED = "deceased"
    HARDSHIP = "hardship"


class SituationState(StrEnum):
    """The collection machine's situation region (``workflows.machine``): the ``Situation``
    search attribute and the status's ``situation`` in collections since
    ``console-attributes`` (``Situation`` above is what outcomes report, and the older labels)."""

    NORMAL = "normal"
    PROMISED = "promised"
    DISPUTED = "disputed"
    CEASED = "ceased"
    DECEASED_REPORTED = "deceased_reported"
    DECEASED_REVIEW = "deceased_review"
    ESTATE_CONTACT = "estate_contact"
    ARRANGEMENT = "arrangement"
    HARDSHIP_REVIEW = "hardship_review"
    FORBEARANCE = "forbearance"

    DECEASED = nonmember((DECEASED_REPORTED, DECEASED_REVIEW, ESTATE_CONTACT))
    HARDSHIP = nonmember((ARRANGEMENT, HARDSHIP_REVIEW, FORBEARANCE))


class ComplaintCategory(StrEnum):
    """What a complaint is about; each category has its own route (strategy data)."""

    SALE = "sale"
    APPROVED_AMOUNT = "approved_amount"
    COMPANY = "company"
    COLLECTOR_CONDUCT = "collector_conduct"

    ALL = nonmember((SALE, APPROVED_AMOUNT, COMPANY, COLLECTOR_CONDUCT))


class HardshipTerm(StrEnum):
    SHORT = "short"  # an instalment arrangement with the borrower
    LONG = "long"  # a person reviews forbearance


CONVERSATION_CHANNELS = ("call", "inbound_call", "sms", "email", "in_person")
PHONE_CONVERSATIONS = ("call", "inbound_call")


class Review(StrEnum):
    """Decisions a person takes on a loan, through the ``review_decided`` signal."""

    DEATH_VERIFICATION = "death_verification"
    HARDSHIP = "hardship"  # forbearance for long-term hardship
    ESTATE = "estate"

    # The outcomes a person may decide in each review.
    OUTCOMES = nonmember(
        {
            DEATH_VERIFICATION: ("verified", "not_verified"),
            HARDSHIP: ("approved", "rejected"),
            ESTATE: ("estate_claim", "written_off"),
        }
    )


class NextActionKind(StrEnum):
    """What the loan does next, as ``status`` shows it."""

    CALL = "call"  # a call to the borrower
    SMS = "sms"  # a message to the borrower
    CONTACT = "contact"  # a call or message to a reference
    STAGE_REVIEW = "stage_review"  # nothing planned: the loan looks again at the next boundary
    ON_HOLD = "on_hold"  # an operator paused the collection
    BUDGET_WAIT = "budget_wait"  # the borrower's budget has no room yet; ``at_utc``: look again
    NONE = "none"  # the collection has ended
