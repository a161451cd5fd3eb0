"""Messages as they arrive: raw payloads, decoded and checked inside the workflow.

A handler typed with a dataclass never sees a payload the SDK cannot convert to it: the SDK
logs "Failed deserializing signal input ... dropping the signal" and the message is gone, with
no trace in the history's effects, the audit log or the status. So the handlers take the raw
payload (``temporalio.common.RawValue``) and decode it here; what does not fit is refused whole,
audited and shown in ``status``, like a message outside the limits.

Callers still see the message types: the ``...In`` aliases are the dataclasses to the type
checker (``handle.signal(LoanCollection.payment_received, PaymentReceived(...))`` type-checks)
and ``RawValue`` to the SDK, which reads the handlers' annotations at run time.

Problems name the field, never its value: the value may be anything a form or a dialer sent.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from temporalio import workflow
from temporalio.common import RawValue
from temporalio.converter import value_to_type

from workflows.queue import CaseAction
from workflows.types import (
    ContactOutcome,
    DisputeResolution,
    HoldRequest,
    LoanChanged,
    PaymentReceived,
    ReviewDecision,
)

if TYPE_CHECKING:
    PaymentIn = PaymentReceived
    OutcomeIn = ContactOutcome
    ResolutionIn = DisputeResolution
    DecisionIn = ReviewDecision
    HoldIn = HoldRequest
    LoanChangeIn = LoanChanged
    CaseActionIn = CaseAction
else:
    # What the SDK converts the payload to before the handler runs: nothing, so it cannot fail.
    PaymentIn = OutcomeIn = ResolutionIn = DecisionIn = HoldIn = LoanChangeIn = CaseActionIn = (
        RawValue
    )

# The default of a handler's argument: a signal sent with no input at all reaches the handler
# (the SDK passes no argument when the counts differ), which refuses it instead of failing.
NO_INPUT: Any = None

# Fields a message must carry even though its dataclass has a default for them: a pause says
# why and who, whatever its source (the dataclass's defaults serve old callers of resume).
REQUIRED_IN_PAUSE = ("reason", "operator")

T = TypeVar("T")


@dataclass
class Decoded(Generic[T]):
    """A message decoded from its payload.

    ``message`` is what the SDK itself would have handed a typed handler (None when it would
    have dropped the message); ``problem`` says what is wrong with it (``field: what``), or is
    None when the message is whole.
    """

    message: T | None
    problem: str | None


def decode(raw: object, kind: type[T], *, required: tuple[str, ...] = ()) -> Decoded[T]:
    """Decode a message of type ``kind`` from a handler's raw argument.

    ``raw`` is the ``RawValue`` the SDK hands the handler, None when the signal carried no
    input, or (from a caller in the same process, such as a test) the message itself, which is
    checked the same way. Every field without a default must be present, and so must
    ``required`` ones; each present field must convert to its type. Unknown keys are ignored,
    as the SDK ignores them.
    """
    if raw is None:
        return Decoded(None, "payload: is missing")
    converter = workflow.payload_converter()
    try:
        payload = raw.payload if isinstance(raw, RawValue) else converter.to_payload(raw)
        value = converter.from_payload(payload)
    except Exception:  # not JSON, or an encoding no converter knows
        return Decoded(None, "payload: is not a JSON object")
    message = _as_sdk_would(value, kind)
    problem = _problem(value, kind, required)
    if problem is None and message is None:  # a failure no field check explains
        problem = f"payload: is not a {kind.__name__}"
    return Decoded(message, problem)


def field_problem(value: Any, kind: type[Any], *, required: tuple[str, ...] = ()) -> str | None:
    """Why a JSON value does not fit the message type ``kind``, naming the field, or None.

    The check ``decode`` makes inside the workflow, for callers outside it (the CLI holds a
    message to it before a bulk signal sends it to many loans).
    """
    return _problem(value, kind, required)


def _as_sdk_would(value: Any, kind: type[T]) -> T | None:
    try:
        return typing.cast(T, value_to_type(kind, value))
    except Exception:
        return None


def _problem(value: Any, kind: type[Any], required: tuple[str, ...]) -> str | None:
    if not isinstance(value, dict):
        return "payload: is not a JSON object"
    hints = typing.get_type_hints(kind)
    for f in dataclasses.fields(kind):
        has_default = not (
            f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        )
        if f.name not in value:
            if not has_default or f.name in required:
                return f"{f.name}: is required"
            continue
        if value[f.name] is None and f.name in required:
            return f"{f.name}: is required"
        hint = hints[f.name]
        if dataclasses.is_dataclass(hint) and isinstance(value[f.name], dict):
            inner = _problem(value[f.name], typing.cast(type[Any], hint), ())
            if inner is not None:
                return f"{f.name}.{inner}"
            continue
        try:
            value_to_type(hint, value[f.name])
        except Exception:
            return f"{f.name}: is not {_described(hint)}"
    return None


def _described(hint: Any) -> str:
    """A type as an operator reads it: ``an integer``, ``a date and time``."""
    origin = typing.get_origin(hint)
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    if origin is not None and len(args) == 1 and origin is not list:
        hint = args[0]  # X | None
    names = {
        int: "an integer",
        str: "text",
        bool: "true or false",
        float: "a number",
    }
    if hint in names:
        return names[hint]
    if getattr(hint, "__name__", "") == "datetime":
        return "an ISO date and time"
    if typing.get_origin(hint) is list:
        return "a list"
    if isinstance(hint, type) and issubclass(hint, str):  # a StrEnum of the vocabulary
        return f"one of {', '.join(str(m) for m in hint.__members__.values())}"  # type: ignore[attr-defined]
    if dataclasses.is_dataclass(hint):
        return "an object of its fields"
    return "of the expected type"
