"""The ``overdue`` command line. Every command can print JSON on stdout with ``--json``.

Errors are reported in one line that names the field at fault, never as a traceback (set
``OVERDUE_DEBUG=1`` to see one). Every command leaves through ``os._exit`` after flushing its
output: the Temporal SDK can abort at interpreter exit (sdk-python#300).

The commands live in modules by role, each registering on the one ``app`` of ``common``:
``stack`` (up, worker, api, codec-server, migrate), ``collections`` (start, import), ``loans``
(loans sync), ``payments`` (payments import, pay), ``steering`` (outcome, dispute-resolved,
decide, pause, resume), ``views`` (status, borrower), ``queue`` (queue, assign, complaint
resolve), ``bulk`` (list, signal), ``report``, ``demo``, ``simulate``, and ``engineers`` (replay,
history).
"""

from __future__ import annotations

import os
import sys
import traceback
from collections.abc import Callable
from typing import Any

import typer

from overdue import client as ops
from overdue.cli.common import UserError, app, err
from overdue.codec import EncryptionKeyError
from overdue.connection import ConnectionSettingsError
from overdue.loans import LoanInvalid
from overdue.outcomes import OutcomeInvalid
from overdue.stack import StackError
from overdue.tuning import TuningError

# Importing a command module registers its commands on `app`, and `overdue --help` lists them
# in the order they were registered: this order, which isort must not sort.
# isort: off
from overdue.cli import stack, collections, loans, payments, steering, views, queue  # noqa: F401
from overdue.cli import bulk  # noqa: F401
from overdue.cli import report, demo, simulate, engineers  # noqa: F401
# isort: on

__all__ = ["app", "main"]


def _guarded(fn: Callable[[], Any]) -> int:
    """Run a command and turn every failure into one clear line and an exit code."""
    try:
        fn()
        return 0
    except SystemExit as done:  # usage errors and typer.Exit, already reported
        return done.code if isinstance(done.code, int) else (0 if done.code is None else 1)
    except typer.Exit as done:
        return int(done.exit_code)
    except (
        UserError,
        LoanInvalid,
        ops.PaymentInvalid,
        ops.HoldRefused,
        OutcomeInvalid,
        ops.UnknownLoan,
        StackError,
        EncryptionKeyError,
        ConnectionSettingsError,
        TuningError,
    ) as problem:
        message = problem.args[0] if isinstance(problem, ops.UnknownLoan) else str(problem)
        err.print(f"[red]error:[/] {message}", highlight=False)
        return 2
    except KeyboardInterrupt:
        return 130
    except Exception as problem:
        if os.environ.get("OVERDUE_DEBUG"):
            traceback.print_exc()
        err.print(f"[red]error:[/] {type(problem).__name__}: {problem}", highlight=False)
        return 1


def main() -> None:
    """Console entry point: run, flush, and leave without interpreter teardown."""
    code = _guarded(app)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    main()
