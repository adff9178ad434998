"""Bodies kept in Redis for days, compressed: a member of a consignment (4 KB of JSON a filing, kept
for the amendment window) deflated against a preset dictionary (zlib's `zdict`) of the JSON every
member shares -- its keys, null, the pointers' paths -- so a single small body compresses about
five times instead of three.

    pack(text, dictionary=CURRENT) -> bytes      unpack(body) -> str

A body is b"\\x01" + the deflated text, its first byte naming the dictionary. A dictionary is frozen
once bodies use it: bodies written under one stay in Redis for the amendment window and must read
back after an upgrade, so a new shape gets a new number and the old one stays here. A new number is
read by one release before any release writes it (CURRENT), so that during a rolling upgrade no
worker meets a body it cannot read. A body that
starts with "{" is plain JSON (written before compression, or by a worker of the previous version
during a rolling upgrade) and reads as it is.

Deflate is zlib-ng's (PyPI `zlib-ng`): the same format, as small, at two thirds of zlib's CPU (a
filing's member is deflated once when it links, and again inside each watch of its consignment).
Its bytes differ from zlib's, not its meaning: either library reads what the other wrote.
"""
from __future__ import annotations

import json

import orjson
from zlib_ng import zlib_ng as zlib

# Version 1: the JSON of a member with one of each part (screening record of 2026-11), frozen.
_DICTIONARIES = {1: (
    '{"mrn": "26NL00000000000011", "submission_id": "", "filer": "", "lrn": "", "filing_code": "F10", '
    '"digest": "", "record": {"filing_code": "F10", "mode": "sea", "level": "complete", "lrn": "", '
    '"issued_at": 1795220002.0, "office_of_first_entry": "", "place_of_loading": "", "loading_country": "", '
    '"place_of_unloading": "", "unloading_country": "", "routing_countries": [], "vessel_imo": null, '
    '"voyage": null, "conveyance": null, "means_nationality": null, "transport_document": "", '
    '"master_document": null, "house_documents": [], "house_filers": [], "total_gross_mass": null, '
    '"total_packages": null, "receptacles": 0, "parties": [{"role": "consignor", "name": "", "id": null, '
    '"street": null, "city": null, "postcode": null, "country": "", "house": null, "pointer": '
    '"/IE3F10/Consignment/Consignor"}, {"role": "consignee", "name": "", "id": null, "street": null, '
    '"city": null, "postcode": null, "country": "", "house": null, "pointer": "/IE3F10/Consignment/Consignee"}], '
    '"goods": [{"number": 1, "description": "", "hs_code": "", "undg": null, "gross_mass": null, '
    '"packages": null, "package_types": ["CT"], "value": null, "currency": "EUR", "containers": [], '
    '"house": null, "pointer": "/IE3F10/Consignment/GoodsItem[1]", "converted_value": null}], '
    '"containers": [{"container_id": "", "packed_status": "LADEN", "seals": [], "size_type": null, '
    '"pointer": "/IE3F10/Consignment/TransportEquipment[1]"}], "pointers": {"lrn": "/IE3F10/Header/LRN", '
    '"office_of_first_entry": "/IE3F10/Header/CustomsOfficeOfFirstEntry", "place_of_loading": '
    '"/IE3F10/Consignment/PlaceOfLoading", "place_of_unloading": "/IE3F10/Consignment/PlaceOfUnloading", '
    '"transport_document": "/IE3F10/Consignment/TransportDocument", "routing_countries": '
    '"/IE3F10/Consignment/Itinerary", "total_gross_mass": "/IE3F10/Consignment/TotalGrossMass"}, '
    '"warnings": []}}').encode()}
# Version 2: the same member as compact JSON (compact_json.dumps, orjson: no spaces after ':' and ','),
# as members and watches are written since; frozen (a test holds its digest). Read from this release on,
# written from the next (a worker of the release before cannot read it): until then bodies of compact
# JSON deflate against version 1 (~1% larger).
_DICTIONARIES[2] = orjson.dumps(json.loads(_DICTIONARIES[1]))
CURRENT = 1


def pack(text: str | bytes, dictionary: int = CURRENT) -> bytes:
    deflate = zlib.compressobj(6, zlib.DEFLATED, -15, 9, zlib.Z_DEFAULT_STRATEGY, _DICTIONARIES[dictionary])
    data = text.encode() if isinstance(text, str) else text
    return bytes((dictionary,)) + deflate.compress(data) + deflate.flush()


def unpack(body: bytes | str) -> str:
    if isinstance(body, str):
        return body
    if body[:1] == b"{":
        return body.decode()
    inflate = zlib.decompressobj(-15, _DICTIONARIES[body[0]])
    return (inflate.decompress(body[1:]) + inflate.flush()).decode()
