"""Phone numbers for test loans.

Budgets are per number: two loans on one number share its daily caps, as two borrowers on one
household phone do. Tests that are not about a shared number give every person a number of
their own, so that loans of other tests cannot use up their budget.
"""

from __future__ import annotations

import secrets


def unique_phone() -> str:
    """A fresh E.164 number in the +1 555 fiction range."""
    return f"+1555{secrets.randbelow(10**7):07d}"
