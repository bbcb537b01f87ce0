"""One simulated bank's book for enforcement orders: balances seeded from :func:`seed.bank_balances`, and
the blocks, transfers and releases it executed, in memory.

Amounts are VND (integers). A block holds part of an account's balance under the order that blocked it;
a transfer takes from what that order still holds, a release frees it. Report bodies follow docs/orders.md.
Nothing here knows about HTTP or idempotency: :mod:`.banks` executes each order once and calls in here.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from gateway.domain.orders import outcome_of
from gateway.simulators.partners import seed

Body = dict[str, Any]

# Reasons of a funds transfer that moved less than ordered.
NO_BLOCKING_ORDER: Final = "blocking_order_unknown"
NOTHING_BLOCKED: Final = "nothing_blocked"
BLOCKED_TOO_LITTLE: Final = "blocked_amount_insufficient"


@dataclass
class Account:
    number: str
    currency: str
    balance: int
    closed: bool
    earlier_seizure_rank: int | None
    held: int = 0  # blocked by orders, not yet transferred or released

    @property
    def available(self) -> int:
        return max(self.balance - self.held, 0)


@dataclass
class Block:
    """What one blocking order still holds, per account, in the order the accounts were blocked."""

    debtor: str
    held: dict[str, int] = field(default_factory=dict)


class Ledger:
    def __init__(self, bank: str) -> None:
        self.bank = bank
        self._accounts: dict[str, dict[str, Account]] = {}  # debtor -> account number -> account
        self._blocks: dict[str, Block] = {}  # blocking order's message_id -> what it holds

    def accounts(self, debtor: str) -> dict[str, Account]:
        """The debtor's accounts at this bank, seeded on first use."""
        if debtor not in self._accounts:
            self._accounts[debtor] = {
                row["account_number"]: Account(
                    row["account_number"],
                    row["currency"],
                    row["balance"],
                    row["closed"],
                    row["earlier_seizure_rank"],
                )
                for row in seed.bank_balances(self.bank, debtor)
            }
        return self._accounts[debtor]

    def held(self, blocking_order: str) -> dict[str, int]:
        """What ``blocking_order`` still holds per account (empty for an order this bank never blocked)."""
        block = self._blocks.get(blocking_order)
        return {number: amount for number, amount in block.held.items() if amount} if block else {}

    def block(
        self, order: str, debtor: str, amount: int, wanted: list[Mapping[str, Any]] | None, executed_at: str
    ) -> Body:
        """``order.account_blocking``: up to ``amount`` across ``wanted`` accounts (all the debtor's when
        ``None``), in order, until the amount is reached."""
        accounts = self.accounts(debtor)
        targets = (
            [(str(a.get("account_number")), a.get("currency")) for a in wanted]
            if wanted is not None
            else [(number, account.currency) for number, account in accounts.items()]
        )
        block = self._blocks.setdefault(order, Block(debtor))
        remaining, rows, seen = amount, list[Body](), set[str]()
        for number, asked_currency in targets:
            if remaining <= 0:
                break  # accounts not needed to reach the amount are left alone (and not listed)
            if number in seen:
                continue
            seen.add(number)
            account = accounts.get(number)
            if account is not None:
                currency = account.currency
            else:
                currency = asked_currency if isinstance(asked_currency, str) else "VND"
            row: Body = {"account_number": number, "currency": currency}
            if account is None:
                rows.append(row | _not_blocked("no_account"))
            elif account.closed:
                rows.append(row | _not_blocked("closed"))
            elif account.earlier_seizure_rank is not None:
                rows.append(
                    row
                    | _not_blocked("earlier_seizure")
                    | {"earlier_seizure_rank": account.earlier_seizure_rank}
                )
            elif account.available == 0:
                rows.append(row | _not_blocked("insufficient_funds"))
            else:
                take = min(account.available, remaining)
                account.held += take
                block.held[number] = block.held.get(number, 0) + take
                remaining -= take
                if remaining == 0:
                    rows.append(row | {"blocked_amount": take, "status": "blocked"})
                else:
                    status = {"status": "partially_blocked", "reason": "insufficient_funds"}
                    rows.append(row | {"blocked_amount": take} | status)
        total = amount - remaining
        return {
            "executed_at": executed_at,
            "outcome": outcome_of(total, amount),
            "total_blocked": total,
            "accounts": rows,
        }

    def transfer(
        self,
        blocking_order: str,
        amount: int,
        to_account: Mapping[str, Any],
        wanted: Iterable[str] | None,
        executed_at: str,
    ) -> Body:
        """``order.funds_transfer``: up to ``amount`` out of what ``blocking_order`` holds."""
        block = self._blocks.get(blocking_order)
        if block is None:
            return _transferred(executed_at, 0, amount, to_account, []) | {"reason": NO_BLOCKING_ORDER}
        accounts = self.accounts(block.debtor)
        only = set(wanted) if wanted is not None else None
        remaining, transfers = amount, list[Body]()
        for number, held in block.held.items():
            if remaining <= 0:
                break
            if not held or (only is not None and number not in only):
                continue
            take = min(held, remaining)
            account = accounts[number]
            account.held -= take
            account.balance -= take
            block.held[number] = held - take
            remaining -= take
            transfers.append({"account_number": number, "amount": take})
        total = amount - remaining
        body = _transferred(executed_at, total, amount, to_account, transfers)
        if total == 0:
            return body | {"reason": NOTHING_BLOCKED}
        return body | ({"reason": BLOCKED_TOO_LITTLE} if total < amount else {})

    def release(
        self,
        blocking_order: str,
        scope: str,
        amount: int | None,
        wanted: Iterable[str] | None,
        executed_at: str,
    ) -> Body:
        """``order.account_release``: everything ``blocking_order`` still holds (``full``), or up to
        ``amount`` of it (``partial``)."""
        block = self._blocks.get(blocking_order)
        only = set(wanted) if wanted is not None else None
        released: list[Body] = []
        if block is not None:
            accounts = self.accounts(block.debtor)
            remaining = amount if scope == "partial" and amount is not None else None
            for number, held in block.held.items():
                if remaining is not None and remaining <= 0:
                    break
                if not held or (only is not None and number not in only):
                    continue
                take = held if remaining is None else min(held, remaining)
                accounts[number].held -= take
                block.held[number] = held - take
                if remaining is not None:
                    remaining -= take
                released.append({"account_number": number, "amount": take})
        total = sum(item["amount"] for item in released)
        wanted_total = amount if scope == "partial" and amount is not None else total
        return {
            "executed_at": executed_at,
            "outcome": outcome_of(total, wanted_total),
            "scope": scope,
            "total_released": total,
            "released": released,
        }


def _not_blocked(reason: str) -> Body:
    return {"blocked_amount": 0, "status": "not_blocked", "reason": reason}


def _transferred(
    executed_at: str, total: int, amount: int, to_account: Mapping[str, Any], transfers: list[Body]
) -> Body:
    return {
        "executed_at": executed_at,
        "outcome": outcome_of(total, amount),
        "transferred_amount": total,
        "to_account": dict(to_account),
        "transfers": transfers,
    }
