"""A broken rule in a submitted document: the domain's error, mapped to problem+json by the web layer."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Violation:
    """One broken rule in a submitted document, located by RFC 9535 JSON path."""

    path: str
    message: str
    rule: str = ""

    def as_dict(self) -> dict[str, str]:
        out = {"path": self.path, "message": self.message}
        if self.rule:
            out["rule"] = self.rule
        return out
