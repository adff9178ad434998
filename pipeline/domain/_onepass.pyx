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
from cpython.bytes cimport PyBytes_AS_STRING
from cpython.object cimport PyObject
from cpython.unicode cimport PyUnicode_DecodeUTF8
from libc.stdint cimport uintptr_t
from libc.string cimport strcmp, strlen
from lxml.includes cimport tree
from lxml.includes.etreepublic cimport _Element, elementFactory, import_lxml__etree

from .container_events import utc_epoch
from .dataquality import Finding
from .filings import BY_CODE, INVALIDATION_ROOT
from .screening import (_CONVEYANCE, _MEANS_FIELDS, _PARTY_ELEMENTS, _PARTY_FIELDS, Equipment, GoodsLine, Party,
                        _number, new_record)

# The record's parts are made with tuple.__new__ (no Python-level __new__ per part): their fields, in order.
assert GoodsLine._fields[-2:] == ("pointer", "converted_value") and len(Party._fields) == 8 \
    and len(Equipment._fields) == 5, "screening's parts changed: update _Record.record"

import_lxml__etree()

cdef bytes _INVALIDATION_ROOT = INVALIDATION_ROOT.encode("ascii")


cdef extern from "Python.h":
    double PyOS_string_to_double(const char* s, char** endptr, PyObject* overflow_exception) except? -1.0

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
    """An element of the namespace. `ns` is the document's own copy of it where walk() found one:
    the elements that share its declaration match by pointer, with no string comparison."""
    return c.type == tree.XML_ELEMENT_NODE and c.ns is not NULL and c.ns.href is not NULL \
        and (<const char*> c.ns.href == ns or strcmp(<const char*> c.ns.href, ns) == 0)


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


cdef inline str _indexed(str parent, str name, int index, int count):
    """screening._indexed: /.../GoodsItem[2], the index only where siblings share the name."""
    return f"{parent}/{name}[{index}]" if count > 1 else f"{parent}/{name}"


cdef class _Record:
    """What screening._Reader gathers, gathered here; record() makes the ScreeningRecord of it."""
    cdef str top
    cdef int opener, house
    cdef dict values, pointers
    cdef list parties, goods, containers, house_documents, house_filers, routing
    cdef str doc, place

    def __init__(self, str top):
        self.top, self.opener, self.house, self.doc, self.place = top, NONE, 0, "", ""
        self.values, self.pointers = {}, {}
        self.parties, self.goods, self.containers = [], [], []
        self.house_documents, self.house_filers, self.routing = [], [], []

    cdef void element(self, int code, str name, tree.xmlNode* c, object text) except *:
        """Reads one element of the record's, its text already read (lxml's .text)."""
        cdef list g
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

    cdef str _owner(self, str consignment, int house):
        return _indexed(consignment, "HouseConsignment", house, self.house) if house else consignment

    def record(self, str filing_code):
        """The ScreeningRecord of what was read, as screening._record makes it from a _Reader (the
        pointers made here, when the sibling counts that index them are known)."""
        kind = BY_CODE["F" + filing_code[1:]]
        cdef str consignment = self.top + "/Consignment"
        cdef dict per_owner = {}, seen = {}
        cdef list g, goods = [], parties = [], containers = []
        cdef int owner, n
        for g in self.goods:
            owner = g[10] or 0
            per_owner[owner] = per_owner.get(owner, 0) + 1
        for g in self.goods:
            owner = g[10] or 0
            n = seen.get(owner, 0) + 1
            seen[owner] = n
            goods.append(tuple.__new__(GoodsLine, (
                g[0], g[1], g[2], g[3], g[4], g[5], tuple(g[6]), g[7], g[8], tuple(g[9]), g[10],
                _indexed(self._owner(consignment, owner), "GoodsItem", n, per_owner[owner]), None)))
        for role, pid, name, street, city, postcode, country, house, element in self.parties:
            where = self.top + "/Header" if role == "declarant" or role == "representative" else \
                self.top if role == "carrier" else self._owner(consignment, house)
            parties.append(tuple.__new__(Party, (role, pid, name, street, city, postcode, country,
                                                 f"{where}/{element}")))
        n = len(self.containers)
        for i, c in enumerate(self.containers, start=1):
            containers.append(tuple.__new__(Equipment, (c[0], c[1], tuple(c[2]), c[3],
                                                        _indexed(consignment, "TransportEquipment", i, n))))
        values = self.values
        values["filing_code"], values["mode"], values["level"] = filing_code, kind.mode, kind.level
        values["parties"], values["goods"], values["containers"] = tuple(parties), tuple(goods), tuple(containers)
        values["routing_countries"], values["house_documents"], values["house_filers"] = \
            tuple(self.routing), tuple(self.house_documents), tuple(self.house_filers)
        values["pointers"] = self.pointers
        return new_record(values)


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


cdef object _first_type(tree.xmlNode* packaging, const char* ns):
    """The string-value of the packaging's first Type when it starts as a bulk code does (V...),
    else None: the only first Types the bulk rule asks about."""
    cdef tree.xmlNode* c = packaging.children
    cdef tree.xmlNode* t
    while c is not NULL:
        if _named(c, ns, b"Type"):
            t = c.children
            if t is not NULL and t.type == tree.XML_TEXT_NODE and t.content is not NULL and t.content[0] != c'V':
                return None
            value = _string_value(c)
            return value if value.startswith("V") else None
        c = c.next
    return None


cdef list _values(tree.xmlNode* parent, const char* ns, const char* name):
    """The string-values of the parent's children of that name, in document order."""
    cdef tree.xmlNode* c = parent.children
    out = []
    while c is not NULL:
        if _named(c, ns, name):
            out.append(_string_value(c))
        c = c.next
    return out


# Values are read as the pack's XPath rules need them: XML blanks around them; a plain decimal
# (XPath's Number: an optional minus, digits and at most one point) for masses, plain ASCII digits
# for counts, whose sum libxml2's doubles add exactly only up to 2 ** 53.
cdef unsigned long long _INTEGER_LIMIT = 9007199254740992ULL


cdef struct _Sum:
    # The sums of some elements' values, as decimals and as integers; ok: every value so far was one.
    double decimal
    bint decimal_ok
    unsigned long long integer
    bint integer_ok
    int n


cdef inline void _start(_Sum* acc) noexcept:
    acc.decimal, acc.decimal_ok, acc.integer, acc.integer_ok, acc.n = 0.0, True, 0, True, 0


cdef inline bint _blank(char ch) noexcept:
    return ch == c' ' or ch == c'\t' or ch == c'\r' or ch == c'\n'


cdef void _add_text(_Sum* acc, const char* text) except *:
    """Adds one value, from its UTF-8 text, with no Python string."""
    cdef const char* a = text
    cdef const char* b
    cdef const char* p
    cdef Py_ssize_t digits = 0, dots = 0
    cdef unsigned long long value = 0
    cdef char* end
    cdef bint plain_integer
    acc.n += 1
    while _blank(a[0]):
        a += 1
    b = a + strlen(a)
    while b > a and _blank(b[-1]):
        b -= 1
    p = a + 1 if a < b and a[0] == c'-' else a
    plain_integer = p == a and b > a
    while p < b:
        if p[0] == c'.':
            dots += 1
            plain_integer = False
        elif c'0' <= p[0] <= c'9':
            digits += 1
            if value <= _INTEGER_LIMIT:  # past it the value only needs to stay past it
                value = value * 10 + <unsigned long long> (p[0] - c'0')
        else:
            plain_integer = False
            digits = -1
            break
        p += 1
    if digits <= 0 or dots > 1:
        acc.decimal_ok = False
    elif acc.decimal_ok:
        acc.decimal += PyOS_string_to_double(a, &end, NULL)  # float()'s own reading, up to the blanks after it
    if not plain_integer:
        acc.integer_ok = False
    elif acc.integer_ok:
        acc.integer = acc.integer + value if value <= _INTEGER_LIMIT and acc.integer <= _INTEGER_LIMIT \
            else _INTEGER_LIMIT + 1


cdef void _add(_Sum* acc, tree.xmlNode* c) except *:
    """Adds an element's value: its one text child read in place, else its XPath string-value."""
    cdef tree.xmlNode* t = c.children
    if t is NULL:
        _add_text(acc, b"")
    elif t.next is NULL and t.type == tree.XML_TEXT_NODE and t.content is not NULL:
        _add_text(acc, <const char*> t.content)
    else:
        value = _string_value(c).encode("utf-8")
        _add_text(acc, value)


cdef void _add_children(_Sum* acc, tree.xmlNode* parent, const char* ns, const char* name) except *:
    cdef tree.xmlNode* c = parent.children
    while c is not NULL:
        if _named(c, ns, name):
            _add(acc, c)
        c = c.next


cdef inline object _decimal_of(_Sum* acc):
    """The sum of the values added, None when one is not a plain decimal."""
    return acc.decimal if acc.decimal_ok else None


cdef inline object _integer_of(_Sum* acc):
    """The exact sum of the values added, None when one is not plain digits or it is beyond 2 ** 53."""
    return acc.integer if acc.integer_ok and acc.integer <= _INTEGER_LIMIT else None


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
    cdef tree.xmlNode* e
    cdef _Sum goods_mass, goods_counts, house_mass, house_packages, receptacle_mass, receptacle_items, one
    cdef int houses = 0, receptacles = 0
    cdef bint counted
    _start(&goods_mass); _start(&goods_counts); _start(&house_mass); _start(&house_packages)
    _start(&receptacle_mass); _start(&receptacle_items)
    packagings = []  # (first Type if it has a Count and the Type is a bulk code's shape, Types if no Count, Count?)
    house_numbers, totals_mass, totals_packages, itineraries, htd_numbers = [], [], [], [], []
    loading_codes, loading_countries, unloading_codes, unloading_countries = [], [], [], []
    c = scope.children
    while c is not NULL:
        if not _in(c, ns):
            c = c.next
            continue
        name = <const char*> c.name
        if strcmp(name, b"GoodsItem") == 0:
            _add_children(&goods_mass, c, ns, b"GrossMass")
            d = c.children
            while d is not NULL:
                if _named(d, ns, b"Packaging"):
                    counted = False
                    e = d.children
                    while e is not NULL:
                        if _named(e, ns, b"Count"):
                            _add(&goods_counts, e)
                            counted = True
                        e = e.next
                    packagings.append((_first_type(d, ns) if counted else None,
                                       None if counted else _values(d, ns, b"Type"), counted))
                d = d.next
        elif strcmp(name, b"TotalGrossMass") == 0:
            _start(&one)
            _add(&one, c)
            totals_mass.append(_decimal_of(&one))
        elif strcmp(name, b"TotalPackages") == 0:
            _start(&one)
            _add(&one, c)
            totals_packages.append(_integer_of(&one))
        elif strcmp(name, b"HouseConsignment") == 0:
            houses += 1
            _add_children(&house_mass, c, ns, b"TotalGrossMass")
            _add_children(&house_packages, c, ns, b"TotalPackages")
            numbers = []
            d = c.children
            while d is not NULL:
                if _named(d, ns, b"TransportDocument"):
                    numbers += _values(d, ns, b"Number")
                d = d.next
            house_numbers.append(numbers)
        elif strcmp(name, b"Receptacle") == 0:
            receptacles += 1
            _add_children(&receptacle_mass, c, ns, b"GrossMass")
            _add_children(&receptacle_items, c, ns, b"ItemCount")
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
            sums = ([_decimal_of(&goods_mass)] if goods_mass.n else []) + \
                   ([_decimal_of(&house_mass)] if houses else []) + \
                   ([_decimal_of(&receptacle_mass)] if receptacles else [])
            if sums:
                for total in totals_mass:
                    if not _far_from(total, sums):
                        return False
        elif rule == "DQ_TOTAL_PACKAGES" and totals_packages:
            for total in totals_packages:
                if total is None and (packagings or houses or receptacle_items.n):
                    return False
                if packagings and total != _integer_of(&goods_counts):
                    return False
                if houses and total != _integer_of(&house_packages):
                    return False
                if receptacle_items.n and total != _integer_of(&receptacle_items) and total != receptacles:
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
            for first, types, counted in packagings:
                if counted and first is not None and f" {_normalized(first)} " in listed:
                    return False
        elif rule == "DQ_UNPACKED_PIECE_COUNT":
            listed = variables["unpacked_codes"]
            for first, types, counted in packagings:
                if not counted:
                    for t in types:
                        if f" {_normalized(t)} " in listed:
                            return False
    return True


cdef enum:
    NAME_SLOTS = 256  # a pack's plan remembers this many element names (an ENS filing uses about 90)


cdef class WalkPlan:
    """A data-quality pack's tables (DataQualityPack.walk_tables) as the walk uses them, with the
    element names it has met: libxml2 keeps one copy of each name in the parser's dictionary,
    which lxml shares per thread, so an element's name pointer finds its entry without making a
    Python string and three dict look-ups per element. A pointer is only trusted when the
    name it points to still reads the same (a freed dictionary's memory may hold other names)."""
    cdef bytes ns_bytes
    cdef const char* ns
    cdef dict checks, scopes, variables
    cdef object select_findings, ref, vague
    cdef Py_ssize_t cache_limit
    cdef const char* slot_names[NAME_SLOTS]
    cdef list slots  # per slot: (name, record code, scope or None, checks or None, the name's bytes)
    cdef int filled

    def __init__(self, str namespace, dict checks, dict scopes, select_findings, dict variables, ref, vague,
                 Py_ssize_t cache_limit):
        self.ns_bytes = namespace.encode("utf-8")
        self.ns = self.ns_bytes
        self.checks, self.scopes, self.variables = checks, scopes, variables
        self.select_findings, self.ref, self.vague, self.cache_limit = select_findings, ref, vague, cache_limit
        self.slots = [None] * NAME_SLOTS
        self.filled = 0

    cdef tuple entry(self, tree.xmlNode* c):
        cdef const char* name = <const char*> c.name
        cdef Py_ssize_t i = ((<uintptr_t> name) >> 4) & (NAME_SLOTS - 1)
        cdef int probes
        for probes in range(NAME_SLOTS):
            if self.slot_names[i] == NULL:
                break
            if self.slot_names[i] == name:
                found = <tuple> self.slots[i]
                if strcmp(PyBytes_AS_STRING(found[4]), name) == 0:
                    return found
            i = (i + 1) & (NAME_SLOTS - 1)
        text = _str(name)
        found = (text, _CODES.get(text, 0), self.scopes.get(text), self.checks.get(text), text.encode("utf-8"))
        if self.slot_names[i] == NULL and self.filled < NAME_SLOTS // 2:  # half full at most: probes stay short
            self.slot_names[i], self.slots[i] = name, found
            self.filled += 1
        return found


def header(_Element root not None, str namespace):
    """(lrn, office of first entry, amended MRN, declarant id, representative id, MRN): what
    validation._summary reads from an ENS filing's header (and an invalidation's MRN), as lxml
    reads it there: the header is the root's first child, fields its element children, the
    parties' IdentificationNumber their first of that name, the MRN the root's first MRN child
    ("" when empty, as findtext says)."""
    cdef bytes ns_bytes = namespace.encode("utf-8")
    cdef const char* ns = ns_bytes
    cdef tree.xmlNode* c = root._c_node.children
    cdef tree.xmlNode* d
    lrn = office = amended = declarant = representative = mrn = None
    while c is not NULL and not _lxml_child(c):
        c = c.next
    if c is not NULL and _named(c, ns, b"Header"):
        c = c.children
        while c is not NULL:
            if _in(c, ns):
                if strcmp(<const char*> c.name, b"LRN") == 0:
                    lrn = _text(c)
                elif strcmp(<const char*> c.name, b"CustomsOfficeOfFirstEntry") == 0:
                    office = _text(c)
                elif strcmp(<const char*> c.name, b"AmendedMRN") == 0:
                    amended = _text(c)
                elif strcmp(<const char*> c.name, b"Declarant") == 0 or \
                        strcmp(<const char*> c.name, b"Representative") == 0:
                    party = None
                    d = c.children
                    while d is not NULL:
                        if _named(d, ns, b"IdentificationNumber"):
                            party = _text(d)
                            break
                        d = d.next
                    if strcmp(<const char*> c.name, b"Declarant") == 0:
                        declarant = party
                    else:
                        representative = party
            c = c.next
    if strcmp(<const char*> root._c_node.name, _INVALIDATION_ROOT) == 0:
        c = root._c_node.children
        while c is not NULL:
            if _named(c, ns, b"MRN"):
                mrn = _text(c) or ""
                break
            c = c.next
    return lrn, office, amended, declarant, representative, mrn


cdef inline bint _lxml_child(tree.xmlNode* c) noexcept:
    """A node lxml counts as a child (root[0]): an element, comment, entity reference or PI."""
    return c.type == tree.XML_ELEMENT_NODE or c.type == tree.XML_COMMENT_NODE \
        or c.type == tree.XML_ENTITY_REF_NODE or c.type == tree.XML_PI_NODE


def walk(_Element root not None, WalkPlan plan not None, str top=None):
    """(findings, record or None): the data-quality pack's findings in document order, as
    DataQualityPack.check finds them, and with `top` (the root's pointer, for a filing valid
    against the schema) what screening._Reader reads, as a _Record.

    The plan's checks: local name -> [(parent local name or None, rule, answers by raw text, check)];
    its scopes: local name -> (compiled XPath union, rules, native rule ids or ()), the union run on
    each such element unless every rule of it is native and _clear finds nothing for it to
    select; when it selects something select_findings(element, rules) says which rules found what."""
    cdef const char* ns = plan.ns
    cdef tree.xmlNode* start = root._c_node
    if _in(start, ns):
        ns = <const char*> start.ns.href
    cdef tree.xmlNode* c = start
    cdef _Record record = _Record(top) if top is not None else None
    cdef list findings = []
    cdef list entries
    cdef tuple found
    cdef dict answers
    cdef dict variables = plan.variables
    cdef int code
    while c is not NULL:
        if c.type == tree.XML_ELEMENT_NODE:
            if _in(c, ns):
                found = plan.entry(c)
                code = found[1] if record is not None else 0
                raw = _text(c) if code or found[3] is not None else None  # once, for the record and the checks
                if code:
                    record.element(code, found[0], c, raw)
                scoped = found[2]
                if scoped is not None and not (scoped[2] and _clear(c, ns, scoped[2], variables)):
                    el = elementFactory(root._doc, c)
                    if scoped[0](el, **variables):
                        findings.extend(plan.select_findings(el, scoped[1]))
                if found[3] is not None:
                    entries = found[3]
                    for parent_name, rule, answers, fn in entries:
                        if parent_name is not None and (c is start or not _in(c.parent, ns)
                                                        or _str(<const char*> c.parent.name) != parent_name):
                            continue
                        problem = answers.get(raw, answers)  # the dict itself: not yet asked
                        if problem is answers:
                            if len(answers) >= plan.cache_limit:
                                answers.clear()
                            problem = answers[raw] = fn((raw or "").strip(), plan.ref, plan.vague)
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
