"""The AES-GCM payload codec, its keys, and the Temporal connection options (no server needed)."""

from __future__ import annotations

import base64
import json
import os
import stat
from pathlib import Path

import pytest
from temporalio.api.common.v1 import Payload
from temporalio.converter import DataConverter, DefaultFailureConverterWithEncodedAttributes
from temporalio.service import TLSConfig

from overdue.codec import (
    ENCODING,
    KEY_ID_METADATA,
    EncryptionCodec,
    EncryptionKeyError,
    KeyRing,
    PayloadDecryptionError,
    create_key_file,
    data_converter,
    new_key,
)
from overdue.config import Config
from overdue.connection import ConnectionSettingsError, connect_options

PII = "Ann Lee +15550001000"
K1, K2 = new_key(), new_key()


def payload(text: str = PII) -> Payload:
    return Payload(metadata={"encoding": b"json/plain", "x-extra": b"kept"}, data=text.encode())


async def test_round_trip_keeps_data_and_metadata_and_hides_both() -> None:
    codec = EncryptionCodec(KeyRing.parse(f"k1:{K1}"))
    original = [payload(), payload("second")]
    encoded = await codec.encode(original)
    for sealed in encoded:
        assert sealed.metadata["encoding"] == ENCODING
        assert sealed.metadata[KEY_ID_METADATA] == b"k1"
        assert b"Ann Lee" not in sealed.SerializeToString()
        assert b"json/plain" not in sealed.SerializeToString()
    assert await codec.decode(encoded) == original


async def test_every_payload_gets_its_own_nonce() -> None:
    codec = EncryptionCodec(KeyRing.parse(f"k1:{K1}"))
    first, second = await codec.encode([payload(), payload()])
    assert first.data[:12] != second.data[:12]
    assert first.data != second.data


async def test_rotation_new_key_encrypts_old_key_still_decrypts() -> None:
    before = EncryptionCodec(KeyRing.parse(f"k1:{K1}"))
    after = EncryptionCodec(KeyRing.parse(f"k2:{K2},k1:{K1}"))
    written_before = await before.encode([payload()])
    written_after = await after.encode([payload()])
    assert written_after[0].metadata[KEY_ID_METADATA] == b"k2"
    assert await after.decode(written_before + written_after) == [payload(), payload()]
    # A worker that has not been given the new key says which key it lacks.
    with pytest.raises(PayloadDecryptionError, match="'k2' is not configured"):
        await before.decode(written_after)


async def test_tampered_payload_fails_authentication() -> None:
    codec = EncryptionCodec(KeyRing.parse(f"k1:{K1}"))
    (sealed,) = await codec.encode([payload()])
    flipped = bytearray(sealed.data)
    flipped[20] ^= 1
    tampered = Payload(metadata=dict(sealed.metadata), data=bytes(flipped))
    with pytest.raises(PayloadDecryptionError, match="fails authentication"):
        await codec.decode([tampered])


async def test_relabelled_key_id_fails_authentication() -> None:
    # Two keys, and a payload relabelled from one to the other: the key id is associated data.
    codec = EncryptionCodec(KeyRing.parse(f"k1:{K1},k2:{K1}"))
    (sealed,) = await codec.encode([payload()])
    relabelled = Payload(metadata={"encoding": ENCODING, KEY_ID_METADATA: b"k2"}, data=sealed.data)
    with pytest.raises(PayloadDecryptionError, match="fails authentication"):
        await codec.decode([relabelled])


async def test_unknown_key_id_is_named() -> None:
    codec = EncryptionCodec(KeyRing.parse(f"k1:{K1}"))
    (sealed,) = await codec.encode([payload()])
    stranger = EncryptionCodec(KeyRing.parse(f"other:{K2}"))
    with pytest.raises(
        PayloadDecryptionError, match=r"key 'k1' is not configured \(known: other\)"
    ):
        await stranger.decode([sealed])


async def test_plain_payloads_pass_through_decode() -> None:
    codec = EncryptionCodec(KeyRing.parse(f"k1:{K1}"))
    assert await codec.decode([payload()]) == [payload()]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "OVERDUE_ENCRYPTION_KEYS: no keys given"),
        (K1, "OVERDUE_ENCRYPTION_KEYS: expected key_id:base64_key"),
        ("k1:not base64!", "OVERDUE_ENCRYPTION_KEYS: key 'k1' is not valid base64"),
        (f"k1:{base64.b64encode(b'short').decode()}", "is 5 bytes; AES-256 needs 32"),
        (f"k1:{K1},k1:{K2}", "key id 'k1' is given twice"),
        (f"bad id:{K1}", "key id 'bad id' must be"),
    ],
)
def test_bad_keys_in_the_environment_name_the_variable(text: str, message: str) -> None:
    with pytest.raises(EncryptionKeyError, match=message.replace("(", r"\(")):
        KeyRing.parse(text)


def test_key_file_round_trip_and_mode(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "encryption-keys.json"
    key_id = create_key_file(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    ring = KeyRing.from_file(path)
    assert ring.active == key_id
    assert len(ring.keys[key_id]) == 32
    with pytest.raises(FileExistsError):  # never overwrites a key someone may still need
        create_key_file(path)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "cannot read it"),
        ("{not json", "not valid JSON"),
        (json.dumps({"active": "k1"}), "keys: expected an object"),
        (json.dumps({"active": "k9", "keys": {"k1": K1}}), "active: 'k9' is not one of the keys"),
        (json.dumps({"active": "k1", "keys": {"k1": 5}}), "key 'k1': expected a base64 string"),
    ],
)
def test_bad_key_files_name_the_file(tmp_path: Path, content: str | None, message: str) -> None:
    path = tmp_path / "keys.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(EncryptionKeyError) as raised:
        KeyRing.from_file(path)
    assert f"OVERDUE_ENCRYPTION_KEY_FILE ({path})" in str(raised.value)
    assert message in str(raised.value)


def test_both_key_settings_at_once_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(EncryptionKeyError, match="not both"):
        KeyRing.configured(f"k1:{K1}", tmp_path / "keys.json")


def test_key_material_stays_out_of_reprs() -> None:
    ring = KeyRing.parse(f"k1:{K1}")
    config = Config(home=Path("/x"), encryption_keys=f"k1:{K1}")
    assert K1 not in repr(ring) + repr(config)


def test_data_converter_has_the_codec_only_when_keys_are_configured(tmp_path: Path) -> None:
    assert data_converter(Config(home=tmp_path)) is DataConverter.default
    converter = data_converter(Config(home=tmp_path, encryption_keys=f"k1:{K1}"))
    assert isinstance(converter.payload_codec, EncryptionCodec)
    assert converter.payload_codec.active_key_id == "k1"
    assert converter.payload_converter_class is DataConverter.default.payload_converter_class
    assert converter.failure_converter_class is DefaultFailureConverterWithEncodedAttributes


def test_config_reads_the_key_file_recorded_by_an_encrypted_stack(tmp_path: Path) -> None:
    key_file = tmp_path / "encryption-keys.json"
    (tmp_path / "stack.json").write_text(
        json.dumps({"temporal_address": "127.0.0.1:1", "encryption_key_file": str(key_file)})
    )
    assert Config(home=tmp_path).with_running_stack().encryption_key_file == key_file
    # Keys given in the environment win over the stack's file.
    explicit = Config(home=tmp_path, encryption_keys=f"k1:{K1}").with_running_stack()
    assert explicit.encryption_key_file is None


# --- connection options ---------------------------------------------------------------------


def _config(tmp_path: Path) -> Config:
    return Config(
        home=tmp_path, namespace="collections.a1b2c", temporal_address="x.tmprl.cloud:7233"
    )


def test_plain_connection_to_the_configured_address(tmp_path: Path) -> None:
    options = connect_options(_config(tmp_path), env={"HOME": str(tmp_path)})
    assert options["target_host"] == "x.tmprl.cloud:7233"
    assert options["namespace"] == "collections.a1b2c"
    assert "tls" not in options
    assert "api_key" not in options


def test_api_key_turns_tls_on(tmp_path: Path) -> None:
    options = connect_options(_config(tmp_path), env={"TEMPORAL_API_KEY": "secret-key"})
    assert options["api_key"] == "secret-key"
    assert options["tls"] is True


def test_mtls_reads_the_client_certificate_and_key(tmp_path: Path) -> None:
    (tmp_path / "client.pem").write_bytes(b"CERT")
    (tmp_path / "client.key").write_bytes(b"KEY")
    (tmp_path / "ca.pem").write_bytes(b"CA")
    env = {
        "TEMPORAL_TLS_CLIENT_CERT_PATH": str(tmp_path / "client.pem"),
        "TEMPORAL_TLS_CLIENT_KEY_PATH": str(tmp_path / "client.key"),
        "TEMPORAL_TLS_SERVER_CA_CERT_PATH": str(tmp_path / "ca.pem"),
        "TEMPORAL_TLS_SERVER_NAME": "temporal.internal",
        "TEMPORAL_GRPC_META_X_TENANT": "acme",
    }
    options = connect_options(_config(tmp_path), env=env)
    tls = options["tls"]
    assert isinstance(tls, TLSConfig)
    assert (tls.client_cert, tls.client_private_key) == (b"CERT", b"KEY")
    assert tls.server_root_ca_cert == b"CA"
    assert tls.domain == "temporal.internal"
    assert options["rpc_metadata"] == {"x-tenant": "acme"}


def test_tls_can_be_forced_off_beside_an_api_key(tmp_path: Path) -> None:
    env = {"TEMPORAL_API_KEY": "k", "TEMPORAL_TLS": "false"}
    assert connect_options(_config(tmp_path), env=env)["tls"] is False


def test_a_missing_certificate_file_is_one_clear_error(tmp_path: Path) -> None:
    env = {
        "TEMPORAL_TLS_CLIENT_CERT_PATH": str(tmp_path / "missing.pem"),
        "TEMPORAL_TLS_CLIENT_KEY_PATH": str(tmp_path / "missing.key"),
    }
    with pytest.raises(ConnectionSettingsError, match=r"missing\.pem"):
        connect_options(_config(tmp_path), env=env)


def test_a_toml_profile_is_read_only_when_named(tmp_path: Path) -> None:
    profile = tmp_path / "temporal.toml"
    profile.write_text('[profile.cloud]\napi_key = "from-profile"\n')
    # The SDK's default location is under the user's config dir: never read unasked.
    default_dir = tmp_path / ".config" / "temporalio"
    default_dir.mkdir(parents=True)
    (default_dir / "temporal.toml").write_text('[profile.default]\napi_key = "personal"\n')
    unnamed = connect_options(_config(tmp_path), env={"HOME": str(tmp_path)})
    assert "api_key" not in unnamed
    named = connect_options(
        _config(tmp_path),
        env={"TEMPORAL_CONFIG_FILE": str(profile), "TEMPORAL_PROFILE": "cloud"},
    )
    assert named["api_key"] == "from-profile"
    # The project's address and namespace stay the ones configured.
    assert named["target_host"] == "x.tmprl.cloud:7233"


def test_connection_uses_the_codec_when_keys_are_configured(tmp_path: Path) -> None:
    config = Config(home=tmp_path, temporal_address="h:1", encryption_keys=f"k1:{K1}")
    options = connect_options(config, env={})
    assert isinstance(options["data_converter"].payload_codec, EncryptionCodec)
    with pytest.raises(EncryptionKeyError, match="OVERDUE_ENCRYPTION_KEYS"):
        connect_options(Config(home=tmp_path, temporal_address="h:1", encryption_keys="x"), env={})


def test_environment_is_not_read_when_given(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(os.environ, "TEMPORAL_API_KEY", "from-process")
    assert "api_key" not in connect_options(_config(tmp_path), env={})
    assert connect_options(_config(tmp_path))["api_key"] == "from-process"
