"""Applicants' data encrypted in Temporal: an AES-256-GCM payload codec.

Every payload a lienthong client or worker sends to Temporal (workflow inputs, the
dossier's data, updates, query answers, activity arguments and results) is the
serialized payload encrypted with AES-256-GCM (`cryptography`'s AESGCM) under one
key of a keyring; the Temporal server, its database, the UI and `temporal workflow
show` see only ciphertext. The payload's metadata names the key:

    encoding            binary/encrypted
    encryption-cipher   AES-256-GCM
    encryption-key-id   the key's id (also the associated data: a relabelled payload does not decrypt)

and its data is a 12-byte random nonce followed by the ciphertext and tag.

Keys come from `LIENTHONG_CODEC_KEYS` (`ID:BASE64,ID:BASE64`, 32-byte keys): every
listed key decrypts, `LIENTHONG_CODEC_KEY_ID` (default: the first listed) encrypts.
Rotating is adding a new key, making it the encrypting one, and dropping the old one
only once no open dossier's history (nor one inside the namespace retention) uses it.
Payloads that are not encrypted (histories written before the codec) are read as
they are.

Without keys, the dev defaults (no `LIENTHONG_DATABASE_URL`: the SQLite file in
`.lienthong/`) use a key generated once into `.lienthong/codec-keys` beside it;
anything else refuses to start (CodecConfigError).
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import hashlib
import hmac
import os
import re
import secrets
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import structlog
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from temporalio.api.common.v1 import Payload
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.converter import DataConverter, PayloadCodec

from config.settings import Settings
from services.processes import StartError
from store.db import DEFAULT_SQLITE_FILE

log = structlog.get_logger("lienthong.codec")

ENCODING = b"binary/encrypted"
CIPHER = b"AES-256-GCM"
KEY_ID_FIELD = "encryption-key-id"
CIPHER_FIELD = "encryption-cipher"
NONCE_BYTES = 12
KEY_BYTES = 32
KEY_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
DEV_KEY_FILE = DEFAULT_SQLITE_FILE.parent / "codec-keys"
KEYS_VARIABLE = "LIENTHONG_CODEC_KEYS"


class CodecConfigError(StartError):
    """Keys that cannot work (missing, malformed, the encrypting one not listed)."""


class CodecError(ValueError):
    """A payload this keyring cannot decrypt (its key is not configured, or it does not
    authenticate: another key under the same id, or altered data)."""


@dataclass(frozen=True)
class Keyring:
    keys: Mapping[str, bytes]
    current: str

    def __post_init__(self) -> None:
        if self.current not in self.keys:
            raise CodecConfigError(f"the encrypting key {self.current!r} (LIENTHONG_CODEC_KEY_ID) is not in "
                                   f"{KEYS_VARIABLE} (it has {', '.join(sorted(self.keys)) or 'none'})")


def new_key_line(key_id: str | None = None) -> str:
    """`ID:BASE64` for a fresh random key (the id defaults to today's date)."""
    key_id = key_id or "k" + datetime.now(UTC).strftime("%Y%m%d")
    if not KEY_ID.fullmatch(key_id):
        raise CodecConfigError(f"key id {key_id!r}: letters, digits, '.', '_' and '-', at most 64")
    return f"{key_id}:{base64.b64encode(AESGCM.generate_key(bit_length=256)).decode()}"


def _entries(text: str) -> Iterator[tuple[str, str, str, str]]:
    """`NAME:VALUE` entries separated by commas or white space: (entry, name, ':', value)."""
    for entry in re.split(r"[,\s]+", text):
        if entry:
            yield (entry, *entry.partition(":"))


def parse_keys(text: str) -> dict[str, bytes]:
    """`ID:BASE64[,ID:BASE64...]` (spaces and newlines around entries are ignored)."""
    keys: dict[str, bytes] = {}
    for entry, key_id, sep, encoded in _entries(text):
        if not sep or not KEY_ID.fullmatch(key_id):
            raise CodecConfigError(f"{KEYS_VARIABLE}: each entry is ID:BASE64KEY with an id of letters, digits, "
                                   f"'.', '_' or '-' (got an entry starting {entry[:8]!r}…)")
        try:
            key = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            raise CodecConfigError(f"{KEYS_VARIABLE}: key {key_id!r} is not base64") from None
        if len(key) != KEY_BYTES:
            raise CodecConfigError(f"{KEYS_VARIABLE}: key {key_id!r} has {len(key)} bytes, AES-256 needs {KEY_BYTES} "
                                   "(generate one with `lienthong codec new-key`)")
        if key_id in keys:
            raise CodecConfigError(f"{KEYS_VARIABLE}: key id {key_id!r} is listed twice")
        keys[key_id] = key
    return keys


def keyring_from(text: str, current: str | None = None) -> Keyring:
    keys = parse_keys(text)
    if not keys:
        raise CodecConfigError(f"{KEYS_VARIABLE} lists no key")
    return Keyring(keys, current or next(iter(keys)))


def keyring(settings: Settings) -> Keyring:
    """The configured keyring; with none, the dev key (dev defaults only)."""
    if settings.codec_keys is not None and settings.codec_keys.get_secret_value().strip():
        return keyring_from(settings.codec_keys.get_secret_value(), settings.codec_key_id or None)
    if settings.database_url:
        raise CodecConfigError(f"{KEYS_VARIABLE} is not set: applicants' data is encrypted in Temporal with it "
                               "(`lienthong codec new-key` makes one; every worker, gateway and CLI of a "
                               "deployment needs the same keys)")
    return keyring_from(dev_keys(DEV_KEY_FILE), settings.codec_key_id or None)


def dev_keys(path: Path) -> str:
    """The dev key file's contents, generating it (mode 0600) on first use."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process made it first
            pass
        else:
            with os.fdopen(fd, "w") as out:
                out.write(new_key_line("dev") + "\n")
            log.warning("codec_dev_key_created", path=str(path),
                        note=f"dev only: set {KEYS_VARIABLE} for anything else")
    return path.read_text()


class EncryptionCodec(PayloadCodec):
    """AES-256-GCM over whole serialized payloads; the key id in the metadata."""

    def __init__(self, ring: Keyring) -> None:
        super().__init__()
        self.keyring = ring
        self._ciphers = {key_id: AESGCM(key) for key_id, key in ring.keys.items()}

    async def encode(self, payloads: Iterable[Payload]) -> list[Payload]:
        return [self.encrypt(payload) for payload in payloads]

    async def decode(self, payloads: Iterable[Payload]) -> list[Payload]:
        return [self.decrypt(payload) for payload in payloads]

    def encrypt(self, payload: Payload) -> Payload:
        key_id = self.keyring.current
        nonce = secrets.token_bytes(NONCE_BYTES)
        sealed = self._ciphers[key_id].encrypt(nonce, payload.SerializeToString(), key_id.encode())
        return Payload(metadata={"encoding": ENCODING, CIPHER_FIELD: CIPHER, KEY_ID_FIELD: key_id.encode()},
                       data=nonce + sealed)

    def decrypt(self, payload: Payload) -> Payload:
        if payload.metadata.get("encoding") != ENCODING:
            return payload  # written before the codec, or never encrypted: read as it is
        key_id = payload.metadata.get(KEY_ID_FIELD, b"").decode(errors="replace")
        cipher = self._ciphers.get(key_id)
        if cipher is None:
            raise CodecError(f"payload encrypted with key {key_id!r}, which is not in {KEYS_VARIABLE} "
                             f"(configured: {', '.join(sorted(self._ciphers))})")
        if payload.metadata.get(CIPHER_FIELD, CIPHER) != CIPHER:
            raise CodecError(f"payload encrypted with an unknown cipher {payload.metadata[CIPHER_FIELD]!r}")
        try:
            plain = cipher.decrypt(payload.data[:NONCE_BYTES], payload.data[NONCE_BYTES:], key_id.encode())
        except InvalidTag:
            raise CodecError(f"payload does not decrypt with key {key_id!r}: the key configured under that id is "
                             "not the one that encrypted it, or the payload was altered") from None
        return Payload.FromString(plain)


def data_converter(ring: Keyring) -> DataConverter:
    """pydantic's converter with the encryption codec: for every client, worker and replayer."""
    return dataclasses.replace(pydantic_data_converter, payload_codec=EncryptionCodec(ring))


def converter_for(settings: Settings) -> DataConverter:
    return data_converter(keyring(settings))


# Operators of the gateway's /codec endpoint (gateway/routes_codec.py).

def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_operator_token(name: str) -> tuple[str, str]:
    """A fresh operator token and its `NAME:SHA256` entry for LIENTHONG_CODEC_OPERATORS."""
    if not KEY_ID.fullmatch(name):
        raise CodecConfigError(f"operator name {name!r}: letters, digits, '.', '_' and '-', at most 64")
    token = secrets.token_urlsafe(32)
    return token, f"{name}:{token_digest(token)}"


def parse_operators(text: str) -> dict[str, str]:
    """`NAME:SHA256HEX[,...]` → {name: digest}."""
    operators: dict[str, str] = {}
    for _entry, name, _, digest in _entries(text):
        if not KEY_ID.fullmatch(name) or not re.fullmatch(r"[0-9a-f]{64}", digest):
            raise CodecConfigError("LIENTHONG_CODEC_OPERATORS: each entry is NAME:SHA256HEX "
                                   "(`lienthong codec operator-token NAME` makes one)")
        operators[name] = digest
    return operators


def operator_for(operators: Mapping[str, str], token: str, name: str | None = None) -> str | None:
    """The operator whose token this is (and whose name is `name`, when given)."""
    digest = token_digest(token)
    found = None
    for operator, expected in operators.items():  # every entry compared: no early exit to time
        if hmac.compare_digest(digest, expected) and (name is None or hmac.compare_digest(name, operator)):
            found = operator
    return found


@dataclass(frozen=True)
class CodecAccess:
    """Who may call the gateway's /codec endpoint (operators, never agencies' tokens)
    and from which Temporal UI origins a browser may (CORS)."""

    operators: Mapping[str, str] = dataclasses.field(default_factory=dict)  # name → SHA-256 of the token
    ui_origins: frozenset[str] = frozenset()

    @classmethod
    def from_settings(cls, settings: Settings) -> CodecAccess:
        operators = parse_operators(settings.codec_operators.get_secret_value()) if settings.codec_operators else {}
        origins = frozenset(o.strip().rstrip("/") for o in re.split(r"[,\s]+", settings.codec_ui_origins) if o.strip())
        return cls(operators, origins)
