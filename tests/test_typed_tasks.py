"""Opening a client, typed tasks and ``JobHandle.result`` against a real in-process worker."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from inprocess import in_process_worker
from typedtasks import Invoice, Receipt, charge, refuse, total

from jobq import Client, SyncClient
from jobq.admin import cancel_job
from jobq.errors import JobCancelled, JobDeadLettered, JobExpired, ResultTimeout, UnknownTask
from jobq.settings import Settings
from jobq.tasks import Registry

pytestmark = pytest.mark.any_server
REPO = Path(__file__).resolve().parent.parent
TYPED = Registry([charge, refuse, total])


@pytest.fixture
async def typed_client(settings: Settings) -> AsyncIterator[Client]:
    async with Client.open(settings, tasks=TYPED) as client:
        yield client


async def test_open_reads_the_environment(settings: Settings, client: Client,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """No arguments: REDIS_URL and JOBQ_* from the environment; no JOBQ_TASKS is fine for a
    typed task, and enqueue by name then says the task is unknown."""
    for name in [n for n in os.environ if n.startswith("JOBQ_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("REDIS_URL", settings.redis_url)
    monkeypatch.setenv("JOBQ_KEY_PREFIX", settings.key_prefix)
    async with Client.open() as opened:
        handle = await charge.enqueue(opened, "env-1", Invoice(invoiceId="A-1", cents=5))
        with pytest.raises(UnknownTask):
            await opened.enqueue("typed-charge", "env-2", {"invoiceId": "A", "cents": 1})
    assert (await client.get_job(handle.job_id)).payload == {"invoiceId": "A-1", "cents": 5}
    with SyncClient.open() as sync:
        again = charge.enqueue(sync, "env-1", Invoice(invoiceId="A-1", cents=5))
        assert again.job_id == handle.job_id and again.duplicate


async def test_a_typed_result_comes_back_as_its_model(settings: Settings,
                                                      typed_client: Client) -> None:
    async with in_process_worker(settings, TYPED, "typed", 2):
        handle = await charge.enqueue(typed_client, "c-1", Invoice(invoiceId="A-2", cents=250))
        receipt = await handle.result(timeout=30)
        inferred = await (await total.enqueue(typed_client, "t-1",
                                              Invoice(invoiceId="A-3", cents=21))).result(30)
    assert receipt == Receipt(invoiceId="A-2", charged=250)
    assert inferred == 42 and type(inferred) is int


async def test_result_raises_for_dead_lettered_cancelled_and_unfinished(
        settings: Settings, typed_client: Client) -> None:
    delayed = await charge.enqueue(typed_client, "later", Invoice(invoiceId="L", cents=1),
                                   delay_s=3600)
    with pytest.raises(ResultTimeout):
        await delayed.result(timeout=0.2)
    await cancel_job(typed_client, delayed.job_id, who="test")
    with pytest.raises(JobCancelled):
        await delayed.result(timeout=5)
    async with in_process_worker(settings, TYPED, "typed", 1):
        failing = await refuse.enqueue(typed_client, "r-1", Invoice(invoiceId="R", cents=1))
        with pytest.raises(JobDeadLettered) as failed:
            await failing.result(timeout=30)
    assert "card declined for R" in str(failed.value.reason)
    assert failed.value.dlq_id is not None
    # A finished job's record trimmed (R12) while its idempotency record remains: expired.
    await typed_client.redis.delete(typed_client.keys("typed").job(failing.job_id))
    with pytest.raises(JobExpired):
        await failing.result(timeout=1)


async def test_the_sync_client_waits_for_a_typed_result(settings: Settings) -> None:
    async with in_process_worker(settings, TYPED, "typed", 1):
        def produce() -> Receipt:
            with SyncClient.open(settings, tasks=TYPED) as sync:
                handle = charge.enqueue(sync, f"s-{uuid.uuid4()}", Invoice(invoiceId="S", cents=3))
                return handle.result(timeout=30)

        receipt = await asyncio.to_thread(produce)
    assert receipt == Receipt(invoiceId="S", charged=3)


GOOD = '''
from jobq import Client, JobContext, SyncClient, task
from pydantic import BaseModel

class Invoice(BaseModel):
    invoiceId: str

class Receipt(BaseModel):
    charged: int

@task("send-invoice", queue="billing", payload=Invoice, result=Receipt)
async def send_invoice(ctx: JobContext, payload: Invoice) -> Receipt:
    return Receipt(charged=1)

@task("count", queue="billing", payload=Invoice)
def count(ctx: JobContext, payload: Invoice) -> int:
    return 1

async def produce(client: Client) -> int:
    receipt = await (await send_invoice.enqueue(client, "k", Invoice(invoiceId="A"))).result(5)
    n = await (await count.enqueue(client, "k", Invoice(invoiceId="A"))).result()
    return receipt.charged + n

def produce_blocking(client: SyncClient) -> int:
    return send_invoice.enqueue(client, "k", Invoice(invoiceId="A")).result(5).charged
'''

BAD = '''
from jobq import Client, JobContext, task
from pydantic import BaseModel

class Invoice(BaseModel):
    invoiceId: str

class Refund(BaseModel):
    amount: int

class Receipt(BaseModel):
    charged: int

@task("send-invoice", queue="billing", payload=Invoice, result=Receipt)
async def send_invoice(ctx: JobContext, payload: Invoice) -> Receipt:
    return Receipt(charged=1)

@task("wrong-return", queue="billing", payload=Invoice, result=Receipt)
async def wrong_return(ctx: JobContext, payload: Invoice) -> Refund:
    return Refund(amount=1)

async def wrong_payload(client: Client) -> None:
    await send_invoice.enqueue(client, "k", Refund(amount=1))

async def wrong_result(client: Client) -> str:
    receipt = await (await send_invoice.enqueue(client, "k", Invoice(invoiceId="A"))).result(5)
    return receipt.charged
'''


def test_mypy_strict_accepts_typed_use_and_rejects_a_wrong_payload_and_result(
        tmp_path: Path) -> None:
    (tmp_path / "good_use.py").write_text(GOOD)
    (tmp_path / "bad_use.py").write_text(BAD)
    run = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-error-summary", "--hide-error-context",
         "--cache-dir", str(REPO / ".mypy_cache" / "typed-tasks"), "--follow-imports=silent",
         "good_use.py", "bad_use.py"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300)
    errors = [line for line in run.stdout.splitlines() if ": error:" in line]
    assert not [e for e in errors if e.startswith("good_use.py")], run.stdout
    bad = "\n".join(errors)
    assert 'bad_use.py:18: error: Argument 1 to "__call__" of "Declare" has incompatible type "Callable[[JobContext, Invoice], Coroutine[Any, Any, Refund]]"' in bad, run.stdout
    assert 'bad_use.py:23: error: No overload variant of "enqueue" of "Task" matches argument types "Client", "str", "Refund"' in bad, run.stdout
    assert 'bad_use.py:27: error: Incompatible return value type (got "int", expected "str")' in bad, run.stdout
    assert len(errors) == 3, run.stdout
