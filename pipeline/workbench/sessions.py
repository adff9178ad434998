"""Server-side sessions of the workbench, in Redis, so that a session can be ended.

The signed cookie carries a random session id only; the record `{p}:wb:session:<sha256 of the
id>` says who, which centre, the form token (CSRF), the credential the session was opened with
(Analysts.stamp) and when. A session ends
  - when its analyst signs out, is removed, or gets a new password or centre: the record is
    marked ended and kept until the cookie would have expired anyway, so that a copy of the
    cookie used later is recognised (and audited, once);
  - after `idle_seconds` without a request (the record's expiry, renewed by each request);
  - `lifetime_seconds` after sign-in, whatever the activity (the cookie's own limit too).
The key holds a digest of the id, not the id: a Redis dump or replica does not hand out sessions.
"""
from __future__ import annotations

import hashlib
import secrets
import time
from dataclasses import dataclass

import redis

from .accounts import Analyst
from ..connectors.redis_slots import SlotScript

# ARGV: now, idle, lifetime (s). A live session's expiry is renewed (never past its lifetime); an
# ended one is marked reported on its first use, so the caller audits that use once.
_TOUCH = """
local s = redis.call('HMGET', KEYS[1], 'analyst', 'centre', 'csrf', 'stamp', 'opened', 'ended', 'reported')
if not s[1] then return false end
if not s[6] then
  local left = tonumber(s[5]) + tonumber(ARGV[3]) - tonumber(ARGV[1])
  if left <= 0 then redis.call('DEL', KEYS[1]) return false end
  redis.call('EXPIRE', KEYS[1], math.ceil(math.min(tonumber(ARGV[2]), left)))
elseif not s[7] then
  redis.call('HSET', KEYS[1], 'reported', '1')
end
return s
"""

# ARGV: why, now, lifetime, reported (1: the caller audits this ending itself).
_END = """
local opened = redis.call('HGET', KEYS[1], 'opened')
if not opened or redis.call('HEXISTS', KEYS[1], 'ended') == 1 then return 0 end
redis.call('HSET', KEYS[1], 'ended', ARGV[1])
if ARGV[4] == '1' then redis.call('HSET', KEYS[1], 'reported', '1') end
redis.call('EXPIRE', KEYS[1], math.max(1, math.ceil(tonumber(opened) + tonumber(ARGV[3]) - tonumber(ARGV[2]))))
return 1
"""


@dataclass(frozen=True)
class Session:
    analyst: str
    centre: str
    csrf: str
    stamp: str
    ended: str = ""  # why it ended ("signed out", "analyst removed", ...); "" while live
    first_use_after_end: bool = False


class Sessions:
    def __init__(self, client: redis.Redis, key_prefix: str = "cs", idle_seconds: int = 30 * 60,
                 lifetime_seconds: int = 12 * 3600):
        self.client, self.prefix = client, f"{key_prefix}:wb:session"
        self.idle, self.lifetime = idle_seconds, lifetime_seconds
        self._touch = SlotScript(client, _TOUCH)
        self._end = SlotScript(client, _END)

    def _key(self, sid: str) -> str:
        return f"{self.prefix}:{hashlib.sha256(sid.encode()).hexdigest()}"

    def open(self, analyst: Analyst) -> str:
        """A new session (a new id at every sign-in: no fixation); returns the id for the cookie."""
        sid = secrets.token_urlsafe(32)
        key = self._key(sid)
        pipe = self.client.pipeline()
        pipe.hset(key, mapping={"analyst": analyst.name, "centre": analyst.centre, "stamp": analyst.stamp,
                                "csrf": secrets.token_urlsafe(24), "opened": int(time.time())})
        pipe.expire(key, min(self.idle, self.lifetime))
        pipe.execute()
        return sid

    def get(self, sid: str) -> Session | None:
        """The session, renewed; or ended (with why); None when unknown, idle too long or too old."""
        found = self._touch(keys=[self._key(sid)], args=[int(time.time()), self.idle, self.lifetime])
        if not found:
            return None
        analyst, centre, csrf, stamp, _, ended, reported = (v.decode() if v else "" for v in found)
        return Session(analyst, centre, csrf, stamp, ended, bool(ended) and not reported)

    def end(self, sid: str, why: str, reported: bool = False) -> bool:
        """Ends a live session; False if it was not live. `reported`: the caller audits it now."""
        return bool(self._end(keys=[self._key(sid)], args=[why, int(time.time()), self.lifetime,
                                                           "1" if reported else "0"]))
