"""Redis round trips, commands and CPU per filing, by step of the streaming service.

    python bench/round_trips.py [--count 3000] [--seed 17]

Generates traffic of every mode (linked consignments, amendments, 5% planted risk) with its
containers' DCSA histories in an embedded Redis, queues the filings in their partitions as the
ingress does, and runs the service in this process (one worker, FnApiRunner, until the streams
are empty): first on 300 filings to warm up (the goods classifier, the rule pack), then on
--count filings, measured. Every request written to Redis (a command, or a whole pipeline: one round trip) is
counted by the step whose DoFn sent it; the commands Redis executed come from INFO commandstats.
Prints round trips, script calls and bytes sent per filing, per step and in all, and the bytes Redis
received and sent per filing (INFO stats). On a single Redis a pipeline is one round trip; on a
cluster (not measured here) a batch is one per master it touches.

CPU per filing per step: the CPU time of the worker thread inside each of our DoFns' methods
(each resumption of a generator timed apart, so the steps downstream, which Beam runs between
them, are not counted twice); what is left of the process's CPU is Beam's own work and set-up.
Next to it, in the same run, raw lxml (parse + XSD) of the same filings: each step's cost in raw
lxml's, and the service's rate as a share of raw lxml's.
"""
from __future__ import annotations

import argparse
import inspect
import sys
import tempfile
import time
from collections import Counter
from dataclasses import replace
from pathlib import Path

import apache_beam as beam
import redis.connection
from lxml import etree

from cargoscreen.cli import load_feed
from cargoscreen.config import Settings, StreamSettings
from cargoscreen.connectors.redis_store import EmbeddedRedis, connect
from cargoscreen.connectors.redis_streams import StreamKeys
from cargoscreen.corpus import write_container_status
from cargoscreen.generator import GeneratorSpec, generate
from cargoscreen.linking import routing_name
from cargoscreen.options import SERVICE_ANSWER_CHECK_EVERY
from cargoscreen.service import run_service

import cargoscreen

PACKAGE = str(Path(cargoscreen.__file__).resolve().parents[1])  # the checkout the package runs from


def step_of(frame) -> str:
    """The DoFn (or other class of ours) nearest the caller that sent a request: `_LinkDoFn`, say."""
    while frame is not None:
        code = frame.f_code
        if code.co_filename.startswith(PACKAGE) and "DoFn." in code.co_qualname:
            return code.co_qualname.split(".", 1)[0]
        frame = frame.f_back
    return "other"


class StepClock:
    """CPU time of this thread in each method of our DoFns (process, start_bundle, finish_bundle)."""

    def __init__(self):
        self.cpu: Counter = Counter()
        self.first_call: float | None = None  # the process's CPU time when a step first ran: set-up ends
        self._restore: list[tuple[type, str, object]] = []

    def install(self) -> None:
        for cls in _our_dofns(beam.DoFn):
            for name in ("process", "start_bundle", "finish_bundle"):
                if name in cls.__dict__:
                    self._restore.append((cls, name, cls.__dict__[name]))
                    setattr(cls, name, self._timed(cls.__name__, cls.__dict__[name]))

    def uninstall(self) -> None:
        for cls, name, original in self._restore:
            setattr(cls, name, original)

    def _timed(self, step: str, method):
        cpu = self.cpu

        def timed(*args, **kwargs):
            if self.first_call is None:
                self.first_call = time.process_time()
            started = time.thread_time()
            result = method(*args, **kwargs)
            cpu[step] += time.thread_time() - started
            return self._resumptions(step, result) if inspect.isgenerator(result) else result
        timed.__signature__ = inspect.signature(method)  # Beam reads process's parameters and defaults
        return timed

    def _resumptions(self, step: str, generator):
        while True:
            started = time.thread_time()
            try:
                value = next(generator)
            except StopIteration:
                self.cpu[step] += time.thread_time() - started
                return
            self.cpu[step] += time.thread_time() - started
            yield value


def _our_dofns(cls):
    for sub in cls.__subclasses__():
        if sub.__module__.startswith("cargoscreen"):
            yield sub
        yield from _our_dofns(sub)


def raw_lxml_seconds(payloads: list[bytes]) -> float:
    """CPU seconds of raw lxml (parse + XSD) over the filings, best of three."""
    schema = etree.XMLSchema(etree.parse(str(Settings().schema_dirs[-1] / "ics2-v1" / "ens.xsd")))
    parser = etree.XMLParser(resolve_entities=False, no_network=True)
    best = float("inf")
    for _ in range(3):
        started = time.process_time()
        for data in payloads:
            try:
                schema.validate(etree.fromstring(data, parser))
            except etree.XMLSyntaxError:
                pass
        best = min(best, time.process_time() - started)
    return best


def queue(client, keys: StreamKeys, filings) -> list[bytes]:
    """The filings into their partitions' streams, as the ingress routes them; their bytes back."""
    parser = etree.XMLParser(resolve_entities=False, no_network=True)
    pipe = client.pipeline(transaction=False)
    for f in filings:
        try:
            route = routing_name(etree.fromstring(f.data, parser))
        except etree.XMLSyntaxError:
            route = None
        pipe.xadd(keys.filings_for(route or f.name), {"filing": f.data, "id": f.name})
    pipe.execute()
    return [f.data for f in filings]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=3000)
    parser.add_argument("--seed", type=int, default=17)
    parser.add_argument("--read-batch", type=int, default=StreamSettings().read_batch,
                        help="entries per read, which is one bundle: a busy service's polls are full, a service "
                             "keeping up with its traffic reads what came since its last poll")
    args = parser.parse_args()
    spec = dict(resubmission_rate=0.02, risk_rate=0.05)
    keys = StreamKeys()
    trips: Counter = Counter()
    sent: Counter = Counter()  # bytes written to Redis
    scripts: Counter = Counter()  # script calls (EVALSHA)
    original = redis.connection.AbstractConnection.send_packed_command

    def counted(self, command, check_health=True):
        step = step_of(sys._getframe(1))
        trips[step] += 1
        chunks = [command] if isinstance(command, (bytes, str)) else command
        sent[step] += sum(len(c) for c in chunks)
        scripts[step] += sum(bytes(c).count(b"\r\nEVALSHA\r\n") for c in chunks if not isinstance(c, str))
        return original(self, command, check_health)

    warm_up = 300
    with tempfile.TemporaryDirectory() as tmp, EmbeddedRedis(Path(tmp) / "redis") as server:
        client = connect(server.url)
        total = warm_up + args.count
        write_container_status(Path(tmp), total, args.seed, anomaly_rate=0.05, **spec)
        load_feed([Path(tmp) / "container-events.jsonl"], server.url, Path(tmp) / "rejected.jsonl")
        filings = list(generate(GeneratorSpec(count=total, seed=args.seed, **spec)))
        settings = Settings().with_redis_url(server.url)
        # As `python -m cargoscreen.service` runs: answers sampled against their schema, until the streams are empty.
        once = replace(settings, streams=replace(settings.streams, once=True, read_batch=args.read_batch),
                       answer_check_every=SERVICE_ANSWER_CHECK_EVERY)
        queue(client, keys, filings[:warm_up])
        run_service(once, ["bench-0"])
        payloads = queue(client, keys, filings[warm_up:])
        client.config_resetstat()
        clock = StepClock()
        clock.install()
        redis.connection.AbstractConnection.send_packed_command = counted
        started, cpu = time.perf_counter(), time.process_time()
        cpu_started = cpu
        try:
            run_service(once, ["bench-0"])
        finally:
            redis.connection.AbstractConnection.send_packed_command = original
            clock.uninstall()
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
        raw = raw_lxml_seconds(payloads)
        commands = {k[len("cmdstat_"):]: v["calls"] for k, v in client.info("commandstats").items()}
        net = client.info("stats")
    n = args.count
    print(f"{n} filings through the service (one worker, FnApiRunner, embedded Redis, reads of up to "
          f"{args.read_batch}) in {elapsed:.1f} s")
    print(f"{'step':28} {'round trips/filing':>19} {'script calls/filing':>20} {'bytes sent/filing':>18}")
    for step, count in trips.most_common():
        print(f"{step:28} {count / n:19.3f} {scripts[step] / n:20.3f} {sent[step] / n:18,.0f}")
    print(f"{'all':28} {sum(trips.values()) / n:19.3f} {sum(scripts.values()) / n:20.3f} "
          f"{sum(sent.values()) / n:18,.0f}")
    print(f"Redis network per filing: {net['total_net_input_bytes'] / n:,.0f} bytes in, "
          f"{net['total_net_output_bytes'] / n:,.0f} bytes out")
    print(f"\nRedis commands per filing: {sum(commands.values()) / n:.2f}; the most frequent:")
    for name, calls in sorted(commands.items(), key=lambda kv: -kv[1])[:10]:
        print(f"  {name:16} {calls / n:7.3f}")
    raw_us = raw / n * 1e6
    print(f"\nCPU per filing: the process {cpu / n * 1e6:,.0f} µs ({n / cpu:,.0f} filings per CPU-second); raw lxml "
          f"(parse + XSD) of the same filings {raw_us:,.0f} µs: the service runs at {raw / cpu:.3f} of raw lxml's rate")
    print(f"{'step':32} {'CPU µs/filing':>10} {'x raw lxml':>11}")
    setup = clock.first_call - cpu_started
    rest = cpu - setup - sum(clock.cpu.values())
    for step, seconds in [*clock.cpu.most_common(), ("Beam's own work, other threads", rest),
                          ("set-up (pipeline, steps)", setup)]:
        print(f"{step:32} {seconds / n * 1e6:10,.1f} {seconds / raw:10.2f}x")
    steady = cpu - setup
    print(f"without set-up: {steady / n * 1e6:,.0f} µs per filing, {n / steady:,.0f} filings per CPU-second, "
          f"{raw / steady:.3f} of raw lxml's rate")


if __name__ == "__main__":
    sys.exit(main())
