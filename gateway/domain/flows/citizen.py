"""The citizen document family (see docs/flows.md)."""

from __future__ import annotations

from gateway.domain.doctypes import DocumentType

TYPES: list[DocumentType] = []
