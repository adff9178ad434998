"""Where keys live on a Redis Cluster, and Lua scripts run one call per slot.

A Redis Cluster serves a script only if every key it touches is declared in KEYS and all of them
hash to one slot. Keys that meet in one script share a hash tag: the part of the name between the
first `{` and the next `}` (`cs:{p7}:cons:sea:MB1` and `cs:{p7}:cons:due` share the tag `p7`).
The filing path tags its keys by partition (a consignment's state: `partition_of` its linking key)
or by registration bucket (registration.py); output streams by their own names (redis_streams.py).

`SlotScript` runs a batch of calls of one script, one per slot, and `pipelined` a batch of
commands: one round trip to a single Redis; on a cluster one pipeline per master, all masters at
once (redis-py's cluster pipeline refuses EVALSHA, works one node after another, and is slow Python
per command). On a single Redis tags are only names.
The filing path, the container store, party history and the workbench run their scripts with it,
so on a cluster each of their writes waits for a replica (WAIT) before it is answered (an analyst's
resolution, a filer's answer) and is sent again through a master's failover.
"""
from __future__ import annotations

import time
import zlib
from typing import Sequence

import redis
from redis.exceptions import NoScriptError

from cargoscreen.connectors.redis_store import is_cluster


def partition_of(name: str, partitions: int) -> int:
    """The partition of a consignment (by its linking key, or a filing's routing name)."""
    return zlib.crc32(name.encode()) % partitions if partitions > 1 else 0


def partition_tag(partition: int) -> str:
    return f"{{p{partition}}}"


# On a cluster: how long a batch of script calls waits for a replica of each master to have its
# writes (WAIT), so that a master killed right after answering does not take them along (an MRN handed
# out twice, an answer written and acknowledged but gone); and for how long a call is sent again while
# its slot moves to a promoted replica (cluster-node-timeout plus the election: seconds), asking the
# cluster for its map between attempts. The pause is short because every step of a worker has a
# client of its own that learns of the promotion by itself: each step's wait adds to the first
# decision's delay after a failover.
REPLICA_WAIT_MS = 100
FAILOVER_SECONDS, FAILOVER_PAUSE_SECONDS = 15.0, 0.05


def by_slot(client: redis.Redis, keys: Sequence[str]) -> list[list[int]]:
    """The indexes of keys that one command (an MGET, a script call) may serve together: all of them on a
    single Redis, those of one slot each on a cluster; in their order."""
    if not is_cluster(client):
        return [list(range(len(keys)))] if keys else []
    slots: dict[int, list[int]] = {}
    for i, key in enumerate(keys):
        slots.setdefault(client.keyslot(key), []).append(i)
    return list(slots.values())


class SlotScript:
    """A Lua script whose every call declares its keys, all in one slot; `run` sends many calls at once."""

    def __init__(self, client: redis.Redis, source: str):
        self._client = client
        self._script = client.register_script(source)
        self._cluster = is_cluster(client)

    def __call__(self, keys: Sequence, args: Sequence = ()):
        return self.run([(keys, args)])[0]

    def run(self, calls: Sequence[tuple[Sequence, Sequence]]) -> list:
        """Replies of each (keys, args) call, in order, sent as `pipelined` sends commands; on a cluster
        each master's calls wait for its replica. A node that lost the script (a replica promoted since,
        a flushed cache) is given it and the call sent again; the scripts are idempotent, so a call that
        ran before its node went away is harmless run twice."""
        if not self._cluster and len(calls) == 1:
            return [self._script(keys=list(calls[0][0]), args=list(calls[0][1]))]
        sha = self._script.sha
        return pipelined(self._client, [(keys[0], ("EVALSHA", sha, len(keys), *keys, *args)) for keys, args in calls],
                         replicated=self._cluster, reload=lambda node: node.script_load(self._script.script))


def pipelined(client: redis.Redis, commands: Sequence[tuple[str, tuple]], replicated: bool = False,
              reload=None) -> list:
    """Replies of commands, each (the key that places it, its arguments), in order; the first error
    reply is raised. One pipeline to a single Redis. On a cluster one pipeline per master, all sent
    before any reply is read (a batch over three masters waits one round trip, not three, and none
    goes through redis-py's cluster pipeline, pure Python per command), each ended by WAIT for a
    replica when `replicated` (WAIT counts the writes of its own connection). A command a node did
    not take (its slot moved in a failover, the node gone) is sent again once the client has the
    cluster's new map, for as long as a failover takes; `reload(node client)` mends a NoScriptError."""
    replies: list = [None] * len(commands)
    todo = list(range(len(commands)))
    cluster = is_cluster(client)
    give_up = time.monotonic() + FAILOVER_SECONDS
    while True:
        failed = []
        batches = _by_master(client, commands, todo) if cluster else [(client, todo)]
        sent = _exchange([(node, [commands[i][1] for i in indexes]) for node, indexes in batches],
                         replicated) if cluster else [_pipeline(client, [commands[i][1] for i in todo])]
        for (node, indexes), answers in zip(batches, sent):
            reloaded = False
            for i, reply in zip(indexes, answers):
                if isinstance(reply, NoScriptError) and reload is not None:
                    if not reloaded:  # once per node: every call of the batch failed alike
                        reload(node)
                        reloaded = True
                    failed.append(i)
                elif cluster and _elsewhere(reply):
                    failed.append(i)
                replies[i] = reply
        if not failed or time.monotonic() > give_up:
            break
        todo = failed
        if cluster:
            time.sleep(FAILOVER_PAUSE_SECONDS)
            try:
                client.nodes_manager.initialize()  # the slots' masters as the cluster now says
            except redis.RedisError:
                pass  # still electing: the next attempt tells
    for reply in replies:
        if isinstance(reply, Exception):
            raise reply
    return replies


def _by_master(client, commands, todo: list) -> list:
    """(the plain client of a master, the indexes of its commands) for each master the commands go to."""
    nodes: dict[str, tuple] = {}
    for i in todo:
        node = client.get_node_from_key(commands[i][0])
        nodes.setdefault(node.name, (client.get_redis_connection(node), []))[1].append(i)
    return list(nodes.values())


def _pipeline(client: redis.Redis, commands: list) -> list:
    """A single Redis: its own pipeline (a connection error raises: the caller's retries, with_retries)."""
    pipe = client.pipeline(transaction=False)
    for args in commands:
        pipe.execute_command(*args)
    return pipe.execute(raise_on_error=False)


def _exchange(batches: list, replicated: bool) -> list[list]:
    """Each node's commands written on one of its connections, then every reply read: the nodes work
    at once. A reply is the parsed value or the error; a node unreachable fails all its commands."""
    wait = [("WAIT", 1, REPLICA_WAIT_MS)] if replicated else []
    open_ = []
    for node, args in batches:
        pool, conn = node.connection_pool, None
        try:
            conn = pool.get_connection()
            conn.send_packed_command(conn.pack_commands(args + wait))
            open_.append((conn, None))
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            if conn is not None:
                conn.disconnect()
                pool.release(conn)
            open_.append((None, exc))
    out = []
    for (node, args), (conn, failure) in zip(batches, open_):
        if conn is None:
            out.append([failure] * len(args))
            continue
        replies = []
        try:
            for command in args + wait:
                try:
                    replies.append(node.parse_response(conn, command[0]))
                except redis.ResponseError as exc:
                    replies.append(exc)
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            conn.disconnect()
            replies += [exc] * (len(args) + len(wait) - len(replies))
        except BaseException:
            conn.disconnect()  # replies left unread on it: never hand it out again
            raise
        finally:
            node.connection_pool.release(conn)
        out.append(replies[:len(args)])
    return out


def _elsewhere(reply) -> bool:
    """A reply that says the call did not run there: the slot is elsewhere now, or its node is gone."""
    if isinstance(reply, (redis.ConnectionError, redis.TimeoutError)):
        return True
    return isinstance(reply, redis.ResponseError) and str(reply).split(" ", 1)[0] in (
        "MOVED", "ASK", "TRYAGAIN", "CLUSTERDOWN", "MASTERDOWN")


class BatchScript:
    """A Lua script that serves many units of work in one call: a unit is one key (KEYS[i]) and its
    arguments (after the call's `shared` ones, the same number for every unit); the script loops over
    KEYS in order and returns one reply per key. One call for the whole batch on a single Redis, one per
    slot on a cluster (`by_slot`), sent as SlotScript sends its calls: a command per call, not per unit,
    for the client to pack and Redis to parse."""

    def __init__(self, client: redis.Redis, source: str):
        self._client = client
        self._script = SlotScript(client, source)

    def run(self, shared: Sequence, units: Sequence[tuple[str, Sequence]]) -> list:
        """The reply of each (key, its arguments) unit, in order."""
        groups = by_slot(self._client, [key for key, _ in units])
        calls = [([units[i][0] for i in group], [*shared, *(a for i in group for a in units[i][1])])
                 for group in groups]
        replies: list = [None] * len(units)
        for group, answers in zip(groups, self._script.run(calls) if calls else ()):
            for i, answer in zip(group, answers):
                replies[i] = answer
        return replies
