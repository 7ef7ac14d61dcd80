"""World knowledge a 22M-parameter encoder lacks: cities, region codes, processor prefixes.

Why by hand: no library answers "is this run of descriptor words a (possibly cut-off,
possibly abbreviated) city of the state printed next to it". The US city list comes from
the ``zipcodes`` package (offline, public USPS data); card networks abbreviate city words
(``FORT`` -> ``FT``, ``NORTH`` -> ``N``) and cut the city field at a fixed width, so every
city is also indexed in its abbreviated spellings and looked up by prefix.

``zipcodes`` is US-only: the Canadian cities below are a short hand-written list of major
Canadian cities (public knowledge, not taken from any evaluation data), and the processor
prefixes are the generator's own list (``finextract.synth.merchants.INTERMEDIARIES``).
"""

from __future__ import annotations

import bisect
import re
from functools import lru_cache

US_STATES = frozenset(
    "AL AK AZ AR CA CO CT DE FL GA HI ID IL IN IA KS KY LA ME MD MA MI MN MS MO MT NE NV NH NJ NM NY NC ND OH "
    "OK OR PA RI SC SD TN TX UT VT VA WA WV WI WY DC PR VI GU AS MP AA AE AP".split())
CA_PROVINCES = frozenset("AB BC MB NB NL NS NT NU ON PE QC SK YT".split())
COUNTRY_CODES = frozenset(
    "US USA CA CAN GB GBR UK IE IRL FR FRA DE DEU NL NLD ES ESP IT ITA MX MEX AU AUS NZ NZL JP JPN CN CHN HK HKG "
    "SG SGP IN IND BR BRA CH CHE SE SWE NO NOR DK DNK BE BEL AT AUT PT PRT IL ISR AE ARE LU LUX PL POL".split())

# Major Canadian cities by province (hand-written; zipcodes has no Canadian data).
CANADIAN_CITIES: dict[str, list[str]] = {
    "ON": ["TORONTO", "OTTAWA", "MISSISSAUGA", "BRAMPTON", "HAMILTON", "LONDON", "MARKHAM", "VAUGHAN",
           "KITCHENER", "WINDSOR", "RICHMOND HILL", "OAKVILLE", "BURLINGTON", "OSHAWA", "BARRIE", "GUELPH",
           "KINGSTON", "WATERLOO", "CAMBRIDGE", "SUDBURY", "THUNDER BAY", "ST CATHARINES", "NIAGARA FALLS",
           "PICKERING", "AJAX", "WHITBY", "MILTON", "NORTH YORK", "SCARBOROUGH", "ETOBICOKE", "PETERBOROUGH"],
    "QC": ["MONTREAL", "QUEBEC", "LAVAL", "GATINEAU", "LONGUEUIL", "SHERBROOKE", "SAGUENAY", "LEVIS",
           "TROIS-RIVIERES", "TERREBONNE", "BROSSARD", "DORVAL", "POINTE-CLAIRE"],
    "BC": ["VANCOUVER", "SURREY", "BURNABY", "RICHMOND", "VICTORIA", "KELOWNA", "ABBOTSFORD", "COQUITLAM",
           "NORTH VANCOUVER", "WEST VANCOUVER", "LANGLEY", "NANAIMO", "KAMLOOPS", "DELTA", "WHISTLER",
           "NEW WESTMINSTER", "PORT COQUITLAM", "MAPLE RIDGE", "CHILLIWACK"],
    "AB": ["CALGARY", "EDMONTON", "RED DEER", "LETHBRIDGE", "ST ALBERT", "MEDICINE HAT", "AIRDRIE",
           "SHERWOOD PARK", "BANFF", "CANMORE", "FORT MCMURRAY", "GRANDE PRAIRIE"],
    "MB": ["WINNIPEG", "BRANDON", "STEINBACH"],
    "SK": ["SASKATOON", "REGINA", "PRINCE ALBERT", "MOOSE JAW"],
    "NS": ["HALIFAX", "DARTMOUTH", "SYDNEY", "TRURO"],
    "NB": ["MONCTON", "SAINT JOHN", "FREDERICTON", "DIEPPE"],
    "NL": ["ST JOHNS", "ST. JOHN'S", "MOUNT PEARL", "CORNER BROOK"],
    "PE": ["CHARLOTTETOWN", "SUMMERSIDE"],
    "YT": ["WHITEHORSE"],
    "NT": ["YELLOWKNIFE"],
    "NU": ["IQALUIT"],
}

# How card networks shorten city words (and the reverse, so "FT" and "FORT" index the same city).
CITY_ABBREVIATIONS = {"FORT": "FT", "SAINT": "ST", "SAINTE": "STE", "NORTH": "N", "SOUTH": "S", "EAST": "E",
                      "WEST": "W", "MOUNT": "MT", "PORT": "PT", "POINT": "PT", "HEIGHTS": "HTS", "BEACH": "BCH",
                      "SPRINGS": "SPGS", "CITY": "CTY", "VILLAGE": "VLG", "LAKE": "LK", "CENTER": "CTR",
                      "JUNCTION": "JCT", "FALLS": "FLS", "GARDENS": "GDNS", "ISLAND": "IS", "PARK": "PK"}

_WORD = re.compile(r"[A-Z0-9'.-]+")


def normalize_city(name: str) -> str:
    """Upper case, single spaces, no dots (``St. Louis`` -> ``ST LOUIS``)."""
    return " ".join(name.upper().replace(".", " ").split())


def spellings(name: str) -> set[str]:
    """The city as printed in full and with every word a network abbreviates abbreviated."""
    words = normalize_city(name).split()
    full = " ".join(words)
    short = " ".join(CITY_ABBREVIATIONS.get(w, w) for w in words)
    first_only = " ".join([CITY_ABBREVIATIONS.get(words[0], words[0])] + words[1:]) if words else ""
    return {s for s in (full, short, first_only, full.replace("'", "")) if s}


class Gazetteer:
    """City names per region code, exact and prefix lookup, and region code classes."""

    def __init__(self, cities: dict[str, set[str]], major: set[str]):
        self.cities = cities  # region -> set of spellings
        self.sorted = {r: sorted(v) for r, v in cities.items()}
        self.major = major  # spellings of larger cities, matched even without an adjacent region code
        # first words of those spellings: a run of words can only be a larger city if its first word is one
        self.major_heads = frozenset(m.split(" ")[0] for m in major)
        self.max_words = max((len(c.split()) for v in cities.values() for c in v), default=1)

    def is_city(self, run: str, region: str) -> bool:
        return run in self.cities.get(region, ())

    def is_city_prefix(self, run: str, region: str, min_chars: int = 3) -> bool:
        """``run`` is a strict prefix of a city of ``region`` (a cut-off city field)."""
        if len(run) < min_chars:
            return False
        names = self.sorted.get(region, [])
        i = bisect.bisect_left(names, run)
        return i < len(names) and names[i].startswith(run) and names[i] != run

    def is_major_city(self, run: str) -> bool:
        return run in self.major


@lru_cache(maxsize=1)
def gazetteer() -> Gazetteer:
    """Built once per process from ``zipcodes`` (about 30,000 US city/state pairs) + Canada."""
    cities: dict[str, set[str]] = {}
    zips_per_city: dict[str, int] = {}
    try:
        import zipcodes

        rows = zipcodes.list_all()
    except ImportError:  # optional: without it only the Canadian list and region codes are known
        rows = []
    for row in rows:
        region = row.get("state") or ""
        names = [row.get("city") or ""] + list(row.get("acceptable_cities") or [])
        for name in names:
            if not name:
                continue
            for s in spellings(name):
                cities.setdefault(region, set()).add(s)
        main = normalize_city(row.get("city") or "")
        zips_per_city[main] = zips_per_city.get(main, 0) + 1
    major = set()
    for name, n in zips_per_city.items():
        if n >= 3:  # a rough size proxy: cities with several ZIP codes
            major |= spellings(name)
    for region, name in canadian_cities():
        cities.setdefault(region, set()).update(spellings(name))
        major |= spellings(name)
    return Gazetteer(cities, major)


def canadian_cities() -> list[tuple[str, str]]:
    """``(province, city)``: the list above plus every Canadian city the generator prints, so a
    model never meets a generated Canadian city its gazetteer does not know."""
    from finextract.synth.geo import CANADA, CANADA_HOME

    pairs = {(region, normalize_city(n)) for region, names in CANADIAN_CITIES.items() for n in names}
    pairs |= {(prov, normalize_city(city)) for city, prov in [*CANADA_HOME, *CANADA]}
    return sorted(pairs)


def region_class(word: str) -> int:
    """0 none, 1 US state, 2 Canadian province, 3 country code, 4 a state code that is also a country code."""
    w = word.upper()
    state = w in US_STATES or w in CA_PROVINCES
    country = w in COUNTRY_CODES
    if state and country:
        return 4
    if w in CA_PROVINCES:
        return 2
    if state:
        return 1
    return 3 if country else 0


@lru_cache(maxsize=1)
def processor_prefixes() -> tuple[str, ...]:
    """Upper-cased facilitator prefixes from the generator (``SQ *``, ``TST*``, ...), longest first."""
    try:
        from finextract.synth.merchants import INTERMEDIARIES

        names = {n.upper() for n, _ in INTERMEDIARIES}
    except ImportError:
        names = {"SQ *", "SQ*", "TST*", "PAYPAL *", "PP*"}
    return tuple(sorted(names, key=len, reverse=True))
