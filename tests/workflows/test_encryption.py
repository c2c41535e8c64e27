"""Applicants' data is encrypted in Temporal (issue 13, point 6; services/codec.py):
what the server stores for a dossier holds no plaintext of it, the worker still runs
it, keys rotate (a history written under key A reads with A and B configured, new
payloads are written under B), and a missing or wrong key fails clearly — against
the time-skipping test server and the real worker."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from temporalio.api.common.v1 import Payload
from temporalio.client import Client, WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from services.codec import CodecError, data_converter, keyring_from
from tests.support.codec import KEY_A, KEY_B, TEST_CONVERTER
from tests.workflows.harness import DATA, assigned, complete, finished, running_worker, start_dossier, until
from workflows.dossier import DossierWorkflow
from workflows.payloads import DossierInput

NAME = "Nguyễn Thị Bích Ngọc"
CITIZEN_ID = "079203001234"
APPLICANT = {**DATA, "applicant": {"name": NAME, "citizen_id": CITIZEN_ID, "address": "12 Lê Lợi, Tân Lập"}}
STEPS = [("tiep-nhan", "bpmc-xa-xa-tan-lap"), ("tham-dinh", "vpdk-tinh"), ("tra-ket-qua", "bpmc-xa-xa-tan-lap")]
ROTATED = data_converter(keyring_from(f"test-b:{KEY_B},test-a:{KEY_A}"))  # B encrypts, A still decrypts
ONLY_B = data_converter(keyring_from(f"test-b:{KEY_B}"))
LOCAL_ACTIVITY_BOOKKEEPING = {"seq", "attempt", "activity_id", "activity_type", "complete_time",
                              "backoff", "original_schedule_time", "activation_index"}
WRONG_A = data_converter(keyring_from("test-a:" + base64.b64encode(b"x" * 32).decode()))


def with_converter(client: Client, converter: Any) -> Client:
    return Client(**{**client.config(), "data_converter": converter})


def payloads_of(history: WorkflowHistory) -> list[Payload]:
    """Every payload anywhere in the history's events."""
    found: list[Payload] = []

    def walk(message: Any) -> None:
        if isinstance(message, Payload):
            found.append(message)
            return
        for field, value in message.ListFields():
            if field.type != field.TYPE_MESSAGE:
                continue
            if field.message_type.GetOptions().map_entry:
                values = list(value.values())
            elif hasattr(value, "ListFields"):
                values = [value]
            else:  # repeated
                values = list(value)
            for item in values:
                if hasattr(item, "ListFields"):
                    walk(item)

    for event in history.events:
        walk(event)
    return found


def plaintext_leaks(history: WorkflowHistory) -> list[str]:
    raw = b"".join(event.SerializeToString() for event in history.events)
    return [text for text in (NAME, CITIZEN_ID, "Lê Lợi") if text.encode() in raw]


async def run_to_the_end(handle: Any) -> None:
    for step_id, agency in STEPS:
        await until(handle, assigned(step_id), f"{step_id} routed")
        await complete(handle, step_id, agency)
    assert (await finished(handle)).status == "completed"


async def started_with(converter: Any, history: WorkflowHistory) -> DossierInput:
    """The dossier's input, decoded from its first event with `converter`'s keys."""
    [payload] = history.events[0].workflow_execution_started_event_attributes.input.payloads
    [dossier] = await converter.decode([payload], [DossierInput])
    assert isinstance(dossier, DossierInput)
    return dossier


async def test_the_history_holds_no_plaintext_of_the_applicant_and_the_worker_runs_it(env):
    async with running_worker(env.client) as tq:
        handle = await start_dossier(env.client, tq, data=APPLICANT)
        await run_to_the_end(handle)
    history = await handle.fetch_history()
    assert (await started_with(TEST_CONVERTER, history)).data["applicant"]["name"] == NAME  # with the key

    assert plaintext_leaks(history) == []
    payloads = payloads_of(history)
    assert len(payloads) > 10  # input, activities, updates, result: not vacuous
    encrypted = [p for p in payloads if p.metadata["encoding"] == b"binary/encrypted"]
    assert {p.metadata["encryption-key-id"] for p in encrypted} == {b"test-a"}
    assert {p.metadata["encryption-cipher"] for p in encrypted} == {b"AES-256-GCM"}
    # What stays plain is the server's and the SDK's own, never the dossier's: the search
    # attributes (indexed: procedure, sector, status, due) and the SDK's local-activity
    # bookkeeping (which activity, which attempt, when).
    for payload in payloads:
        if payload in encrypted:
            continue
        if b"type" in payload.metadata:
            assert payload.metadata["type"] in (b"Keyword", b"Datetime"), payload
        else:
            assert set(json.loads(payload.data)) <= LOCAL_ACTIVITY_BOOKKEEPING, payload
    # The check has teeth: the same input without the codec carries the name as it is.
    [plain] = await pydantic_data_converter.encode([APPLICANT])
    assert NAME.encode() in plain.data and CITIZEN_ID.encode() in plain.data

    # The recorded-history replayer (tests/workflows/test_replay.py) reads it with the key.
    replayed = await Replayer(workflows=[DossierWorkflow], data_converter=TEST_CONVERTER).replay_workflow(
        history, raise_on_replay_failure=False)
    assert replayed.replay_failure is None


async def test_keys_rotate_a_history_written_under_a_reads_with_a_and_b_and_goes_on_under_b(env):
    rotated = with_converter(env.client, ROTATED)
    async with running_worker(rotated) as tq:
        handle = await start_dossier(env.client, tq, data=APPLICANT)  # a client still on key A starts it
        await run_to_the_end(rotated.get_workflow_handle_for(DossierWorkflow.run, handle.id))
    history = await handle.fetch_history()
    assert (await started_with(ROTATED, history)).data["applicant"]["citizen_id"] == CITIZEN_ID

    key_ids = [p.metadata["encryption-key-id"] for p in payloads_of(history) if "encryption-key-id" in p.metadata]
    assert key_ids[0] == b"test-a" and set(key_ids) == {b"test-a", b"test-b"}  # input under A, the rest under B
    assert key_ids.count(b"test-a") == 1
    assert plaintext_leaks(history) == []
    replayed = await Replayer(workflows=[DossierWorkflow], data_converter=ROTATED).replay_workflow(
        history, raise_on_replay_failure=False)
    assert replayed.replay_failure is None

    # Dropping A too early: what was written under it no longer reads, and says why.
    with pytest.raises(CodecError, match=r"encrypted with key 'test-a', which is not in LIENTHONG_CODEC_KEYS "
                                         r"\(configured: test-b\)"):
        await ONLY_B.decode(payloads_of(history)[:1])


async def test_a_wrong_key_under_the_same_id_fails_clearly_and_decrypts_nothing(env):
    async with running_worker(env.client) as tq:
        handle = await start_dossier(env.client, tq, data=APPLICANT)
        await until(handle, assigned("tiep-nhan"), "the worker took it")
        wrong_client = with_converter(env.client, WRONG_A)
        with pytest.raises(Exception) as raised:  # the SDK may wrap it; the reason stays in the chain
            await wrong_client.get_workflow_handle_for(DossierWorkflow.run, handle.id).query(DossierWorkflow.state)
        history = await handle.fetch_history()
    chain = []
    err: BaseException | None = raised.value
    while err is not None:
        chain.append(str(err))
        err = err.__cause__ or err.__context__
    assert any("does not decrypt with key 'test-a'" in text for text in chain), chain
    with pytest.raises(CodecError, match="does not decrypt with key 'test-a': the key configured under that id is "
                                         "not the one that encrypted it, or the payload was altered"):
        await WRONG_A.decode(payloads_of(history)[:1])
