"""Real, consistent places: US city/state/ZIP/area code from the ``zipcodes`` package.

``zipcodes`` bundles the USPS ZIP table offline, so a descriptor never pairs a city with a
state or ZIP it does not belong to. Canadian, Australian and other foreign places are a
short hand list (cities that show up on US cards when travelling or buying abroad).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from functools import lru_cache


@dataclass(frozen=True)
class Place:
    city: str                 # upper case, as networks print it
    state: str                # two-letter state/province code, "" when none
    zip: str                  # 5-digit ZIP, "" outside the US
    country2: str             # ISO alpha-2
    country3: str             # ISO alpha-3
    area_codes: tuple[str, ...] = ()


# Large metros weigh more: most card volume is in big cities.
_METROS = [
    ("New York", "NY"), ("Brooklyn", "NY"), ("Los Angeles", "CA"), ("Chicago", "IL"), ("Houston", "TX"),
    ("Phoenix", "AZ"), ("Philadelphia", "PA"), ("San Antonio", "TX"), ("San Diego", "CA"), ("Dallas", "TX"),
    ("San Jose", "CA"), ("Austin", "TX"), ("San Francisco", "CA"), ("Seattle", "WA"), ("Denver", "CO"),
    ("Boston", "MA"), ("Washington", "DC"), ("Nashville", "TN"), ("Las Vegas", "NV"), ("Portland", "OR"),
    ("Atlanta", "GA"), ("Miami", "FL"), ("Minneapolis", "MN"), ("Oakland", "CA"), ("Palo Alto", "CA"),
    ("Mountain View", "CA"), ("Sunnyvale", "CA"), ("Redwood City", "CA"), ("San Mateo", "CA"),
    ("Santa Monica", "CA"), ("Berkeley", "CA"), ("Fort Collins", "CO"), ("Boulder", "CO"), ("Cambridge", "MA"),
    ("Saint Louis", "MO"), ("Salt Lake City", "UT"), ("Pittsburgh", "PA"), ("Orlando", "FL"), ("Tampa", "FL"),
    ("New Orleans", "LA"), ("Charlotte", "NC"), ("Raleigh", "NC"), ("Columbus", "OH"), ("Detroit", "MI"),
    ("Baltimore", "MD"), ("Sacramento", "CA"), ("Irvine", "CA"), ("Newport Beach", "CA"), ("Honolulu", "HI"),
    ("South San Francisco", "CA"), ("West Hollywood", "CA"), ("Jersey City", "NJ"), ("Arlington", "VA"),
    ("Scottsdale", "AZ"), ("Kansas City", "MO"), ("Indianapolis", "IN"), ("Milwaukee", "WI"), ("Rockville", "MD"),
]

# Canadian cities (general knowledge, not from any labeled set): what US/Canadian card data shows
# for domestic Canadian acceptors. Accents are dropped, as networks print plain ASCII.
CANADA_HOME = [
    ("Toronto", "ON"), ("Mississauga", "ON"), ("Brampton", "ON"), ("Markham", "ON"), ("Vaughan", "ON"),
    ("Richmond Hill", "ON"), ("Oakville", "ON"), ("Burlington", "ON"), ("Hamilton", "ON"), ("Ottawa", "ON"),
    ("London", "ON"), ("Kitchener", "ON"), ("Waterloo", "ON"), ("Guelph", "ON"), ("Windsor", "ON"),
    ("Kingston", "ON"), ("Oshawa", "ON"), ("Barrie", "ON"), ("Sudbury", "ON"), ("Thunder Bay", "ON"),
    ("Niagara Falls", "ON"), ("St. Catharines", "ON"), ("Peterborough", "ON"), ("North York", "ON"),
    ("Scarborough", "ON"), ("Etobicoke", "ON"), ("Montreal", "QC"), ("Laval", "QC"), ("Longueuil", "QC"),
    ("Gatineau", "QC"), ("Quebec", "QC"), ("Levis", "QC"), ("Sherbrooke", "QC"), ("Trois-Rivieres", "QC"),
    ("Saint-Laurent", "QC"), ("Mont-Tremblant", "QC"), ("Vancouver", "BC"), ("North Vancouver", "BC"),
    ("West Vancouver", "BC"), ("Burnaby", "BC"), ("Surrey", "BC"), ("Richmond", "BC"), ("Coquitlam", "BC"),
    ("Victoria", "BC"), ("Kelowna", "BC"), ("Kamloops", "BC"), ("Nanaimo", "BC"), ("Abbotsford", "BC"),
    ("Whistler", "BC"), ("Calgary", "AB"), ("Edmonton", "AB"), ("Red Deer", "AB"), ("Lethbridge", "AB"),
    ("Banff", "AB"), ("Canmore", "AB"), ("Winnipeg", "MB"), ("Brandon", "MB"), ("Saskatoon", "SK"),
    ("Regina", "SK"), ("Halifax", "NS"), ("Dartmouth", "NS"), ("Moncton", "NB"), ("Fredericton", "NB"),
    ("Saint John", "NB"), ("St. John's", "NL"), ("Charlottetown", "PE"), ("Whitehorse", "YT"),
    ("Yellowknife", "NT"), ("Iqaluit", "NU"),
]
# First letter of the postal code (forward sortation area) by province; Quebec and Ontario have several.
_POSTAL_FIRST = {"NL": "A", "NS": "B", "PE": "C", "NB": "E", "QC": "GHJ", "ON": "KLMNP", "MB": "R", "SK": "S",
                 "AB": "T", "BC": "V", "NT": "X", "NU": "X", "YT": "Y"}
# Canada Post never uses D, F, I, O, Q, U in postal codes (and W, Z never first).
POSTAL_LETTERS = "ABCEGHJKLMNPRSTVWXYZ"
_CA_AREA = {"ON": ("416", "647", "437", "905", "289", "519", "226", "613", "343", "705", "807"),
            "QC": ("514", "438", "450", "579", "418", "581", "819"), "BC": ("604", "778", "236", "250"),
            "AB": ("403", "587", "780", "825"), "MB": ("204", "431"), "SK": ("306", "639"), "NS": ("902", "782"),
            "PE": ("902", "782"), "NB": ("506",), "NL": ("709",), "YT": ("867",), "NT": ("867",), "NU": ("867",)}
PROVINCES = tuple(_POSTAL_FIRST)


def postal_code(rng: random.Random, province: str) -> str:
    """A Canadian postal code ``A1A 1A1`` whose first letter fits the province."""
    letters = POSTAL_LETTERS
    first = rng.choice(_POSTAL_FIRST[province])
    return f"{first}{rng.randint(0, 9)}{rng.choice(letters)} {rng.randint(0, 9)}{rng.choice(letters)}{rng.randint(0, 9)}"


def canada_place(rng: random.Random) -> Place:
    city, prov = rng.choice(CANADA_HOME)
    return Place(city.upper(), prov, postal_code(rng, prov), "CA", "CAN", _CA_AREA[prov])


def home_place(rng: random.Random, canada_share: float = 0.0) -> Place:
    """Where a domestic (US or Canadian) card acceptor is; ``canada_share`` of them in Canada."""
    if canada_share and rng.random() < canada_share:
        return canada_place(rng)
    return us_place(rng)


CANADA = [("Toronto", "ON"), ("Vancouver", "BC"), ("Montreal", "QC"), ("Calgary", "AB"), ("Edmonton", "AB"),
          ("Ottawa", "ON"), ("Winnipeg", "MB"), ("Halifax", "NS"), ("Victoria", "BC"), ("Mississauga", "ON"),
          ("Quebec", "QC"), ("Saskatoon", "SK"), ("Regina", "SK"), ("Kelowna", "BC"), ("Waterloo", "ON")]
# Australian acceptors print the suburb, not the metro, and the network's two-letter state (NSW -> NS,
# VIC -> VI, QLD -> QL, TAS -> TA, ACT -> AC): many suburbs are two words, often a compass or place
# word plus a name (``NORTH SYDNEY``, ``PORT MELBOURNE``), the shape a model must not cut into the name.
# The suburbs are written from general knowledge and none occurs in the pilot memos (tests/test_synth.py
# checks), so the pilot still measures places the generator never printed.
AUSTRALIA = [("Sydney", "NS"), ("Melbourne", "VI"), ("Perth", "WA"), ("Brisbane", "QL"), ("Adelaide", "SA"),
             ("Hobart", "TA"), ("Canberra", "AC"), ("Darwin", "NT")]
AU_SUBURBS = [
    ("North Sydney", "NS"), ("Parramatta", "NS"), ("Chatswood", "NS"), ("Bondi Junction", "NS"), ("Manly", "NS"),
    ("Newtown", "NS"), ("Bondi Beach", "NS"), ("Darlinghurst", "NS"), ("Pyrmont", "NS"), ("Mosman", "NS"),
    ("Hornsby", "NS"), ("Penrith", "NS"), ("Bankstown", "NS"), ("Cronulla", "NS"), ("Dee Why", "NS"),
    ("Castle Hill", "NS"), ("Newcastle", "NS"), ("Wollongong", "NS"), ("Coffs Harbour", "NS"),
    ("Port Macquarie", "NS"), ("Byron Bay", "NS"), ("St Leonards", "NS"), ("Lane Cove", "NS"),
    ("Crows Nest", "NS"), ("Randwick", "NS"), ("Ultimo", "NS"), ("Haymarket", "NS"), ("Balmain", "NS"),
    ("Marrickville", "NS"), ("Double Bay", "NS"), ("Rose Bay", "NS"), ("Milsons Point", "NS"),
    ("South Yarra", "VI"), ("St Kilda", "VI"), ("Fitzroy", "VI"), ("Port Melbourne", "VI"),
    ("South Melbourne", "VI"), ("Box Hill", "VI"), ("Docklands", "VI"), ("Prahran", "VI"), ("Brunswick", "VI"),
    ("Hawthorn", "VI"), ("Footscray", "VI"), ("Geelong", "VI"), ("Ballarat", "VI"), ("Bendigo", "VI"),
    ("Frankston", "VI"), ("Dandenong", "VI"), ("Glen Waverley", "VI"), ("Moonee Ponds", "VI"),
    ("North Melbourne", "VI"), ("West Melbourne", "VI"), ("East Melbourne", "VI"),
    ("Fortitude Valley", "QL"), ("Gold Coast", "QL"), ("Surfers Paradise", "QL"),
    ("Toowoomba", "QL"), ("Cairns", "QL"), ("Townsville", "QL"), ("Noosa Heads", "QL"), ("Spring Hill", "QL"),
    ("New Farm", "QL"), ("Broadbeach", "QL"), ("Southport", "QL"),
    ("Fremantle", "WA"), ("Northbridge", "WA"), ("Subiaco", "WA"), ("Joondalup", "WA"), ("West Perth", "WA"),
    ("Cottesloe", "WA"),
    ("Glenelg", "SA"), ("Norwood", "SA"), ("Port Adelaide", "SA"), ("North Adelaide", "SA"), ("Mount Gambier", "SA"),
    ("Launceston", "TA"), ("Braddon", "AC"), ("Alice Springs", "NT")]
FOREIGN = [("London", "GB", "GBR"), ("Manchester", "GB", "GBR"), ("Dublin", "IE", "IRL"), ("Paris", "FR", "FRA"),
           ("Berlin", "DE", "DEU"), ("Munich", "DE", "DEU"), ("Amsterdam", "NL", "NLD"), ("Madrid", "ES", "ESP"),
           ("Barcelona", "ES", "ESP"), ("Rome", "IT", "ITA"), ("Milan", "IT", "ITA"), ("Zurich", "CH", "CHE"),
           ("Singapore", "SG", "SGP"), ("Hong Kong", "HK", "HKG"), ("Tokyo", "JP", "JPN"), ("Sydney", "AU", "AUS"),
           ("Melbourne", "AU", "AUS"), ("Mexico City", "MX", "MEX"), ("Cancun", "MX", "MEX"), ("Toronto", "CA", "CAN"),
           ("Vancouver", "CA", "CAN"), ("Bangalore", "IN", "IND"), ("Tel Aviv", "IL", "ISR"), ("Lisbon", "PT", "PRT"),
           ("Stockholm", "SE", "SWE"), ("Copenhagen", "DK", "DNK"), ("Seoul", "KR", "KOR"), ("Luxembourg", "LU", "LUX"),
           ("Reykjavik", "IS", "ISL"), ("Auckland", "NZ", "NZL")]


@lru_cache(maxsize=1)
def _us_table() -> tuple[list[Place], dict[tuple[str, str], list[Place]]]:
    import zipcodes

    places: list[Place] = []
    by_city: dict[tuple[str, str], list[Place]] = {}
    for row in zipcodes.list_all():
        if not row.get("active") or row.get("zip_code_type") != "STANDARD" or row.get("country") != "US":
            continue
        place = Place(row["city"].upper(), row["state"], row["zip_code"], "US", "USA",
                      tuple(row.get("area_codes") or ()))
        places.append(place)
        by_city.setdefault((place.city, place.state), []).append(place)
    return places, by_city


def us_place(rng: random.Random) -> Place:
    places, by_city = _us_table()
    if rng.random() < 0.5:
        city, state = rng.choice(_METROS)
        options = by_city.get((city.upper(), state))
        if options:
            return rng.choice(options)
    return rng.choice(places)


def foreign_place(rng: random.Random, need_state: bool) -> Place:
    if need_state:
        if rng.random() < 0.75:
            city, prov = rng.choice(CANADA)
            return Place(city.upper(), prov, "", "CA", "CAN")
        city, st = rng.choice(AU_SUBURBS) if rng.random() < 0.6 else rng.choice(AUSTRALIA)
        return Place(city.upper(), st, "", "AU", "AUS")
    city, c2, c3 = rng.choice(FOREIGN)
    return Place(city.upper(), "", "", c2, c3)


# Abbreviations banks and networks apply to fit the 13-character city field.
CITY_ABBREV = {"FORT": "FT", "SAINT": "ST", "SOUTH": "S", "NORTH": "N", "WEST": "W", "EAST": "E",
               "MOUNT": "MT", "BEACH": "BCH", "HEIGHTS": "HTS", "SPRINGS": "SPGS", "CITY": "CTY",
               "VILLAGE": "VLG", "LAKE": "LK", "PARK": "PK", "CENTER": "CTR", "SAN FRANCISCO": "SAN FRAN",
               "PORT": "PT", "POINT": "PT", "JUNCTION": "JCT", "FALLS": "FLS", "GARDENS": "GDNS",
               "VALLEY": "VLY", "ISLAND": "IS", "SAINTE": "STE", "MOUNTAIN": "MTN"}


def abbreviate_city(city: str, rng: random.Random) -> str:
    if city in CITY_ABBREV and rng.random() < 0.5:
        return CITY_ABBREV[city]
    words = [CITY_ABBREV.get(w, w) if rng.random() < 0.7 else w for w in city.split()]
    return " ".join(words)
