"""Asset-inquiry rules: source selection, grants, preconditions, overall status, audit categories."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from gateway.domain.inquiry import (
    SOURCE_KINDS,
    InquiryStatus,
    PartnerRef,
    SourceRef,
    SourceStatus,
    expand_sources,
    is_urgent,
    kind_of,
    overall_status,
    precondition_violations,
    required_grants,
    result_categories,
    source_id,
)
from gateway.validation import catalog

PARTNERS = [
    PartnerRef("LAND-REG", "land"),
    PartnerRef("BANK-VCB", "bank"),
    PartnerRef("BANK-BIDV", "bank"),
    PartnerRef("BANK-TCB", "bank"),
    PartnerRef("TAX", "tax"),
    PartnerRef("POLICE-VEH", "vehicle"),
    PartnerRef("POP-REG", "population"),
]
LEGAL_BASES = {"LTHADS-44", "TTLT-02-2014", "LTHADS-66"}

REQUEST: dict[str, Any] = {
    "debtor": {"id_number": "001085012345", "full_name": "Nguyễn Văn An", "date_of_birth": "1985-03-02"},
    "case_ref": "THA-HN-2026-000123",
    "officer_id": "001080000001",
    "legal_basis": "LTHADS-44",
    "title": {
        "judgment": {"court_code": "TAND-HN", "number": "123/2025/DS-PT", "date": "2025-11-14"},
        "enforcement_decision": {"number": "152/QĐ-THADS", "date": "2026-01-08"},
    },
    "purpose": "Verify enforcement conditions",
    "priority": "normal",
    "preconditions": {"enforceable_title": True, "voluntary_period_expired": True, "data_necessary": True},
    "sources": ["land", "bank", "tax", "vehicle", "population"],
}


def request(**changes: Any) -> dict[str, Any]:
    doc = copy.deepcopy(REQUEST)
    doc.update(changes)
    return doc


def ids(refs: list[SourceRef]) -> list[str]:
    return [r.source_id for r in refs]


# --- the request schema ---------------------------------------------------------------------------


def test_the_plain_request_body_is_valid() -> None:
    assert catalog().violations("asset.inquiry", REQUEST) == []


def test_result_schemas_exist_for_every_kind() -> None:
    types = set(catalog().message_types())
    assert {f"asset.result.{kind}" for kind in SOURCE_KINDS} <= types


@pytest.mark.parametrize(
    ("kind", "rows"),
    [
        (
            "land",
            [
                {
                    "parcel_id": "P-1",
                    "map_sheet": "12",
                    "address": "Số 1 phố Huế, Hà Nội",
                    "area_m2": 85.5,
                    "certificate_number": "CS 012345",
                    "co_owners": ["Trần Thị Bình"],
                }
            ],
        ),
        (
            "bank",
            [
                {
                    "account_number": "0011004567890",
                    "branch": "Hà Nội",
                    "currency": "VND",
                    "type": "current",
                    "opened_on": "2015-06-01",
                }
            ],
        ),
        (
            "tax",
            [
                {
                    "income_type": "employer",
                    "enterprise_code": "0101234567",
                    "name": "Công ty A",
                    "since": "2020-01-01",
                },
                {
                    "income_type": "business",
                    "household_business_id": "HKD-01",
                    "name": "Hộ kinh doanh B",
                    "activity": "Bán lẻ",
                    "since": "2021-05-01",
                },
            ],
        ),
        (
            "vehicle",
            [
                {
                    "plate": "30A-123.45",
                    "class": "car",
                    "make": "Toyota",
                    "model": "Vios",
                    "registered_on": "2019-04-10",
                }
            ],
        ),
        (
            "population",
            [{"identity_status": "valid", "permanent_address": "Hà Nội", "current_address": "Hà Nội"}],
        ),
    ],
)
def test_canonical_answers_validate(kind: str, rows: list[dict[str, Any]]) -> None:
    answer = {"match_status": "found", "as_of": "2026-03-02T10:00:00+07:00", "reference": "R-1", "rows": rows}
    assert catalog().violations(f"asset.result.{kind}", answer) == []
    empty = {**answer, "match_status": "not_found", "rows": []}
    assert catalog().violations(f"asset.result.{kind}", empty) == []
    contradictory = {**answer, "match_status": "not_found"}
    assert catalog().violations(f"asset.result.{kind}", contradictory)


def test_population_answers_have_at_most_one_row() -> None:
    row = {"identity_status": "valid"}
    answer = {
        "match_status": "found",
        "as_of": "2026-03-02T10:00:00+07:00",
        "reference": "R",
        "rows": [row, row],
    }
    assert [v.path for v in catalog().violations("asset.result.population", answer)] == ["$.rows"]


# --- expand_sources -------------------------------------------------------------------------------


def test_every_kind_with_bank_meaning_every_bank() -> None:
    sources, violations = expand_sources(REQUEST["sources"], PARTNERS)
    assert violations == []
    assert ids(sources) == [
        "land",
        "bank:BANK-VCB",
        "bank:BANK-BIDV",
        "bank:BANK-TCB",
        "tax",
        "vehicle",
        "population",
    ]
    assert SourceRef("bank:BANK-TCB", "BANK-TCB", "bank") in sources
    assert SourceRef("land", "LAND-REG", "land") in sources


def test_all_reaches_every_configured_source() -> None:
    sources, violations = expand_sources("all", PARTNERS)
    assert violations == []
    assert sorted(ids(sources)) == sorted(
        ["land", "bank:BANK-VCB", "bank:BANK-BIDV", "bank:BANK-TCB", "tax", "vehicle", "population"]
    )


def test_all_skips_kinds_without_a_partner() -> None:
    sources, violations = expand_sources("all", [PartnerRef("BANK-VCB", "bank"), PartnerRef("TAX", "tax")])
    assert violations == []
    assert ids(sources) == ["bank:BANK-VCB", "tax"]


def test_a_list_of_banks() -> None:
    sources, violations = expand_sources([{"bank": ["BANK-TCB", "BANK-VCB"]}, "tax"], PARTNERS)
    assert violations == []
    assert ids(sources) == ["bank:BANK-TCB", "bank:BANK-VCB", "tax"]
    assert {s.partner_code for s in sources} == {"BANK-TCB", "BANK-VCB", "TAX"}


def test_overlapping_selections_give_each_source_once() -> None:
    sources, violations = expand_sources([{"bank": ["BANK-VCB"]}, "bank", "land", "land"], PARTNERS)
    assert violations == []
    assert ids(sources) == ["bank:BANK-VCB", "bank:BANK-BIDV", "bank:BANK-TCB", "land"]


def test_unknown_kinds_and_codes_are_located() -> None:
    requested: list[Any] = [
        "land",
        {"bank": ["BANK-VCB", "BANK-XYZ", "TAX"]},
        "securities",
        {"land": ["LAND-REG"]},
        {"bank": []},
        "all",
    ]
    sources, violations = expand_sources(requested, PARTNERS)
    assert ids(sources) == ["land", "bank:BANK-VCB"]
    assert [(v.path, v.rule) for v in violations] == [
        ("$.sources[1].bank[1]", "partner"),
        ("$.sources[1].bank[2]", "partner"),
        ("$.sources[2]", "enum"),
        ("$.sources[3]", "type"),
        ("$.sources[4].bank", "minItems"),
        ("$.sources[5]", "enum"),
    ]
    assert "not a bank" in violations[1].message


def test_a_kind_without_a_configured_partner() -> None:
    sources, violations = expand_sources(["land", "vehicle"], [PartnerRef("LAND-REG", "land")])
    assert ids(sources) == ["land"]
    assert [(v.path, v.rule) for v in violations] == [("$.sources[1]", "partner")]


def test_a_string_other_than_all() -> None:
    sources, violations = expand_sources("everything", PARTNERS)
    assert sources == []
    assert [v.path for v in violations] == ["$.sources"]


def test_source_ids() -> None:
    assert source_id("bank", "BANK-VCB") == "bank:BANK-VCB"
    assert source_id("land", "LAND-REG") == "land"
    assert kind_of("bank:BANK-VCB") == "bank"
    assert kind_of("population") == "population"


# --- grants -----------------------------------------------------------------------------------------


def test_required_grants_name_each_kind_once() -> None:
    sources, _ = expand_sources("all", PARTNERS)
    assert required_grants(sources) == {f"assets.inquire:{kind}" for kind in SOURCE_KINDS}
    banks, _ = expand_sources(["bank"], PARTNERS)
    assert required_grants(banks) == {"assets.inquire:bank"}
    assert required_grants([]) == set()


# --- preconditions ---------------------------------------------------------------------------------


def test_a_complete_request_has_no_violations() -> None:
    assert precondition_violations(REQUEST, LEGAL_BASES) == []


@pytest.mark.parametrize("field", ["enforceable_title", "voluntary_period_expired", "data_necessary"])
def test_each_precondition_must_hold(field: str) -> None:
    doc = request()
    doc["preconditions"][field] = False
    violations = precondition_violations(doc, LEGAL_BASES)
    assert [(v.path, v.rule) for v in violations] == [(f"$.preconditions.{field}", "precondition")]


def test_an_urgent_interim_measure_need_not_wait_for_the_voluntary_period() -> None:
    doc = request(priority="urgent", interim_measure=True)
    doc["preconditions"]["voluntary_period_expired"] = False
    assert precondition_violations(doc, LEGAL_BASES) == []
    assert is_urgent(doc)


@pytest.mark.parametrize(
    "changes",
    [{"priority": "urgent"}, {"interim_measure": True}, {"priority": "urgent", "interim_measure": False}],
)
def test_otherwise_the_voluntary_period_must_have_expired(changes: dict[str, Any]) -> None:
    doc = request(**changes)
    doc["preconditions"]["voluntary_period_expired"] = False
    assert [v.path for v in precondition_violations(doc, LEGAL_BASES)] == [
        "$.preconditions.voluntary_period_expired"
    ]


def test_an_interim_measure_is_urgent() -> None:
    assert is_urgent(request(interim_measure=True))
    assert is_urgent(request(priority="urgent"))
    assert not is_urgent(request())
    assert not is_urgent(request(interim_measure=False))


def test_the_legal_basis_must_be_in_the_code_list() -> None:
    violations = precondition_violations(request(legal_basis="BLDS-2015"), LEGAL_BASES)
    assert [(v.path, v.rule) for v in violations] == [("$.legal_basis", "legal_basis")]
    assert "LTHADS-44" in violations[0].message
    assert precondition_violations(request(legal_basis="TTLT-02-2014"), LEGAL_BASES) == []


@pytest.mark.parametrize("field", ["case_ref", "officer_id", "legal_basis"])
def test_case_officer_and_basis_are_required(field: str) -> None:
    doc = request()
    del doc[field]
    assert [(v.path, v.rule) for v in precondition_violations(doc, LEGAL_BASES)] == [
        (f"$.{field}", "required")
    ]
    doc[field] = ""
    assert [v.path for v in precondition_violations(doc, LEGAL_BASES)] == [f"$.{field}"]


def test_truthy_values_are_not_true() -> None:
    doc = request()
    doc["preconditions"]["data_necessary"] = "yes"
    assert [v.path for v in precondition_violations(doc, LEGAL_BASES)] == ["$.preconditions.data_necessary"]


def test_missing_preconditions() -> None:
    doc = request()
    del doc["preconditions"]
    assert [(v.path, v.rule) for v in precondition_violations(doc, LEGAL_BASES)] == [
        ("$.preconditions", "required")
    ]


# --- overall status ----------------------------------------------------------------------------------

DUE = datetime(2026, 3, 5, 10, 0, tzinfo=UTC)
BEFORE = DUE - timedelta(minutes=1)
AFTER = DUE + timedelta(minutes=1)
S = SourceStatus
Q = InquiryStatus


@pytest.mark.parametrize(
    ("statuses", "now", "expected"),
    [
        ([S.PENDING], BEFORE, Q.PENDING),
        ([S.PENDING, S.PENDING], BEFORE, Q.PENDING),
        ([S.FOUND, S.PENDING], BEFORE, Q.PARTIAL),
        ([S.NOT_FOUND, S.PENDING], BEFORE, Q.PARTIAL),
        ([S.UNAVAILABLE, S.PENDING], BEFORE, Q.PARTIAL),
        ([S.TIMEOUT, S.PENDING], BEFORE, Q.PARTIAL),
        ([S.FOUND], BEFORE, Q.COMPLETE),
        ([S.FOUND, S.NOT_FOUND], BEFORE, Q.COMPLETE),
        ([S.FOUND, S.UNAVAILABLE, S.ERROR, S.REJECTED], BEFORE, Q.COMPLETE),
        ([S.FOUND, S.NOT_FOUND], AFTER, Q.COMPLETE),
        ([S.ERROR], AFTER, Q.COMPLETE),
        ([S.FOUND, S.TIMEOUT], BEFORE, Q.EXPIRED),
        ([S.FOUND, S.TIMEOUT], AFTER, Q.EXPIRED),
        ([S.TIMEOUT, S.TIMEOUT], AFTER, Q.EXPIRED),
        ([S.PENDING], AFTER, Q.EXPIRED),
        ([S.FOUND, S.PENDING], AFTER, Q.EXPIRED),
        ([S.FOUND, S.PENDING], DUE, Q.EXPIRED),
    ],
)
def test_overall_status(statuses: list[SourceStatus], now: datetime, expected: InquiryStatus) -> None:
    assert overall_status(statuses, now, DUE) is expected


def test_overall_status_accepts_stored_strings() -> None:
    assert overall_status([SourceStatus("found"), SourceStatus("pending")], BEFORE, DUE) == "partial"


def test_an_inquiry_has_sources() -> None:
    with pytest.raises(ValueError):
        overall_status([], BEFORE, DUE)


# --- audit categories --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "rows", "expected"),
    [
        ("bank:BANK-VCB", [{"account_number": "0011004567890"}], ["bank_accounts"]),
        ("land", [{"parcel_id": "P-1"}, {"parcel_id": "P-2"}], ["land_parcels"]),
        ("vehicle", [{"plate": "30A-123.45"}], ["vehicles"]),
        ("tax", [{"income_type": "employer"}], ["income_sources"]),
        (
            "population",
            [{"identity_status": "valid", "permanent_address": "Hà Nội", "current_address": "Hà Nội"}],
            ["identity", "residence"],
        ),
        ("population", [{"identity_status": "deceased"}], ["identity"]),
        ("population", [{"current_address": "Hà Nội"}], ["residence"]),
        ("bank:BANK-VCB", [], []),
        ("population", [], []),
    ],
)
def test_result_categories(source: str, rows: list[dict[str, Any]], expected: list[str]) -> None:
    assert result_categories(source, rows) == expected


def test_categories_never_carry_data() -> None:
    rows = [{"account_number": "0011004567890", "branch": "Hà Nội", "currency": "VND"}]
    categories = result_categories("bank:BANK-VCB", rows)
    assert not any(value in category for category in categories for value in rows[0].values())


def test_categories_of_an_unknown_kind() -> None:
    with pytest.raises(ValueError):
        result_categories("securities", [{"x": 1}])
