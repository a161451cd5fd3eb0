"""The languages borrowers are written to in: the ones every script and letter ships in.

A borrower's language is a BCP 47 tag. An empty one means the jurisdiction's default, so that a
loan book without the column, and histories recorded before it, still reach a `cn` borrower in
Chinese. Pure: the channel and notice activities, the schemas and the strategy loader share it.
"""

from __future__ import annotations

from datetime import date

from workflows.money import format_minor

ENGLISH = "en-US"
CHINESE = "zh-CN"
# Every message and letter ships in each of these; the first is the strategy's flat `[messages]`.
LANGUAGES = (ENGLISH, CHINESE)
DEFAULT_BY_JURISDICTION = {"cn": CHINESE, "us": ENGLISH}

# How a Chinese letter names the currency of an amount; others keep the ISO code.
_CHINESE_CURRENCY = {"CNY": ("人民币", "元"), "USD": ("", "美元")}


def language_tag(value: str) -> str:
    """``value`` as its shipped tag, whatever its case (``zh-cn`` is ``zh-CN``).

    Raises:
        ValueError: a language no script or letter ships in.
    """
    for tag in LANGUAGES:
        if value.strip().lower() == tag.lower():
            return tag
    raise ValueError(f"expected one of {', '.join(LANGUAGES)}, got {value!r}")


def language_for(language: str, jurisdiction: str) -> str:
    """The language to write in: the borrower's, else the jurisdiction's default, else English.

    A tag the build does not ship (a ledger row written by a newer version) falls back the same
    way rather than failing the contact.
    """
    if language in LANGUAGES:
        return language
    return DEFAULT_BY_JURISDICTION.get(jurisdiction, ENGLISH)


def format_date(day: date, language: str) -> str:
    """A date as a letter in ``language`` writes it: ``2026年12月1日`` or ISO ``2026-12-01``."""
    if language == CHINESE:
        return f"{day.year}年{day.month}月{day.day}日"
    return day.isoformat()


def format_amount(amount_minor: int, currency: str, language: str) -> str:
    """An amount with its currency: ``人民币5200.00元``, ``1250.00美元`` or ``1250.00 USD``.

    A currency without a Chinese name keeps its ISO code, which a Chinese reader knows.
    """
    figure = format_minor(amount_minor, currency)
    if language == CHINESE:
        before, after = _CHINESE_CURRENCY.get(currency, ("", f" {currency}"))
        return f"{before}{figure}{after}"
    return f"{figure} {currency}"
