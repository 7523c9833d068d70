"""``callmeter purchases reconcile``: fulfil paid checkouts whose webhook never arrived.

Lists the provider's completed Checkout Sessions created since a moment and runs each paid
one of ours through the same fulfilment as the webhook (:func:`service.fulfil`), one
transaction per session. Fulfilment is idempotent (the purchase row is locked; the ledger
keys are the session's), so reconciling twice, or while webhooks arrive, credits nothing
twice.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from callmeter.kit.db import run_in_transaction
from callmeter.kit.runtime import Runtime
from callmeter.payments import repository, service
from callmeter.payments.provider import PaymentProvider, purchase_id_in


@dataclass
class Reconciled:
    seen: int = 0  # completed sessions listed
    fulfilled: list[int] = field(default_factory=list)  # purchases credited now
    already: int = 0  # credited before (by the webhook, or an earlier run)
    not_ours: int = 0  # sessions of no purchase of ours
    unpaid: int = 0  # completed, payment still pending (a delayed method)
    other: list[str] = field(default_factory=list)  # what else fulfilment said


async def reconcile(
    runtime: Runtime,
    provider: PaymentProvider,
    since: datetime,
    progress: Callable[[Reconciled], None] | None = None,
) -> Reconciled:
    report = Reconciled()
    async for checkout in provider.completed_sessions(since):
        report.seen += 1
        await _one(runtime, checkout, report)
        if progress is not None:
            progress(report)
    return report


async def _one(runtime: Runtime, checkout: dict[str, Any], report: Reconciled) -> None:
    purchase_id = purchase_id_in(checkout.get("metadata"))
    session_id = checkout.get("id")
    if purchase_id is None and isinstance(session_id, str):
        async with runtime.read_sessionmaker() as session:
            purchase_id = await repository.id_by_session(session, session_id)
    if purchase_id is None:
        report.not_ours += 1
        return
    if checkout.get("payment_status") != "paid":
        report.unpaid += 1
        return
    found = purchase_id

    async def work(session: AsyncSession) -> str:
        return await service.fulfil(
            session, checkout, found, settings=runtime.settings, now=runtime.clock.now()
        )

    outcome = await run_in_transaction(runtime.sessionmaker, work)
    if outcome == "fulfilled":
        report.fulfilled.append(purchase_id)
    elif outcome.startswith("already"):
        report.already += 1
    else:
        report.other.append(f"purchase {purchase_id}: {outcome}")
