"""The payload codec and its keys (services/codec.py), without a server: what a
payload becomes, what reads it back, and every configuration that is refused."""

from __future__ import annotations

import base64
import stat

import pytest
from temporalio.api.common.v1 import Payload

from config.settings import Settings
from services import codec
from services.codec import CodecConfigError, CodecError, EncryptionCodec, keyring, keyring_from, parse_keys
from services.temporal import connect_or_refuse
from tests.support.codec import KEY_A, KEY_B, TEST_KEYRING

PLAIN = Payload(metadata={"encoding": b"json/plain"}, data=b'{"citizen_id":"079203001234"}')


async def test_a_payload_is_sealed_whole_under_the_current_key_and_reads_back() -> None:
    sealing = EncryptionCodec(TEST_KEYRING)
    [first], [second] = await sealing.encode([PLAIN]), await sealing.encode([PLAIN])
    assert dict(first.metadata) == {"encoding": b"binary/encrypted", "encryption-cipher": b"AES-256-GCM",
                                    "encryption-key-id": b"test-a"}
    assert b"079203001234" not in first.data and b"json/plain" not in first.data
    assert first.data != second.data  # a fresh nonce each time
    assert await sealing.decode([first, second]) == [PLAIN, PLAIN]


async def test_payloads_written_before_the_codec_read_as_they_are() -> None:
    assert await EncryptionCodec(TEST_KEYRING).decode([PLAIN]) == [PLAIN]


async def test_altered_or_relabelled_payloads_do_not_decrypt() -> None:
    both = EncryptionCodec(keyring_from(f"test-a:{KEY_A},test-b:{KEY_B}"))
    [sealed] = await both.encode([PLAIN])
    flipped = Payload(metadata=sealed.metadata, data=sealed.data[:-1] + bytes([sealed.data[-1] ^ 1]))
    with pytest.raises(CodecError, match="does not decrypt with key 'test-a'"):
        await both.decode([flipped])
    relabelled = Payload(metadata={**sealed.metadata, "encryption-key-id": b"test-b"}, data=sealed.data)
    with pytest.raises(CodecError, match="does not decrypt with key 'test-b'"):  # the key id is authenticated
        await both.decode([relabelled])
    with pytest.raises(CodecError, match="unknown cipher"):
        await both.decode([Payload(metadata={**sealed.metadata, "encryption-cipher": b"ROT13"}, data=sealed.data)])


def test_the_encrypting_key_is_the_named_one_or_the_first() -> None:
    assert keyring_from(f"test-b:{KEY_B},test-a:{KEY_A}").current == "test-b"
    assert keyring_from(f"test-b:{KEY_B}, test-a:{KEY_A}", "test-a").current == "test-a"
    with pytest.raises(CodecConfigError, match=r"the encrypting key 'test-c' \(LIENTHONG_CODEC_KEY_ID\) is not in "
                                               r"LIENTHONG_CODEC_KEYS \(it has test-a, test-b\)"):
        keyring_from(f"test-b:{KEY_B},test-a:{KEY_A}", "test-c")


@pytest.mark.parametrize(("text", "message"), [
    ("", "lists no key"),
    (KEY_A, "each entry is ID:BASE64KEY"),
    (f"bad id:{KEY_A}", "each entry is ID:BASE64KEY"),
    ("k1:not*base64", "key 'k1' is not base64"),
    ("k1:" + base64.b64encode(b"sixteen-byte-key").decode(), "key 'k1' has 16 bytes, AES-256 needs 32"),
    (f"k1:{KEY_A},k1:{KEY_B}", "key id 'k1' is listed twice"),
])
def test_malformed_keys_are_refused_without_showing_them(text: str, message: str) -> None:
    with pytest.raises(CodecConfigError, match=message) as refused:
        keyring_from(text)
    assert KEY_A not in str(refused.value) and KEY_B not in str(refused.value)


def test_new_keys_parse_and_differ() -> None:
    first, second = codec.new_key_line("k2027"), codec.new_key_line("k2027")
    assert first != second and list(parse_keys(first)) == ["k2027"]


def test_outside_the_dev_defaults_no_key_refuses_to_start(tmp_path) -> None:
    settings = Settings(codec_keys=None, database_url=f"sqlite:///{tmp_path / 'x.db'}")
    with pytest.raises(CodecConfigError, match="LIENTHONG_CODEC_KEYS is not set"):
        keyring(settings)


async def test_a_client_without_keys_is_refused_before_connecting(tmp_path) -> None:
    settings = Settings(codec_keys=None, database_url=f"sqlite:///{tmp_path / 'x.db'}",
                        temporal_address="127.0.0.1:1")
    with pytest.raises(CodecConfigError, match="LIENTHONG_CODEC_KEYS is not set"):  # not "cannot reach Temporal"
        await connect_or_refuse(settings)


def test_the_dev_defaults_make_one_key_in_lienthong_folder_and_keep_it(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(codec, "DEV_KEY_FILE", tmp_path / ".lienthong" / "codec-keys")
    settings = Settings(codec_keys=None, database_url=None)
    first = keyring(settings)
    assert list(first.keys) == ["dev"]
    assert stat.S_IMODE(codec.DEV_KEY_FILE.stat().st_mode) == 0o600
    assert keyring(settings) == first  # the worker, the gateway and the CLI share it


def test_operators_are_named_token_digests() -> None:
    token, entry = codec.new_operator_token("an.operator")
    operators = codec.parse_operators(entry + ",other:" + "0" * 64)
    assert token not in entry and codec.operator_for(operators, token) == "an.operator"
    assert codec.operator_for(operators, token, "an.operator") == "an.operator"
    assert codec.operator_for(operators, token, "other") is None
    assert codec.operator_for(operators, "guess") is None
    with pytest.raises(CodecConfigError, match="NAME:SHA256HEX"):
        codec.parse_operators(f"an.operator:{token}")  # the token itself, not its digest
