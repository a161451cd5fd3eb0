"""Money at the edges: decimal amounts in, integer minor units inside. Never a float."""

from __future__ import annotations

from decimal import Decimal

from workflows.limits import LimitError, parse_amount, shown

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
            f"unknown currency {shown(code)}; expected an ISO 4217 code such as USD or CNY"
        )
    return code


def to_minor(amount: str, currency: str, *, allow_zero: bool = False) -> int:
    """Parse a decimal amount in major units ("1234.56") into minor units of ``currency``.

    The text's shape and size are checked before it is read (``workflows.limits``): no
    exponent, at most the currency's decimal places, within 64 bits of minor units.
    """
    exponent = CURRENCY_EXPONENTS[check_currency(currency)]
    if not isinstance(amount, str):
        raise AmountError(f"{amount!r} is not a decimal amount")
    try:
        return parse_amount(amount, exponent, allow_zero=allow_zero)
    except LimitError as problem:
        raise AmountError(str(problem)) from None


def format_minor(amount_minor: int, currency: str) -> str:
    """Minor units as a decimal string in major units: 123456 USD -> '1234.56'."""
    exponent = CURRENCY_EXPONENTS.get(currency, 2)
    return str(Decimal(amount_minor).scaleb(-exponent).quantize(Decimal(1).scaleb(-exponent)))


def to_major(amount_minor: int, currency: str) -> float:
    """Minor units as a float of major units, for a search attribute that sorts and filters by
    amount (the visibility store keeps it as a double). Shown, never computed with."""
    return float(format_minor(amount_minor, currency))


AMOUNT_BANDS = ("<1k", "1k-10k", "10k-100k", ">=100k")  # in major units of any currency


def band_of(amount_minor: int, currency: str) -> str:
    """The amount's band (``AMOUNT_BANDS``): coarse, the same words in every currency."""
    major = Decimal(amount_minor).scaleb(-CURRENCY_EXPONENTS.get(currency, 2))
    for limit, label in zip((1_000, 10_000, 100_000), AMOUNT_BANDS, strict=False):
        if major < limit:
            return label
    return AMOUNT_BANDS[-1]


def amount_band(amount_minor: int, currency: str) -> str:
    """A coarse band for summaries that must not reveal the exact balance."""
    return f"{band_of(amount_minor, currency)} {currency}"
