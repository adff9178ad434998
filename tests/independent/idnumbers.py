"""Identification numbers in the national formats filers really send, with valid check digits.

EORI numbers (EU member states, GB, XI) and the tax numbers of other countries that carriers put
in the identification field of a consignor or consignee. Each format is the national one as
published by its administration (the check digit rules come from python-stdnum, which implements
them); the numbers themselves are made up, drawn from a seeded random generator, so the same seed
gives the same parties.
"""
from __future__ import annotations

import random
import string

from stdnum import imo, iso6346
from stdnum.ar import cuit
from stdnum.au import abn
from stdnum.be import vat as be_vat
from stdnum.bg import vat as bg_vat
from stdnum.br import cnpj
from stdnum.ca import bn
from stdnum.ch import uid
from stdnum.cl import rut
from stdnum.co import nit
from stdnum.cy import vat as cy_vat
from stdnum.cz import dic
from stdnum.dk import cvr
from stdnum.ec import ruc as ec_ruc
from stdnum.ee import registrikood
from stdnum.eg import tn as eg_tn
from stdnum.es import cif
from stdnum.fi import ytunnus
from stdnum.fr import siret
from stdnum.gb import vat as gb_vat
from stdnum.gr import vat as gr_vat
from stdnum.hr import oib
from stdnum.id import npwp
from stdnum.il import hp
from stdnum.in_ import pan
from stdnum.it import iva
from stdnum.jp import cn as jp_cn
from stdnum.ke import pin as ke_pin
from stdnum.kr import brn
from stdnum.lt import pvm
from stdnum.lu import tva
from stdnum.lv import pvn
from stdnum.ma import ice
from stdnum.mt import vat as mt_vat
from stdnum.mx import rfc
from stdnum.nl import bsn
from stdnum.no import orgnr
from stdnum.nz import ird
from stdnum.pe import ruc as pe_ruc
from stdnum.pl import nip
from stdnum.pt import nif
from stdnum.ro import cui
from stdnum.rs import pib
from stdnum.se import orgnr as se_orgnr
from stdnum.sg import uen
from stdnum.si import ddv
from stdnum.sk import dph
from stdnum.tr import vkn
from stdnum.tw import ubn
from stdnum.ua import edrpou
from stdnum.us import ein
from stdnum.vn import mst
from stdnum.za import tin as za_tin

EU = frozenset("AT BE BG CY CZ DE DK EE ES FI FR GR HR HU IE IT LT LU LV MT NL PL PT RO SE SI SK".split())


def _digits(rng: random.Random, n: int, first: str = "123456789") -> str:
    return rng.choice(first) + "".join(rng.choice(string.digits) for _ in range(n - 1))


def _until(rng: random.Random, make, valid) -> str:
    for _ in range(10_000):
        value = make()
        try:
            if valid(value):
                return value
        except Exception:  # a module that raises instead of answering False
            pass
    raise RuntimeError("no valid number drawn")


def _cif(rng):  # Spanish company NIF: letter, 7 digits, control digit or letter
    return _until(rng, lambda: rng.choice("ABB") + _digits(rng, 7, "0123456789") + rng.choice(string.digits),
                  cif.is_valid)


def _gb_vat(rng):
    return _until(rng, lambda: _digits(rng, 9), gb_vat.is_valid)


# EORI: what follows the country code, per issuing country.
_EORI = {
    "NL": lambda r: _until(r, lambda: _digits(r, 9, "1234789"), bsn.is_valid),  # RSIN, eleven-test
    "DE": lambda r: r.choice([_digits(r, 7) + "0000", _digits(r, 15)]),  # customs number (+ branch)
    "FR": lambda r: _until(r, lambda: _digits(r, 14), siret.is_valid),  # SIRET
    "IT": lambda r: _until(r, lambda: _digits(r, 7, "0") + _digits(r, 3, "0123456789") + r.choice(string.digits),
                           iva.is_valid),  # partita IVA
    "ES": _cif,
    "BE": lambda r: _until(r, lambda: "0" + _digits(r, 9), be_vat.is_valid),  # enterprise number
    "PL": lambda r: _until(r, lambda: _digits(r, 10), nip.is_valid) + "00000",  # NIP + 00000
    "DK": lambda r: _until(r, lambda: _digits(r, 8), cvr.is_valid),  # CVR
    "AT": lambda r: "EOS" + _digits(r, 10),  # customs-issued EORI (ATEOS...)
    "LU": lambda r: _until(r, lambda: _digits(r, 8), tva.is_valid),
    "IE": lambda r: _until(r, lambda: _digits(r, 7) + r.choice("ABCDEFGHJKLMNPRSTVWX"), lambda v: __import__(
        "stdnum.ie.vat", fromlist=["is_valid"]).is_valid(v)),
    "SE": lambda r: _until(r, lambda: "55" + _digits(r, 8, "0123456789"), se_orgnr.is_valid),  # org. number
    "FI": lambda r: _until(r, lambda: _digits(r, 8), ytunnus.is_valid),
    "PT": lambda r: _until(r, lambda: "5" + _digits(r, 8, "0123456789"), nif.is_valid),
    "GR": lambda r: _until(r, lambda: "0" + _digits(r, 8), gr_vat.is_valid),
    "CZ": lambda r: _until(r, lambda: _digits(r, 8), dic.is_valid),
    "HU": lambda r: _digits(r, 8) + "00",
    "SI": lambda r: _until(r, lambda: _digits(r, 8), ddv.is_valid),
    "HR": lambda r: _until(r, lambda: _digits(r, 11), oib.is_valid),
    "RO": lambda r: _until(r, lambda: _digits(r, 8), cui.is_valid),
    "BG": lambda r: _until(r, lambda: _digits(r, 9), bg_vat.is_valid),
    "LT": lambda r: _until(r, lambda: _digits(r, 8, "123456789") + "1" + "", pvm.is_valid),
    "LV": lambda r: _until(r, lambda: "4" + _digits(r, 10, "0"), pvn.is_valid),
    "EE": lambda r: _until(r, lambda: "1" + _digits(r, 7, "0123456789"), registrikood.is_valid),
    "SK": lambda r: _until(r, lambda: _digits(r, 10, "2"), dph.is_valid),
    "CY": lambda r: _until(r, lambda: "1" + _digits(r, 7, "0123456789") + r.choice(string.ascii_uppercase),
                           cy_vat.is_valid),
    "MT": lambda r: _until(r, lambda: _digits(r, 8), mt_vat.is_valid),
    "GB": lambda r: _gb_vat(r) + "000",  # VAT number + 000
    "XI": lambda r: _gb_vat(r) + "000",  # Northern Ireland: same, XI prefix
}

# Tax identification numbers of third countries (what a carrier puts as the consignor's id).
_TIN = {
    "CN": lambda r: _digits(r, 4, "1234") + r.choice("0123456789") + _digits(r, 5, "0123456789"),  # customs code
    "US": lambda r: _until(r, lambda: _digits(r, 9), ein.is_valid),  # EIN
    "IN": lambda r: _until(r, lambda: "".join(r.choice(string.ascii_uppercase) for _ in range(3)) + "C"
                           + r.choice(string.ascii_uppercase) + _digits(r, 4, "0123456789")
                           + r.choice(string.ascii_uppercase), pan.is_valid),  # IEC = PAN
    "TR": lambda r: _until(r, lambda: _digits(r, 10), vkn.is_valid),  # VKN
    "JP": lambda r: _until(r, lambda: _digits(r, 13), jp_cn.is_valid),  # corporate number
    "KR": lambda r: _until(r, lambda: _digits(r, 10), brn.is_valid),
    "CH": lambda r: "E" + _until(r, lambda: _digits(r, 9), lambda v: uid.is_valid("CHE" + v)),  # CHE UID
    "NO": lambda r: _until(r, lambda: "9" + _digits(r, 8, "0123456789"), orgnr.is_valid),
    "BR": lambda r: _until(r, lambda: _digits(r, 8) + "0001" + _digits(r, 2, "0123456789"), cnpj.is_valid),
    "VN": lambda r: _until(r, lambda: "0" + _digits(r, 9), mst.is_valid),
    "MX": lambda r: _until(r, lambda: "".join(r.choice("ABCDEFGHIJKLMNOPRSTUVWXYZ") for _ in range(3))
                           + "1" + r.choice("0123456789") + r.choice(["01", "02", "03", "04", "05", "06", "07",
                                                                      "08", "09", "10", "11", "12"])
                           + r.choice(["05", "12", "19", "23"]) + "".join(r.choice(string.ascii_uppercase
                                                                                   + string.digits) for _ in range(3)),
                           rfc.is_valid),
    "CL": lambda r: _until(r, lambda: _digits(r, 8, "7") + r.choice(string.digits + "K"), rut.is_valid),
    "SG": lambda r: _until(r, lambda: "2019" + _digits(r, 5, "0123456789") + r.choice(string.ascii_uppercase),
                           uen.is_valid),
    "ZA": lambda r: _until(r, lambda: "9" + _digits(r, 9, "0123456789"), za_tin.is_valid),
    "MA": lambda r: _until(r, lambda: _digits(r, 15, "0"), ice.is_valid),
    "EG": lambda r: _until(r, lambda: _digits(r, 9), eg_tn.is_valid),
    "ID": lambda r: _until(r, lambda: _digits(r, 15, "0"), npwp.is_valid),
    "CO": lambda r: _until(r, lambda: "9" + _digits(r, 9, "0123456789"), nit.is_valid),
    "EC": lambda r: _until(r, lambda: "09" + _digits(r, 8, "0123456789") + "001", ec_ruc.is_valid),
    "PE": lambda r: _until(r, lambda: "20" + _digits(r, 9, "0123456789"), pe_ruc.is_valid),
    "AR": lambda r: _until(r, lambda: "30" + _digits(r, 9, "0123456789"), cuit.is_valid),
    "KE": lambda r: _until(r, lambda: "P05" + _digits(r, 7, "0123456789") + r.choice(string.ascii_uppercase),
                           ke_pin.is_valid),
    "UA": lambda r: _until(r, lambda: _digits(r, 8, "3"), edrpou.is_valid),
    "RS": lambda r: _until(r, lambda: "1" + _digits(r, 8, "0123456789"), pib.is_valid),
    "IL": lambda r: _until(r, lambda: "51" + _digits(r, 7, "0123456789"), hp.is_valid),
    "CA": lambda r: _until(r, lambda: _digits(r, 9), bn.is_valid),
    "TW": lambda r: _until(r, lambda: _digits(r, 8), ubn.is_valid),
    "AU": lambda r: _until(r, lambda: _digits(r, 11), abn.is_valid),
    "NZ": lambda r: _until(r, lambda: "1" + _digits(r, 8, "0123456789"), ird.is_valid),
}


def eori(country: str, rng: random.Random) -> str:
    """An EORI number issued by `country` (an EU member state, GB or XI)."""
    return country + _EORI[country](rng)


def tin(country: str, rng: random.Random) -> str | None:
    """A third country's tax number as filers write it (country code + number), or None where we
    know no format (the identification number is optional for those parties)."""
    if country in _EORI:
        return eori(country, rng)
    make = _TIN.get(country)
    return country + make(rng) if make else None


def _iso6346_values() -> dict[str, int]:
    values, v = {}, 10
    for ch in string.ascii_uppercase:  # letters count from 10, skipping multiples of 11
        if v % 11 == 0:
            v += 1
        values[ch] = v
        v += 1
    values.update({d: int(d) for d in string.digits})
    return values


_ISO6346 = _iso6346_values()


def container_id(owner: str, rng: random.Random, used: set[str]) -> str:
    """ISO 6346 id for an owner prefix (4 letters ending U), check digit by python-stdnum; serials
    whose remainder would be 10 are skipped, as owners do (ISO 6346 advises against them)."""
    while True:
        body = owner + "".join(rng.choice(string.digits) for _ in range(6))
        if sum(_ISO6346[c] * 2 ** i for i, c in enumerate(body)) % 11 == 10:
            continue
        cid = body + iso6346.calc_check_digit(body)
        if cid not in used and iso6346.is_valid(cid):
            used.add(cid)
            return cid


def check_imo(number: str) -> str:
    if not imo.is_valid(number):
        raise ValueError(f"IMO number {number} fails its check digit")
    return number


def awb_number(prefix: str, rng: random.Random) -> str:
    """Air waybill: airline prefix, 7-digit serial and its check digit (serial modulo 7)."""
    serial = int(_digits(rng, 7))
    return f"{prefix}-{serial:07d}{serial % 7}"


def s10_item(service: str, country: str, rng: random.Random) -> str:
    """UPU S10 item id: 2 letters, 8 digits, check digit (weights 8 6 4 2 3 5 9 7), origin country."""
    digits = _digits(rng, 8)
    total = sum(int(d) * w for d, w in zip(digits, (8, 6, 4, 2, 3, 5, 9, 7)))
    check = 11 - total % 11
    check = 0 if check == 10 else 5 if check == 11 else check
    return f"{service}{digits}{check}{country}"
