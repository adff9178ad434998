"""Hostile XML is refused early, with a clear code, without expanding, fetching or exhausting anything."""
from __future__ import annotations

import http.server
import json
import subprocess
import sys
import threading

import pytest

from cargoscreen.config import Settings, XmlLimits
from cargoscreen.validation import FilingValidator, Submission

ENS = "urn:cargoscreen:ics2:ens:v1"


def _codes(validator, payload: bytes) -> list[str]:
    return [e.code for e in validator.validate(Submission("h", payload)).errors]


BILLION_LAUGHS = (b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
                  + b"".join(b'<!ENTITY lol%d "%s">' % (i, (b"&lol%d;" % (i - 1) if i > 1 else b"&lol;") * 10)
                             for i in range(1, 10))
                  + b']><IE3F10 xmlns="' + ENS.encode() + b'">&lol9;</IE3F10>')
QUADRATIC = (b'<?xml version="1.0"?><!DOCTYPE q [<!ENTITY a "' + b"x" * 50_000 + b'">]><IE3F10 xmlns="'
             + ENS.encode() + b'">' + b"&a;" * 50_000 + b"</IE3F10>")


def test_billion_laughs(validator):
    assert _codes(validator, BILLION_LAUGHS) == ["DTD_FORBIDDEN"]


def test_quadratic_blowup(validator):
    assert _codes(validator, QUADRATIC) == ["DTD_FORBIDDEN"]


def test_xxe_to_a_local_file(validator, tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET")
    payload = (f'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY s SYSTEM "file://{secret}">]>'
               f'<IE3F10 xmlns="{ENS}"><Header><LRN>&s;</LRN></Header></IE3F10>').encode()
    outcome = validator.validate(Submission("h", payload))
    assert [e.code for e in outcome.errors] == ["DTD_FORBIDDEN"]
    assert "TOP-SECRET" not in repr(outcome)


class _Recorder(http.server.BaseHTTPRequestHandler):
    hits: list[str] = []

    def do_GET(self):  # noqa: N802 (http.server's naming)
        _Recorder.hits.append(self.path)
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"<!ENTITY x 'y'>")

    def log_message(self, *args):
        pass


@pytest.fixture
def http_server():
    server = http.server.HTTPServer(("127.0.0.1", 0), _Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    _Recorder.hits = []
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


def test_xxe_to_a_url_and_external_dtd_never_connect(validator, http_server):
    payloads = [
        f'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY s SYSTEM "{http_server}/e">]><IE3F10 xmlns="{ENS}">&s;</IE3F10>',
        f'<?xml version="1.0"?><!DOCTYPE x SYSTEM "{http_server}/dtd"><IE3F10 xmlns="{ENS}"/>',
        f'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY % p SYSTEM "{http_server}/p"> %p;]><IE3F10 xmlns="{ENS}"/>',
    ]
    for payload in payloads:
        assert _codes(validator, payload.encode()) == ["DTD_FORBIDDEN"]
    # Schema location hints in a message are ignored, never fetched.
    hinted = (f'<IE3F10 xmlns="{ENS}" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
              f'xsi:schemaLocation="{ENS} {http_server}/ens.xsd"/>').encode()
    assert "XSD_MISSING" in _codes(validator, hinted)
    assert _Recorder.hits == []


def test_dtd_in_utf16_is_caught_after_parsing_without_expansion(validator):
    payload = ('<?xml version="1.0" encoding="UTF-16"?><!DOCTYPE x [<!ENTITY a "aaaa">]>'
               f'<IE3F10 xmlns="{ENS}">&a;</IE3F10>').encode("utf-16")
    assert b"<!DOCTYPE" not in payload  # the byte scan cannot see it: the second line of defence must
    assert _codes(validator, payload) == ["DTD_FORBIDDEN"]


def test_xinclude(validator, tmp_path):
    (tmp_path / "part.xml").write_text("<x/>")
    payload = (f'<IE3F10 xmlns="{ENS}" xmlns:xi="http://www.w3.org/2001/XInclude">'
               f'<xi:include href="{tmp_path / "part.xml"}"/></IE3F10>').encode()
    assert _codes(validator, payload) == ["XINCLUDE_FORBIDDEN"]


def test_oversized_document():
    small = FilingValidator(Settings(limits=XmlLimits(max_bytes=10_000)))
    payload = f'<IE3F10 xmlns="{ENS}">'.encode() + b"<x/>" * 5_000 + b"</IE3F10>"
    outcome = small.validate(Submission("h", payload))
    assert [e.code for e in outcome.errors] == ["SIZE_LIMIT"]
    assert "20,0" in outcome.errors[0].reason and "10,000" in outcome.errors[0].reason


def test_a_file_over_the_limit_is_read_one_byte_past_it_and_refused(tmp_path):
    """Folders' reader (the batch job, `validate`) never reads a huge file whole: one byte past the
    limit is enough for the refusal, which says the limit and what was read."""
    from cargoscreen.folders import read_filing

    huge, small = tmp_path / "huge.xml", tmp_path / "small.xml"
    huge.write_bytes(f'<IE3F10 xmlns="{ENS}">'.encode() + b"<x/>" * 250_000 + b"</IE3F10>")
    small.write_bytes(b"<a/>")
    assert read_filing(small, 10_000) == b"<a/>"
    payload = read_filing(huge, 10_000)
    assert len(payload) == 10_001 and huge.read_bytes().startswith(payload)
    outcome = FilingValidator(Settings(limits=XmlLimits(max_bytes=10_000))).validate(Submission("h", payload))
    assert [e.code for e in outcome.errors] == ["SIZE_LIMIT"]
    assert "over the limit of 10,000 bytes" in outcome.errors[0].reason


def test_excessive_nesting(validator):
    depth = 100_000
    payload = f'<IE3F10 xmlns="{ENS}">'.encode() + b"<a>" * depth + b"</a>" * depth + b"</IE3F10>"
    outcome = validator.validate(Submission("h", payload))
    assert [e.code for e in outcome.errors] == ["DEPTH_LIMIT"]
    assert "256" in outcome.errors[0].reason


def test_bytes_that_are_not_the_declared_encoding(validator):
    latin1 = f'<?xml version="1.0" encoding="UTF-8"?><IE3F10 xmlns="{ENS}"><Header><LRN>caf\u00e9</LRN></Header></IE3F10>'
    outcome = validator.validate(Submission("h", latin1.encode("latin-1")))
    assert [e.code for e in outcome.errors] == ["NOT_WELL_FORMED"]
    assert "encoding" in outcome.errors[0].reason.lower() and outcome.errors[0].line == 1


@pytest.mark.parametrize("payload", [b"", b"   ", b"not xml at all", b"<a>", b"<a></b>", b"\x00\x01\x02",
                                     b'<?xml version="1.0" encoding="EBCDIC-NOPE"?><a/>'])
def test_garbage_is_answered_not_crashed(validator, payload):
    codes = _codes(validator, payload)
    assert codes and set(codes) <= {"EMPTY", "NOT_WELL_FORMED", "UNKNOWN_MESSAGE"}


def test_entity_attacks_stay_within_bounded_memory():
    """The attacks run in a fresh interpreter that reports its peak memory before and after."""
    script = f"""
import json, resource
from cargoscreen.config import Settings
from cargoscreen.validation import FilingValidator, Submission
v = FilingValidator(Settings())
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
codes = [e.code for p in ({BILLION_LAUGHS!r}, {QUADRATIC!r}) for e in v.validate(Submission("h", p)).errors]
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({{"codes": codes, "grown_kib": after - before}}))
"""
    out = subprocess.run([sys.executable, "-"], input=script, capture_output=True, text=True, check=True)
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert report["codes"] == ["DTD_FORBIDDEN", "DTD_FORBIDDEN"]
    assert report["grown_kib"] < 20 * 1024  # expanded, either would need gigabytes
