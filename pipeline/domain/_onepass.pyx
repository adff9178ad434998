# cython: language_level=3, boundscheck=False, wraparound=True
"""One walk over an ENS filing's tree in C: the data-quality pack's findings and the screening
record's reading together (one_pass.py says when it is used; the pure-Python reference is
DataQualityPack.check with screening_record, and tests/test_one_pass.py holds them equal on
generated filings).

lxml hands out a Python object per element and builds strings on each .tag and .text; with a
Python handler per element on top, that was most of the validation stage's cost. Here the
tree is walked as libxml2's C structs, an element's name is dispatched to its handler as a
small integer, and only values that are kept become Python strings. It reads lxml's public C
API and libxml2's node structs and calls no libxml2 function, so it links against nothing.
"""
from cpython.unicode cimport PyUnicode_DecodeUTF8
from libc.string cimport strcmp, strlen
from lxml.includes cimport tree
from lxml.includes.etreepublic cimport _Element, elementFactory, import_lxml__etree

from .container_events import utc_epoch
from .dataquality import Finding
from .screening import _CONVEYANCE, _MEANS_FIELDS, _PARTY_ELEMENTS, _PARTY_FIELDS, _number

import_lxml__etree()

# The screening reader's handlers (screening._HANDLERS), one code each.
cdef enum:
    PARTY = 1
    PARTY_FIELD
    COUNTRY
    GOODS_ITEM
    ITEM_NUMBER
    DESCRIPTION
    HS_CODE
    UNDG
    GROSS_MASS
    PACKAGING
    TYPE_CODE
    COUNT
    DECLARED_VALUE
    CONTAINER_REF
    PLACE_OF
    UNLOCODE
    ITINERARY
    EQUIPMENT
    EQUIPMENT_FIELD
    DOCUMENT
    DOCUMENT_NUMBER
    HOUSE_FILER
    HOUSE_CONSIGNMENT
    RECEPTACLE
    MEANS
    MEANS_FIELD
    TOTAL
    HEADER_FIELD
    ISSUED

_CODES = {
    **dict.fromkeys(_PARTY_ELEMENTS, PARTY), **dict.fromkeys(_PARTY_FIELDS, PARTY_FIELD), "Country": COUNTRY,
    "GoodsItem": GOODS_ITEM, "ItemNumber": ITEM_NUMBER, "Description": DESCRIPTION, "HSCode": HS_CODE,
    "UNDGNumber": UNDG, "GrossMass": GROSS_MASS, "Packaging": PACKAGING, "Type": TYPE_CODE, "Count": COUNT,
    "DeclaredValue": DECLARED_VALUE, "ContainerRef": CONTAINER_REF, "PlaceOfLoading": PLACE_OF,
    "PlaceOfUnloading": PLACE_OF, "UNLocode": UNLOCODE, "Itinerary": ITINERARY, "TransportEquipment": EQUIPMENT,
    **dict.fromkeys(("ContainerId", "PackedStatus", "SizeType", "Seal"), EQUIPMENT_FIELD),
    **dict.fromkeys(("TransportDocument", "MasterTransportDocument", "HouseTransportDocument"), DOCUMENT),
    "Number": DOCUMENT_NUMBER, "Filer": HOUSE_FILER, "HouseConsignment": HOUSE_CONSIGNMENT, "Receptacle": RECEPTACLE,
    "ActiveBorderTransportMeans": MEANS, **dict.fromkeys((*_MEANS_FIELDS, *_CONVEYANCE), MEANS_FIELD),
    "TotalGrossMass": TOTAL, "TotalPackages": TOTAL, "LRN": HEADER_FIELD, "CustomsOfficeOfFirstEntry": HEADER_FIELD,
    "IssueDateTime": ISSUED,
}
# The party field handler's index; PartyField, not Country (COUNTRY handles it for every opener).
_FIELD_INDEX = {name: i for name, i in _PARTY_FIELDS.items() if name != "Country"}
_EQUIPMENT_INDEX = {"ContainerId": 0, "PackedStatus": 1, "SizeType": 3}

cdef enum:  # what the last opening element was (screening._Reader.opener)
    NONE = 0
    O_PARTY
    O_PLACE
    O_ITINERARY
    O_GOODS
    O_PACKAGING
    O_EQUIPMENT
    O_DOCUMENT
    O_HOUSE
    O_RECEPTACLE
    O_MEANS


cdef inline str _str(const char* s):
    return PyUnicode_DecodeUTF8(s, strlen(s), NULL)


cdef inline bint _in(tree.xmlNode* c, const char* ns) noexcept:
    return c.type == tree.XML_ELEMENT_NODE and c.ns is not NULL and c.ns.href is not NULL \
        and strcmp(<const char*> c.ns.href, ns) == 0


cdef object _text(tree.xmlNode* c_node):
    """lxml's .text: the text and CDATA nodes before the first child element, or None."""
    cdef tree.xmlNode* c = c_node.children
    cdef object text = None
    while c is not NULL and (c.type == tree.XML_TEXT_NODE or c.type == tree.XML_CDATA_SECTION_NODE):
        part = _str(<const char*> c.content) if c.content is not NULL else ""
        text = part if text is None else text + part
        c = c.next
    return text


cdef object _attribute(tree.xmlNode* c_node, const char* name):
    """lxml's .get(name) for an attribute without a namespace, or None."""
    cdef tree.xmlAttr* a = c_node.properties
    cdef tree.xmlNode* c
    while a is not NULL:
        if a.ns is NULL and strcmp(<const char*> a.name, name) == 0:
            value = ""
            c = a.children
            while c is not NULL:
                if c.content is not NULL:
                    value += _str(<const char*> c.content)
                c = c.next
            return value
        a = a.next
    return None


cdef class _Record:
    """What screening._Reader gathers, gathered here; reader() hands it over to one."""
    cdef public str top
    cdef int opener, house
    cdef public dict values, pointers
    cdef public list parties, goods, containers, house_documents, house_filers, routing
    cdef str doc, place

    def __init__(self, str top):
        self.top, self.opener, self.house, self.doc, self.place = top, NONE, 0, "", ""
        self.values, self.pointers = {}, {}
        self.parties, self.goods, self.containers = [], [], []
        self.house_documents, self.house_filers, self.routing = [], [], []

    cdef void element(self, int code, str name, tree.xmlNode* c) except *:
        cdef list g
        text = _text(c)
        if code == PARTY:
            self.opener = O_PARTY
            self.parties.append([_PARTY_ELEMENTS[name], None, None, None, None, None, None, self.house, name])
        elif code == PARTY_FIELD:
            if self.opener == O_PARTY:
                self.parties[-1][_FIELD_INDEX[name]] = text
        elif code == COUNTRY:
            if self.opener == O_PARTY:
                self.parties[-1][6] = text
            elif self.opener == O_PLACE:
                self.values[f"{self.place}_country"] = text
            elif self.opener == O_ITINERARY:
                self.routing.append(text)
        elif code == GOODS_ITEM:
            self.opener = O_GOODS
            self.goods.append([1, "", None, None, None, None, [], None, None, [], self.house or None])
        elif code == ITEM_NUMBER:
            if self.opener == O_GOODS:
                self.goods[-1][0] = int(text)
        elif code == DESCRIPTION:
            self.goods[-1][1] = text or ""
        elif code == HS_CODE:
            self.goods[-1][2] = text
        elif code == UNDG:
            self.goods[-1][3] = text
        elif code == GROSS_MASS:
            if self.opener == O_GOODS:
                self.goods[-1][4] = _number(text)
        elif code == PACKAGING:
            self.opener = O_PACKAGING
        elif code == TYPE_CODE:
            if self.opener == O_PACKAGING:
                self.goods[-1][6].append(text)
        elif code == COUNT:
            if self.opener == O_PACKAGING:
                g = self.goods[-1]
                g[5] = (g[5] or 0) + int(text)
        elif code == DECLARED_VALUE:
            g = self.goods[-1]
            g[7], g[8] = _number(text), _attribute(c, b"currency")
        elif code == CONTAINER_REF:
            self.goods[-1][9].append(text)
        elif code == PLACE_OF:
            self.opener, self.place = O_PLACE, "loading" if name == "PlaceOfLoading" else "unloading"
            self.pointers[f"place_of_{self.place}"] = self.pointers[f"{self.place}_country"] = \
                f"{self.top}/Consignment/{name}"
        elif code == UNLOCODE:
            if self.opener == O_PLACE:
                self.values[f"place_of_{self.place}"], self.values[f"{self.place}_country"] = text, text[:2]
        elif code == ITINERARY:
            self.opener = O_ITINERARY
            self.pointers["routing_countries"] = f"{self.top}/Consignment/Itinerary"
        elif code == EQUIPMENT:
            self.opener = O_EQUIPMENT
            self.containers.append([None, None, [], None])
        elif code == EQUIPMENT_FIELD:
            if name == "Seal":
                self.containers[-1][2].append(text)
            else:
                self.containers[-1][_EQUIPMENT_INDEX[name]] = text
        elif code == DOCUMENT:
            self.opener, self.doc = O_DOCUMENT, name
        elif code == DOCUMENT_NUMBER:
            if self.opener == O_DOCUMENT:
                if self.doc == "HouseTransportDocument" or (self.house and self.doc == "TransportDocument"):
                    self.house_documents.append(text)
                    self.house_filers.append("")
                else:
                    key = "transport_document" if self.doc == "TransportDocument" else "master_document"
                    self.values[key], self.pointers[key] = text, f"{self.top}/Consignment/{self.doc}"
        elif code == HOUSE_FILER:
            self.house_filers[-1] = text
        elif code == HOUSE_CONSIGNMENT:
            self.opener, self.house = O_HOUSE, self.house + 1
        elif code == RECEPTACLE:
            self.opener = O_RECEPTACLE
            self.values["receptacles"] = self.values.get("receptacles", 0) + 1
        elif code == MEANS:
            self.opener = O_MEANS
        elif code == MEANS_FIELD:
            pointer = f"{self.top}/ActiveBorderTransportMeans/{name}"
            if name in _MEANS_FIELDS:
                key = _MEANS_FIELDS[name]
                self.values[key], self.pointers[key] = text, pointer
            if name in _CONVEYANCE:
                self.values["conveyance"], self.pointers["conveyance"] = text, pointer
        elif code == TOTAL:
            if not self.house:
                key = "total_gross_mass" if name == "TotalGrossMass" else "total_packages"
                self.values[key] = _number(text) if name == "TotalGrossMass" else int(text)
                self.pointers[key] = f"{self.top}/Consignment/{name}"
        elif code == HEADER_FIELD:
            key = "lrn" if name == "LRN" else "office_of_first_entry"
            self.values[key], self.pointers[key] = text, f"{self.top}/Header/{name}"
        elif code == ISSUED:
            self.values["issued_at"] = utc_epoch(text)

    def into(self, reader):
        """Hands what was read to a screening._Reader (whose parts() builds the record's parts)."""
        reader.values, reader.pointers, reader.house = self.values, self.pointers, self.house
        reader.parties, reader.goods, reader.containers = self.parties, self.goods, self.containers
        reader.house_documents, reader.house_filers, reader.routing = \
            self.house_documents, self.house_filers, self.routing
        return reader


# -- the pack's XPath rules, natively: a filter in front of them ----------------------------------
# For the rules of the bundled pack whose select it knows (dataquality.NATIVE_SELECTS: by id and a
# digest of the XPath, so an edited rule is evaluated as written), the walk decides here whether a
# scope element can select nothing. Only that answer is native: when a rule might select
# something (a finding, or a value this code does not read as libxml2 would: anything but a plain
# decimal), the XPath runs as before and makes the findings. Sums are compared with a margin far
# above the last-digit differences between two ways of reading a decimal.

cdef inline bint _named(tree.xmlNode* c, const char* ns, const char* name) noexcept:
    return _in(c, ns) and strcmp(<const char*> c.name, name) == 0


cdef str _string_value(tree.xmlNode* c_node):
    """XPath's string-value of an element: every descendant text, in document order."""
    cdef tree.xmlNode* c = c_node.children
    if c is not NULL and c.next is NULL and c.type == tree.XML_TEXT_NODE:  # the usual leaf
        return _str(<const char*> c.content) if c.content is not NULL else ""
    parts = []
    while c is not NULL:
        if c.type == tree.XML_TEXT_NODE or c.type == tree.XML_CDATA_SECTION_NODE:
            if c.content is not NULL:
                parts.append(_str(<const char*> c.content))
        elif c.type == tree.XML_ELEMENT_NODE:
            parts.append(_string_value(c))
        c = c.next
    return "".join(parts)


cdef list _values(tree.xmlNode* parent, const char* ns, const char* name):
    """The string-values of the parent's children of that name, in document order."""
    cdef tree.xmlNode* c = parent.children
    out = []
    while c is not NULL:
        if _named(c, ns, name):
            out.append(_string_value(c))
        c = c.next
    return out


_XML_SPACE = " \t\r\n"


cdef object _decimal(str text):
    """A plain decimal (XPath's Number, blanks around it) as a float; None for anything else."""
    cdef str t = text.strip(_XML_SPACE)
    cdef Py_ssize_t i = 1 if t.startswith("-") else 0
    cdef Py_ssize_t digits = 0, dots = 0
    for ch in t[i:]:
        if ch == ".":
            dots += 1
        elif "0" <= ch <= "9":
            digits += 1
        else:
            return None
    if digits == 0 or dots > 1:
        return None
    return float(t)


cdef object _sum(list texts):
    """XPath's sum() of plain decimals, or None when one is not."""
    total = 0.0
    for text in texts:
        value = _decimal(text)
        if value is None:
            return None
        total += value
    return total


cdef object _integer_sum(list texts):
    """The exact sum of plain integers (blanks around them), or None when one is not."""
    total = 0
    for text in texts:
        t = text.strip(_XML_SPACE)
        if not t or not t.isdigit() or not t.isascii():
            return None
        total += int(t)
    return total if total <= 2 ** 53 else None  # beyond, libxml2's doubles no longer add up exactly


cdef str _normalized(str text):
    """XPath's normalize-space: XML blanks trimmed and each run of them made one space."""
    return " ".join([part for part in text.replace("\t", " ").replace("\r", " ").replace("\n", " ").split(" ")
                     if part])


cdef bint _far_from(object total, list sums) except -1:
    """Whether total - each sum, in grams, stays well inside round()'s zero (|d| * 1000 < 0.5)."""
    if total is None:
        return False
    for s in sums:
        if s is None or not -0.4 < (total - s) * 1000 < 0.4:
            return False
    return True


cdef bint _clear(tree.xmlNode* scope, const char* ns, tuple rules, dict variables) except -1:
    """True when none of these rules (ids of NATIVE_SELECTS) can select anything under scope."""
    cdef tree.xmlNode* c
    cdef tree.xmlNode* d
    goods_mass, goods_counts, packagings = [], [], []  # packagings: (first Type or None, Types, Counts)
    houses, house_mass, house_packages, house_numbers = 0, [], [], []  # house_numbers: per house, its numbers
    receptacles, receptacle_mass, receptacle_items = 0, [], []
    totals_mass, totals_packages, itineraries, htd_numbers = [], [], [], []
    loading_codes, loading_countries, unloading_codes, unloading_countries = [], [], [], []
    c = scope.children
    while c is not NULL:
        if not _in(c, ns):
            c = c.next
            continue
        name = <const char*> c.name
        if strcmp(name, b"GoodsItem") == 0:
            goods_mass += _values(c, ns, b"GrossMass")
            d = c.children
            while d is not NULL:
                if _named(d, ns, b"Packaging"):
                    types, counts = _values(d, ns, b"Type"), _values(d, ns, b"Count")
                    packagings.append((types[0] if types else None, types, counts))
                    goods_counts += counts
                d = d.next
        elif strcmp(name, b"TotalGrossMass") == 0:
            totals_mass.append(_string_value(c))
        elif strcmp(name, b"TotalPackages") == 0:
            totals_packages.append(_string_value(c))
        elif strcmp(name, b"HouseConsignment") == 0:
            houses += 1
            house_mass += _values(c, ns, b"TotalGrossMass")
            house_packages += _values(c, ns, b"TotalPackages")
            numbers = []
            d = c.children
            while d is not NULL:
                if _named(d, ns, b"TransportDocument"):
                    numbers += _values(d, ns, b"Number")
                d = d.next
            house_numbers.append(numbers)
        elif strcmp(name, b"Receptacle") == 0:
            receptacles += 1
            receptacle_mass += _values(c, ns, b"GrossMass")
            receptacle_items += _values(c, ns, b"ItemCount")
        elif strcmp(name, b"HouseTransportDocument") == 0:
            htd_numbers.append(_values(c, ns, b"Number"))
        elif strcmp(name, b"PlaceOfLoading") == 0:
            loading_codes += _values(c, ns, b"UNLocode")
            loading_countries += _values(c, ns, b"Country")
        elif strcmp(name, b"PlaceOfUnloading") == 0:
            unloading_codes += _values(c, ns, b"UNLocode")
            unloading_countries += _values(c, ns, b"Country")
        elif strcmp(name, b"Itinerary") == 0:
            itineraries.append(_values(c, ns, b"Country"))
        c = c.next
    for rule in rules:
        if rule == "DQ_TOTAL_GROSS_MASS" and totals_mass:
            sums = ([_sum(goods_mass)] if goods_mass else []) + ([_sum(house_mass)] if houses else []) + \
                   ([_sum(receptacle_mass)] if receptacles else [])
            if sums and not all(_far_from(_decimal(t), sums) for t in totals_mass):
                return False
        elif rule == "DQ_TOTAL_PACKAGES" and totals_packages:
            for t in totals_packages:
                total = _integer_sum([t])
                if total is None and (packagings or houses or receptacle_items):
                    return False
                if packagings and total != _integer_sum(goods_counts):
                    return False
                if houses and total != _integer_sum(house_packages):
                    return False
                if receptacle_items and total != _integer_sum(receptacle_items) and total != receptacles:
                    return False
        elif rule == "DQ_HOUSE_DOCUMENT_DUPLICATE":
            for seen in (house_numbers, htd_numbers):
                before = set()
                for numbers in seen:
                    if before.intersection(numbers):
                        return False
                    before.update(numbers)
        elif rule == "DQ_ROUTING_COUNTRIES":
            wanted = ([{loading_codes[0][:2]}] if loading_codes else []) + \
                     ([set(loading_countries)] if loading_countries else []) + \
                     ([{unloading_codes[0][:2]}] if unloading_codes else []) + \
                     ([set(unloading_countries)] if unloading_countries else [])
            for countries in itineraries:
                if any(not w.intersection(countries) for w in wanted):
                    return False
        elif rule == "DQ_BULK_PACKAGE_COUNT":
            listed = variables["bulk_codes"]
            for first, types, counts in packagings:
                if counts and first is not None and first.startswith("V") \
                        and f" {_normalized(first)} " in listed:
                    return False
        elif rule == "DQ_UNPACKED_PIECE_COUNT":
            listed = variables["unpacked_codes"]
            for first, types, counts in packagings:
                if not counts and any(f" {_normalized(t)} " in listed for t in types):
                    return False
    return True


def walk(_Element root not None, str namespace, dict checks, dict scopes, select_findings, dict variables, ref,
         vague, Py_ssize_t cache_limit, str top=None):
    """(findings, record or None): the data-quality pack's findings in document order, as
    DataQualityPack.check finds them, and with `top` (the root's pointer, for a filing valid
    against the schema) what screening._Reader reads, as a _Record.

    checks: local name -> [(parent local name or None, rule, answers by raw text, check)];
    scopes: local name -> (compiled XPath union, rules, native rule ids or ()), the union run on
    each such element unless every rule of it is native and _clear finds nothing for it to
    select; when it selects something select_findings(element, rules) says which rules found what."""
    cdef bytes ns_bytes = namespace.encode("utf-8")
    cdef const char* ns = ns_bytes
    cdef tree.xmlNode* start = root._c_node
    cdef tree.xmlNode* c = start
    cdef _Record record = _Record(top) if top is not None else None
    cdef list findings = []
    cdef list entries
    cdef dict codes = _CODES
    cdef dict answers
    cdef int code
    while c is not NULL:
        if c.type == tree.XML_ELEMENT_NODE:
            if _in(c, ns):
                name = _str(<const char*> c.name)
                if record is not None:
                    found = codes.get(name)
                    if found is not None:
                        code = found
                        record.element(code, name, c)
                scoped = scopes.get(name)
                if scoped is not None and not (scoped[2] and _clear(c, ns, scoped[2], variables)):
                    el = elementFactory(root._doc, c)
                    if scoped[0](el, **variables):
                        findings.extend(select_findings(el, scoped[1]))
                entries = checks.get(name)
                if entries is not None:
                    raw = _text(c)
                    for parent_name, rule, answers, fn in entries:
                        if parent_name is not None and (c is start or not _in(c.parent, ns)
                                                        or _str(<const char*> c.parent.name) != parent_name):
                            continue
                        problem = answers.get(raw, answers)  # the dict itself: not yet asked
                        if problem is answers:
                            if len(answers) >= cache_limit:
                                answers.clear()
                            problem = answers[raw] = fn((raw or "").strip(), ref, vague)
                        if problem is not None:
                            findings.append((rule, Finding(elementFactory(root._doc, c), (raw or "").strip(), *problem)))
            if c.children is not NULL:  # depth first: into the children, else on to what follows
                c = c.children
                continue
        if c is start:
            break
        while c.next is NULL:
            c = c.parent
            if c is start or c is NULL:
                c = NULL
                break
        if c is not NULL:
            c = c.next
    return findings, record
