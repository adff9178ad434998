"""Analysts and their risk centre: who may sign in to the workbench, and which queue they see.

The file (path from --analysts or CARGOSCREEN_ANALYSTS) holds one analyst per line:

    alice RC-NL scrypt$<salt hex>$<hash hex>

Passwords are kept only as scrypt hashes (stdlib hashlib, n=2**14, r=8, p=1); `cargoscreen
workbench user add` writes a line. The session secret that signs sign-in cookies comes from
CARGOSCREEN_SESSION_SECRET or a file (--session-secret-file), never from the code.
"""
from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
from dataclasses import dataclass
from pathlib import Path

from ..config import RISK_CENTRE as CENTRE

ANALYSTS_ENV = "CARGOSCREEN_ANALYSTS"
SECRET_ENV = "CARGOSCREEN_SESSION_SECRET"
NAME = re.compile(r"[a-z][a-z0-9._-]{1,31}")


def hash_password(password: str, salt: bytes | None = None) -> str:
    salt = salt or secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=2 ** 14, r=8, p=1)
    return f"scrypt${salt.hex()}${digest.hex()}"


def _matches(password: str, stored: str) -> bool:
    _, salt, _ = stored.split("$")
    return hmac.compare_digest(hash_password(password, bytes.fromhex(salt)), stored)


@dataclass(frozen=True)
class Analyst:
    name: str
    centre: str


class Analysts:
    def __init__(self, entries: dict[str, tuple[str, str]]):
        self._entries = entries  # name -> (centre, hash)

    @classmethod
    def load(cls, path: Path) -> "Analysts":
        entries = {}
        for n, line in enumerate(path.read_text().splitlines(), start=1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            parts = line.split()
            if len(parts) != 3 or not NAME.fullmatch(parts[0]) or not CENTRE.fullmatch(parts[1]) \
                    or not parts[2].startswith("scrypt$"):
                raise ValueError(f"{path}:{n}: expected `name RC-XX scrypt$salt$hash`")
            entries[parts[0]] = (parts[1], parts[2])
        return cls(entries)

    def sign_in(self, name: str, password: str) -> Analyst | None:
        entry = self._entries.get(name)
        if entry is None:
            hash_password(password)  # same time whether or not the name exists
            return None
        return Analyst(name, entry[0]) if _matches(password, entry[1]) else None


def add_analyst(path: Path, name: str, centre: str, password: str) -> None:
    if not NAME.fullmatch(name):
        raise ValueError("a name is 2-32 lower-case letters, digits, '.', '_' or '-', starting with a letter")
    if not CENTRE.fullmatch(centre):
        raise ValueError("a risk centre is RC- and a country code, e.g. RC-NL")
    if len(password) < 12:
        raise ValueError("a password has at least 12 characters")
    lines = [ln for ln in (path.read_text().splitlines() if path.exists() else [])
             if not ln.split() or ln.split()[0] != name]
    lines.append(f"{name} {centre} {hash_password(password)}")
    path.write_text("\n".join(lines) + "\n")
    os.chmod(path, 0o600)


def session_secret(path: Path | None) -> str:
    if path is not None:
        return path.read_text().strip()
    value = os.environ.get(SECRET_ENV)
    if not value:
        raise ValueError(f"no session secret: set {SECRET_ENV} or give --session-secret-file")
    return value
