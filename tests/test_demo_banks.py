"""``run.py demo --banks N``: the demo's own configuration holds N banks (the shipped ones first), every
one inheriting the bank defaults and served by the bank simulator; the shipped config/ is never touched."""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import pytest

from gateway.cli import parser as build_parser
from gateway.demo import BANKS_INQUIRY, MAX_BANKS, bank_directory, write_banks, write_banks_inquiry
from gateway.partners import BANKS_FILE, load_partners
from gateway.simulators.partners import banks as bank_simulator
from tests.conftest import ROOT

SHIPPED = ["BANK-VCB", "BANK-BIDV", "BANK-CTG", "BANK-AGR", "BANK-TCB", "BANK-VPB"]  # VPB: the pull bank


@pytest.fixture
def config(tmp_path: Path) -> Path:
    shutil.copy(ROOT / "config" / "partners.toml", tmp_path / "partners.toml")
    return tmp_path


def bank_partners(config: Path) -> list[str]:
    return [p.code for p in load_partners(config) if p.kind == "bank"]


def test_sixty_banks_the_shipped_ones_first_each_on_the_simulator(config: Path) -> None:
    shipped_before = (ROOT / "config" / "partners.toml").read_bytes()
    codes = write_banks(config, 60)
    partners = {p.code: p for p in load_partners(config) if p.kind == "bank"}
    assert list(partners) == codes and len(codes) == 60 and codes[: len(SHIPPED)] == SHIPPED
    for code in codes[len(SHIPPED) :]:
        bank = partners[code]
        assert bank.endpoint == "http://127.0.0.1:9102" + bank_simulator.bank_path(code)
        assert (bank.protocol, bank.deadline) == ("rest", "3wd")
        assert bank.credentials == f"GATEWAY_SECRET_{code.replace('-', '_')}"
        assert bank.name
    assert partners["BANK-ACB"].name == "Ngân hàng TMCP Á Châu"
    assert (ROOT / "config" / "partners.toml").read_bytes() == shipped_before
    assert not (ROOT / "config" / BANKS_FILE).exists()


def test_beyond_the_directory_neutral_test_banks_up_to_the_cap(config: Path) -> None:
    codes = write_banks(config, MAX_BANKS)
    assert len(bank_partners(config)) == MAX_BANKS == len(set(codes))
    assert codes[-1] == f"BANK-T{MAX_BANKS:03d}"


def test_fewer_banks_than_shipped_keeps_the_first_and_every_other_partner(config: Path) -> None:
    others = [p.code for p in load_partners(config) if p.kind != "bank"]
    assert write_banks(config, 2) == SHIPPED[:2]
    assert bank_partners(config) == SHIPPED[:2]
    assert [p.code for p in load_partners(config) if p.kind != "bank"] == others


def test_without_banks_a_list_of_an_earlier_run_goes(config: Path) -> None:
    write_banks(config, 30)
    assert write_banks(config, None) == SHIPPED
    assert not (config / BANKS_FILE).exists()
    assert bank_partners(config) == SHIPPED


@pytest.mark.parametrize("n", [0, MAX_BANKS + 1])
def test_the_count_is_capped(n: int) -> None:
    with pytest.raises(ValueError, match=f"1 to {MAX_BANKS}"):
        bank_directory(n)


@pytest.mark.parametrize("given", ["0", str(MAX_BANKS + 1), "many"])
def test_the_command_line_refuses_a_count_out_of_range(
    given: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["demo", "--banks", given])
    assert "--banks" in capsys.readouterr().err


def test_the_command_line_takes_a_count() -> None:
    args: argparse.Namespace = build_parser().parse_args(["demo", "--banks", "60"])
    assert args.banks == 60
    assert build_parser().parse_args(["demo"]).banks is None


def test_the_banners_inquiry_asks_every_bank(tmp_path: Path) -> None:
    path = write_banks_inquiry(tmp_path)
    assert path.name == BANKS_INQUIRY
    assert json.loads(path.read_text("utf-8"))["sources"] == ["bank"]
