"""The traffic police's vehicle registrations (REST JSON)."""

from __future__ import annotations

from aiohttp import web

from gateway.simulators.partners import Inquiry, answer, rest_app, seed
from gateway.simulators.partners.behaviour import Behaviour

CODE = "POLICE-VEH"
PATH = "/vehicles/api/v1/registrations/search"


async def search(_request: web.Request, inquiry: Inquiry) -> web.Response:
    status, rows = seed.vehicles(inquiry.identifier)
    return answer(CODE, inquiry, status, vehicles=rows)


def make_app(behaviour: Behaviour | None = None) -> web.Application:
    return rest_app(behaviour, {PATH: search})
