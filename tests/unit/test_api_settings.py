"""The API's settings and pure pieces: token, address, the field an error names, backoff."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from overdue.api import api_settings, check_token, field_of, parse_address, stack_token
from overdue.config import Config
from overdue.outbox import Backoff

TOKEN = "t" * 32


def test_a_missing_or_short_token_is_refused() -> None:
    with pytest.raises(ValueError, match=r"^OVERDUE_API_TOKEN: is not set"):
        check_token(None)
    with pytest.raises(ValueError, match=r"^OVERDUE_API_TOKEN: must be at least 16"):
        check_token("short")
    assert check_token(f" {TOKEN}\n") == TOKEN


def test_address_flags_override_the_environment(tmp_path: Path) -> None:
    config = Config(home=tmp_path, api_token=TOKEN, api_address="0.0.0.0:9000")
    assert api_settings(config).url == "http://0.0.0.0:9000"
    assert api_settings(config, port=9100).url == "http://0.0.0.0:9100"
    assert api_settings(Config(home=tmp_path, api_token=TOKEN)).url == "http://127.0.0.1:8000"
    with pytest.raises(ValueError, match=r"^port:"):
        api_settings(config, port=70000)
    with pytest.raises(ValueError, match=r"^OVERDUE_API_TOKEN:"):
        api_settings(Config(home=tmp_path))


@pytest.mark.parametrize("text", ["8000", "host:", ":80", "host:http", "host:0"])
def test_a_malformed_address_names_the_variable(text: str) -> None:
    with pytest.raises(ValueError, match=r"^OVERDUE_API_ADDRESS:"):
        parse_address(text)
    assert parse_address("[::1]:8000") == ("::1", 8000)


def test_up_keeps_a_generated_token_readable_by_its_owner_only(tmp_path: Path) -> None:
    token, where = stack_token(Config(home=tmp_path))
    path = Path(where)
    assert path.parent == tmp_path and len(token) >= 32
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stack_token(Config(home=tmp_path)) == (token, where)  # the same on the next `up`
    assert stack_token(Config(home=tmp_path, api_token=TOKEN)) == (TOKEN, "OVERDUE_API_TOKEN")


def test_the_field_is_the_first_word() -> None:
    assert field_of("amount: must be positive") == "amount"
    assert field_of("amount_minor must be positive, got -5") == "amount_minor"
    assert field_of("Something else") is None


def test_backoff_doubles_up_to_its_cap() -> None:
    backoff = Backoff(first=1, factor=2, most=10)
    delays = [backoff.delay(n) for n in (1, 2, 3, 4, 5, 9)]
    assert [0.8 <= d <= 1 for d in delays[:1]] == [True]
    assert 1.6 <= delays[1] <= 2 and 3.2 <= delays[2] <= 4 and 6.4 <= delays[3] <= 8
    assert 8 <= delays[4] <= 10 and 8 <= delays[5] <= 10
