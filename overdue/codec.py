"""Payload encryption: an AES-256-GCM payload codec with key ids and rotation.

With encryption configured, every payload the project's Temporal clients and workers write
(workflow inputs, signals, updates, queries, results, activity arguments and results, summaries,
failure messages) reaches the Temporal server as ciphertext. Search attributes and workflow ids are never payloads
and are never encrypted: they must hold no PII (see docs/pii-protection.md).

Keys come from the environment, in one of two forms:

- ``OVERDUE_ENCRYPTION_KEYS="k2:<base64>,k1:<base64>"``: key ids and base64 256-bit keys; the
  first is the active key.
- ``OVERDUE_ENCRYPTION_KEY_FILE=/path/keys.json``: a JSON file
  ``{"active": "k2", "keys": {"k2": "<base64>", "k1": "<base64>"}}``.

The active key encrypts; every known key decrypts, so a key is rotated by making a new key active
while the old ones stay listed until no retained history needs them.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from temporalio.api.common.v1 import Payload
from temporalio.converter import (
    DataConverter,
    DefaultFailureConverterWithEncodedAttributes,
    PayloadCodec,
)

from overdue.config import Config

KEYS_ENV = "OVERDUE_ENCRYPTION_KEYS"
KEY_FILE_ENV = "OVERDUE_ENCRYPTION_KEY_FILE"
ENCODING = b"binary/encrypted"
KEY_ID_METADATA = "encryption-key-id"
KEY_BYTES = 32  # AES-256
NONCE_BYTES = 12  # the 96-bit nonce GCM is specified for; random per payload
_KEY_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


class EncryptionKeyError(ValueError):
    """The key configuration is unusable; the message names the variable or file at fault."""


class PayloadDecryptionError(ValueError):
    """An encrypted payload cannot be decrypted: unknown key id, or it fails authentication."""


@dataclass(frozen=True)
class KeyRing:
    """The known keys by id, and the one that encrypts."""

    active: str
    keys: Mapping[str, bytes] = field(repr=False)

    def __post_init__(self) -> None:
        if self.active not in self.keys:
            raise EncryptionKeyError(f"active key {self.active!r} is not among the keys")

    @classmethod
    def parse(cls, text: str, source: str = KEYS_ENV) -> KeyRing:
        """Read ``id:base64,id:base64``, the first being active; errors name ``source``."""
        keys: dict[str, bytes] = {}
        for item in (part.strip() for part in text.split(",")):
            if not item:
                continue
            key_id, sep, encoded = item.partition(":")
            if not sep:
                raise EncryptionKeyError(f"{source}: expected key_id:base64_key, got {key_id!r}")
            _add_key(keys, key_id.strip(), encoded.strip(), source)
        if not keys:
            raise EncryptionKeyError(f"{source}: no keys given")
        return cls(active=next(iter(keys)), keys=keys)

    @classmethod
    def from_file(cls, path: Path) -> KeyRing:
        """Read a key file: ``{"active": id, "keys": {id: base64_key, ...}}``."""
        source = f"{KEY_FILE_ENV} ({path})"
        try:
            document = json.loads(path.read_text())
        except OSError as problem:
            raise EncryptionKeyError(f"{source}: cannot read it ({problem.strerror})") from None
        except ValueError:
            raise EncryptionKeyError(f"{source}: not valid JSON") from None
        listed = document.get("keys") if isinstance(document, dict) else None
        active = document.get("active") if isinstance(document, dict) else None
        if not isinstance(listed, dict) or not listed:
            raise EncryptionKeyError(f"{source}: keys: expected an object of key id to base64 key")
        keys: dict[str, bytes] = {}
        for key_id, encoded in listed.items():
            if not isinstance(encoded, str):
                raise EncryptionKeyError(f"{source}: key {key_id!r}: expected a base64 string")
            _add_key(keys, key_id, encoded, source)
        if active not in keys:
            raise EncryptionKeyError(f"{source}: active: {active!r} is not one of the keys")
        return cls(active=active, keys=keys)

    @classmethod
    def configured(cls, keys: str | None, key_file: Path | None) -> KeyRing | None:
        """The ring from ``OVERDUE_ENCRYPTION_KEYS`` or a key file; ``None`` when neither is set."""
        if keys and key_file:
            raise EncryptionKeyError(f"set {KEYS_ENV} or {KEY_FILE_ENV}, not both")
        if keys:
            return cls.parse(keys)
        if key_file:
            return cls.from_file(key_file)
        return None


def _add_key(keys: dict[str, bytes], key_id: str, encoded: str, source: str) -> None:
    if not _KEY_ID.match(key_id):
        raise EncryptionKeyError(
            f"{source}: key id {key_id!r} must be 1-64 letters, digits, '.', '_' or '-'"
        )
    if key_id in keys:
        raise EncryptionKeyError(f"{source}: key id {key_id!r} is given twice")
    try:
        key = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise EncryptionKeyError(f"{source}: key {key_id!r} is not valid base64") from None
    if len(key) != KEY_BYTES:
        raise EncryptionKeyError(
            f"{source}: key {key_id!r} is {len(key)} bytes; AES-256 needs {KEY_BYTES}"
        )
    keys[key_id] = key


class EncryptionCodec(PayloadCodec):
    """Encrypts each payload whole (data and metadata) with the ring's active key.

    The encrypted payload carries ``encoding: binary/encrypted`` and the key id in
    ``encryption-key-id``; its data is the 12-byte nonce followed by the AES-GCM ciphertext and
    tag. The key id is also the associated data, so a payload relabelled with another key id
    fails authentication. Payloads that are not encrypted pass through ``decode`` unchanged:
    histories written before encryption was turned on still read.
    """

    def __init__(self, ring: KeyRing) -> None:
        super().__init__()
        self._ring = ring
        self._ciphers = {key_id: AESGCM(key) for key_id, key in ring.keys.items()}

    @property
    def active_key_id(self) -> str:
        return self._ring.active

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        key_id = self._ring.active
        cipher = self._ciphers[key_id]
        encoded = []
        for payload in payloads:
            nonce = os.urandom(NONCE_BYTES)
            sealed = cipher.encrypt(nonce, payload.SerializeToString(), key_id.encode())
            encoded.append(
                Payload(
                    metadata={"encoding": ENCODING, KEY_ID_METADATA: key_id.encode()},
                    data=nonce + sealed,
                )
            )
        return encoded

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self._decode_one(payload) for payload in payloads]

    def _decode_one(self, payload: Payload) -> Payload:
        if payload.metadata.get("encoding") != ENCODING:
            return payload
        key_id = payload.metadata.get(KEY_ID_METADATA, b"").decode(errors="replace")
        cipher = self._ciphers.get(key_id)
        if cipher is None:
            known = ", ".join(sorted(self._ciphers))
            raise PayloadDecryptionError(
                f"{KEY_ID_METADATA}: key {key_id!r} is not configured (known: {known});"
                f" add it to {KEYS_ENV} or the key file"
            )
        nonce, sealed = payload.data[:NONCE_BYTES], payload.data[NONCE_BYTES:]
        try:
            # A short nonce (data cut to a few bytes) is a ValueError of the cipher, not a tag
            # that fails: the same altered payload either way.
            plain = cipher.decrypt(nonce, sealed, key_id.encode())
        except (InvalidTag, ValueError):
            raise PayloadDecryptionError(
                f"payload encrypted with key {key_id!r} fails authentication:"
                " it was altered, or the key under that id is not the one that encrypted it"
            ) from None
        return Payload.FromString(plain)


def data_converter(config: Config) -> DataConverter:
    """The default data converter, with the encryption codec when keys are configured.

    Raises:
        EncryptionKeyError: the keys are configured but unusable.
    """
    ring = KeyRing.configured(config.encryption_keys, config.encryption_key_file)
    if ring is None:
        return DataConverter.default
    # Failure messages and stack traces can quote what failed: they are encrypted too.
    return replace(
        DataConverter.default,
        payload_codec=EncryptionCodec(ring),
        failure_converter_class=DefaultFailureConverterWithEncodedAttributes,
    )


def new_key() -> str:
    """A fresh random 256-bit key, base64-encoded as the key settings expect it."""
    return base64.b64encode(AESGCM.generate_key(bit_length=256)).decode()


def create_key_file(path: Path) -> str:
    """Write a new key file with one active key, readable by its owner only; returns its id.

    The file is created exclusively with mode 0600, so neither an existing key file nor a
    permissive umask can leave key material readable by others.
    """
    key_id = f"k{datetime.now(UTC):%Y%m%d%H%M%S}"
    document = {"active": key_id, "keys": {key_id: new_key()}}
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as file:
        json.dump(document, file, indent=2)
        file.write("\n")
    return key_id
