"""The courts' SOAP messages without a server: safe parsing, XSD errors, mapping, receipts and faults."""

from __future__ import annotations

import copy
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import zeep
from lxml import etree

from gateway.problems import Violation, invalid, unauthorized, unavailable
from gateway.soap import COURTS_NS, SOAP_ENV, EnvelopeError, body_payload, faults
from gateway.soap.courts_mapping import REQUEST, RESPONSE, receipt_to_xml, xml_to_message, xsd_violations
from gateway.soap.xml_safety import XmlRejected, parse_untrusted
from gateway.validation import catalog
from tests.support import zeep_typed
from tests.support.elements import child, child_text

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "tests" / "data" / "soap" / "push-judgment.xml"
WSDL = ROOT / "gateway" / "soap" / "courts.wsdl"
C = f"{{{COURTS_NS}}}"

RECEIPT = {
    "receipt_id": "5e0c8f7a-1b2c-4d3e-8f9a-0b1c2d3e4f5a",
    "message_id": "3f6c2a1e-8b7d-4c5e-9a0f-1d2e3b4c5a6f",
    "received_at": "2026-03-16T02:15:01.123456Z",
    "sha256": "a" * 64,
    "sender": "TAND-HN",
    "recipient": "THADS-HN",
    "key_id": "gw-2026-01",
    "alg": "EdDSA",
    "signed_fields": ["receipt_id", "message_id", "received_at", "sha256", "sender", "recipient", "key_id"],
    "signature": "c2lnbmF0dXJl",
}


def sample_payload() -> etree._Element:
    return body_payload(parse_untrusted(SAMPLE.read_bytes()))


@pytest.fixture(scope="module")
def client() -> zeep.Client:
    return zeep_typed.client(str(WSDL), settings=zeep.Settings(strict=True, forbid_external=True))


def operation(client: zeep.Client) -> Any:
    (binding,) = client.wsdl.bindings.values()
    return binding, zeep_typed.operation(binding, "PushJudgment")


def reply(body: bytes, status: int = 200) -> SimpleNamespace:
    """What zeep's transport hands its binding: enough of a ``requests.Response``."""
    return SimpleNamespace(
        status_code=status,
        content=body,
        headers={"Content-Type": "text/xml; charset=utf-8"},
        encoding="utf-8",
    )


# ---------------------------------------------------------------------------------------- mapping


def test_sample_request_maps_to_a_valid_canonical_message() -> None:
    payload = sample_payload()
    assert payload.tag == REQUEST
    assert xsd_violations(payload) == []
    doc = xml_to_message(payload)
    assert catalog().violations("judgment.delivery", doc) == []
    assert doc["message_type"] == "judgment.delivery" and doc["schema_version"] == "1"
    assert doc["sender"] == doc["body"]["court"]["code"] == "TAND-HN"
    assert doc["created_at"] == "2026-03-16T09:15:00+07:00"
    party, org = doc["body"]["parties"]
    assert party["person"]["full_name"] == "Nguyễn Thị Lan" and "organisation" not in party
    assert org["organisation"]["enterprise_code"] == "0101234567" and "person" not in org
    amounts = [item["amount_vnd"] for item in doc["body"]["items"]]
    assert amounts == [1250000000, 53500000] and all(type(a) is int for a in amounts)
    # The wrapped base64 comes out as one line, and decodes to the PDF.
    assert doc["body"]["document"]["content_base64"].startswith("JVBERi0")
    assert "\n" not in doc["body"]["document"]["content_base64"]


def test_absent_optionals_are_omitted_and_typed_values_trimmed() -> None:
    payload = sample_payload()
    for name in ("CorrelationId", "Priority"):
        payload.remove(child(payload, C + name))
    document = child(payload, f"{C}Body/{C}Document")
    document.remove(child(document, C + "Filename"))
    item = child(payload, f"{C}Body/{C}Items/{C}Item[2]")
    child(item, C + "Kind").text = "perform_act"
    item.remove(child(item, C + "AmountVnd"))
    child(payload, f"{C}Body/{C}Items/{C}Item/{C}AmountVnd").text = "\n  +0001250000000 "
    child(payload, f"{C}Body/{C}Judgment/{C}Date").text = " 2026-02-10\n"
    assert xsd_violations(payload) == []
    doc = xml_to_message(payload)
    assert "correlation_id" not in doc and "priority" not in doc
    assert "filename" not in doc["body"]["document"]
    assert "amount_vnd" not in doc["body"]["items"][1]
    assert doc["body"]["items"][0]["amount_vnd"] == 1250000000
    assert doc["body"]["judgment"]["date"] == "2026-02-10"
    assert catalog().violations("judgment.delivery", doc) == []


def test_business_rules_are_left_to_the_json_schema() -> None:
    payload = sample_payload()
    child(payload, f"{C}Body/{C}Judgment/{C}Type").text = "judgement"
    child(payload, f"{C}Body/{C}Parties/{C}Party/{C}Person/{C}IdNumber").text = "12345"
    assert xsd_violations(payload) == []
    paths = {v.path for v in catalog().violations("judgment.delivery", xml_to_message(payload))}
    assert "$.body.judgment.type" in paths
    assert any(p.startswith("$.body.parties[0].person") for p in paths)


def test_mapping_refuses_a_foreign_element() -> None:
    with pytest.raises(ValueError):
        xml_to_message(etree.Element(f"{C}PushJudgmentResponse"))


# ---------------------------------------------------------------------------------------- XSD


def test_xsd_errors_are_all_collected_with_their_location() -> None:
    payload = sample_payload()
    child(payload, C + "CreatedAt").text = "yesterday"
    child(payload, f"{C}Body/{C}Judgment/{C}Date").text = "2026-02-30"
    child(payload, f"{C}Body/{C}Items/{C}Item[2]/{C}AmountVnd").text = "12.5"
    child(payload, f"{C}Body/{C}Parties/{C}Party[2]/{C}Organisation").append(etree.Element(C + "Bogus"))
    judgment = child(payload, f"{C}Body/{C}Judgment")
    judgment.remove(child(judgment, C + "Summary"))
    violations = xsd_violations(payload)
    by_path = {v.path: v.message for v in violations}
    assert by_path["/PushJudgmentRequest/CreatedAt"] == "is not a valid xs:dateTime"
    assert by_path["/PushJudgmentRequest/Body/Judgment/Date"] == "is not a valid xs:date"
    assert "/PushJudgmentRequest/Body/Items/Item[2]/AmountVnd" in by_path
    assert "Bogus" in by_path["/PushJudgmentRequest/Body/Parties/Party[2]/Organisation"]
    # A missing element is located at its own path, as a missing JSON member is.
    assert "Summary" in by_path["/PushJudgmentRequest/Body/Judgment/Summary"]
    # One violation per bad value (not one per failed facet), no namespace noise, all marked as XSD.
    assert len(violations) == 5
    assert all("{" not in v.message and "tns:" not in v.message for v in violations)
    assert {v.rule for v in violations} == {"xsd"}


def test_an_absurdly_long_amount_is_an_xsd_error_not_a_crash() -> None:
    payload = sample_payload()
    child(payload, f"{C}Body/{C}Items/{C}Item/{C}AmountVnd").text = "9" * 5000
    assert [v.path for v in xsd_violations(payload)] == ["/PushJudgmentRequest/Body/Items/Item[1]/AmountVnd"]


def test_person_and_organisation_together_is_an_xsd_error() -> None:
    payload = sample_payload()
    party = child(payload, f"{C}Body/{C}Parties/{C}Party")
    party.append(copy.deepcopy(child(payload, f"{C}Body/{C}Parties/{C}Party[2]/{C}Organisation")))
    assert any(v.path.endswith("/Party[1]") for v in xsd_violations(payload))


# ---------------------------------------------------------------------------------------- safety

BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
]>
<lolz>&lol4;</lolz>"""
EXTERNAL_ENTITY = b"""<?xml version="1.0"?>
<!DOCTYPE foo [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body>&xxe;</soap:Body></soap:Envelope>"""
EXTERNAL_DTD = b"""<?xml version="1.0"?>
<!DOCTYPE foo SYSTEM "http://127.0.0.1:9/evil.dtd"><foo/>"""
PARAMETER_ENTITY = b"""<?xml version="1.0"?>
<!DOCTYPE foo [<!ENTITY % remote SYSTEM "http://127.0.0.1:9/x"> %remote;]><foo/>"""
BARE_DOCTYPE = b"<!DOCTYPE foo><foo/>"
ENTITY_ONLY = b'<foo><!ENTITY x "y"></foo>'


@pytest.mark.parametrize(
    "data",
    [
        BILLION_LAUGHS,
        EXTERNAL_ENTITY,
        EXTERNAL_DTD,
        PARAMETER_ENTITY,
        BARE_DOCTYPE,
        ENTITY_ONLY,
        # The same attack in encodings a byte search for "<!DOCTYPE" would miss.
        BILLION_LAUGHS.replace(b'version="1.0"?>', b'version="1.0" encoding="UTF-16"?>')
        .decode()
        .encode("utf-16"),
        EXTERNAL_ENTITY.replace(b'version="1.0"?>', b'version="1.0" encoding="UTF-32"?>')
        .decode()
        .encode("utf-32"),
    ],
    ids=[
        "billion-laughs",
        "xxe",
        "external-dtd",
        "parameter-entity",
        "doctype",
        "entity",
        "utf-16",
        "utf-32",
    ],
)
def test_dtds_and_entities_are_refused(data: bytes) -> None:
    with pytest.raises(XmlRejected) as caught:
        parse_untrusted(data)
    assert caught.value.reason == "forbidden"


@pytest.mark.parametrize("data", [b"", b"  \n", b"<a>", b"<a>&undeclared;</a>", b"not xml"])
def test_malformed_xml_is_refused(data: bytes) -> None:
    with pytest.raises(XmlRejected) as caught:
        parse_untrusted(data)
    assert caught.value.reason == "malformed"


def test_comments_do_not_cut_values_short() -> None:
    root = parse_untrusted(b"<a><b>Nguy\xe1\xbb\x85n <!-- x -->V\xc4\x83n A<?pi x?></b></a>")
    assert root[0].text == "Nguyễn Văn A"


# ---------------------------------------------------------------------------------------- envelope

ENV = f'<soap:Envelope xmlns:soap="{SOAP_ENV}">{{}}</soap:Envelope>'


@pytest.mark.parametrize(
    ("xml", "code"),
    [
        (
            '<e:Envelope xmlns:e="http://www.w3.org/2003/05/soap-envelope"><e:Body><x/></e:Body></e:Envelope>',
            "VersionMismatch",
        ),
        ('<e:Envelope xmlns:e="urn:other"><e:Body><x/></e:Body></e:Envelope>', "VersionMismatch"),
        ("<PushJudgmentRequest/>", "Client"),
        (ENV.format("<soap:Body/>"), "Client"),
        (ENV.format("<soap:Body><a/><b/></soap:Body>"), "Client"),
        (ENV.format("<soap:Body><a/></soap:Body><soap:Body><a/></soap:Body>"), "Client"),
        (
            ENV.format(
                '<soap:Header><w:Security xmlns:w="urn:x" soap:mustUnderstand="1"/></soap:Header>'
                "<soap:Body><a/></soap:Body>"
            ),
            "MustUnderstand",
        ),
    ],
)
def test_envelope_errors_carry_their_soap_code(xml: str, code: str) -> None:
    with pytest.raises(EnvelopeError) as caught:
        body_payload(parse_untrusted(xml.encode()))
    assert caught.value.code == code


def test_optional_header_blocks_are_ignored() -> None:
    xml = ENV.format(
        '<soap:Header><w:Trace xmlns:w="urn:x">1</w:Trace></soap:Header><soap:Body><a/></soap:Body>'
    )
    assert body_payload(parse_untrusted(xml.encode())).tag == "a"


# ---------------------------------------------------------------------------------------- WSDL / zeep


def test_wsdl_declares_push_judgment_with_our_elements(client: zeep.Client) -> None:
    _binding, op = operation(client)
    assert op.soapaction == f"{COURTS_NS}#PushJudgment"
    assert op.input.body.qname == etree.QName(REQUEST)
    assert op.output.body.qname == etree.QName(RESPONSE)
    assert zeep_typed.element(client, f"{C}GatewayFault") is not None


def test_zeep_reads_the_sample_request_with_our_schema(client: zeep.Client) -> None:
    parsed = zeep_typed.element(client, REQUEST).parse(sample_payload(), client.wsdl.types)
    assert parsed.Body.Items.Item[0].AmountVnd == 1250000000
    assert parsed.Body.Parties.Party[1].Organisation.EnterpriseCode == "0101234567"


@pytest.mark.parametrize("duplicate", [False, True])
def test_receipt_envelope_is_what_a_zeep_client_expects(client: zeep.Client, duplicate: bool) -> None:
    body = receipt_to_xml(RECEIPT, duplicate)
    binding, op = operation(client)
    result = binding.process_reply(client, op, reply(body))
    assert result.ReceiptId == RECEIPT["receipt_id"]
    assert result.MessageId == RECEIPT["message_id"]
    assert result.ReceivedAt.isoformat() == "2026-03-16T02:15:01.123456+00:00"
    assert (result.Sha256, result.Sender, result.Recipient) == ("a" * 64, "TAND-HN", "THADS-HN")
    assert (result.KeyId, result.Alg, result.Signature) == ("gw-2026-01", "EdDSA", "c2lnbmF0dXJl")
    assert result.SignedFields.Field == RECEIPT["signed_fields"]
    assert result.Duplicate is duplicate
    payload = body_payload(parse_untrusted(body))
    assert xsd_violations(payload) == []


# ---------------------------------------------------------------------------------------- faults


def test_validation_fault_lists_every_violation() -> None:
    violations = [
        Violation(
            "$.body.parties[0].person.id_number", "The value is not a valid 12-digit personal ID", "format"
        ),
        Violation("$.created_at", "must have a UTC offset", "pattern"),
        Violation("$.recipient", "'THADS-XX' is not a registered recipient"),
    ]
    body = faults.from_problem(invalid(violations))
    fault = child(parse_untrusted(body), f"{{{SOAP_ENV}}}Body/{{{SOAP_ENV}}}Fault")
    assert fault.findtext("faultcode") == "soap:Client"
    assert "3 violation(s)" in child_text(fault, "faultstring")
    info = child(fault, f"detail/{C}GatewayFault")
    assert info.findtext(C + "HttpStatus") == "422"
    assert child_text(info, C + "Type").endswith("/validation-failed")
    found = [(v.get("path"), v.get("rule"), v.text) for v in info.iter(C + "Violation")]
    assert sorted(found, key=str) == sorted(
        ((v.path, v.rule or None, v.message) for v in violations), key=str
    )


def test_faults_are_valid_against_the_xsd_and_read_by_zeep(client: zeep.Client) -> None:
    binding, op = operation(client)
    problem = invalid([Violation("$.body", "bad\x00value", "x")])
    with pytest.raises(zeep.exceptions.Fault) as caught:
        binding.process_reply(client, op, reply(faults.from_problem(problem), status=422))
    assert caught.value.code == "soap:Client"
    detail = caught.value.detail.find(C + "GatewayFault")
    assert zeep_typed.element(client, f"{C}GatewayFault").parse(detail, client.wsdl.types).HttpStatus == 422
    # Characters XML cannot carry are replaced, not a reason to fail while reporting an error.
    assert detail.find(C + "Violation").text == "bad\ufffdvalue"


@pytest.mark.parametrize(
    ("problem", "code", "status"),
    [(unauthorized("no token"), "soap:Client", "401"), (unavailable("storage down"), "soap:Server", "503")],
)
def test_fault_code_follows_the_rest_status(problem: Any, code: str, status: str) -> None:
    fault = child(parse_untrusted(faults.from_problem(problem)), f".//{{{SOAP_ENV}}}Fault")
    assert fault.findtext("faultcode") == code
    assert fault.findtext(f"detail/{C}GatewayFault/{C}HttpStatus") == status


def test_envelope_level_faults_have_no_detail() -> None:
    body = faults.from_problem(invalid([]), code="MustUnderstand")
    fault = child(parse_untrusted(body), f".//{{{SOAP_ENV}}}Fault")
    assert fault.findtext("faultcode") == "soap:MustUnderstand"
    assert fault.find("detail") is None
