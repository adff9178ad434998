"""The streaming service's pipeline options, declared once (typed, with help text).

Beam's own convention: `ScreeningOptions` is a PipelineOptions view, so one command line
carries both the runner's options (--runner, --job_endpoint, --project, ...) and ours:

    cargoscreen run --follow --redis-url=redis://... --consumer=w1 --health-port=8081
    python -m cargoscreen.service --runner=PortableRunner --job_endpoint=... --redis_url=...

`settings_from_options` turns them into the typed `Settings` the stages receive; every
default comes from config.py, so nothing is declared twice. `cargoscreen options` prints
the help.
"""
from __future__ import annotations

import argparse
import os
from dataclasses import replace
from pathlib import Path

from apache_beam.options.pipeline_options import PipelineOptions

from .config import (DEFAULT_RISK_CENTRE, LOOPBACK, SERVICE_METRICS_PORT, LinkingSettings, MetricsSettings,
                     RedisSettings, Settings, StreamSettings)
from .connectors.redis_store import URL_ENV as REDIS_URL_ENV
from .health import DEFAULT_MAX_LAG_SECONDS

_STREAMS, _LINKING, _REDIS = StreamSettings(), LinkingSettings(), RedisSettings()
SERVICE_ANSWER_CHECK_EVERY = 100  # answers come from tested code: the service samples, the batch job checks all


class ScreeningOptions(PipelineOptions):
    @classmethod
    def _add_argparse_args(cls, parser):
        def option(name: str, **kwargs):  # both spellings: Beam's --a_b and the CLI's --a-b
            parser.add_argument(f"--{name}", f"--{name.replace('_', '-')}", dest=name, **kwargs)

        option("redis_url", type=str, default=None,
               help=f"Redis holding the filings stream, the state and the output streams (required: this, or "
                    f"${REDIS_URL_ENV}, which ps does not show).")
        option("key_prefix", type=str, default=_REDIS.key_prefix, help="Prefix of every Redis key.")
        option("consumer", type=str, action="append", default=None,
               help="This worker's name in the consumer group, stable across restarts (repeat for several "
                    "readers in one job; default: host name).")
        option("group", type=str, default=_STREAMS.group, help="Consumer group every worker of a deployment joins.")
        option("once", action="store_true", default=False,
               help="Stop when the source has nothing new (batch runs, tests) instead of following it.")
        option("input", type=str, default=None,
               help="Read filings from this drop folder instead of the Redis stream of filings.")
        option("output", type=str, default=None, help="Write the Parquet archive under OUTPUT/archive.")
        option("rules", type=str, default=None,
               help="Rule pack folder used until one is published in Redis (default: the bundled starter pack).")
        option("schemas", type=str, action="append", default=None, help="Extra XSD set searched first (repeatable).")
        option("read_batch", type=int, default=_STREAMS.read_batch,
               help="Most filings read per poll (one bundle): larger is cheaper per filing, smaller answers sooner.")
        option("poll_ms", type=int, default=_STREAMS.poll_ms, help="How long an idle read waits in Redis.")
        option("claim_idle_ms", type=int, default=_STREAMS.claim_idle_ms,
               help="Take over filings another consumer left unacknowledged this long (a crashed worker).")
        option("output_maxlen", type=int, default=_STREAMS.maxlen,
               help="Entries kept per output stream (answers, referrals, decisions; approximate trim).")
        option("effect_retention_seconds", type=int, default=_STREAMS.effect_retention_seconds,
               help="How long the marker that an effect was written is kept: a redelivery within this "
                    "window writes no answer, decision or referral twice.")
        option("answer_check_every", type=int, default=SERVICE_ANSWER_CHECK_EVERY,
               help="Check one answer in N against answers.xsd before sending it (1: every answer, as the "
                    "batch job does; each check costs ~200 us, a quarter of a filing's screening).")
        option("link_deadline_seconds", type=int, default=_LINKING.deadline_seconds,
               help="How long a consignment may wait for its missing filings before an incompleteness referral.")
        option("default_risk_centre", type=str, default=DEFAULT_RISK_CENTRE,
               help="Risk centre of the referrals whose office of first entry is not a known office of "
                    "entry on the declared route (RC- and two letters; staff it: ops/runbooks/workbench.md).")
        option("health_port", type=int, default=0,
               help="Serve GET /healthz on this port (0: no endpoint).")
        option("health_host", type=str, default=LOOPBACK,
               help="Address /healthz listens on (0.0.0.0: every interface, e.g. for a Kubernetes httpGet probe; "
                    "`cargoscreen health` probes through Redis instead).")
        option("health_max_lag_seconds", type=float, default=DEFAULT_MAX_LAG_SECONDS,
               help="Keeping up means no filing waits longer than this to be read or acknowledged.")
        option("metrics_port", type=int, default=SERVICE_METRICS_PORT,
               help="Each worker process serves Prometheus metrics on the first free port from this one "
                    f"(up to {MetricsSettings().port_span} ports; 0: none) and registers it in Redis for "
                    "discovery (cargoscreen metrics targets).")
        option("metrics_host", type=str, default=LOOPBACK,
               help="Address /metrics listens on; for a Prometheus on another host, an address of a network "
                    "filers cannot reach (the rule hit counts tell what a filing set off).")


def settings_from_options(options: PipelineOptions) -> Settings:
    o = options.view_as(ScreeningOptions)
    s = Settings(extra_schema_dirs=tuple(Path(p) for p in o.schemas or ()))
    return replace(
        s,
        # A Redis outage is waited out (about 20 s of retries), then the bundle fails and is redelivered.
        redis=replace(s.redis, url=o.redis_url or os.environ.get(REDIS_URL_ENV), key_prefix=o.key_prefix, retries=25,
                      redeliver_on_outage=True),
        rules=replace(s.rules, pack_dir=Path(o.rules)) if o.rules else s.rules,
        streams=replace(s.streams, group=o.group, once=o.once, read_batch=o.read_batch, poll_ms=o.poll_ms,
                        claim_idle_ms=o.claim_idle_ms, maxlen=o.output_maxlen,
                        effect_retention_seconds=o.effect_retention_seconds),
        linking=replace(s.linking, deadline_seconds=o.link_deadline_seconds),
        answer_check_every=o.answer_check_every,
        default_risk_centre=o.default_risk_centre,
        metrics=replace(s.metrics, port=o.metrics_port, host=o.metrics_host),
    )


def options_help() -> str:
    parser = argparse.ArgumentParser(prog="cargoscreen run --follow", add_help=False,
                                     description="Options of the streaming service (any Beam option may follow).")
    ScreeningOptions._add_argparse_args(parser)
    return parser.format_help()
