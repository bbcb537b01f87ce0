"""zeep with types, for the tests that read our WSDL as a client would: zeep ships ``py.typed`` but
leaves these calls unannotated, so strict mypy refuses them anywhere else."""

from __future__ import annotations

from typing import Any

import zeep
from zeep.helpers import serialize_object
from zeep.wsdl.definitions import Binding


def client(wsdl: str, settings: zeep.Settings | None = None) -> zeep.Client:
    return zeep.Client(wsdl, settings=settings)  # type: ignore[no-untyped-call]


def operation(binding: Binding, name: str) -> Any:
    """The binding's operation ``name`` (a ``SoapOperation`` for our WSDLs)."""
    return binding.get(name)  # type: ignore[no-untyped-call]


def element(client: zeep.Client, name: str) -> Any:
    """The schema element ``name`` (a ``zeep.xsd.Element``)."""
    return client.get_element(name)  # type: ignore[no-untyped-call]


def as_dict(value: Any) -> dict[str, Any]:
    """A zeep answer as plain dicts and lists."""
    data: dict[str, Any] = serialize_object(value, dict)  # type: ignore[no-untyped-call]
    return data
