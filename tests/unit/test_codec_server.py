"""The codec server's settings and body parsing: pure, no server; and its refusals to start."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from temporalio.api.common.v1 import Payload

from overdue.codec import EncryptionCodec, KeyRing, PayloadDecryptionError, new_key
from overdue.codec_server import (
    LOOPBACK_NAMES,
    BadBody,
    CodecSettingError,
    allowed_hosts,
    check_token,
    parse_payloads,
    stack_codec_token,
)
from overdue.config import Config


def test_a_token_is_required_long_and_url_safe() -> None:
    for missing in (None, "", "   "):
        with pytest.raises(CodecSettingError, match=r"^OVERDUE_CODEC_TOKEN: is not set"):
            check_token(missing)
    with pytest.raises(CodecSettingError, match="at least 16"):
        check_token("short")
    with pytest.raises(CodecSettingError, match="only letters"):
        check_token("has/a/slash/in/it/too")
    assert check_token(" a-good_token.0123~ ") == "a-good_token.0123~"


def test_the_stack_token_is_made_once_owner_only(tmp_path: Path) -> None:
    config = Config(home=tmp_path / "home")
    previous = os.umask(0o000)
    try:
        token, where = stack_codec_token(config)
    finally:
        os.umask(previous)
    path = tmp_path / "home" / "codec-token"
    assert where == str(path)
    assert (path.stat().st_mode & 0o777) == 0o600
    assert check_token(token) == token
    assert stack_codec_token(config) == (token, str(path)), "reused by the next run"
    given = "x" * 20
    assert stack_codec_token(Config(home=tmp_path, codec_token=given)) == (
        given,
        "OVERDUE_CODEC_TOKEN",
    )


def test_the_host_names_it_answers_to() -> None:
    assert allowed_hosts("127.0.0.1") == LOOPBACK_NAMES
    assert allowed_hosts("localhost") == LOOPBACK_NAMES
    assert allowed_hosts("[::1]") == LOOPBACK_NAMES
    assert allowed_hosts("10.0.0.5") == {"10.0.0.5"}
    assert allowed_hosts("0.0.0.0", ["Codec.Example.com", " localhost "]) == {
        "codec.example.com",
        "localhost",
    }
    for everywhere in ("0.0.0.0", "::", ""):
        with pytest.raises(CodecSettingError, match=r"^allowed_host: .*OVERDUE_CODEC_HOSTS"):
            allowed_hosts(everywhere)


@pytest.mark.parametrize(
    ("body", "said"),
    [
        (b"\xc3\x28", "body: is not UTF-8 text (byte 0)"),
        (b"", "body: is not JSON"),
        (b"nope", "body: is not JSON"),
        (b'"payloads"', "payloads: expected"),
        (b'{"payloads": null}', "payloads: expected"),
        (b'{"payloads": ["AA=="]}', "payloads: expected"),
        (b'{"payloads": [{"data": "A"}]}', "payloads[0].data: is not base64"),
        (b'{"payloads": [{"data": "AA==="}]}', "payloads[0].data: is not base64"),
        (b'{"payloads": [{}, {"metadata": {"k": "!"}}]}', "payloads[1].metadata.k: is not base64"),
        (b'{"payloads": [{"metadata": []}]}', "payloads: "),
        (b'{"payloads": [], "extra": 1}', "payloads: "),
    ],
)
def test_a_malformed_body_is_named(body: bytes, said: str) -> None:
    with pytest.raises(BadBody) as refused:
        parse_payloads(body)
    assert str(refused.value).startswith(said), refused.value


def test_a_well_formed_body_parses() -> None:
    # Standard or URL-safe base64, with or without padding, as protobuf JSON allows.
    parsed = parse_payloads(
        b'{"payloads": [{"metadata": {"encoding": "anNvbi9wbGFpbg=="}, "data": "e30"},'
        b' {"data": "-_8"}]}'
    )
    assert parsed.payloads[0].metadata["encoding"] == b"json/plain"
    assert parsed.payloads[0].data == b"{}"
    assert parsed.payloads[1].data == b"\xfb\xff"
    assert list(parse_payloads(b'{"payloads": []}').payloads) == []


def _codec_server(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("OVERDUE_")}
    clean["OVERDUE_ENCRYPTION_KEYS"] = f"k1:{new_key()}"
    return subprocess.run(
        [sys.executable, "-m", "overdue.cli", "codec-server", *args],
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_codec_server_does_not_start_without_a_token_or_its_host_names(
    tmp_path: Path,
) -> None:
    home = str(tmp_path)
    no_token = _codec_server("--data-dir", home)
    assert no_token.returncode == 2, no_token
    assert no_token.stderr.strip().startswith("error: OVERDUE_CODEC_TOKEN: is not set")
    everywhere = _codec_server(
        "--host", "0.0.0.0", "--data-dir", home, OVERDUE_CODEC_TOKEN="t" * 32
    )
    assert everywhere.returncode == 2, everywhere
    assert everywhere.stderr.strip().startswith("error: allowed_host: listening on 0.0.0.0")


async def test_an_encrypted_payload_cut_short_fails_to_decrypt_clearly() -> None:
    codec = EncryptionCodec(KeyRing.parse(f"k1:{new_key()}"))
    (sealed,) = await codec.encode([Payload(metadata={"encoding": b"json/plain"}, data=b"{}")])
    for cut in (0, 5, 12, 20):
        short = Payload(metadata=dict(sealed.metadata), data=sealed.data[:cut])
        with pytest.raises(PayloadDecryptionError, match="fails authentication"):
            await codec.decode([short])
