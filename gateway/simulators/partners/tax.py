"""The tax authority: a debtor's employers and registered businesses (REST JSON)."""

from __future__ import annotations

from aiohttp import web

from gateway.simulators.partners import Inquiry, answer, rest_app, seed
from gateway.simulators.partners.behaviour import Behaviour

CODE = "TAX"
PATH = "/tax/api/v1/income-sources/search"


async def search(_request: web.Request, inquiry: Inquiry) -> web.Response:
    status, sources = seed.income_sources(inquiry.identifier)
    return answer(CODE, inquiry, status, **sources)


def make_app(behaviour: Behaviour | None = None) -> web.Application:
    return rest_app(behaviour, {PATH: search})
