"""The baseline: the smallest Temporal workflow with the same shape as a K-step
dossier — per step one activity (the hand-over) and one Update (the agency's
completion) — on the same pydantic data converter and the same worker settings as
`services.temporal.build_worker`, and nothing else (no store, no calendar, no
search attributes, no webhooks, no logging interceptor).

    python -m bench.raw --address HOST:PORT --task-queue QUEUE   # a worker, until SIGTERM
"""

from __future__ import annotations

import argparse
import asyncio
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

from pydantic import BaseModel
from temporalio import activity, workflow
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.exceptions import ApplicationError
from temporalio.worker import Worker

# Same as workers/temporal.py build_worker: activities on a 16-thread pool, SDK defaults otherwise.
ACTIVITY_THREADS = 16


class RawInput(BaseModel):
    dossier_id: str
    steps: int
    agencies: list[str]


class RawHandover(BaseModel):
    dossier_id: str
    step: int
    agency: str


class RawComplete(BaseModel):
    step: int
    agency: str


class RawResult(BaseModel):
    dossier_id: str
    # Wall-clock time (unix seconds) at which each step's activity ran: the
    # baseline's "inbox item appeared".
    assigned_at: list[float]


@activity.defn(name="bench_raw_handover")
def handover(request: RawHandover) -> float:
    """A synchronous activity on the thread pool, like route_step; returns when it ran."""
    return time.time()


@workflow.defn(name="BenchRawWorkflow")
class RawWorkflow:
    def __init__(self) -> None:
        self._current = -1  # the step whose hand-over has run and that waits for its Update
        self._done = 0  # steps completed
        self._agencies: list[str] = []

    @workflow.run
    async def run(self, input: RawInput) -> RawResult:
        self._agencies = input.agencies
        assigned: list[float] = []
        for step in range(input.steps):
            at = await workflow.execute_activity(
                "bench_raw_handover", RawHandover(dossier_id=input.dossier_id, step=step,
                                                  agency=input.agencies[step]),
                result_type=float, start_to_close_timeout=timedelta(seconds=30),
            )
            assigned.append(at)
            self._current = step
            await workflow.wait_condition(lambda: self._done > self._current)
        await workflow.wait_condition(workflow.all_handlers_finished)
        return RawResult(dossier_id=input.dossier_id, assigned_at=assigned)

    @workflow.update
    async def complete(self, request: RawComplete) -> int:
        # An agency may call as soon as the previous step is done: wait for the hand-over.
        await workflow.wait_condition(lambda: self._current >= request.step)
        self._done = request.step + 1
        return self._done

    @complete.validator
    def _validate(self, request: RawComplete) -> None:
        if request.step != self._done:
            raise ApplicationError(f"step {request.step} is not current", type="NotCurrent", non_retryable=True)
        if self._agencies and request.agency != self._agencies[request.step]:
            raise ApplicationError("wrong agency", type="WrongAgency", non_retryable=True)


def build_raw_worker(client: Client, task_queue: str) -> Worker:
    return Worker(
        client,
        task_queue=task_queue,
        workflows=[RawWorkflow],
        activities=[handover],
        activity_executor=ThreadPoolExecutor(max_workers=ACTIVITY_THREADS),
    )


async def _serve(address: str, namespace: str, task_queue: str) -> None:
    from services.processes import stop_on_signals

    stop = stop_on_signals()
    client = await Client.connect(address, namespace=namespace, data_converter=pydantic_data_converter)
    worker = build_raw_worker(client, task_queue)
    running = asyncio.create_task(worker.run())
    stopping = asyncio.create_task(stop.wait())
    await asyncio.wait({running, stopping}, return_when=asyncio.FIRST_COMPLETED)
    if not running.done():
        await worker.shutdown()
    await running


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.raw", description="the baseline worker")
    parser.add_argument("--address", required=True)
    parser.add_argument("--namespace", default="default")
    parser.add_argument("--task-queue", required=True)
    args = parser.parse_args()
    asyncio.run(_serve(args.address, args.namespace, args.task_queue))


if __name__ == "__main__":
    main()
