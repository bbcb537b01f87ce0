"""Operator accounts of the console: a TOML file of argon2id hashes, never a password in clear.

    [operator.alice]
    role = "operator"        # operator: may act; auditor: reads only
    password = "$argon2id$v=19$..."

No file, no account: nobody can sign in. There is no default account and no default password.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal

import tomli_w
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

Role = Literal["operator", "auditor"]
ROLES: Final[tuple[Role, ...]] = ("operator", "auditor")
USERNAME_CHARS: Final = frozenset("abcdefghijklmnopqrstuvwxyz0123456789._-")

_hasher = PasswordHasher()
# Verified when the username is unknown, so a wrong name takes as long as a wrong password.
_DUMMY_HASH: Final = _hasher.hash("no such operator: this hash only evens out the timing")


class OperatorFileError(ValueError):
    """The operators file cannot be read or an account in it is malformed."""


@dataclass(frozen=True, slots=True)
class Operator:
    username: str
    role: Role
    password_hash: str

    @property
    def may_act(self) -> bool:
        return self.role == "operator"


def valid_username(username: str) -> bool:
    return 1 <= len(username) <= 64 and set(username) <= USERNAME_CHARS


def load(path: Path) -> dict[str, Operator]:
    """Every account in ``path``; an empty mapping when the file does not exist."""
    if not path.exists():
        return {}
    try:
        data = tomllib.loads(path.read_text("utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise OperatorFileError(f"{path}: {exc}") from exc
    accounts = {}
    for username, raw in (data.get("operator") or {}).items():
        if not isinstance(raw, dict):
            raise OperatorFileError(f"{path}: operator {username!r} is not a table")
        role, password = raw.get("role"), raw.get("password")
        if not valid_username(username) or role not in ROLES or not isinstance(password, str):
            raise OperatorFileError(
                f"{path}: operator {username!r} needs a role (operator|auditor) and a hash"
            )
        if not password.startswith("$argon2"):
            raise OperatorFileError(f"{path}: operator {username!r}: password must be an argon2 hash")
        accounts[username] = Operator(username, role, password)
    return accounts


def authenticate(accounts: dict[str, Operator], username: str, password: str) -> Operator | None:
    """The account if ``password`` is its password, else None (same cost either way)."""
    account = accounts.get(username)
    try:
        _hasher.verify(account.password_hash if account else _DUMMY_HASH, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return None
    return account


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def add(path: Path, username: str, role: Role, password: str) -> Operator:
    """Create or replace one account (the file is written atomically, readable by its owner only)."""
    if not valid_username(username):
        raise OperatorFileError("a username is 1-64 characters of a-z, 0-9, '.', '_' or '-'")
    if role not in ROLES:
        raise OperatorFileError(f"role must be one of {', '.join(ROLES)}")
    if len(password) < 12:
        raise OperatorFileError("a password has at least 12 characters")
    data: dict[str, object] = {}
    if path.exists():
        load(path)  # refuse to rewrite a file that is already broken
        data = tomllib.loads(path.read_text("utf-8"))
    accounts = dict(data.get("operator") or {})  # type: ignore[call-overload]
    account = Operator(username, role, hash_password(password))
    accounts[username] = {"role": role, "password": account.password_hash}
    data["operator"] = accounts
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        tomli_w.dump(data, out)
    os.replace(tmp, path)
    return account


class OperatorFile:
    """The accounts, re-read when the file changes: a removed operator loses access at once."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._stamp: tuple[int, int] | None = None
        self._accounts: dict[str, Operator] = {}

    def accounts(self) -> dict[str, Operator]:
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            self._stamp, self._accounts = None, {}
            return {}
        stamp = (stat.st_mtime_ns, stat.st_size)
        if stamp != self._stamp:
            self._accounts = load(self.path)
            self._stamp = stamp
        return self._accounts

    @property
    def exists(self) -> bool:
        return self.path.exists()
