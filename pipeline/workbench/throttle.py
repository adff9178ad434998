"""Sign-in throttling per account and per client address, shared by every workbench process
through Redis, decided before any password is checked.

Each attempt counts against the name typed and against the client's address (an IPv6 client by
its /64, which one machine usually has whole). The first few attempts are free; after them each
must wait a delay that doubles with every attempt (1 s, 2 s, 4 s, ... at most a minute). An attempt
made before its delay is up is refused without checking the password, and counts; at the limit
the account or the address is locked for 15 minutes (attempts during a lock are refused, neither
counted nor extending it). A successful sign-in clears its account's count and takes its own
attempt back from the address's (an office behind one address is not locked by its own
sign-ins). Counts lapse after 15 minutes without attempts.

So a client hammering one account gets ACCOUNT_FREE + 1 password checks before the lock, and one
that waits out every delay about ACCOUNT_LIMIT per lock period; refusals cost one Redis call and
no scrypt. Locking an account also locks out its analyst (from any address): the price of
bounding guesses per account whatever the number of attacking addresses; it is audited, and an
operator can lift it (ops/runbooks/workbench.md).
"""
from __future__ import annotations

import ipaddress
import time
from dataclasses import dataclass

import redis

from ..connectors.redis_slots import SlotScript

ACCOUNT_FREE, ACCOUNT_LIMIT = 3, 10
ADDRESS_FREE, ADDRESS_LIMIT = 10, 30
WINDOW_SECONDS = LOCK_SECONDS = 15 * 60
MAX_DELAY_SECONDS = 60

# KEYS: the account's and the address's counters. ARGV: now (ms), window (ms), lock (ms), max delay
# (ms), then free and limit per key. Returns {verdict, wait (ms), locked: 1 account, 2 address}.
_ATTEMPT = """
local now, window, lock, max_delay = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local wait = 0
for i, key in ipairs(KEYS) do
  local locked = tonumber(redis.call('HGET', key, 'locked') or 0)
  if locked > now then wait = math.max(wait, locked - now) end
end
if wait > 0 then return {'locked', wait, 0} end
local locked_now, early, counts = 0, false, {}
for i, key in ipairs(KEYS) do
  local n = redis.call('HINCRBY', key, 'n', 1)
  counts[i] = n
  if n >= tonumber(ARGV[4 + 2 * i]) then
    redis.call('HSET', key, 'locked', now + lock)
    redis.call('PEXPIRE', key, lock)
    locked_now = locked_now + i
    wait = lock
  else
    redis.call('PEXPIRE', key, window)
    local next_at = tonumber(redis.call('HGET', key, 'next') or 0)
    if next_at > now then early, wait = true, math.max(wait, next_at - now) end
  end
end
if locked_now > 0 then return {'locked', wait, locked_now} end
if early then return {'early', wait, 0} end
for i, key in ipairs(KEYS) do
  local over = counts[i] - tonumber(ARGV[3 + 2 * i])
  if over > 0 then redis.call('HSET', key, 'next', now + math.min(1000 * 2 ^ (over - 1), max_delay)) end
end
return {'ok', 0, 0}
"""

_SUCCEEDED = """
redis.call('DEL', KEYS[1])
if tonumber(redis.call('HGET', KEYS[2], 'n') or 0) > 0 then redis.call('HINCRBY', KEYS[2], 'n', -1) end
"""


@dataclass(frozen=True)
class Verdict:
    refused: str = ""  # "", "early" (a delay not waited out) or "locked"
    wait: float = 0.0  # seconds before another attempt may be made
    locked_now: tuple[str, ...] = ()  # what this very attempt locked ("account", "address"): audited once


def address_key(host: str) -> str:
    """The address a client is counted under: IPv4 as is, IPv6 by its /64."""
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return host[:64] or "unknown"
    if ip.version == 4:
        return str(ip)
    if ip.ipv4_mapped:
        return str(ip.ipv4_mapped)
    return str(ipaddress.ip_network(f"{ip}/64", strict=False))


class SignInThrottle:
    def __init__(self, client: redis.Redis, key_prefix: str = "cs"):
        self.prefix = f"{key_prefix}:wb:{{throttle}}"  # one slot of a cluster: a script counts account and address
        self._attempt = SlotScript(client, _ATTEMPT)
        self._succeeded = SlotScript(client, _SUCCEEDED)

    def _keys(self, name: str, address: str) -> list[str]:
        return [f"{self.prefix}:account:{name[:64]}", f"{self.prefix}:address:{address_key(address)}"]

    def attempt(self, name: str, address: str, now: float | None = None) -> Verdict:
        verdict, wait, locked = self._attempt(
            keys=self._keys(name, address),
            args=[int((now or time.time()) * 1000), WINDOW_SECONDS * 1000, LOCK_SECONDS * 1000,
                  MAX_DELAY_SECONDS * 1000, ACCOUNT_FREE, ACCOUNT_LIMIT, ADDRESS_FREE, ADDRESS_LIMIT])
        return Verdict("" if verdict == b"ok" else verdict.decode(), wait / 1000,
                       tuple(what for bit, what in ((1, "account"), (2, "address")) if int(locked) & bit))

    def succeeded(self, name: str, address: str) -> None:
        self._succeeded(keys=self._keys(name, address))
