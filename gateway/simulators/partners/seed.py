"""Deterministic registry contents keyed by ID number or enterprise code (never real people).

Three IDs are fixed (docs/partners.md); any other is derived from its hash, so answers never change between
runs and :func:`expected` can tell tests what a connector must report. Field names are those of
docs/partners.md (land: snake_case of the XML elements).
"""

from __future__ import annotations

import hashlib
import random
import re
from collections.abc import Mapping
from datetime import date, timedelta
from typing import Any, Protocol

from gateway.domain.identifiers import is_personal_id
from gateway.simulators.fake_data import GIVEN, MIDDLE, SURNAMES

RICH = "001085012345"
EMPTY = "001090000000"
AMBIGUOUS = "001079000001"
BANKS = ("BANK-VCB", "BANK-BIDV", "BANK-CTG", "BANK-AGR", "BANK-TCB")
#: Banks that fetch their work from the gateway (pull mode): no server of theirs is called.
PULL_BANKS = ("BANK-VPB",)
KINDS = ("land", "bank", "tax", "vehicle", "population")

Row = dict[str, Any]
# The registries' own form check, looser than a valid personal ID (identifiers.is_personal_id): twelve
# digits in any province range are taken, and answered "not found".
_ID = re.compile(r"^[0-9]{12}$")
_ENTERPRISE = re.compile(r"^[0-9]{10}(-[0-9]{3})?$")


def _table(text: str) -> list[list[str]]:
    """Rows written compactly as ``a/b/c; d/e/f``."""
    return [item.strip().split("/") for item in text.split(";")]


HN_STREETS = _table(
    "phố Kim Mã/phường Giảng Võ; đường Láng/phường Láng; phố Trần Duy Hưng/phường Yên Hòa; phố Huế/"
    "phường Hai Bà Trưng; đường Giải Phóng/phường Bạch Mai; phố Tây Sơn/phường Đống Đa"
)
HCM_STREETS = _table(
    "đường Nguyễn Thị Minh Khai/phường Bến Thành; đường Điện Biên Phủ/phường Bình Thạnh; đường Cách Mạng "
    "Tháng Tám/phường Bàn Cờ; đường Lê Văn Sỹ/phường Phú Nhuận; đường Võ Văn Ngân/phường Thủ Đức"
)
COMPANIES = _table(
    "0101234567/Công ty Cổ phần Xây dựng Sông Hồng; 0102345678/Công ty TNHH Thương mại Hà Thành; "
    "0103456789/Công ty Cổ phần Dược phẩm Thăng Long; 0301234567/Công ty TNHH Vận tải Sài Gòn Xanh; "
    "0302345678/Công ty Cổ phần Thực phẩm Phương Nam; 0303456789/Công ty TNHH Phần mềm Bến Nghé"
)
VEHICLE_MODELS = {  # plate series, make, model
    "car": _table("30A/Toyota/Vios; 30G/Hyundai/Accent; 51K/Kia/Morning; 30A/Mazda/CX-5; 51H/VinFast/VF 8"),
    "motorcycle": _table("29B1/Honda/Wave Alpha; 29B1/Honda/Vision; 59X2/Yamaha/Exciter; 59X2/Honda/SH 125i"),
    "truck": _table("29C/Hino/300 Series; 29C/Isuzu/QKR; 51D/Thaco/Ollin 350"),
}
BANK_FORMATS = {  # account number prefix and length, branches
    "BANK-VCB": ("0011", 13, ["Chi nhánh Hà Nội", "Chi nhánh Thành Công", "Chi nhánh Hồ Chí Minh"]),
    "BANK-BIDV": ("125", 14, ["Chi nhánh Đông Đô", "Chi nhánh Hà Thành", "Chi nhánh Sài Gòn"]),
    "BANK-CTG": ("10", 12, ["Chi nhánh Hoàn Kiếm", "Chi nhánh Đống Đa", "Chi nhánh 1 TP. Hồ Chí Minh"]),
    "BANK-AGR": ("1500", 13, ["Chi nhánh Láng Hạ", "Chi nhánh Thủ Đô", "Chi nhánh Sài Gòn"]),
    "BANK-TCB": ("19", 14, ["Chi nhánh Hội sở", "Chi nhánh Thăng Long", "Chi nhánh Tân Định"]),
    "BANK-VPB": ("2", 9, ["Chi nhánh Hà Nội", "Chi nhánh Hoàn Kiếm", "Chi nhánh Sở giao dịch"]),
}
LENDERS = ["Ngân hàng TMCP Ngoại thương Việt Nam", "Ngân hàng TMCP Kỹ thương Việt Nam"]
ACTIVITIES = ["Bán lẻ thực phẩm", "Dịch vụ ăn uống", "Sửa chữa xe có động cơ", "Cho thuê nhà ở", "May mặc"]
WARD_CODES = ["00004", "00008", "00163", "00181", "26734", "26740", "27004"]  # Hà Nội and TP. HCM wards
CERTIFICATE_SERIES = ["CS", "CH", "CT", "BĐ", "BX", "DA"]


def _parcel(text: str, co_owners: list[str], encumbrances: list[str], pending: list[str]) -> Row:
    """``parcel_id|map_sheet|address|area_m2|certificate_number`` plus its three lists, as a row."""
    parcel_id, sheet, address, area, certificate = text.split("|")
    row: Row = {"parcel_id": parcel_id, "map_sheet": sheet, "address": address, "area_m2": float(area)}
    row["certificate_number"] = certificate
    return row | {"co_owners": co_owners, "encumbrances": encumbrances, "pending_transactions": pending}


def _account(text: str) -> Row:
    """``number/branch/currency/type/opened_on[/closed_on]`` as an account row."""
    number, branch, currency, kind, opened, *closed = text.split("/")
    row: Row = {"account_number": number, "branch": branch, "currency": currency, "type": kind}
    return row | {"opened_on": opened} | ({"closed_on": closed[0]} if closed else {})


RICH_PARCELS = [
    _parcel(
        "00181-12-0345|12|Số 18 ngõ 45 phố Kim Mã, phường Giảng Võ, thành phố Hà Nội|84.5|CS 01234",
        ["Trần Thị Mai"],
        ["Thế chấp tại Ngân hàng TMCP Đầu tư và Phát triển Việt Nam, HĐ số 125/2023/HĐTC"],
        [],
    ),
    _parcel(
        "26740-08-0072|8|Số 72 Nguyễn Thị Minh Khai, phường Bến Thành, Thành phố Hồ Chí Minh|120.0|CH 45678",
        [],
        [],
        ["Hồ sơ chuyển nhượng số 2026/0456 tiếp nhận ngày 03/02/2026, chưa giải quyết"],
    ),
]
RICH_ACCOUNTS = {
    "BANK-VCB": [
        _account("0011004123456/Chi nhánh Hà Nội/VND/current/2012-03-15"),
        _account("0011038765432/Chi nhánh Thành Công/VND/savings/2021-07-01"),
    ],
    "BANK-BIDV": [
        _account("12510000987654/Chi nhánh Đông Đô/VND/current/2016-09-20"),
        _account("12510001234567/Chi nhánh Đông Đô/VND/loan/2023-05-12"),
    ],
    "BANK-TCB": [
        _account("19034567891011/Chi nhánh Hội sở/VND/current/2019-01-08"),
        _account("19034567891029/Chi nhánh Hội sở/USD/term/2024-06-30/2025-06-30"),
    ],
}
# What the rich debtor's accounts hold (VND; foreign-currency accounts as their VND equivalent) and the
# rank of a seizure another agency made earlier, if any: a rich account, a small one (a block is partial),
# one already seized, an empty loan account and a closed one.
RICH_BALANCES: dict[str, tuple[int, int | None]] = {
    "0011004123456": (850_000_000, None),
    "0011038765432": (12_500_000, None),
    "12510000987654": (230_000_000, 1),
    "12510001234567": (0, None),
    "19034567891011": (150_000_000, None),
    "19034567891029": (0, None),
}
RICH_VEHICLE = {"plate": "30A-123.45", "class": "car", "make": "Toyota", "model": "Vios"}
RICH_EMPLOYER = {"enterprise_code": "0101234567", "name": COMPANIES[0][1], "since": "2015-04-01"}
RICH_RESIDENCE = {
    "permanent_address": "Số 18 ngõ 45 phố Kim Mã, phường Giảng Võ, thành phố Hà Nội",
    "current_address": "Số 9 phố Trần Duy Hưng, phường Yên Hòa, thành phố Hà Nội",
}


class HasAsDict(Protocol):
    def as_dict(self) -> dict[str, str]: ...


def is_well_formed(identifier: str) -> bool:
    return bool(_ID.match(identifier) or _ENTERPRISE.match(identifier))


def _holds(identifier: str) -> bool:
    """Whether registries hold anything at all: people with a province code 001..096, and enterprises."""
    if identifier in (EMPTY, AMBIGUOUS) or _rng(identifier, "wealth").random() < 1 / 3:
        return False  # about a third of everyone owns nothing anywhere
    return bool(_ENTERPRISE.match(identifier)) or is_personal_id(identifier)


def _rng(identifier: str, facet: str) -> random.Random:
    # One stream per (identifier, facet): what a bank holds never depends on which registry was asked first.
    digest = hashlib.sha256(f"{identifier}|{facet}".encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))  # noqa: S311 - fake data, not security


def _status(found: object) -> str:
    # A registry that holds nothing for a subject does not know it: "not_found", never "found" with no rows.
    return "found" if found else "not_found"


def _day(rng: random.Random, first: date, last: date = date(2025, 12, 31)) -> str:
    return (first + timedelta(days=rng.randint(0, (last - first).days))).isoformat()


def _name(rng: random.Random) -> str:
    return f"{rng.choice(SURNAMES)} {rng.choice(MIDDLE)} {rng.choice(GIVEN)}"


def _address(rng: random.Random, identifier: str) -> str:
    # People registered in TP. Hồ Chí Minh (province 079) mostly live there; most others in Hà Nội.
    hcm = identifier.startswith("079") or rng.random() < 0.3
    street, ward = rng.choice(HCM_STREETS if hcm else HN_STREETS)
    city = "Thành phố Hồ Chí Minh" if hcm else "thành phố Hà Nội"
    lane = f"ngõ {rng.randint(2, 180)} " if rng.random() < 0.4 else ""
    return f"Số {rng.randint(1, 250)} {lane}{street}, {ward}, {city}"


def land_parcels(identifier: str) -> tuple[str, list[Row]]:
    if identifier == RICH:
        return "found", [dict(p) for p in RICH_PARCELS]
    if identifier == AMBIGUOUS:
        return "ambiguous_identity", []
    if not _holds(identifier):
        return "not_found", []
    rng = _rng(identifier, "land")
    rows = []
    for _ in range(rng.choice((0, 1, 1, 2, 3))):
        sheet, number, area = rng.randint(1, 60), rng.randint(1, 900), rng.randint(300, 30000) / 10
        certificate = f"{rng.choice(CERTIFICATE_SERIES)} {rng.randint(0, 99999):05d}"
        text = f"{rng.choice(WARD_CODES)}-{sheet:02d}-{number:04d}|{sheet}|{_address(rng, identifier)}"
        co_owners = [_name(rng)] if rng.random() < 0.3 else []
        encumbrances = [f"Thế chấp tại {rng.choice(LENDERS)}"] if rng.random() < 0.25 else []
        pending = [f"Hồ sơ chuyển nhượng số {number}/2026, chưa giải quyết"] if rng.random() < 0.1 else []
        rows.append(_parcel(f"{text}|{area}|{certificate}", co_owners, encumbrances, pending))
    return _status(rows), rows


def bank_accounts(bank_code: str, identifier: str) -> tuple[str, list[Row]]:
    if bank_code not in BANKS + PULL_BANKS:
        raise ValueError(f"unknown bank {bank_code!r}")
    if identifier == RICH:
        rows = [dict(a) for a in RICH_ACCOUNTS.get(bank_code, [])]
        return _status(rows), rows
    if not _holds(identifier):
        return "not_found", []
    rng = _rng(identifier, bank_code)
    prefix, digits, branches = BANK_FORMATS[bank_code]
    rows = []
    for _ in range(rng.choice((0, 0, 1, 2))):
        number = prefix + "".join(str(rng.randint(0, 9)) for _ in range(digits - len(prefix)))
        currency = "USD" if rng.random() < 0.1 else "VND"
        kind = rng.choice(("current", "current", "savings", "term", "loan"))
        opened = _day(rng, date(2008, 1, 1))
        closed = ""
        if rng.random() < 0.15:
            closed = "/" + _day(rng, date.fromisoformat(opened) + timedelta(days=30), date(2026, 1, 31))
        rows.append(_account(f"{number}/{rng.choice(branches)}/{currency}/{kind}/{opened}{closed}"))
    return _status(rows), rows


def bank_balances(bank_code: str, identifier: str) -> list[Row]:
    """What each of :func:`bank_accounts`' accounts holds, for orders: ``account_number``, ``currency``,
    ``balance`` (VND, or the VND equivalent), ``closed`` and ``earlier_seizure_rank`` (``None`` unless
    another agency seized the account first). Deterministic, and drawn from streams of their own: the
    accounts themselves stay what lookups have always answered."""
    _, accounts = bank_accounts(bank_code, identifier)
    rows = []
    for account in accounts:
        number = account["account_number"]
        closed = "closed_on" in account
        rank: int | None = None
        if identifier == RICH:
            balance, rank = RICH_BALANCES.get(number, (0, None))
        elif closed or account["type"] == "loan":
            balance = 0  # nothing to block on a closed account or on a debt
        else:
            rng = _rng(identifier, f"{bank_code}|{number}|balance")
            draw = rng.random()
            if draw < 0.1:  # seized earlier by another agency
                balance, rank = rng.randint(1, 500) * 1_000_000, rng.randint(1, 3)
            elif draw < 0.25:
                balance = 0
            elif draw < 0.6:  # a small balance: blocking it is partial
                balance = rng.randint(1, 200) * 100_000
            else:
                balance = rng.randint(50, 2_000) * 1_000_000
        row: Row = {"account_number": number, "currency": account["currency"], "balance": balance}
        rows.append(row | {"closed": closed, "earlier_seizure_rank": rank})
    return rows


def income_sources(identifier: str) -> tuple[str, dict[str, list[Row]]]:
    if identifier == RICH:
        return "found", {"employers": [dict(RICH_EMPLOYER)], "businesses": []}
    if not _holds(identifier):
        return "not_found", {"employers": [], "businesses": []}
    rng = _rng(identifier, "tax")
    if _ENTERPRISE.match(identifier):
        # What the tax authority knows of an enterprise is its own registration as a business.
        business = {"enterprise_code": identifier, "name": rng.choice(COMPANIES)[1]}
        business |= {"activity": rng.choice(ACTIVITIES), "since": _day(rng, date(2005, 1, 1))}
        return "found", {"employers": [], "businesses": [business]}
    employers = [
        {"enterprise_code": code, "name": name, "since": _day(rng, date(2010, 1, 1))}
        for code, name in rng.sample(COMPANIES, rng.choice((0, 1, 1, 2)))
    ]
    businesses: list[Row] = []
    if rng.random() < 0.15:  # a household business, registered under its own number
        business = {"household_business_id": f"01A{rng.randint(0, 9999999):07d}"}
        business |= {"name": f"Hộ kinh doanh {_name(rng)}", "activity": rng.choice(ACTIVITIES)}
        businesses.append(business | {"since": _day(rng, date(2012, 1, 1))})
    return _status(employers or businesses), {"employers": employers, "businesses": businesses}


def vehicles(identifier: str) -> tuple[str, list[Row]]:
    if identifier == RICH:
        return "found", [RICH_VEHICLE | {"registered_on": "2019-11-02"}]
    if not _holds(identifier):
        return "not_found", []
    rng = _rng(identifier, "vehicle")
    rows = []
    for _ in range(rng.choice((0, 1, 1, 2))):
        vehicle_class = rng.choice(("car", "motorcycle", "motorcycle", "truck"))
        series, make, model = rng.choice(VEHICLE_MODELS[vehicle_class])
        plate = f"{series}-{rng.randint(100, 999)}.{rng.randint(0, 99):02d}"  # 30A-123.45, 29B1-234.56
        row = {"plate": plate, "class": vehicle_class, "make": make, "model": model}
        rows.append(row | {"registered_on": _day(rng, date(2010, 1, 1))})
    return _status(rows), rows


def population(identifier: str) -> tuple[str, Row | None]:
    if identifier == AMBIGUOUS:
        return "ambiguous_identity", None
    if _ENTERPRISE.match(identifier):
        return "not_competent", None  # the population database holds citizens only
    if identifier == RICH:
        return "found", {"identity_status": "valid", "residence": dict(RICH_RESIDENCE)}
    if not is_personal_id(identifier):
        return "not_found", None
    rng = _rng(identifier, "population")
    draw = rng.random()
    status = "valid" if identifier == EMPTY or draw >= 0.05 else ("deceased" if draw < 0.03 else "revoked")
    permanent = _address(rng, identifier)
    current = permanent if rng.random() < 0.6 else _address(rng, identifier)
    return "found", {
        "identity_status": status,
        "residence": {"permanent_address": permanent, "current_address": current},
    }


def subject_key(subject: Mapping[str, Any] | HasAsDict | str) -> str:
    """The identifier a registry looks a subject up by: its ID number, else its enterprise code."""
    if isinstance(subject, str):
        return subject
    fields = subject if isinstance(subject, Mapping) else subject.as_dict()
    key = fields.get("id_number") or fields.get("enterprise_code")
    if not isinstance(key, str):
        raise ValueError("a subject needs an id_number or an enterprise_code")
    return key


def expected(kind: str, partner_code: str, subject: Mapping[str, Any] | HasAsDict | str) -> dict[str, Any]:
    """The partner's answer for ``subject`` without its per-call fields (reference, as_of, request_ref).

    land → {match_status, parcels}; bank → {match_status, accounts}; tax → {match_status, employers,
    businesses}; vehicle → {match_status, vehicles}; population → {match_status, identity_status,
    residence} (both None unless found). ``partner_code`` only matters for banks (``BANK-VCB``…).
    """
    key = subject_key(subject)
    if kind == "tax":
        status, sources = income_sources(key)
        return {"match_status": status, **sources}
    if kind == "population":
        status, record = population(key)
        return {"match_status": status, **(record or {"identity_status": None, "residence": None})}
    if kind == "land":
        status, rows = land_parcels(key)
        return {"match_status": status, "parcels": rows}
    if kind == "bank":
        status, rows = bank_accounts(partner_code, key)
        return {"match_status": status, "accounts": rows}
    if kind == "vehicle":
        status, rows = vehicles(key)
        return {"match_status": status, "vehicles": rows}
    raise ValueError(f"unknown partner kind {kind!r}")
