"""Typed tasks of the tests: a result model, an inferred result, a failure, a sync handler."""

from __future__ import annotations

from pydantic import BaseModel

from jobq.context import JobContext
from jobq.errors import PermanentError
from jobq.tasks import task


class Invoice(BaseModel):
    invoiceId: str
    cents: int


class Receipt(BaseModel):
    invoiceId: str
    charged: int


@task("typed-charge", queue="typed", payload=Invoice, result=Receipt)
async def charge(ctx: JobContext, payload: Invoice) -> Receipt:
    return Receipt(invoiceId=payload.invoiceId, charged=payload.cents)


@task("typed-refuse", queue="typed", payload=Invoice, attempts=1)
async def refuse(ctx: JobContext, payload: Invoice) -> Receipt:
    raise PermanentError(f"card declined for {payload.invoiceId}")


@task("typed-total", queue="typed", payload=Invoice)
def total(ctx: JobContext, payload: Invoice) -> int:
    return payload.cents * 2
