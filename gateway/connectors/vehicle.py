"""Vehicle registrations (police, REST)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from gateway.connectors.rest import RestConnector, as_list, pick

VEHICLE_FIELDS: Final = ("plate", "class", "make", "model", "registered_on")


class VehicleConnector(RestConnector):
    kind = "vehicle"
    path = "/api/v1/registrations/search"

    def rows(self, data: Mapping[str, Any]) -> list[dict[str, Any]]:
        return [pick(vehicle, VEHICLE_FIELDS) for vehicle in as_list(data, "vehicles")]
