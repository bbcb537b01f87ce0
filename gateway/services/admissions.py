"""Admission checks: rules that need stored state (a citizen's consent on record...), by the name a
:class:`~gateway.domain.doctypes.DocumentType` gives in ``admissions``. The service runs them inside
acceptance, after the pure rules, and refuses the document (422) with their violations."""

from __future__ import annotations

from collections.abc import Mapping

from gateway.services.documents import AdmissionCheck

ADMISSIONS: Mapping[str, AdmissionCheck] = {}
