"""The national population database: whether an identity is valid, and where the person lives (REST JSON).

Unless the match status is ``found``, ``identity_status`` and ``residence`` are null. Organisations are
``not_competent``: the database holds citizens only.
"""

from __future__ import annotations

from aiohttp import web

from gateway.simulators.partners import Inquiry, answer, rest_app, seed
from gateway.simulators.partners.behaviour import Behaviour

CODE = "POP-REG"
PATH = "/population/api/v1/citizens/verify"


async def verify(_request: web.Request, inquiry: Inquiry) -> web.Response:
    status, record = seed.population(inquiry.identifier)
    return answer(CODE, inquiry, status, **(record or {"identity_status": None, "residence": None}))


def make_app(behaviour: Behaviour | None = None) -> web.Application:
    return rest_app(behaviour, {PATH: verify})
