"""The test suite's codec keys: every client, worker, replayer and lienthong process the
tests start encrypts with these (tests/conftest.py puts them in the environment,
tests/support/environment.py in every child's). Test data only: never a real key."""

from __future__ import annotations

import base64

from services.codec import data_converter, keyring_from

KEY_A = base64.b64encode(b"lienthong-test-key-not-a-secret!").decode()
KEY_B = base64.b64encode(b"lienthong-test-key-B-not-secret!").decode()
TEST_KEYS = f"test-a:{KEY_A}"
TEST_KEYRING = keyring_from(TEST_KEYS)
TEST_CONVERTER = data_converter(TEST_KEYRING)
