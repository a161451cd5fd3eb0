"""The delinquency scan's schedule, and running a scan at once (``overdue up``, ``overdue scan``).

The schedule ``overdue-delinquency-scan`` runs ``DelinquencyScan`` every day at a configured hour
(``OVERDUE_SCAN_AT``, ``HH:MM`` in ``OVERDUE_SCAN_TIMEZONE``; 02:00 UTC unless set). Operations
see it on the Web UI's Schedules page, where they can pause it or trigger it. A scan that would
start while the last one still runs is skipped: the next day's catches up.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleCalendarSpec,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleRange,
    ScheduleSpec,
    ScheduleUpdate,
    ScheduleUpdateInput,
    WorkflowHandle,
)

from workflows.scan import SCHEDULE_ID, DelinquencyScan, ScanInput, ScanTotals
from workflows.types import TASK_QUEUE

AT_VARIABLE = "OVERDUE_SCAN_AT"
TIMEZONE_VARIABLE = "OVERDUE_SCAN_TIMEZONE"
DEFAULT_AT = "02:00"
CLOCK = re.compile(r"^([01][0-9]|2[0-3]):([0-5][0-9])$")


class ScanSettingsError(ValueError):
    """The scan's hour or time zone is malformed; the message names the variable."""


@dataclass(frozen=True)
class ScanTime:
    """When the daily scan runs."""

    hour: int
    minute: int
    timezone: str

    @classmethod
    def from_env(cls) -> ScanTime:
        at = os.environ.get(AT_VARIABLE, DEFAULT_AT).strip()
        zone = os.environ.get(TIMEZONE_VARIABLE, "UTC").strip()
        match = CLOCK.match(at)
        if match is None:
            raise ScanSettingsError(f"{AT_VARIABLE}: {at!r} is not a time of day (HH:MM)")
        try:
            ZoneInfo(zone)
        except (ZoneInfoNotFoundError, ValueError, OSError):
            raise ScanSettingsError(
                f"{TIMEZONE_VARIABLE}: {zone!r} is not an IANA time zone"
            ) from None
        return cls(int(match[1]), int(match[2]), zone)

    def __str__(self) -> str:
        return f"daily at {self.hour:02d}:{self.minute:02d} {self.timezone}"


def _schedule(at: ScanTime) -> Schedule:
    return Schedule(
        action=ScheduleActionStartWorkflow(
            DelinquencyScan.run,
            ScanInput(),
            id="delinquency-scan",  # the server appends the scheduled time
            task_queue=TASK_QUEUE,
        ),
        spec=ScheduleSpec(
            calendars=[
                ScheduleCalendarSpec(
                    hour=[ScheduleRange(at.hour)], minute=[ScheduleRange(at.minute)]
                )
            ],
            time_zone_name=at.timezone,
        ),
        policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP),
    )


async def ensure_schedule(client: Client, at: ScanTime) -> str:
    """Create the schedule, or bring an existing one to ``at``. Returns "created" or
    "updated". A pause set in the Web UI is kept."""
    schedule = _schedule(at)
    try:
        await client.create_schedule(SCHEDULE_ID, schedule)
        return "created"
    except ScheduleAlreadyRunningError:

        def update(current: ScheduleUpdateInput) -> ScheduleUpdate:
            schedule.state = current.description.schedule.state
            return ScheduleUpdate(schedule=schedule)

        await client.get_schedule_handle(SCHEDULE_ID).update(update)
        return "updated"


async def scan_now(client: Client) -> WorkflowHandle[DelinquencyScan, ScanTotals]:
    """Start a scan at once, apart from the schedule's (starts are idempotent either way)."""
    return await client.start_workflow(
        DelinquencyScan.run,
        ScanInput(),
        id=f"delinquency-scan-now-{datetime.now(UTC):%Y%m%dT%H%M%S%f}",
        task_queue=TASK_QUEUE,
    )
