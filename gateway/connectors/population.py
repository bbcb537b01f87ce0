"""Population register (REST): is the identity valid, and where does the person live.

The canonical answer has one row when the person was found, none otherwise.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gateway.connectors.base import ConnectorError
from gateway.connectors.rest import RestConnector
from gateway.domain.doctypes import PartnerKind


class PopulationConnector(RestConnector):
    kind = PartnerKind.POPULATION_REGISTER
    path = "/api/v1/citizens/verify"

    def rows(self, data: Mapping[str, Any]) -> list[dict[str, Any]]:
        if data.get("match_status") != "found":
            return []
        residence = data.get("residence")
        if residence is None:
            residence = {}
        if not isinstance(residence, Mapping):
            raise ConnectorError("answer field 'residence' is not an object", retryable=False)
        row = {
            "identity_status": data.get("identity_status"),
            "permanent_address": residence.get("permanent_address"),
            "current_address": residence.get("current_address"),
        }
        # Missing values are left out so the schema names exactly what is missing.
        return [{key: value for key, value in row.items() if value is not None}]
