"""The collection strategy as the workflow receives it: tuning that lives in a file, not in code.

``activities.strategy`` reads and checks the TOML files; the workflow gets a ``Strategy`` from
that activity, so the values a loan was collected by are in its history and replay exactly.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from workflows.queue import CaseDeadlines


@dataclass
class CrossLoanPolicy:
    """Which rules the law sets per debt that this lender applies to all of a borrower's debts.

    Strategy data. The law's floor (Regulation F) is per debt; the default is stricter: one
    conversation quiets every debt of the borrower, one cease request covers all of them, and
    the weekly call cap counts the calls of all of them. A dispute always stays per loan.
    """

    quiet_period: bool = True
    cease: bool = True
    weekly_calls: bool = True


@dataclass
class StageBands:
    """First day past due of each stage after early (early starts at DPD 1)."""

    middle: int = 6
    late: int = 19
    legal: int = 29


@dataclass
class Slot:
    name: str
    start_minute: int  # minutes after local midnight
    end_minute: int


@dataclass
class Strategy:
    """Collection strategy: tuning that lives in a file, not in code.

    It is loaded by an activity, so its values are recorded in history and replay exactly.
    """

    name: str
    version: str
    stages: StageBands
    slots: list[Slot]
    min_gap_minutes: int  # least time between two attempts of any kind
    max_calls_per_day: int  # the strategy's own limit, always under the law's caps
    sms_after_unanswered: int  # unanswered calls in a row before an SMS nudge
    contacts_after_unanswered: int  # unanswered calls in a row before asking references
    referral_after_days: int  # days in legal before referral to counsel
    messages: dict[str, str]  # the scripts in en-US, the language histories always had
    death_verification_days: int = 14  # then a person decides, if the registry has not
    arrangement_instalments: int = 3  # short-term hardship plan
    arrangement_interval_days: int = 7
    forbearance_instalments: int = 6  # approved long-term hardship: smaller instalments
    promise_grace_days: int = 2  # a promise is broken when unpaid this long after its date
    broken_promise_limit: int = 2  # broken promises that escalate the loan to the next stage
    failed_debit_fee_minor: dict[str, int] = field(default_factory=dict)  # by currency
    complaint_routes: dict[str, str] = field(default_factory=dict)  # category -> team
    cross_loan: CrossLoanPolicy = field(default_factory=CrossLoanPolicy)
    # Borrower calls aim at the slots the borrower answers in, or rotate blindly (``slots``).
    learn_slots: bool = True
    # Chosen for the loan by the assignment rules (segment and split), not just loaded by name:
    # the collection then shows it in the ``Strategy`` search attribute.
    assigned: bool = False
    segment: str = ""  # the assignment's segment; "" when no segment took the loan
    champion: bool = True  # the segment's champion, or one of its challengers
    # The scripts in the other languages, by BCP 47 tag then template: the channel activity
    # picks the borrower's. Empty in histories recorded before languages.
    translations: dict[str, dict[str, str]] = field(default_factory=dict)
    # Working days a person has for each kind of case (``workflows.queue``).
    case_deadlines: CaseDeadlines = field(default_factory=CaseDeadlines)
