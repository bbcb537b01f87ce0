"""Police units (REST): protection requests and urgent assistance requests, answered at once or later.

Every document (``police.protection_request``, ``police.urgent_assistance``, ``document.revocation``)
goes whole to ``POST /api/v1/documents``, as every REST partner takes documents (see ``rest.py``):
``200`` with the answer body (``police.protection_answer``, ``police.assistance_ack``), or ``202
{"status": "processing"}`` and the police push their answer document to the gateway later, as a client.

A police unit is no source of asset lookups: it answers no inquiry. (The traffic police's vehicle
register is another partner kind: ``vehicle``.)
"""

from __future__ import annotations

from gateway.connectors.rest import RestConnector
from gateway.domain.doctypes import PartnerKind


class PoliceConnector(RestConnector):
    kind = PartnerKind.POLICE_UNIT
