from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Request
from pydantic import BaseModel

from callmeter.errors import InvalidWebhookEvent
from callmeter.kit.deps import RuntimeDep, SessionDep
from callmeter.media import webhooks

router = APIRouter(prefix="/v1/webhooks", tags=["webhooks"])


class WebhookAck(BaseModel):
    status: str


@router.post("/livekit")
async def livekit_webhook(
    request: Request,
    runtime: RuntimeDep,
    session: SessionDep,
    authorization: Annotated[str | None, Header()] = None,
) -> WebhookAck:
    """LiveKit's webhooks: the raw body, signed by the ``Authorization`` token (no
    "Bearer"). 401 when the signature or body hash fails; 422 (recorded, not applied) for
    an event time more than a day off or a malformed call room; a repeated event id is
    acknowledged with no second effect."""
    event = webhooks.verify(await request.body(), authorization, runtime.settings)
    now = runtime.clock.now()
    try:
        new = await webhooks.handle(session, event, now=now, settings=runtime.settings)
    except InvalidWebhookEvent:
        await webhooks.record_refused(runtime.sessionmaker, event, now)
        raise
    return WebhookAck(status="ok" if new else "duplicate")
