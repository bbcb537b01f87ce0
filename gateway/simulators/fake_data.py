"""Seeded, realistic fake Vietnamese data for simulators (never real people)."""

from __future__ import annotations

import base64
import random
import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

SURNAMES = ["Nguyễn", "Trần", "Lê", "Phạm", "Hoàng", "Huỳnh", "Phan", "Vũ", "Võ", "Đặng", "Bùi", "Đỗ"]
MIDDLE = ["Văn", "Thị", "Hữu", "Minh", "Thu", "Đức", "Ngọc", "Quang", "Thanh"]
GIVEN = ["An", "Bình", "Cường", "Dung", "Hà", "Hùng", "Lan", "Long", "Mai", "Nam", "Phương", "Tâm", "Tuấn"]
STREETS = ["phố Hàng Bài", "phố Trần Duy Hưng", "đường Láng", "phố Kim Mã", "đường Giải Phóng", "phố Huế"]
WARDS = ["phường Hoàn Kiếm", "phường Yên Hòa", "phường Láng", "phường Giảng Võ", "phường Bạch Mai"]
TINY_PDF = base64.b64encode(
    b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n2 0 obj<</Type/Pages/Kids[]/Count 0>>endobj\n"
    b"trailer<</Root 1 0 R>>\n%%EOF\n"
).decode()


def personal_id(rng: random.Random, born: date) -> str:
    """12 digits: province 001 (Hà Nội), century/sex digit, 2-digit year, 6 random digits."""
    century = 0 if born.year < 2000 else 2
    return f"001{century + rng.randint(0, 1)}{born.year % 100:02d}{rng.randint(0, 999999):06d}"


def person(rng: random.Random) -> dict[str, Any]:
    born = date(1950, 1, 1) + timedelta(days=rng.randint(0, 365 * 50))
    return {
        "id_number": personal_id(rng, born),
        "full_name": f"{rng.choice(SURNAMES)} {rng.choice(MIDDLE)} {rng.choice(GIVEN)}",
        "date_of_birth": born.isoformat(),
        "address": f"Số {rng.randint(1, 200)} {rng.choice(STREETS)}, {rng.choice(WARDS)}, thành phố Hà Nội",
    }


def judgment(rng: random.Random, sender: str, recipient: str, court_name: str) -> dict[str, Any]:
    """A complete, valid ``judgment.delivery`` push body."""
    decided = date(2026, 1, 1) + timedelta(days=rng.randint(0, 300))
    amount = rng.randint(10, 5000) * 1_000_000
    interim = rng.random() < 0.1
    return {
        "message_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
        "message_type": "judgment.delivery",
        "schema_version": "1",
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "sender": sender,
        "recipient": recipient,
        "priority": "urgent" if interim else "normal",
        "body": {
            "court": {"code": sender, "name": court_name},
            "judgment": {
                "number": f"{rng.randint(500000, 999999)}/2026/DS-ST",
                "date": decided.isoformat(),
                "effective_date": (decided + timedelta(days=30)).isoformat(),
                "type": "interim_measure" if interim else "judgment",
                "summary": f"Buộc bị đơn trả cho nguyên đơn số tiền {amount:,} đồng.".replace(",", "."),
            },
            "parties": [
                {"party_id": "P1", "role": "creditor", "person": person(rng)},
                {"party_id": "P2", "role": "debtor", "person": person(rng)},
            ],
            "items": [
                {
                    "kind": "pay_money",
                    "amount_vnd": amount,
                    "obligor": "P2",
                    "beneficiary": "P1",
                    "description": "Trả nợ theo bản án.",
                }
            ],
            "document": {
                "media_type": "application/pdf",
                "filename": "ban-an.pdf",
                "content_base64": TINY_PDF,
            },
        },
    }
