"""The traffic police's vehicle register (REST): registered vehicles. Partner kind ``vehicle`` (a
police unit, kind ``police``, is another partner: ``police.py``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from gateway.connectors.rest import RestConnector, as_list, pick
from gateway.domain.doctypes import PartnerKind

VEHICLE_FIELDS: Final = ("plate", "class", "make", "model", "registered_on")


class VehicleConnector(RestConnector):
    kind = PartnerKind.VEHICLE_REGISTER
    path = "/api/v1/registrations/search"

    def rows(self, data: Mapping[str, Any]) -> list[dict[str, Any]]:
        return [pick(vehicle, VEHICLE_FIELDS) for vehicle in as_list(data, "vehicles")]
