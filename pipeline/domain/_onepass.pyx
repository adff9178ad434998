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


def walk(_Element root not None, str namespace, dict checks, dict scopes, select_findings, dict variables, ref,
         vague, Py_ssize_t cache_limit, str top=None):
    """(findings, record or None): the data-quality pack's findings in document order, as
    DataQualityPack.check finds them, and with `top` (the root's pointer, for a filing valid
    against the schema) what screening._Reader reads, as a _Record.

    checks: local name -> [(parent local name or None, rule, answers by raw text, check)];
    scopes: local name -> (compiled XPath union, rules), run on each such element, and when it
    selects something select_findings(element, rules) says which rules found what."""
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
                if scoped is not None:
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
