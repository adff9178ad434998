"""Analysts and their risk centre: who may sign in to the workbench, and which queue they see.

The file (path from --analysts or CARGOSCREEN_ANALYSTS) holds one analyst per line:

    alice RC-NL scrypt$<salt hex>$<hash hex>

Passwords are kept only as scrypt hashes (stdlib hashlib, n=2**14, r=8, p=1); `cargoscreen
workbench user add|password|remove` rewrite the file (always 0600). The session secret that
signs cookies comes from CARGOSCREEN_SESSION_SECRET or a file (--session-secret-file), never
from the code.
"""
from __future__ import annotations

import hashlib
import hmac
import logging
import os
import re
import secrets
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

from ..config import RISK_CENTRE as CENTRE

ANALYSTS_ENV = "CARGOSCREEN_ANALYSTS"
SECRET_ENV = "CARGOSCREEN_SESSION_SECRET"
NAME = re.compile(r"[a-z][a-z0-9._-]{1,31}")
log = logging.getLogger(__name__)


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
    stamp: str = ""  # the credential a session was opened with (see Analysts.stamp)


class AnalystsUnreadable(Exception):
    """The analysts file is missing or malformed: nobody is let in (nor out) until it is fixed."""


def _parse(path: Path) -> dict[str, tuple[str, str]]:
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
    return entries


class Analysts:
    """The analysts file as it is on disk now. A running server reads it again when it changes
    (checked with one stat per request), so a removal or a new password takes effect at once,
    and sessions opened with the old credential end (web.py compares stamps)."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._lock = threading.Lock()
        self._seen: tuple | None = None
        self._entries: dict[str, tuple[str, str]] = {}
        self._error = ""
        try:
            self._current()
        except AnalystsUnreadable as exc:
            raise ValueError(str(exc)) from None  # a server does not start on a bad file

    @classmethod
    def load(cls, path: Path) -> "Analysts":
        return cls(path)

    def _current(self) -> dict[str, tuple[str, str]]:
        try:
            st = self.path.stat()
            seen: tuple = (st.st_ino, st.st_mtime_ns, st.st_ctime_ns, st.st_size)
        except OSError as exc:
            seen = ("missing", exc.strerror)
        with self._lock:
            if seen != self._seen:
                self._seen = seen
                try:
                    self._entries, self._error = _parse(self.path), ""
                except (OSError, ValueError) as exc:  # fail closed; said once per version of the file
                    self._entries, self._error = {}, f"the analysts file cannot be used: {exc}"
                    log.error("%s", self._error)
            if self._error:
                raise AnalystsUnreadable(self._error)
            return self._entries

    def centre_of(self, name: str) -> str:
        """The analyst's centre, for audit records; "" for a name that is nobody's."""
        try:
            return self._current().get(name, ("", ""))[0]
        except AnalystsUnreadable:
            return ""

    def stamp(self, name: str) -> str | None:
        """A fingerprint of the analyst's centre and password hash (a new hash has a new salt): it
        changes with a new password, a move to another centre, or a removal and re-adding."""
        entry = self._current().get(name)
        return hashlib.sha256(" ".join(entry).encode()).hexdigest()[:24] if entry else None

    def sign_in(self, name: str, password: str) -> Analyst | None:
        """Costs one scrypt (about 50 ms of CPU): callers run it off the event loop, throttled."""
        entry = self._current().get(name)
        if entry is None:
            hash_password(password)  # same time whether or not the name exists
            return None
        return Analyst(name, entry[0], self.stamp(name)) if _matches(password, entry[1]) else None


def _lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def _named(line: str, name: str) -> bool:
    return bool(line.split()) and line.split()[0] == name


def _write(path: Path, lines: list[str]) -> None:
    """Replaces the file in one step, never readable by others: a temporary file that mkstemp
    creates 0600 in the same folder, renamed over the old one (a server reading it sees the old
    file or the new one, never a part; there is no moment with wider permissions)."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        if path.exists():  # keep the owner, so the server's user can still read it
            st = path.stat()
            try:
                os.fchown(fd, st.st_uid, st.st_gid)
            except PermissionError:
                pass
        with os.fdopen(fd, "w") as f:
            f.write("".join(line + "\n" for line in lines))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _checked_password(password: str) -> str:
    if len(password) < 12:
        raise ValueError("a password has at least 12 characters")
    return hash_password(password)


def add_analyst(path: Path, name: str, centre: str, password: str) -> None:
    """Adds an analyst, or sets a new centre and password for one (their sessions end)."""
    if not NAME.fullmatch(name):
        raise ValueError("a name is 2-32 lower-case letters, digits, '.', '_' or '-', starting with a letter")
    if not CENTRE.fullmatch(centre):
        raise ValueError("a risk centre is RC- and a country code, e.g. RC-NL")
    line = f"{name} {centre} {_checked_password(password)}"
    _write(path, [ln for ln in _lines(path) if not _named(ln, name)] + [line])


def set_password(path: Path, name: str, password: str) -> None:
    """A new password for an existing analyst, same centre; their sessions end."""
    lines = _lines(path)
    old = next((ln for ln in lines if _named(ln, name)), None)
    if old is None:
        raise ValueError(f"no analyst {name} in {path}")
    line = f"{name} {old.split()[1]} {_checked_password(password)}"
    _write(path, [line if ln is old else ln for ln in lines])


def remove_analyst(path: Path, name: str) -> None:
    """The analyst may no longer sign in; their sessions end at their next request."""
    lines = _lines(path)
    if not any(_named(ln, name) for ln in lines):
        raise ValueError(f"no analyst {name} in {path}")
    _write(path, [ln for ln in lines if not _named(ln, name)])


def session_secret(path: Path | None) -> str:
    if path is not None:
        return path.read_text().strip()
    value = os.environ.get(SECRET_ENV)
    if not value:
        raise ValueError(f"no session secret: set {SECRET_ENV} or give --session-secret-file")
    return value
