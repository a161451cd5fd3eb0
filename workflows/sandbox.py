"""The workflow sandbox as this project needs it. Workers and replayers both use it."""

from __future__ import annotations

import dataclasses

from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

# Pure data types, shared with the host. Loading them fresh in the sandbox would bind their
# ``datetime`` fields to the sandbox's guarded proxy of ``datetime``, which the payload converter
# does not recognise as ``datetime``, so such fields could not be decoded. The machine module is
# pure too, but building its compound states calls python-statemachine's i18n, which resolves
# paths: it is defined once, outside the sandbox.
PASSTHROUGH_MODULES = ("workflows.types", "workflows.commands", "workflows.machine")


def workflow_runner() -> SandboxedWorkflowRunner:
    """The default sandbox, plus our data types passed through and ``ZoneInfo`` usable.

    The default restrictions proxy ``zoneinfo.ZoneInfo`` (to guard its cache-clearing methods),
    and ``datetime.astimezone`` refuses a proxied zone. Zones are read-only data from ``tzdata``.
    """
    restrictions = SandboxRestrictions.default.with_passthrough_modules(*PASSTHROUGH_MODULES)
    return SandboxedWorkflowRunner(
        restrictions=dataclasses.replace(
            restrictions,
            invalid_module_members=restrictions.invalid_module_members.with_child_unrestricted(
                "zoneinfo", "ZoneInfo"
            ),
        )
    )
