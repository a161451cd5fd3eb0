"""The product's metrics, recorded through the Temporal SDK's metric meter.

Activities record them, and only once the ledger has taken the write they describe: a write is
keyed, so an activity that is retried (a worker crash after the commit, a lost completion) finds
its row already there, and counting there too would count the event twice. Each function below is
called only when its activity's keyed write was new.

The meter is the worker's runtime's: on a worker whose client was given a runtime with a
Prometheus exporter (``overdue.metrics``) these land on the same endpoint as the SDK's own
metrics, labelled by the SDK with ``namespace``, ``task_queue`` and ``activity_type``. Without one
(the time-skipping tests, an activity called as a plain method) the meter does nothing.

Counter names end in ``_total`` themselves, and histogram names carry their unit: the exporter
is used with its defaults, which add no suffix to either.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import activity
from temporalio.common import MetricMeter

STAGE_TRANSITIONS = "overdue_stage_transitions_total"
CONTACT_ATTEMPTS = "overdue_contact_attempts_total"
PAYMENTS = "overdue_payments_total"
RECOVERED = "overdue_recovered_minor_units_total"
BROKEN_PROMISES = "overdue_broken_promises_total"
CURE_DAYS_PAST_DUE = "overdue_cure_days_past_due"
TIME_TO_CURE = "overdue_time_to_cure_days"

# Collections report in days past due: 30, 60, 90 and 180 are the usual bucket edges.
DAY_BUCKETS: tuple[float, ...] = (1, 3, 7, 14, 30, 60, 90, 120, 180, 365)
HISTOGRAM_BUCKETS: dict[str, tuple[float, ...]] = {
    CURE_DAYS_PAST_DUE: DAY_BUCKETS,
    TIME_TO_CURE: DAY_BUCKETS,
}


def _meter() -> MetricMeter:
    # Tests and tools call activities as plain methods too; there is no worker to report to then.
    return activity.metric_meter() if activity.in_activity() else MetricMeter.noop


def stage_transition(from_stage: str, to_stage: str) -> None:
    """Count a loan's move from one stage (or end state) to another."""
    _meter().create_counter(
        STAGE_TRANSITIONS, "Loans moved from one stage to another (end states included)."
    ).add(1, {"from_stage": from_stage, "to_stage": to_stage})


def contact_attempt(channel: str, outcome: str) -> None:
    """Count a call or message placed, by its channel and its outcome."""
    _meter().create_counter(
        CONTACT_ATTEMPTS, "Calls and messages placed, by channel and outcome."
    ).add(1, {"channel": channel, "outcome": outcome})


def payment(currency: str, recovered_minor: int) -> None:
    """Count a payment applied and the part of it that lowered the balance.

    Args:
        currency: The payment's ISO 4217 code.
        recovered_minor: What the payment took off the balance, in the currency's minor units
            (an overpayment's excess is not recovered debt).
    """
    labels = {"currency": currency}
    meter = _meter()
    meter.create_counter(PAYMENTS, "Payments applied to loans, by currency.").add(1, labels)
    meter.create_counter(
        RECOVERED,
        "Amount recovered: what payments took off balances, in the currency's minor units.",
        "minor units",
    ).add(recovered_minor, labels)


def broken_promise(currency: str) -> None:
    """Count a broken promise reported to the credit bureau."""
    _meter().create_counter(
        BROKEN_PROMISES, "Broken promises to pay, reported to the credit bureau."
    ).add(1, {"currency": currency})


def cure(days_past_due: int, collecting: timedelta) -> None:
    """Record how far overdue a loan was when it was cured, and how long collecting it took.

    Args:
        days_past_due: Days past due on the day of the cure.
        collecting: Collection time from the loan's opening to its cure.
    """
    meter = _meter()
    # A loan paid off before its due date has a negative DPD; the histogram takes no negatives.
    meter.create_histogram(
        CURE_DAYS_PAST_DUE, "Days past due of loans when they were cured.", "days"
    ).record(max(days_past_due, 0))
    meter.create_histogram_float(
        TIME_TO_CURE, "Collection days from a loan's opening to its cure.", "days"
    ).record(collecting / timedelta(days=1))
