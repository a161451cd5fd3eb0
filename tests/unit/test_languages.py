"""Every script and letter in every shipped language: filled in whole, in its own language, and
within the rules (a reference never hears of the debt)."""

from __future__ import annotations

import copy
import re
import tomllib
from datetime import UTC, date, datetime
from pathlib import Path
from string import Template
from typing import Any

import jinja2
import pytest

from activities.channels import render_script, script_for
from activities.notices import letter_fields, letter_templates, template_name
from activities.strategy import parse_strategy, read_strategy
from overdue.languages import (
    CHINESE,
    ENGLISH,
    LANGUAGES,
    format_amount,
    format_date,
    language_for,
)
from overdue.loanbook import BookLoanIn
from overdue.loans import LoanInvalid, loan_from_fields
from overdue.schemas import validate
from workflows.commands import ContactRequest, NoticeRequest
from workflows.outreach import REFERENCE_SCRIPTS, translations
from workflows.strategy import Strategy

from .support import REPO

STRATEGIES = sorted(
    p for p in (REPO / "overdue" / "strategies").glob("*.toml") if p.stem != "assignment"
)
TEMPLATES = REPO / "overdue" / "templates"
LETTERS = sorted(
    p.name.removesuffix(".txt.j2")
    for p in TEMPLATES.glob("*.txt.j2")
    if "." not in p.name.removesuffix(".txt.j2")
)
REFERENCE_TEMPLATES = sorted(template for template, _ in REFERENCE_SCRIPTS.values())

# Sample data. The ASCII ones are the only Latin letters a Chinese text may hold: they are the
# loan's id and the notice's key, which are identifiers, not words.
LOAN_ID = "LN-2026-0042"
NOTICE_KEY = f"collection-{LOAN_ID}:legal_notice"
NAMES = {CHINESE: "王伟", ENGLISH: "Dana Smith"}
# Words that tell of a debt: a reference hears none of them (docs/contact-rules.md).
DEBT_WORDS = {
    ENGLISH: re.compile(
        r"\b(debts?|owe[sd]?|owing|overdue|pay\w*|loans?|accounts?|amounts?|balance|due|"
        r"collect\w*|arrears)\b",
        re.IGNORECASE,
    ),
    CHINESE: re.compile(r"欠|债|借款|贷款|逾期|还款|款项|金额|账户|账号|催收|元"),
}
LATIN = re.compile(r"[A-Za-z]+")


def scripts(strategy: Strategy, language: str) -> dict[str, str]:
    return strategy.messages if language == ENGLISH else strategy.translations[language]


def without_identifiers(text: str) -> str:
    """``text`` less the identifiers a Chinese text may quote (the longer first)."""
    for token in (NOTICE_KEY, LOAN_ID, "CNY", "USD"):
        text = text.replace(token, "")
    return text


def contact_request(template: str, strategy: Strategy) -> ContactRequest:
    return ContactRequest(
        idempotency_key="k",
        loan_id=LOAN_ID,
        borrower_id="b",
        attempt_no=1,
        channel="sms",
        target="borrower",
        target_id="b",
        slot="morning",
        purpose="reminder",
        template=template,
        stage="early",
        at=datetime(2026, 12, 1, 2, tzinfo=UTC),
        at_local="",
        timezone="Asia/Shanghai",
        message=strategy.messages[template],
        outstanding_minor=520_000,
        currency="CNY",
        scripts=translations(strategy, template),
    )


@pytest.mark.parametrize("path", STRATEGIES, ids=lambda p: p.stem)
@pytest.mark.parametrize("language", LANGUAGES)
def test_every_script_is_filled_in_whole_in_its_language(path: Path, language: str) -> None:
    strategy = read_strategy(path)
    assert set(scripts(strategy, language)) == set(strategy.messages)
    for template in strategy.messages:
        # The channel activity picks the language's words from the request alone.
        script = script_for(contact_request(template, strategy), language)
        assert script == scripts(strategy, language)[template]
        # No field the activity does not fill in: a strict substitution raises on one.
        Template(script).substitute(name="x", first_name="x", loan_id="x")
        text = render_script(script, NAMES[language], LOAN_ID)
        assert "$" not in text, (template, text)
        if language == CHINESE:
            assert NAMES[CHINESE] in text or "call_" in template, (template, text)
            assert not LATIN.findall(without_identifiers(text)), (template, text)
            assert "您" in text or "call_" in template, (template, text)  # formal address


@pytest.mark.parametrize("path", STRATEGIES, ids=lambda p: p.stem)
@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("template", REFERENCE_TEMPLATES)
def test_reference_scripts_tell_nothing_of_the_debt(
    path: Path, language: str, template: str
) -> None:
    script = scripts(read_strategy(path), language)[template]
    text = render_script(script, NAMES[language], LOAN_ID)
    assert LOAN_ID not in text
    assert not re.search(r"\d", text), text  # no amount, no date, no account number
    assert not DEBT_WORDS[language].search(text), text


def notice(kind: str, currency: str = "CNY", **facts: str) -> NoticeRequest:
    return NoticeRequest(
        notice_key=NOTICE_KEY,
        loan_id=LOAN_ID,
        kind=kind,
        days_past_due=31,
        outstanding_minor=520_000,
        currency=currency,
        issued_at=datetime(2026, 12, 1, 9, tzinfo=UTC),
        facts={"referral_after_days": "10", **facts},
    )


LETTER_CASES = [
    (kind, facts, currency)
    for kind in LETTERS
    for facts in (
        [{"legal_in_days": "5"}, {"legal_in_days": "0"}] if kind == "refusal_notice" else [{}]
    )
    for currency in ("CNY", "USD")
]


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize(("kind", "facts", "currency"), LETTER_CASES)
def test_every_letter_renders_whole_in_its_language(
    language: str, kind: str, facts: dict[str, str], currency: str
) -> None:
    request = notice(kind, currency, **facts)
    template = letter_templates(TEMPLATES).get_template(template_name(kind, language))
    # StrictUndefined: a field the letter names and the activity does not give raises here.
    text = template.render(letter_fields(request, NAMES[language], "personal", language))
    assert "{{" not in text and "{%" not in text
    assert NAMES[language] in text
    if language == CHINESE:
        assert "2026年12月1日" in text
        assert not LATIN.findall(without_identifiers(text)), LATIN.findall(
            without_identifiers(text)
        )
        if "5200.00" in text:  # the amount carries its currency, the Chinese way
            assert ("人民币5200.00元" if currency == "CNY" else "5200.00美元") in text
    else:
        assert "2026-12-01" in text


def test_a_letter_lacking_a_field_fails_rather_than_leaving_a_blank() -> None:
    template = letter_templates(TEMPLATES).get_template(template_name("legal_notice", CHINESE))
    fields = letter_fields(notice("legal_notice"), NAMES[CHINESE], "personal", CHINESE)
    del fields["referral_after_days"]
    with pytest.raises(jinja2.UndefinedError):
        template.render(fields)


def test_every_letter_ships_in_every_language() -> None:
    assert LETTERS == [
        "death_documents_request",
        "estate_inquiry",
        "legal_notice",
        "refusal_notice",
    ]
    for kind in LETTERS:
        for language in LANGUAGES:
            assert (TEMPLATES / template_name(kind, language)).is_file()


def test_the_language_is_the_borrowers_else_the_jurisdictions() -> None:
    assert language_for("en-US", "cn") == ENGLISH
    assert language_for("", "cn") == CHINESE
    assert language_for("", "us") == ENGLISH
    assert language_for("fr-FR", "cn") == CHINESE  # not shipped: the jurisdiction's
    assert language_for("", "xx") == ENGLISH


def test_dates_and_amounts_as_each_language_writes_them() -> None:
    assert format_date(date(2026, 12, 1), CHINESE) == "2026年12月1日"
    assert format_date(date(2026, 12, 1), ENGLISH) == "2026-12-01"
    assert format_amount(520_000, "CNY", CHINESE) == "人民币5200.00元"
    assert format_amount(125_000, "USD", CHINESE) == "1250.00美元"
    assert format_amount(125_000, "EUR", CHINESE) == "1250.00 EUR"
    assert format_amount(125_000, "USD", ENGLISH) == "1250.00 USD"


ROW = {
    "loan_id": "L-1",
    "borrower_id": "B-1",
    "borrower_name": "Wang Wei",
    "phone": "13800138000",
    "timezone": "Asia/Shanghai",
    "product": "personal",
    "principal": "5000.00",
    "outstanding": "1000.00",
    "currency": "CNY",
    "due_date": date.today().isoformat(),
    "jurisdiction": "cn",
}


def test_a_loan_takes_its_jurisdictions_language_unless_it_names_one() -> None:
    assert loan_from_fields(ROW).borrower.language == CHINESE
    assert loan_from_fields({**ROW, "language": ""}).borrower.language == CHINESE
    assert loan_from_fields({**ROW, "language": "en-us"}).borrower.language == ENGLISH
    us = {**ROW, "jurisdiction": "us", "phone": "+12025550123", "currency": "USD"}
    assert loan_from_fields(us).borrower.language == ENGLISH


def test_a_language_not_shipped_is_refused_by_name() -> None:
    with pytest.raises(LoanInvalid) as refused:
        loan_from_fields({**ROW, "language": "fr-FR"})
    assert [e.field for e in refused.value.errors] == ["language"]
    assert "zh-CN" in str(refused.value)


def raw_default() -> dict[str, Any]:
    with (REPO / "overdue" / "strategies" / "default.toml").open("rb") as f:
        return tomllib.load(f)


def test_a_flat_messages_table_is_read_as_english() -> None:
    data = raw_default()
    data["messages"] = data["messages"]["en-US"]
    strategy = parse_strategy(data)
    assert strategy.messages == raw_default()["messages"]["en-US"]
    assert strategy.translations == {}


@pytest.mark.parametrize(
    ("change", "error"),
    [
        (lambda m: m["zh-CN"].pop("late_firm"), r"messages\.zh-CN\.late_firm: missing in zh-CN"),
        (lambda m: m["zh-CN"].update(extra="x"), r"messages\.zh-CN\.extra: not in en-US"),
        (lambda m: m.update({"fr-FR": dict(m["en-US"])}), r"messages\.fr-FR: no language"),
        (lambda m: m["zh-CN"].update(reference_relay=" "), r"messages\.zh-CN\.reference_relay"),
        (lambda m: m.update(early_reminder="x"), r"flat or in \[messages\.en-US\]"),
    ],
)
def test_bad_language_tables_are_named(change: Any, error: str) -> None:
    data = copy.deepcopy(raw_default())
    change(data["messages"])
    with pytest.raises(ValueError, match=error):
        parse_strategy(data)


def test_a_book_row_synced_before_languages_keeps_its_digest() -> None:
    # The same row re-sent after the upgrade is `unchanged`, not "synced with other content".
    def digest(**fields: str) -> str:
        return validate(BookLoanIn, {**ROW, **fields}).to_book_loan().digest()

    assert digest() == digest(language="") == digest(language="zh-CN")
    assert digest(language="en-US") != digest()
