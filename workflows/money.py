"""Money at the edges: decimal amounts in, integer minor units inside. Never a float."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

# ISO 4217 minor-unit exponents of the currencies the product accepts.
CURRENCY_EXPONENTS: dict[str, int] = {
    "AUD": 2, "BRL": 2, "CAD": 2, "CHF": 2, "CNY": 2, "EUR": 2, "GBP": 2, "HKD": 2, "IDR": 2,
    "INR": 2, "JPY": 0, "KRW": 0, "MXN": 2, "NGN": 2, "PHP": 2, "SGD": 2, "USD": 2, "VND": 0,
}  # fmt: skip


class AmountError(ValueError):
    """An amount or currency that cannot be accepted; the message says why."""


def check_currency(code: str) -> str:
    code = code.strip().upper()
    if code not in CURRENCY_EXPONENTS:
        raise AmountError(
            f"unknown currency {code!r}; expected an ISO 4217 code such as USD or CNY"
        )
    return code


def to_minor(amount: str, currency: str, *, allow_zero: bool = False) -> int:
    """Parse a decimal amount in major units ("1234.56") into minor units of ``currency``."""
    exponent = CURRENCY_EXPONENTS[check_currency(currency)]
    try:
        value = Decimal(amount.strip())
    except (InvalidOperation, AttributeError):
        raise AmountError(f"{amount!r} is not a decimal amount") from None
    if not value.is_finite():
        raise AmountError(f"{amount!r} is not a decimal amount")
    if value < 0 or (value == 0 and not allow_zero):
        raise AmountError(f"must be {'zero or more' if allow_zero else 'positive'}, got {amount}")
    minor = value.scaleb(exponent)
    if minor != minor.to_integral_value():
        raise AmountError(f"{amount} has more than {exponent} decimal places for {currency}")
    return int(minor)


def format_minor(amount_minor: int, currency: str) -> str:
    """Minor units as a decimal string in major units: 123456 USD -> '1234.56'."""
    exponent = CURRENCY_EXPONENTS.get(currency, 2)
    return str(Decimal(amount_minor).scaleb(-exponent).quantize(Decimal(1).scaleb(-exponent)))


def amount_band(amount_minor: int, currency: str) -> str:
    """A coarse band for summaries that must not reveal the exact balance."""
    major = Decimal(amount_minor).scaleb(-CURRENCY_EXPONENTS.get(currency, 2))
    for limit, label in ((1_000, "<1k"), (10_000, "1k-10k"), (100_000, "10k-100k")):
        if major < limit:
            return f"{label} {currency}"
    return f">=100k {currency}"
