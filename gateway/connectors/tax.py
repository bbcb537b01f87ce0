"""Tax authority (REST): income sources. Employers and businesses become one list of rows told apart
by ``income_type``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from gateway.connectors.rest import RestConnector, as_list, pick
from gateway.domain.doctypes import PartnerKind

EMPLOYER_FIELDS: Final = ("enterprise_code", "name", "since")
BUSINESS_FIELDS: Final = ("enterprise_code", "household_business_id", "name", "activity", "since")


class TaxConnector(RestConnector):
    kind = PartnerKind.TAX_AUTHORITY
    path = "/api/v1/income-sources/search"

    def rows(self, data: Mapping[str, Any]) -> list[dict[str, Any]]:
        employers = [
            {"income_type": "employer", **pick(item, EMPLOYER_FIELDS)} for item in as_list(data, "employers")
        ]
        businesses = [
            {"income_type": "business", **pick(item, BUSINESS_FIELDS)} for item in as_list(data, "businesses")
        ]
        return employers + businesses
