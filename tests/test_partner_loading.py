"""Partners declared once: ``[defaults.<kind>]`` of partners.toml inherited by every partner of that kind,
banks listed one line each in banks.toml, overrides per partner, and clear refusals naming the file and
the partner."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.partners import BANKS_FILE, load_partners
from tests.conftest import ROOT

DEFAULTS = """
[defaults.bank]
protocol = "rest"
timeout_seconds = 7
concurrency = 3
retry = { attempts = 4, min_seconds = 0.1, max_seconds = 1 }
breaker = { failures = 2, recovery_seconds = 5 }
deadline = "3wd"
credentials = "GATEWAY_SECRET_{CODE}"
"""

TAX = """
[[partner]]
code = "TAX"
kind = "tax"
protocol = "rest"
endpoint = "http://127.0.0.1:9103/tax"
"""


def write(config: Path, partners: str, banks: str | None = None) -> Path:
    config.mkdir(parents=True, exist_ok=True)
    (config / "partners.toml").write_text(partners, "utf-8")
    if banks is not None:
        (config / BANKS_FILE).write_text(banks, "utf-8")
    return config


def test_every_bank_inherits_the_bank_defaults(tmp_path: Path) -> None:
    banks = (
        "bank = [\n"
        '  { code = "BANK-A", name = "A", endpoint = "http://127.0.0.1:9102/banks/BANK-A" },\n'
        '  { code = "BANK-B", name = "B", endpoint = "http://127.0.0.1:9102/banks/BANK-B" },\n'
        "]\n"
    )
    block = '\n[[partner]]\ncode = "BANK-C"\nkind = "bank"\nendpoint = "http://127.0.0.1:9102/c"\n'
    partners = {p.code: p for p in load_partners(write(tmp_path, DEFAULTS + TAX + block, banks))}
    assert list(partners) == ["TAX", "BANK-C", "BANK-A", "BANK-B"]
    for code in ("BANK-A", "BANK-B", "BANK-C"):
        bank = partners[code]
        assert (bank.kind, bank.protocol, bank.timeout_seconds, bank.concurrency) == ("bank", "rest", 7, 3)
        assert (bank.retry.attempts, bank.breaker.failures, bank.deadline) == (4, 2, "3wd")
        assert bank.credentials == f"GATEWAY_SECRET_{code.replace('-', '_')}"
    assert partners["BANK-A"].name == "A"
    # Another kind's partner takes nothing of the bank defaults.
    assert (partners["TAX"].timeout_seconds, partners["TAX"].deadline, partners["TAX"].credentials) == (
        10.0,
        "120s",
        None,
    )


def test_a_bank_overrides_what_it_states_and_keeps_the_rest(tmp_path: Path) -> None:
    banks = (
        'bank = [{ code = "BANK-A", endpoint = "http://h/a", deadline = "2wd", retry = { attempts = 1 }, '
        'credentials = "MY_TOKEN" }]\n'
    )
    (bank,) = load_partners(write(tmp_path, DEFAULTS, banks))
    assert (bank.deadline, bank.credentials, bank.timeout_seconds) == ("2wd", "MY_TOKEN", 7)
    # retry merged key by key: attempts overridden, the back-off bounds still the defaults'.
    assert (bank.retry.attempts, bank.retry.min_seconds, bank.retry.max_seconds) == (1, 0.1, 1)


def test_the_environment_overrides_a_listed_banks_endpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GATEWAY_PARTNER_BANK_A__ENDPOINT", "http://staging/a")
    (bank,) = load_partners(
        write(tmp_path, DEFAULTS, 'bank = [{ code = "BANK-A", endpoint = "http://h/a" }]')
    )
    assert bank.endpoint == "http://staging/a"


def test_banks_without_defaults_must_state_everything(tmp_path: Path) -> None:
    with pytest.raises(ValueError) as refused:
        load_partners(write(tmp_path, TAX, 'bank = [{ code = "BANK-A", endpoint = "http://h/a" }]'))
    assert f"{tmp_path / BANKS_FILE}: partner BANK-A: protocol" in str(refused.value)


@pytest.mark.parametrize(
    ("partners", "banks", "says"),
    [
        # The same code twice in banks.toml, and across both files: each file named.
        (
            DEFAULTS,
            'bank = [{ code = "BANK-A", endpoint = "http://h/a" }, '
            '{ code = "BANK-A", endpoint = "http://h/b" }]',
            "{banks}: partner BANK-A is declared twice",
        ),
        (
            DEFAULTS + '[[partner]]\ncode = "BANK-A"\nkind = "bank"\nendpoint = "http://h/a"\n',
            'bank = [{ code = "BANK-A", endpoint = "http://h/a" }]',
            "{partners} and {banks}: partner BANK-A is declared twice",
        ),
        (TAX + TAX, None, "{partners}: partner TAX is declared twice"),
        # Only banks in banks.toml.
        (DEFAULTS, 'bank = [{ code = "TAX", kind = "tax", endpoint = "http://h/t" }]', "{banks}: bank TAX"),
        (DEFAULTS, 'partner = [{ code = "TAX" }]', "{banks}: only a `bank` list belongs here"),
        # A field the defaults hold, wrong for one bank: the bank and the field named.
        (
            DEFAULTS,
            'bank = [{ code = "BANK-A", endpoint = "http://h/a", concurrency = 0 }]',
            "BANK-A: concurrency",
        ),
        # Defaults of a kind that does not exist, and defaults that try to name the partner.
        ("[defaults.banks]\nprotocol = 'rest'\n", None, "{partners}: [defaults.banks]: unknown partner kind"),
        ("[defaults.bank]\ncode = 'BANK-X'\n", None, "{partners}: [defaults.bank]: code and kind"),
        ("defaults = 3\n", None, "{partners}: `defaults` holds one table per partner kind"),
        (DEFAULTS, "bank = [", "{banks}: not valid TOML"),
    ],
)
def test_refusals_name_the_file_and_the_partner(
    tmp_path: Path, partners: str, banks: str | None, says: str
) -> None:
    config = write(tmp_path, partners, banks)
    with pytest.raises(ValueError) as refused:
        load_partners(config)
    assert says.format(partners=config / "partners.toml", banks=config / BANKS_FILE) in str(refused.value)


def test_the_shipped_banks_take_the_shipped_bank_defaults() -> None:
    banks = [p for p in load_partners(ROOT / "config") if p.kind == "bank"]
    codes = ["BANK-VCB", "BANK-BIDV", "BANK-CTG", "BANK-AGR", "BANK-TCB", "BANK-VPB"]
    assert [b.code for b in banks] == codes
    for bank in banks:
        assert (bank.protocol, bank.deadline, bank.timeout_seconds, bank.concurrency) == (
            "rest",
            "3wd",
            10,
            8,
        )
        assert bank.credentials == f"GATEWAY_SECRET_{bank.code.replace('-', '_')}"


def test_no_configuration_no_partners(tmp_path: Path) -> None:
    assert load_partners(tmp_path) == []
