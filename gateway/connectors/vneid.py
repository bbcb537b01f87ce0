"""The national e-ID notification service (VNeID, REST): citizen notices.

A ``notice.citizen`` goes whole to ``POST {endpoint}/api/v1/notices``, as every REST partner takes
documents (see ``rest.py``): the service sends each message_id to the person's app once. It answers
every notice later (``202 {"status": "processing", "reference"?}``, or ``200`` when it had it already):
what became of the notice (delivered, read, failed) comes as ``notice.delivery_status`` documents it
pushes to ``POST /v1/documents`` with its own token. It answers no asset lookup.
"""

from __future__ import annotations

from gateway.connectors.rest import RestConnector
from gateway.domain.doctypes import PartnerKind


class VneidConnector(RestConnector):
    kind = PartnerKind.VNEID
    documents_path = "/api/v1/notices"
    answers_later = True
