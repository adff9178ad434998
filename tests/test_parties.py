"""Party identity and private-person consignees (pipeline/domain/parties.py): pure functions, over
addresses written the way each country writes them."""
import pytest

from cargoscreen.domain.legal_lists import bundled_legal_lists
from cargoscreen.domain.parties import (NATURAL_PERSON_CONSIGNEE, PARTY_HISTORY, PRIVATE_COMMERCIAL_QUANTITY, Seen,
                                        Sighting, bundled_commercial_goods, business_markers,
                                        commercial_quantity_facts, flat_marker, history_fact, natural_person,
                                        natural_person_facts, normalised_name, party_identity, sightings)
from cargoscreen.domain.screening import GoodsLine, Party, ScreeningRecord


def consignee(name, street=None, country="DE", id=None, city="Town", pointer="/IE3F30/Consignment/Consignee"):
    return Party("consignee", id, name, street, city, "10115", country, pointer)


@pytest.mark.parametrize("a, b", [
    ("Golden Trading Co., Ltd.", "GOLDEN TRADING CO LTD"),
    ("Müller Maschinenbau GmbH", "MÜLLER MASCHINENBAU"),
    ("Żabka Polska Sp. z o.o.", "Zabka Polska"),
    ("Société Générale d'Import S.A.S.", "Societe Generale dImport SAS"),
    ("Søren Ærø ApS", "Soren Aero"),
    ("Nordic Tools AB", "Nordic Tools"),
    ("Kovács és Társa Kft.", "Kovacs es Tarsa"),
    ("Hellas Foods A.E.", "HELLAS FOODS AE"),
])
def test_names_of_one_party_normalise_alike(a, b):
    assert normalised_name(a) == normalised_name(b)


def test_a_name_that_is_only_a_legal_form_keeps_itself():
    assert normalised_name("S.A.") == "s a"
    assert normalised_name("") is None and normalised_name(None) is None


def test_identity_is_the_id_where_given_else_name_and_country():
    assert party_identity(Party("consignor", "de 1234-5678 9012", "X GmbH", country="DE")) == "id:DE123456789012"
    assert party_identity(Party("consignor", None, "Ningbo Star Trading Co., Ltd", country="CN")) == \
        "name:CN:ningbo star trading"
    # the same name in another country is another party
    assert party_identity(Party("consignor", None, "Star Trading Ltd", country="HK")) != \
        party_identity(Party("consignor", None, "Star Trading Ltd", country="GB"))
    assert party_identity(Party("consignor", "  ", None, country="CN")) is None


PEOPLE = [  # (name, street, country): private persons at home, as EU addresses write them
    ("Anna Kowalska", "ul. Długa 12/5", "PL"),
    ("Piotr Nowak", "ul. Marszałkowska 84 m. 12", "PL"),
    ("Jonas Petraitis", "Gedimino pr. 21-14", "LT"),
    ("Jānis Bērziņš", "Brīvības iela 55-8", "LV"),
    ("Mari Tamm", "Narva mnt 7-12", "EE"),
    ("Lukas Schneider", "Lindenstraße 4, Whg. 5", "DE"),
    ("Frau Petra Huber", "Hauptstraße 12/Stiege 2/Top 7", "AT"),
    ("Klaus Weber", "Bergstraße 7, 2. OG", "DE"),
    ("Erik Lindqvist", "Storgatan 14 lgh 1102", "SE"),
    ("Mikko Virtanen", "Mannerheimintie 12 B 34", "FI"),
    ("Sanne de Vries", "Kerkstraat 12 3-hoog", "NL"),
    ("Marc Peeters", "Kerkstraat 45 bus 3", "BE"),
    ("Sophie Lambert", "Rue de la Loi 101 bte 12", "BE"),
    ("Camille Martin", "12 rue des Lilas, Bât. B, 3e étage", "FR"),
    ("Lucía García", "Calle Mayor 5, 3º 2ª", "ES"),
    ("Javier Fernández", "Avenida de América 10, piso 4, puerta B", "ES"),
    ("João Silva", "Rua Augusta 100, 2º Esq", "PT"),
    ("Marco Rossi", "Via Roma 12, int. 5", "IT"),
    ("Ioana Popescu", "Str. Mihai Eminescu 10, bl. A2, ap. 12", "RO"),
    ("Nagy Eszter", "Andrássy út 20. 2. em. 5", "HU"),
    ("Tomáš Novák", "Vinohradská 12, byt 4", "CZ"),
    ("Seán O'Brien", "Apartment 4, 12 Grand Canal Dock", "IE"),
    ("Mr John Smith", "Flat 3, 22 Baker Street", "GB"),
]


@pytest.mark.parametrize("name, street, country", PEOPLE)
def test_private_persons_at_home(name, street, country):
    person = natural_person(consignee(name, street, country))
    assert person is not None, (name, street)
    assert any(r.startswith("a flat in the address") for r in person.reasons), person.reasons


BUSINESSES = [  # no id given, yet a business: a legal form or a business word, in the name
    ("Kowalski Sp. z o.o.", "ul. Długa 12/5", "PL"),
    ("Müller & Söhne GmbH & Co. KG", "Industriestraße 4", "DE"),
    ("Rossi S.r.l.", "Via Roma 12, int. 5", "IT"),
    ("Dupont SARL", "12 rue des Lilas, Bât. B", "FR"),
    ("Transportes García S.L.", "Calle Mayor 5, 3º 2ª", "ES"),
    ("Jansen B.V.", "Kerkstraat 12 3-hoog", "NL"),
    ("Peeters BV", "Kerkstraat 45 bus 3", "BE"),
    ("Svensson AB", "Storgatan 14 lgh 1102", "SE"),
    ("Novák s.r.o.", "Vinohradská 12", "CZ"),
    ("Nagy és Társa Kft.", "Andrássy út 20", "HU"),
    ("Popescu S.R.L.", "Str. Mihai Eminescu 10, ap. 12", "RO"),
    ("Virtanen Oy", "Mannerheimintie 12 B 34", "FI"),
    ("Smith Logistics Ltd", "Unit 5, Park Royal Industrial Estate", "GB"),
    ("Amber Trading", "Gedimino pr. 21-14", "LT"),
    ("Apotheke am Markt", "Marktplatz 1", "DE"),
    ("Universität Wien Institut für Chemie", "Währinger Straße 42", "AT"),
    ("Silva & Filhos Lda", "Rua Augusta 100", "PT"),
    ("Hellas Imports", "Ermou 15", "GR"),
]


@pytest.mark.parametrize("name, street, country", BUSINESSES)
def test_businesses_are_not_private_persons(name, street, country):
    assert business_markers(name), name
    assert natural_person(consignee(name, street, country)) is None


NOT_A_FLAT = [  # building numbers that look like flats elsewhere, and words that hold a flat word
    ("Národní 1008/3", "CZ"),  # conscription/orientation number of one building
    ("Hlavná 1250/12", "SK"),
    ("Gedimino pr. 21-14", "DE"),  # a dash is a flat only where that is the custom
    ("15 Oak Road", "GB"),
    ("Rue de la Bataille 5", "FR"),
    ("Via della Scala 5", "IT"),
    ("International Business Park 3", "IE"),
    ("Calle Mayor 5", "ES"),
    ("Hauptstraße 12", "DE"),
]


@pytest.mark.parametrize("street, country", NOT_A_FLAT)
def test_building_numbers_are_not_flats(street, country):
    assert flat_marker(street, country) is None, flat_marker(street, country)


def test_a_person_without_a_flat_is_a_person_by_name_but_not_at_a_post_box():
    assert natural_person(consignee("Emma Jansen", "Kerkstraat 12", "NL")) is not None
    assert natural_person(consignee("Emma Jansen", "Postbus 1234", "NL")) is None
    assert natural_person(consignee("Emma Jansen", "Kerkstraat 12", "NL", id="NL123456789")) is None
    assert natural_person(consignee("Acme", "Kerkstraat 12", "NL")) is None  # one word: not a person's name


def record(parties, goods):
    return ScreeningRecord("F30", "express", "house", parties=tuple(parties), goods=tuple(goods))


def test_natural_person_consignee_fact_with_controlled_or_high_value_goods_only():
    lists = bundled_legal_lists()
    item = "/IE3F30/Consignment/GoodsItem[1]"
    person = consignee("Anna Kowalska", "ul. Długa 12/5", "PL")
    pistol = GoodsLine(1, "Pistol parts", "930330", value=300, currency="EUR", pointer=item)
    cheap = GoodsLine(1, "T-shirts", "610910", value=40, currency="EUR", pointer=item)
    watch = GoodsLine(1, "Wrist watch", "910221", value=4200, currency="EUR", pointer=item)
    battery = GoodsLine(1, "Spare battery", "850760", value=40, currency="EUR", pointer=item)
    [fact] = natural_person_facts(record([person], [pistol]), lists.is_controlled)
    assert fact.kind == NATURAL_PERSON_CONSIGNEE and fact.values["pointer"] == person.pointer
    assert "firearm" in fact.values["kinds"][0] and fact.values["goods"] == [pistol.pointer]
    assert "flat in the address ('12/5')" in fact.detail
    [fact] = natural_person_facts(record([person], [watch]), lists.is_controlled)
    assert fact.values["value_eur"] == 4200 and fact.values["kinds"] == []
    assert natural_person_facts(record([person], [cheap]), lists.is_controlled) == ()
    assert natural_person_facts(record([person], [battery]), lists.is_controlled) == ()
    fireworks = GoodsLine(1, "Consumer fireworks F2", "360410", value=80, currency="EUR", pointer=item)
    assert natural_person_facts(record([person], [fireworks]), lists.is_controlled) == ()
    company = consignee("Kowalski Sp. z o.o.", "ul. Długa 12/5", "PL")
    assert natural_person_facts(record([company], [pistol]), lists.is_controlled) == ()


def test_in_a_merged_consignment_a_consignee_receives_its_own_houses_goods():
    lists = bundled_legal_lists()
    person = consignee("Anna Kowalska", "ul. Długa 12/5", "PL", pointer="24PL1#/IE3F14/Consignee")
    mine = GoodsLine(1, "T-shirts", "610910", value=40, currency="EUR", pointer="24PL1#/IE3F14/GoodsItem[1]")
    other = GoodsLine(1, "Revolver", "930200", value=900, currency="EUR", pointer="24PL2#/IE3F14/GoodsItem[1]")
    assert natural_person_facts(record([person], [mine, other]), lists.is_controlled) == ()


def test_sightings_track_consignor_consignee_and_notify_under_each_members_filer():
    parties = [Party("declarant", "DE1", "Carrier GmbH", pointer="M1#/d"),
               Party("consignor", "CN9", "Star Ltd", country="CN", pointer="H1#/c"),
               Party("consignee", None, "Anna Kowalska", country="PL", pointer="H2#/e"),
               Party("notify", None, None, pointer="H2#/n")]
    found = sightings(record(parties, []), "M1", {"H1": "FR1", "H2": "NL1", "M1": "DE1"}, "DE1")
    assert found == [Sighting("FR1", "H1", "consignor", "id:CN9", "H1#/c"),
                     Sighting("NL1", "H2", "consignee", "name:PL:anna kowalska", "H2#/e")]


def test_history_fact_counts_days_before_this_filing():
    s = Sighting("DE1", "M1", "consignor", "id:CN9", "/c")
    fact = history_fact(s, Seen(4, 1_000_000.0, 1_000_000.0 + 10 * 86400))
    assert fact.kind == PARTY_HISTORY and fact.values["filings"] == 4 and fact.values["first_seen_days"] == 10
    assert "4 earlier filings" in fact.detail
    new = history_fact(s, Seen(0, None, 5.0))
    assert new.values["filings"] == 0 and new.values["first_seen_days"] == 0 and "never seen" in new.detail


def test_in_a_filing_with_houses_a_consignee_receives_its_own_houses_goods():
    lists = bundled_legal_lists()
    person = consignee("Anna Kowalska", "ul. Długa 12/5", "PL",
                       pointer="/IE3F30/Consignment/HouseConsignment[1]/Consignee")
    mine = GoodsLine(1, "T-shirts", "610910", value=40, currency="EUR",
                     pointer="/IE3F30/Consignment/HouseConsignment[1]/GoodsItem")
    other = GoodsLine(1, "Wrist watches", "910221", value=22000, currency="EUR",
                      pointer="/IE3F30/Consignment/HouseConsignment[2]/GoodsItem")
    assert natural_person_facts(record([person], [mine, other]), lists.is_controlled) == ()
    [fact] = natural_person_facts(record([person], [mine._replace(value=1500)]), lists.is_controlled)
    assert fact.values["value_eur"] == 1500


@pytest.mark.parametrize("description, hs_code, count", [
    ("iPhone 16 Pro 256 GB, 25 units, with lithium-ion batteries", "851713", 25),
    ("Used mobile phones, 60 pcs, with batteries", "851713", 60),
    ("Folding hunting knives 9 cm blade, 40 pcs", "821193", 40),
    ("Laptops 15.6 inch refurbished x12", "847130", 12),
    ("Hunting knives with sheath, 2 dozen", "821192", 24),
    # a purchase for oneself, goods people do buy by the ten, table knives, or no count said
    ("iPhone 16 Pro 256 GB", "851713", None), ("Smartphones, 3 pcs", "851713", None),
    ("Phone cases silicone, 50 pcs", "392690", None), ("Table knives stainless, 24 pcs", "821191", None),
    ("Used mobile phones with batteries", "851713", None)])
def test_a_private_person_receiving_a_commercial_quantity_of_phones_or_knives_is_a_fact(description, hs_code, count):
    item = "/IE3F30/Consignment/GoodsItem[1]"
    person = consignee("Yannick Dubois", "Rue Haute 144", "BE")
    line = GoodsLine(1, description, hs_code, value=900, currency="EUR", pointer=item)
    facts = commercial_quantity_facts(record([person], [line]), bundled_commercial_goods())
    assert [f.values["count"] for f in facts] == ([count] if count else [])
    if count:
        assert facts[0].kind == PRIVATE_COMMERCIAL_QUANTITY and facts[0].values["pointer"] == item + "/Description"
        assert facts[0].values["declared"] == hs_code and "commercial quantity" in facts[0].detail
    company = consignee("Phone Repair Centre BVBA", "Rue Haute 144", "BE")
    assert commercial_quantity_facts(record([company], [line]), bundled_commercial_goods()) == ()


def test_folding_takes_accents_off_as_decomposing_every_name_would(corpus, validator):
    """Party names and goods descriptions fold (parties.fold, goods_classifier.fold, both through
    folding.without_accents) as decomposing them (NFKD) and dropping the combining marks does, ASCII
    text (folded without decomposing) included: every name and description of the generated corpus
    and of the scenario set's parties, and accented ones."""
    import csv
    import unicodedata
    from pathlib import Path

    from cargoscreen.domain import goods_classifier, parties
    from cargoscreen.validation import Submission

    def undecorated(text: str) -> str:
        return "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))

    def party_fold(text: str) -> str:
        return " ".join(w.replace("'", "").replace("’", "") for w in parties._WORD.findall(
            undecorated(text.casefold().translate(parties._FOLD))))

    def goods_fold(text: str) -> str:
        text = undecorated(text.replace("ß", "ss")).lower()
        text = text.replace("'", "").replace("\u2019", "").replace("&", " and ")
        return goods_classifier._TEE.sub("tshirt", goods_classifier._JOINED.sub(lambda m: m[1] or m[2] or m[3], text))

    names = ["Müller-Lüdenscheidt & Söhne", "ŁÓDŹ Trading Sp. z o.o.", "Ørsted A/S", "Straße 5",
             "KELVIN \u212a Ltd", "ﬁne ﬂowers", "Café Crème", "İstanbul Dış Ticaret"]
    texts = list(names)
    for f in corpus:
        record = validator.validate(Submission(f.name, f.data)).record
        if record is not None:
            names += [p.name for p in record.parties if p.name]
            texts += [g.description for g in record.goods if g.description]
    with open(Path(__file__).parent / "scenarios" / "data" / "parties.csv", encoding="utf-8", newline="") as f:
        names += [r["name"] for r in csv.DictReader(f)]
    assert len(names) > 2000 and any(not n.isascii() for n in names) and any(n.isascii() for n in names)
    for name in names:
        assert parties.fold(name) == party_fold(name), name
    for text in texts + names:
        assert goods_classifier.fold(text) == goods_fold(text), text
