"""Analytics benchmark: ad hoc SQL and a starter-pack backtest over an archive of 1 million filings.

    python bench/analytics.py [--base 10000] [--target 1000000] [--seed 5] [--sample 20000]

How the archive is made (said plainly, since it is not a million real runs): `--base` filings are
generated (planted risk, honest look-alikes, container histories with anomalies) and go once through
the batch job (validation, linking, enrichment, scoring), which writes a real archive; its decisions,
with their record columns, are then copied in Arrow until there are `--target` of them, each copy
with its own keys (submission id, MRN, consignment, referral id, member ids) and its dates moved by
a day per copy over `--days` days (10: 100,000 filings a day, under 1% of the EU's ~12 million; a
year of small days would make files of a few hundred rows), and written as Parquet partitioned by
day and mode. Goods, parties, routes and facts repeat those of the base run, so
their distribution is the generator's, not a year of real traffic's.

What is measured (one machine, its cores):
- ad hoc questions (HS prefix, party, route, dates, grouped counts, the issue's example) through the
  analysts' read-only connection (pyarrow datasets, the centre filter, no file access) against
  DuckDB reading the same Parquet files itself (read_parquet), the unrestricted baseline: best of 3;
- the backtest of the starter pack: loading the records once, then every rule in SQL; against the
  row-by-row scorer on the same records (a sample, extrapolated), whose hits must be the same on
  that sample; and the XML path (validate, enrich, score each filing) on the base run's filings;
- archive bytes per filing: the decisions with their record columns, the decisions without them
  (version 1), and the filings table (each filing's bytes).
"""
from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import psutil
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from cargoscreen.analytics import archive_connection, dataset, run_query
from cargoscreen.archive_backtest import ArchiveReplay, fired_row_by_row
from cargoscreen.backtest import backtest, load_traffic
from cargoscreen.cli import load_feed
from cargoscreen.config import Settings
from cargoscreen.connectors.archive import DECISIONS, FILINGS, ITEMS, SCHEMAS
from cargoscreen.connectors.redis_store import EmbeddedRedis, connect
from cargoscreen.corpus import write_container_status, write_corpus
from cargoscreen.domain.record_columns import FIELDS
from cargoscreen.domain.rulepack import RulePack
from cargoscreen.domain.scoring import Scorer
from cargoscreen.job import run_batch

SPEC = dict(defect_rate=0.02, envelope_rate=0.0, resubmission_rate=0.0, risk_rate=0.05, decoy_rate=0.1)
NOW = datetime(2026, 11, 23, tzinfo=timezone.utc).timestamp()
_PER_COPY = ("submission_id", "mrn", "consignment", "referral_id", "state")


def base_run(work: Path, count: int, seed: int) -> Path:
    """The generated filings through the batch job once; returns the run's archive."""
    write_corpus(work / "corpus", count=count, seed=seed, **SPEC)
    write_container_status(work / "corpus", count, seed=seed, anomaly_rate=0.1, **SPEC)
    with EmbeddedRedis(work / "redis") as server:
        connect(server.url).flushall()
        load_feed([work / "corpus" / "container-events.jsonl"], server.url, work / "rejected.jsonl")
        started = time.monotonic()
        summary = run_batch(Settings().with_redis_url(server.url), work / "corpus" / "filings", work / "out")
        print(f"base run: {summary.inputs} filings through the batch job in {time.monotonic() - started:.0f} s, "
              f"{summary.assessed} decisions")
    return work / "out" / "archive"


def replicate(base: Path, out: Path, target: int, days: int) -> int:
    """Copies the base archive's decisions (and their item tables) until there are at least `target`,
    keys varied per copy and dates moved back a day per copy, over `days` days."""
    copies = -(-target // dataset(base, DECISIONS).count_rows())
    for table in (DECISIONS, *ITEMS):
        source = dataset(base, table).to_table()
        parts = []
        for k in range(copies):
            tag, t = pa.scalar(f"-{k:04d}"), source
            for name in _PER_COPY:
                if name in t.column_names:
                    t = t.set_column(t.schema.get_field_index(name), name,
                                     pc.binary_join_element_wise(t.column(name), tag, ""))
            for name in ("member_submissions", "member_mrns"):  # each member id tagged alike, the lists' shape kept
                if name in t.column_names:
                    rebuilt = [pa.ListArray.from_arrays(chunk.offsets, pc.binary_join_element_wise(chunk.values, tag, ""))
                               for chunk in t.column(name).chunks]
                    t = t.set_column(t.schema.get_field_index(name), name,
                                     pa.chunked_array(rebuilt, t.schema.field(name).type))
            shift = pa.scalar(timedelta(days=k % days), pa.duration("us"))
            for name in ("assessed_at", "received_at", "issued_at"):
                if name in t.column_names:
                    t = t.set_column(t.schema.get_field_index(name), name,
                                     pc.subtract(t.column(name), shift).cast(t.schema.field(name).type))
            t = t.set_column(t.schema.get_field_index("date"), "date",
                             pc.strftime(t.column("assessed_at"), format="%Y-%m-%d"))
            parts.append(t)
        whole = pa.concat_tables(parts)
        schema = SCHEMAS[table].append(pa.field("date", pa.string())).append(pa.field("mode", pa.string()))
        ds.write_dataset(whole.cast(schema), out / table, format="parquet",
                         partitioning=ds.partitioning(pa.schema([("date", pa.string()), ("mode", pa.string())]),
                                                      flavor="hive"),
                         file_options=ds.ParquetFileFormat().make_write_options(compression="zstd"),
                         max_rows_per_group=64 * 1024, existing_data_behavior="overwrite_or_ignore")
        if table == DECISIONS:
            written = whole.num_rows
        del parts, whole
    return written


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*.parquet"))


def sizes(base: Path, work: Path) -> None:
    rows = dataset(base, DECISIONS).count_rows()
    filings = dataset(base, FILINGS)
    without = dataset(base, DECISIONS).to_table(columns=[n for n in SCHEMAS[DECISIONS].names
                                                         if n not in {f for f, _ in FIELDS}])
    pq.write_table(without, work / "v1-decisions.parquet", compression="zstd")
    with_records = folder_bytes(base / DECISIONS)
    items = sum(folder_bytes(base / table) for table in ITEMS)
    one_file = work / "v2-decisions.parquet"
    pq.write_table(dataset(base, DECISIONS).to_table(), one_file, compression="zstd")
    payload = sum(pc.sum(pc.binary_length(b.column("payload"))).as_py() or 0
                  for b in filings.to_batches(columns=["payload"]))
    print(f"\narchive bytes per filing (base run, {rows} decisions, {filings.count_rows()} filings; zstd):")
    print(f"  filings table (each filing's bytes and a few columns) {folder_bytes(base / FILINGS) / filings.count_rows():8.0f}"
          f"   (the XML itself: {payload / filings.count_rows():.0f} uncompressed)")
    print(f"  decisions with the record columns, as written         {with_records / rows:8.0f}"
          f"   (in one file: {one_file.stat().st_size / rows:.0f})")
    print(f"  decisions without them (version 1), in one file       {(work / 'v1-decisions.parquet').stat().st_size / rows:8.0f}")
    print(f"  the items again, flat (goods, parties, containers, facts), as written {items / rows:8.0f}")
    print(f"  record columns cost {(one_file.stat().st_size - (work / 'v1-decisions.parquet').stat().st_size) / rows:.0f} "
          f"bytes per decision (with the flat items {(one_file.stat().st_size - (work / 'v1-decisions.parquet').stat().st_size + items) / rows:.0f}), "
          f"against {folder_bytes(base / FILINGS) / filings.count_rows():.0f} for the bytes alone")


def questions(con) -> dict[str, str]:
    """Typical ad hoc questions, their constants drawn from the archive itself."""
    hs4 = con.execute("SELECT hs4 FROM goods WHERE hs4 IS NOT NULL GROUP BY 1 ORDER BY count(*) LIMIT 1 OFFSET 20"
                      ).fetchall()[0][0]
    shippers = [n for (n,) in con.execute("SELECT name_key FROM parties WHERE role = 'consignor' AND name_key IS NOT NULL "
                                          "GROUP BY 1 ORDER BY count(*) DESC LIMIT 3").fetchall()]
    listed = ", ".join("'" + s.replace("'", "''") + "'" for s in shippers)
    return {
        "HS prefix": f"SELECT hs6, count(*) AS items, sum(gross_mass) AS kg FROM goods WHERE hs4 = '{hs4}' GROUP BY 1",
        "party": f"SELECT count(DISTINCT mrn) FROM parties WHERE role = 'consignor' AND name_key = '{shippers[0].replace(chr(39), chr(39) * 2)}'",
        "route": "SELECT decision, count(*) FROM filings WHERE loading_country = 'CN' AND place_of_unloading = 'NLRTM' GROUP BY 1",
        "dates": "SELECT date, count(*), count(referral_id) FROM filings WHERE date BETWEEN '2026-11-20' AND '2026-11-24' GROUP BY 1",
        "grouped counts": "SELECT mode, risk_centre, decision, count(*) FROM filings GROUP BY ALL",
        "the issue's example": (
            f"SELECT f.mrn, f.assessed_at, f.decision, o.outcome FROM filings f SEMI JOIN goods g ON g.mrn = f.mrn "
            f"AND g.hs4 = '{hs4}' SEMI JOIN parties p ON p.mrn = f.mrn AND p.role = 'consignor' AND p.name_key IN ({listed}) "
            f"LEFT JOIN outcomes o ON o.referral_id = f.referral_id WHERE list_contains(f.routing_countries, 'NL') "
            f"AND f.assessed_at > TIMESTAMPTZ '2026-11-23' - INTERVAL 90 DAY"),
        "indicator: referral rate": "SELECT * FROM referral_rate WHERE date >= '2026-11-01'",
    }


def best_of(run, rounds: int = 3) -> float:
    times = []
    for _ in range(rounds):
        started = time.monotonic()
        run()
        times.append(time.monotonic() - started)
    return min(times)


def native(root: Path):
    """DuckDB reading the Parquet files itself (the baseline): the same views over read_parquet."""
    import duckdb

    from cargoscreen.analytics import INDICATORS, VIEWS

    con = duckdb.connect()
    for table in (DECISIONS, *ITEMS):
        con.execute(f"CREATE VIEW _{table} AS SELECT * FROM read_parquet('{root}/{table}/*/*/*.parquet', "
                    f"hive_partitioning = true, hive_types_autocast = false, union_by_name = true)")
    con.execute("CREATE VIEW _outcomes AS SELECT NULL::VARCHAR AS referral_id, NULL::VARCHAR AS outcome, "
                "NULL::TIMESTAMPTZ AS resolved_at WHERE FALSE")
    for name, sql in {**VIEWS, **INDICATORS}.items():
        con.execute(f"CREATE VIEW {name} AS {sql}")
    return con


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--base", type=int, default=10_000)
    parser.add_argument("--target", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--days", type=int, default=10, help="day partitions the copies spread over")
    parser.add_argument("--sample-every", type=int, default=50, help="the row-by-row scorer checks one record in so many")
    parser.add_argument("--xml-sample", type=int, default=1_000, help="filings the XML path replays")
    parser.add_argument("--work", default=None, help="keep the archives here (default: a temporary folder)")
    parser.add_argument("--replicate", action="store_true", help="copy the base run again into the big archive")
    parser.add_argument("--only", choices=("queries", "backtest"), default=None, help="run one part only")
    args = parser.parse_args()
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="bench-analytics-"))
    process = psutil.Process()
    print(f"{os.cpu_count()} cores; work in {work}")
    base = work / "base" / "out" / "archive"
    if not base.is_dir():
        base = base_run(work / "base", args.base, args.seed)
    big = work / "big"
    if not (big / DECISIONS).is_dir() or args.replicate:
        started = time.monotonic()
        n = replicate(base, big, args.target, args.days)
        print(f"replicated to {n:,} decisions in Arrow in {time.monotonic() - started:.0f} s "
              f"({folder_bytes(big / DECISIONS) / 2**20:.0f} MiB, {sum(1 for _ in big.rglob('*.parquet'))} files)")
    sizes(base, work)

    if args.only != "backtest":
        questions_part(big)
    if args.only != "queries":
        backtest_part(big, work, args)


def questions_part(big: Path) -> None:
    with archive_connection(big) as con:
        asked = questions(con)
        centre = con.execute("SELECT risk_centre FROM filings GROUP BY 1 ORDER BY count(*) DESC LIMIT 1").fetchall()[0][0]
        share = con.execute(f"SELECT avg((risk_centre = '{centre}')::INT) FROM filings").fetchall()[0][0]
    print(f"\nad hoc questions over {dataset(big, DECISIONS).count_rows():,} filings (best of 3, seconds): "
          f"cargoscreen query (every centre; DuckDB reads the files, SELECT only), the workbench's connection for "
          f"{centre} ({share:.0%} of the filings; pyarrow datasets filtered to the centre, no file access), and "
          f"DuckDB reading the files unrestricted (the baseline)")
    print(f"  {'question':28} {'query':>8} {centre:>8} {'baseline':>9} {'query/baseline':>15}")
    baseline = native(big)
    with archive_connection(big) as cli, archive_connection(big, centre) as workbench:
        for name, sql in asked.items():
            ours = best_of(lambda: run_query(cli, sql, 120))
            theirs = best_of(lambda: baseline.execute(sql).fetchall())
            analysts = best_of(lambda: run_query(workbench, sql, 120))
            print(f"  {name:28} {ours:8.3f} {analysts:8.3f} {theirs:9.3f} {ours / theirs:15.2f}")


def backtest_part(big: Path, work: Path, args) -> None:
    process = psutil.Process()
    pack = RulePack.load(Settings().rules.pack_dir)
    scorer = Scorer(pack)
    print(f"\nbacktest of {pack.id} ({len(pack.rules)} rules)")
    rss = process.memory_info().rss
    started = time.monotonic()
    with ArchiveReplay(big) as replay:
        loaded = time.monotonic() - started
        fired, slow = replay.fired(pack, NOW)
        in_sql = time.monotonic() - started - loaded
        assessed = replay.assessments(scorer, fired)
        total = time.monotonic() - started
        print(f"  SQL path: {replay.count:,} records loaded in {loaded:.1f} s, rules in {in_sql:.1f} s, decided in "
              f"{total - loaded - in_sql:.1f} s: {total:.1f} s in all ({replay.count / total:,.0f} filings/s); "
              f"rules row by row: {[s.rule for s in slow] or 'none'}; peak RSS +{(process.memory_info().rss - rss) / 2**20:.0f} MiB")
        referrals = sum(1 for r in assessed.values() if r.referral)
        print(f"  {sum(len(v) for v in fired.values()):,} hits, {referrals:,} referrals ({referrals / replay.count:.2%})")
        where = f"rid % {args.sample_every} = 0"
        started = time.monotonic()
        reference = fired_row_by_row(replay, scorer, NOW, where=where)
        rows_time = time.monotonic() - started
        sampled = {rule: {r for r in rows if r % args.sample_every == 0} for rule, rows in fired.items()}
        same = all(sampled.get(r.id, set()) == reference.get(r.id, set()) for r in pack.rules)
        checked = replay.con.execute(f"SELECT count(*) FROM records WHERE {where}").fetchall()[0][0]
        per_second = checked / rows_time
        print(f"  row-by-row scorer on {checked:,} of the records (1 in {args.sample_every}): {per_second:,.0f} filings/s, "
              f"{replay.count / per_second:.0f} s extrapolated to {replay.count:,}; same hits as SQL on the sample: {same}")
        print(f"  ratio: SQL path {replay.count / per_second / total:.1f}x faster than the scorer row by row on columns")
    xml = work / "xml-sample"
    if not xml.is_dir():
        xml.mkdir()
        for name in sorted(os.listdir(work / "base" / "corpus" / "filings"))[:args.xml_sample]:
            shutil.copy(work / "base" / "corpus" / "filings" / name, xml / name)
    started = time.monotonic()
    traffic = load_traffic(xml, Settings())
    backtest(traffic.filings, scorer, scorer, now=datetime.fromtimestamp(NOW, timezone.utc))
    per_second = traffic.read / (time.monotonic() - started)
    print(f"  XML path (validate, link, enrich, score both packs) on {traffic.read} filings: {per_second:,.0f} filings/s, "
          f"{1_000_000 / per_second / 60:.0f} min for 1,000,000; the SQL path: {total:.0f} s "
          f"({1_000_000 / per_second / total * replay.count / 1_000_000:.0f}x)")




if __name__ == "__main__":
    main()
