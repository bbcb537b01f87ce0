"""The procuracy's side (People's Procuracy, e.g. VKS-HN): it receives on its webhook the copies of the
enforcement decisions of the offices it supervises, confirms each, and now and then raises a
recommendation on one through ``POST /v1/documents``; it confirms the office's answer, which closes it."""

from __future__ import annotations

import logging
import uuid
from typing import Any

import aiohttp

from gateway.simulators.gateway_client import GatewayClient, WebhookInbox, local_now

log = logging.getLogger(__name__)


class ProcuracySimulator:
    def __init__(self, gateway: GatewayClient, recommend_every: int = 3) -> None:
        """``recommend_every``: a recommendation on every n-th copy received (1: on each; 0: never)."""
        self.gateway = gateway
        self.recommend_every = recommend_every
        self.inbox = WebhookInbox(self._handle)
        self.copies: list[dict[str, Any]] = []
        self.recommendations: dict[str, str] = {}  # recommendation message_id -> decision copy message_id
        self.answers: list[dict[str, Any]] = []
        self._http: aiohttp.ClientSession | None = None

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Listen; returns the webhook URL to register as this client's ``deliver_to``."""
        self._http = aiohttp.ClientSession()
        return await self.inbox.start(host, port)

    async def close(self) -> None:
        await self.inbox.close()
        if self._http is not None:
            await self._http.close()

    async def _handle(self, document: dict[str, Any]) -> None:
        assert self._http is not None
        kind = document.get("message_type")
        if kind == "decision.enforcement":
            self.copies.append(document)
            status = await self.gateway.confirm(self._http, document["message_id"], "Đã nhận để kiểm sát")
            log.info(
                "procuracy: copy %s of %s confirmed (HTTP %s)",
                document["message_id"],
                document.get("copy_of"),
                status,
            )
            if self.recommend_every and len(self.copies) % self.recommend_every == 0:
                await self.recommend(document)
        elif kind == "procuracy.answer":
            self.answers.append(document)
            status = await self.gateway.confirm(self._http, document["message_id"], "Đã nhận trả lời")
            log.info("procuracy: answer to %s confirmed (HTTP %s)", document.get("in_reply_to"), status)
        else:
            log.info("procuracy: %s %s noted", kind, document.get("message_id"))

    async def recommend(self, decision: dict[str, Any]) -> dict[str, Any]:
        """A recommendation to the office that issued ``decision`` (a copy received)."""
        assert self._http is not None
        now = local_now()
        body = decision["body"]
        recommendation = {
            "message_id": str(uuid.uuid4()),
            "message_type": "procuracy.recommendation",
            "schema_version": "1",
            "created_at": now.isoformat(),
            "sender": self.gateway.client_id,
            "recipient": decision["sender"],
            "case_ref": decision["case_ref"],
            "correlation_id": decision.get("correlation_id") or decision["message_id"],
            "body": {
                "number": f"{uuid.uuid4().int % 99999 + 1}/KNg-VKS",
                "date": now.date().isoformat(),
                "decision": {"number": body["decision"]["number"], "date": body["decision"]["date"]},
                "content": "Đề nghị xác minh lại điều kiện thi hành án của người phải thi hành án",
                "legal_grounds": "Luật Thi hành án dân sự",
            },
        }
        status = await self.gateway.send(self._http, recommendation)
        if status in (200, 202):
            self.recommendations[recommendation["message_id"]] = decision["message_id"]
        log.info("procuracy: recommendation on %s sent (HTTP %s)", body["decision"]["number"], status)
        return recommendation
