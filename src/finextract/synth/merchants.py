"""Who was paid: national brands (``data/brands.tsv``) and small local businesses composed
from parts, plus the payment facilitators that prefix them.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

from finextract.synth import values as V


@dataclass(frozen=True)
class Brand:
    names: tuple[str, ...]
    kind: str
    store_style: str
    dd_style: str
    domain: str
    state: str


@dataclass
class Merchant:
    name: str                 # printed name (store number included)
    kind: str                 # brand kind or local category
    dd_style: str             # how its transaction ids look
    domain: str               # billing domain ("" when none)
    hq_state: str             # where online/recurring charges say they are
    is_brand: bool
    domain_is_name: bool = False   # the name itself is a domain (rule 3)
    own_prefix: bool = False       # name carries the brand's own XX* prefix (not an intermediary)
    tail: str = ""                 # unlabeled text printed right after the name (``2 RIDES 11-05``)


@lru_cache(maxsize=1)
def brands() -> list[Brand]:
    text = resources.files("finextract.synth").joinpath("data/brands.tsv").read_text(encoding="utf-8")
    out = []
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        cols = line.split("|")
        if len(cols) != 6:
            raise ValueError(f"brands.tsv:{lineno}: expected 6 '|'-separated columns, got {len(cols)}")
        names = tuple(n for n in cols[0].split(";") if n.strip())
        out.append(Brand(names, cols[1], cols[2], cols[3], cols[4], cols[5]))
    return out


# Payment facilitators / aggregators and how they prefix the seller's name. Weighted by how
# often they show up on small-business statements; Square and Toast dominate restaurants.
INTERMEDIARIES: list[tuple[str, float]] = [
    ("SQ *", 20), ("SQ*", 6), ("SQU*SQ *", 1), ("SQ *SQ *", 1), ("SQUARE *SQ *", 0.5), ("TST* ", 8), ("TST*", 4),
    ("PAYPAL *", 9), ("PP*", 4), ("SP ", 3), ("SP *", 2), ("DD *", 3), ("DD*", 1), ("IC*", 2), ("CKO*", 1.5),
    ("CRV*", 1), ("GOOGLE *", 3), ("FS *", 1.5), ("FS*", 1), ("SPO*", 2), ("BT*", 2), ("PL*", 1), ("WAV*", 1.5),
    ("EB ", 1.5), ("EAT24 *", 0.5), ("PAY*", 1), ("2CO*", 0.5), ("PADDLE.NET*", 0.5), ("LS ", 0.7), ("CLR*", 0.5),
    ("IZ *", 0.7), ("SUMUP *", 0.7), ("ZTL*", 0.5), ("STK*", 0.4), ("UEP*", 0.4), ("POS*", 0.5), ("TOAST*", 0.5),
    ("APPLE PAY ", 0.3), ("APL* ", 0.5), ("MSFT*", 0.3), ("AMZ*", 0.4), ("WPY*", 0.5), ("CKE*", 0.3),
]

# More facilitators (written from general knowledge of how their sub-merchants are printed):
# Intuit QuickBooks payments (IN *), Squarespace, Clover, Stripe and Shopify variants,
# Paddle, FastSpring, 2Checkout/Avangate, BlueSnap, Digital River, Active Network, Grubhub,
# Klarna, Zettle, Mollie, PayU, Worldline. Used by the ``card`` profile.
MORE_INTERMEDIARIES: list[tuple[str, float]] = [
    ("IN *", 3), ("INTUIT *", 0.5), ("SQSP* ", 1.2), ("SQSP*", 0.6), ("CLV*", 1), ("CLOVER *", 0.4),
    ("STRIPE*", 0.5), ("STRIPE *", 0.3), ("SHOPIFY*", 0.6), ("SHOPIFY *", 0.3), ("SHP*", 0.4),
    ("PADDLE*", 0.4), ("PADDLE.COM*", 0.2), ("FSP*", 0.5), ("FASTSPRING*", 0.3), ("2CO.COM*", 0.3),
    ("AVANGATE*", 0.2), ("BLS*", 0.5), ("DRI*", 0.6), ("ACT*", 0.6), ("GRUBHUB*", 0.8), ("GRUBHUB *", 0.3),
    ("KLARNA*", 0.5), ("ZETTLE_*", 0.3), ("MOLLIE*", 0.2), ("PAYU*", 0.2), ("WL *", 0.2), ("SQUARE *", 0.8),
    ("TOAST *", 0.4), ("PAYPAL*", 1.5), ("PYPL*", 0.3), ("SQ*SQ *", 0.3), ("TST *", 0.5),
]


def intermediary(rng: random.Random, more: bool = False) -> str:
    """A facilitator prefix; ``more`` adds :data:`MORE_INTERMEDIARIES` to the draw."""
    names, weights = zip(*(INTERMEDIARIES + MORE_INTERMEDIARIES if more else INTERMEDIARIES))
    return rng.choices(names, weights)[0]


# ------------------------------------------------------------------ local businesses
_ADJ = ["BLUE", "GOLDEN", "RED", "GREEN", "LITTLE", "BIG", "OLD", "NEW", "HAPPY", "LUCKY", "WILD", "SILVER",
        "URBAN", "ROYAL", "SUNNY", "HIDDEN", "NORTHERN", "COASTAL", "MODERN", "CLASSIC", "SWEET", "SMOKY",
        "IRON", "STONE", "CEDAR", "BRIGHT", "TRUE", "FIRST", "PRIME", "SUMMIT", "EAGLE", "PACIFIC", "ATLANTIC"]
_NOUN = ["BOTTLE", "MOON", "OAK", "BEAR", "FOX", "LOTUS", "ANCHOR", "HARBOR", "GARDEN", "BRIDGE", "LANTERN",
         "SPARROW", "WILLOW", "RIVER", "MOUNTAIN", "TIGER", "DRAGON", "PEPPER", "OLIVE", "FIG", "MAPLE", "PINE",
         "CROWN", "ARROW", "COMPASS", "HIVE", "NEST", "FORGE", "MILL", "TABLE", "SPOON", "BARREL", "KETTLE"]
_CUISINE = ["THAI", "SUSHI", "RAMEN", "PHO", "TAQUERIA", "PIZZA", "BBQ", "KABOB", "DIM SUM", "CURRY", "NOODLE",
            "BURGER", "TACO", "PANINI", "BAGEL", "POKE", "DUMPLING", "FALAFEL", "SEAFOOD", "STEAKHOUSE", "CREPE"]
_FOODPLACE = ["KITCHEN", "GRILL", "CAFE", "BISTRO", "HOUSE", "BAR", "EATERY", "DELI", "DINER", "CANTINA",
              "TAVERN", "PUB", "BAR & GRILL", "EXPRESS", "PALACE", "GARDEN", "SHOP", "SPOT", "CORNER", "TAP"]
_CAFE = ["COFFEE", "COFFEE CO", "ROASTERS", "COFFEE ROASTERS", "ESPRESSO", "BAKERY", "TEA HOUSE", "DONUTS",
         "CAFE", "JUICE BAR", "CREAMERY", "PATISSERIE", "GELATO"]
_TRADES = ["PLUMBING", "ELECTRIC", "ROOFING", "HVAC", "HEATING & AIR", "LANDSCAPING", "PAINTING", "LOCKSMITH",
           "CONSTRUCTION", "PEST CONTROL", "MOVING", "CLEANING", "AUTO REPAIR", "TIRE & AUTO", "CAR WASH",
           "GLASS", "FLOORING", "APPLIANCE REPAIR", "TOWING", "CARPET CARE"]
_SERVICES = ["SALON", "BARBER SHOP", "NAIL SPA", "DAY SPA", "DENTAL", "CHIROPRACTIC", "VETERINARY",
             "PHYSICAL THERAPY", "OPTOMETRY", "PEDIATRICS", "LAW OFFICE", "CPA", "CONSULTING", "DESIGN STUDIO",
             "PHOTOGRAPHY", "FITNESS", "YOGA", "MARTIAL ARTS", "DANCE STUDIO", "TUTORING", "PRINTING",
             "FLORIST", "HARDWARE", "BOOKS", "PET SUPPLY", "LIQUORS", "WINE MERCHANTS", "MARKET", "PHARMACY",
             "DRY CLEANERS", "TAILOR", "JEWELERS", "OPTICAL", "FURNITURE", "BIKE SHOP", "SURF SHOP", "CYCLERY"]
_LEGAL = ["LLC", "INC", "INC.", "CO", "CORP", "LTD", "L.L.C.", ", INC.", ", LLC", "GROUP", "& SONS", "& CO"]
_SAAS_ROOT = ["DATA", "CLOUD", "STACK", "LOOP", "PIXEL", "SIGNAL", "GRID", "FLOW", "SYNC", "BYTE", "LOGIC",
              "METRIC", "PULSE", "VECTOR", "NOVA", "QUANT", "LEDGER", "HOOK", "PATH", "SHIFT", "SCALE", "FORM"]
_SAAS_SUF = ["LY", "IFY", "HQ", "HUB", "BASE", "WORKS", "LABS", "IO", "AI", "APP", "KIT", "DESK", "BOX", "OPS"]
_INSURE = ["INSURANCE", "MUTUAL INS", "INS AGENCY", "CASUALTY", "HEALTH PLAN", "LIFE INS"]
_UTIL = ["WATER DISTRICT", "ELECTRIC COOP", "GAS CO", "UTILITIES", "WASTE MGMT", "SANITATION", "POWER & LIGHT"]
_HOTEL = ["INN", "HOTEL", "SUITES", "LODGE", "MOTEL", "RESORT", "B&B"]
_PARK = ["PARKING", "GARAGE", "PARK & FLY", "VALET"]


_CITY_LEAD = {"LAS", "LOS", "SAN", "SANTA", "NEW", "FORT", "FT", "ST", "SAINT", "EL", "LA", "PALM", "PALO",
              "SALT", "WEST", "EAST", "NORTH", "SOUTH", "MOUNT", "GRAND", "CEDAR", "BATON", "LITTLE"}


def _legal(rng: random.Random) -> str:
    """A legal suffix; the comma forms attach without a space (``EXO, INC.``)."""
    suffix = rng.choice(_LEGAL)
    return suffix if suffix.startswith(",") else " " + suffix


def _cap(word: str, rng: random.Random) -> str:
    return word if rng.random() < 0.85 else word.title()


_CATS = ["restaurant", "cafe", "bar", "trade", "service", "saas", "insurer", "utility", "hotel", "parking"]
_CARD_MIX = [26, 12, 6, 12, 20, 10, 3, 3, 4, 2]
_B2B_MIX = [2, 1, 0, 14, 26, 34, 10, 8, 2, 3]     # who sends or takes ACH entries and wires


def local_name(rng: random.Random, city: str, b2b: bool = False) -> tuple[str, str]:
    """(name, category) of a made-up small business; ``b2b`` favours payees of ACH/wires."""
    sur = rng.choice(V.surnames())
    first = rng.choice(V.first_names())
    words = city.split()
    town = (city if len(words) > 1 and words[0] in _CITY_LEAD else words[0]) if words else rng.choice(_NOUN)
    cat = rng.choices(_CATS, _B2B_MIX if b2b else _CARD_MIX)[0]
    adj, noun = rng.choice(_ADJ), rng.choice(_NOUN)
    if cat == "restaurant":
        name = rng.choice([
            f"{rng.choice(_CUISINE)} {rng.choice(_FOODPLACE)}", f"{sur}'S {rng.choice(_FOODPLACE)}",
            f"{adj} {noun} {rng.choice(_FOODPLACE)}", f"{first}'S {rng.choice(_CUISINE)}",
            f"THE {adj} {noun}", f"{town} {rng.choice(_CUISINE)}", f"{noun} & {rng.choice(_NOUN)}",
            f"{sur} {rng.choice(_CUISINE)} {rng.choice(_FOODPLACE)}", f"{rng.choice(_CUISINE)} {noun}",
        ])
    elif cat == "cafe":
        name = rng.choice([f"{adj} {noun} {rng.choice(_CAFE)}", f"{sur} {rng.choice(_CAFE)}",
                           f"{noun} {rng.choice(_CAFE)}", f"{town} {rng.choice(_CAFE)}", f"CAFE {noun}"])
    elif cat == "bar":
        name = rng.choice([f"{adj} {noun} {rng.choice(['PUB', 'TAVERN', 'SALOON', 'BREWING', 'TAPROOM', 'LOUNGE'])}",
                           f"{sur}'S {rng.choice(['PUB', 'BAR', 'TAVERN'])}", f"THE {noun} ROOM"])
    elif cat == "trade":
        name = rng.choice([f"{sur} {rng.choice(_TRADES)}", f"{adj} {rng.choice(_TRADES)}",
                           f"{town} {rng.choice(_TRADES)}", f"{first} {sur} {rng.choice(_TRADES)}"])
        if rng.random() < 0.5:
            name += _legal(rng)
    elif cat == "service":
        name = rng.choice([f"{sur} {rng.choice(_SERVICES)}", f"{adj} {noun} {rng.choice(_SERVICES)}",
                           f"{town} {rng.choice(_SERVICES)}", f"{first}'S {rng.choice(_SERVICES)}",
                           f"{sur} & {rng.choice(V.surnames())} {rng.choice(_SERVICES)}"])
        if rng.random() < 0.25:
            name += _legal(rng)
    elif cat == "saas":
        root = rng.choice(_SAAS_ROOT) + rng.choice(_SAAS_SUF)
        name = rng.choice([root, root, f"{root} {rng.choice(['INC', 'INC.', 'LLC', 'TECHNOLOGIES', 'SOFTWARE'])}",
                           f"{adj}{rng.choice(_SAAS_ROOT)}"])
        if rng.random() < 0.25:
            name = name.title()
    elif cat == "insurer":
        name = f"{rng.choice([sur, adj, town])} {rng.choice(_INSURE)}"
    elif cat == "utility":
        name = f"{town} {rng.choice(_UTIL)}"
    elif cat == "hotel":
        name = rng.choice([f"{adj} {noun} {rng.choice(_HOTEL)}", f"{town} {rng.choice(_HOTEL)}",
                           f"THE {sur} {rng.choice(_HOTEL)}"])
    else:
        name = f"{rng.choice([town, sur, adj])} {rng.choice(_PARK)}"
    r = rng.random()
    if r < 0.08 and cat in ("restaurant", "cafe", "service", "bar", "hotel"):
        # outlet ids and location qualifiers that are part of the store's name
        name += " " + rng.choice([f"#{rng.randint(1, 40)}", f"{rng.randint(1, 9999):04d}", str(rng.randint(1, 12)),
                                  rng.choice(_DIRS2), f"({rng.choice(_NOUN)[:3]}{rng.randint(100, 999)})"])
    elif r < 0.16 and city and cat in ("restaurant", "cafe", "bar", "hotel", "service"):
        name += " " + (city if rng.random() < 0.5 else city[: rng.randint(3, max(3, len(city)))]).rstrip()
    elif r < 0.2:
        name = rng.choice([f"1-800-{rng.choice(_NOUN)}", f"1 800 {rng.choice(_NOUN)}", f"{rng.randint(2, 99)} {name}",
                           f"{V._ordinal(rng.randint(1, 40))} {rng.choice(_NOUN)} {rng.choice(_FOODPLACE)}"])
    return _cap(name, rng), cat


# Place words inside business names (``BROOKLYN BAGEL``, ``MAIN ST DELI``): on a ``NAME CITY ST``
# line the model must not end the name at the first place-like word.
_AREA = ["DOWNTOWN", "UPTOWN", "MIDTOWN", "OLD TOWN", "EAST SIDE", "WEST SIDE", "NORTH END", "SOUTH END",
         "HARBORSIDE", "BAYSIDE", "LAKESIDE", "RIVERSIDE", "HILLSIDE", "PARKSIDE", "OCEANSIDE",
         "BAY VIEW", "LAKE VIEW", "VALLEY", "CANYON", "CREEKSIDE", "VILLAGE", "TOWN CENTER", "CITY CENTER",
         "CROSSROADS", "STATION", "DEPOT", "WHARF", "PIER", "LANDING", "COUNTY", "NORTH SHORE", "SOUTH BAY",
         "EAST BAY", "WEST END", "HIGHLANDS", "HEIGHTS", "COMMONS", "PLAZA", "SQUARE"]
_STREETY = ["MAIN ST", "MAIN STREET", "5TH AVE", "2ND ST", "3RD STREET", "1ST AVE", "BROADWAY", "MARKET ST",
            "ELM ST", "PARK AVE", "OCEAN AVE", "STATE ST", "HIGH ST", "WATER ST", "FRONT ST", "MILL ST",
            "CHURCH ST", "GRAND AVE", "COLLEGE AVE", "UNION ST", "KING ST", "QUEEN ST", "YONGE ST", "ROUTE 66",
            "HWY 1", "PCH"]
_STATE_WORDS = ["TEXAS", "CAROLINA", "JERSEY", "CALIFORNIA", "VERMONT", "MAINE", "OHIO", "IDAHO", "KENTUCKY",
                "GEORGIA", "FLORIDA", "COLORADO", "MONTANA", "ALASKA", "HAWAIIAN", "ARIZONA", "NEVADA",
                "ONTARIO", "ALBERTA", "QUEBEC", "ATLANTIC", "PACIFIC", "MIDWEST", "SOUTHERN", "NEW ENGLAND",
                "GULF COAST", "DIXIE", "YANKEE", "PRAIRIE", "TIDEWATER"]
# Long names: what a 22/25-character name field cuts mid-word.
_LONG_FOOD = ["RESTAURANT", "STEAKHOUSE", "BAR AND GRILL", "KITCHEN & BAR", "BREWING COMPANY", "COFFEE ROASTERS",
              "MARKETPLACE", "SUPERMARKET", "TRATTORIA", "PIZZERIA", "BAKERY & CAFE", "RESTAURANT & BAR",
              "CAFE AND BAKERY", "NOODLE HOUSE", "BARBECUE COMPANY", "TAQUERIA Y MAS"]
_LONG_SERVICE = ["FAMILY DENTISTRY", "ANIMAL HOSPITAL", "MEDICAL CENTER", "CHIROPRACTIC CENTER",
                 "AUTOMOTIVE SERVICES", "PROPERTY MANAGEMENT", "INSURANCE AGENCY", "PHYSICAL THERAPY",
                 "LANDSCAPING SERVICES", "CLEANERS & TAILORING", "ORTHODONTICS", "VETERINARY CLINIC",
                 "WINE & SPIRITS", "HARDWARE & SUPPLY", "HEATING AND COOLING", "PLUMBING & HEATING",
                 "DERMATOLOGY ASSOCIATES", "EYE CARE CENTER", "FITNESS CENTER", "MARTIAL ARTS ACADEMY",
                 "SCHOOL OF MUSIC", "GARDEN CENTER", "FLOWER SHOP", "SPORTING GOODS", "OFFICE SUPPLY"]
_INSTITUTION = ["PUBLIC LIBRARY", "PARKS AND RECREATION", "COMMUNITY COLLEGE", "UNIVERSITY BOOKSTORE",
                "MUNICIPAL COURT", "WATER UTILITY", "SCHOOL DISTRICT", "CHAMBER OF COMMERCE", "COUNTRY CLUB",
                "GOLF COURSE", "MEMORIAL HOSPITAL", "CHILDRENS MUSEUM", "ZOO", "AQUARIUM", "TRANSIT AUTHORITY",
                "PARKING AUTHORITY", "YACHT CLUB", "ART MUSEUM", "SYMPHONY", "FARMERS MARKET"]


def place_word(rng: random.Random) -> str:
    """A place-like word for a business name: an area, a street, a state, or another real town."""
    r = rng.random()
    if r < 0.3:
        return rng.choice(_AREA)
    if r < 0.5:
        return rng.choice(_STREETY)
    if r < 0.65:
        return rng.choice(_STATE_WORDS)
    from finextract.synth.geo import home_place

    return home_place(rng, 0.15).city    # a real town, usually not where the shop is


def place_name(rng: random.Random) -> tuple[str, str]:
    """A local business named after a place (``BROOKLYN BAGEL``, ``MAIN ST DELI``, ``THE LAKESIDE INN``)."""
    pw = place_word(rng)
    cat = rng.choice(["restaurant", "restaurant", "cafe", "service", "trade", "bar", "hotel"])
    tail = {"restaurant": _CUISINE + _FOODPLACE + _LONG_FOOD, "cafe": _CAFE, "service": _SERVICES + _LONG_SERVICE,
            "trade": _TRADES, "bar": ["PUB", "TAVERN", "SALOON", "BREWING", "TAPROOM", "LOUNGE", "BAR"],
            "hotel": _HOTEL}[cat]
    name = rng.choice([f"{pw} {rng.choice(tail)}", f"{pw} {rng.choice(tail)}", f"THE {pw} {rng.choice(tail)}",
                       f"{rng.choice(V.surnames())}'S {pw} {rng.choice(tail)}", f"{pw} {rng.choice(_CUISINE)} "
                       f"{rng.choice(_FOODPLACE)}" if cat == "restaurant" else f"{pw} {rng.choice(tail)}"])
    if rng.random() < 0.15:
        name += _legal(rng)
    return _cap(name, rng), cat


def long_name(rng: random.Random, city: str) -> tuple[str, str]:
    """A local business name of 20-40 characters (a 22/25-character field cuts it)."""
    sur, adj, noun = rng.choice(V.surnames()), rng.choice(_ADJ), rng.choice(_NOUN)
    town = city or place_word(rng)
    r = rng.random()
    if r < 0.35:
        name, cat = rng.choice([f"{adj} {noun} {rng.choice(_LONG_FOOD)}", f"{sur}'S {rng.choice(_LONG_FOOD)}",
                                f"{adj} {rng.choice(_CUISINE)} {rng.choice(_LONG_FOOD)}",
                                f"{place_word(rng)} {rng.choice(_CUISINE)} {rng.choice(_LONG_FOOD)}"]), "restaurant"
    elif r < 0.7:
        name, cat = rng.choice([f"{sur} {rng.choice(_LONG_SERVICE)}", f"{adj} {noun} {rng.choice(_LONG_SERVICE)}",
                                f"{town} {rng.choice(_LONG_SERVICE)}",
                                f"{sur} & {rng.choice(V.surnames())} {rng.choice(_LONG_SERVICE)}"]), "service"
    elif r < 0.85:
        name, cat = f"{town} {rng.choice(_INSTITUTION)}", "institution"
    else:
        name, cat = f"{rng.choice(V.first_names())} {sur} {rng.choice(_TRADES + _LONG_SERVICE)}", "trade"
    if rng.random() < 0.2:
        name += _legal(rng)
    return _cap(name, rng), cat


# A brand's product/service after its own ``*`` (``BRAND*PRODUCT``): part of MERCHANT_NAME.
_PRODUCTS = {"software": ["SUBSCRIPTION", "CLOUD", "STORAGE", "PREMIUM", "PRO", "ADS", "STORE", "LICENSE", "PLUS",
                          "TEAM", "BUSINESS", "ONLINE"],
             "recurring": ["MEMBERSHIP", "PREMIUM", "PLUS", "MUSIC", "VIDEO", "DIGITAL", "ANNUAL", "MONTHLY",
                           "FAMILY", "STREAMING"],
             "marketplace": ["MARKETPLACE", "DIGITAL", "MKTPL", "STORE", "RETAIL", "ORDER", "PRIME"],
             "ride": ["EATS", "TRIP", "PASS", "RIDE", "SCOOTER", "BIKE", "RENTAL"],
             "telecom": ["BILL PAY", "RECURR BILL", "AUTOPAY", "PREPAID", "WIRELESS", "INTERNET", "MOBILE"],
             "airline": ["INFLIGHT", "WIFI", "BAGGAGE", "SEAT", "UPGRADE", "VACATIONS"],
             "hotel": ["RESERVATIONS", "FOLIO", "ONLINE"], "food": ["ONLINE", "CATERING", "APP", "GIFT CARD"],
             "store": ["ONLINE", "GIFT CARD", "ORDER", "PICKUP"], "grocery": ["DELIVERY", "PICKUP", "ONLINE"],
             "gas": ["CAR WASH", "APP"], "utility": ["BILL PAY", "AUTOPAY"], "insurer": ["PREMIUM", "AUTOPAY"]}


def _base(name: str) -> str:
    """The brand's word(s) without a ``*`` part, store number or domain."""
    base = name.split("*")[0].strip() or name
    return base.split(" #")[0].strip() or base


def own_prefix(name: str) -> str:
    """``XYZ*BRAND``: the brand's own abbreviation before a ``*`` (initials, or its first letters)."""
    words = [w for w in name.replace(".", " ").split() if w[:1].isalpha()]
    if len(words) >= 2:
        abbr = "".join(w[0] for w in words[:4])
    else:
        word = (words[0] if words else name).upper()
        cons = [ch for ch in word[1:] if ch.isalpha() and ch not in "AEIOU"]
        abbr = word[0] + "".join(cons[:2]) if len(cons) >= 2 else word[:3]
    return abbr.upper()


_RIDESHARE = {"UBER", "LYFT"}

# Facilitators that front restaurants and shops, not national or online brands.
POS_FACILITATORS = ("SQ", "SQU", "SQUARE", "TST", "TOAST", "GRUBHUB", "DD", "CLV", "CLOVER", "SPO", "EAT24", "LS",
                    "IZ", "ZETTLE_", "SUMUP", "CLR", "UEP", "POS", "STK", "WAV", "SP", "SHP", "SHOPIFY", "IC")
ONLINE_FACILITATORS = ["PAYPAL *", "PP*", "PAYPAL*", "GOOGLE *", "APL* ", "APPLE PAY ", "FS *", "FSP*", "2CO*",
                       "PADDLE.NET*", "KLARNA*", "BT*", "DRI*", "CKO*", "BLS*"]


def brand_variant(rng: random.Random, b: Brand, name: str) -> tuple[str, str]:
    """(name, unlabeled tail): ``XYZ*BRAND``, ``BRAND*PRODUCT`` or ``BRAND N RIDES MM-DD`` forms."""
    r = rng.random()
    if b.kind == "ride" and _base(name).split()[0].upper() in _RIDESHARE and r < 0.6:
        n = rng.randint(1, 9)
        # the ride count and date are a transaction summary: printed, no key
        word = _base(name).split()[0]
        return word, f"{n} RIDE{'S' if n > 1 else ''} {rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
    if "*" in name:
        return name, ""
    if r < 0.55 and b.kind in _PRODUCTS:
        glue = rng.choice(["*", " *", "*", "  *", "* "])
        return f"{_base(name)}{glue}{rng.choice(_PRODUCTS[b.kind])}", ""
    base = _base(name)
    return f"{own_prefix(base)}*{base}", ""


def local_business(rng: random.Random, city: str, prof=None) -> tuple[str, str]:
    """A local business name: the profile's share of place-word and long names, else :func:`local_name`."""
    r = rng.random() if prof is not None else 1.0
    if prof is not None and r < prof.place_names:
        return place_name(rng)
    if prof is not None and r < prof.place_names + prof.long_names:
        return long_name(rng, city)
    return local_name(rng, city)


_DIRS2 = ["DOWNTOWN", "UPTOWN", "8TH", "AIRPORT", "MALL", "EAST", "WEST", "ON MAIN"]


def make_merchant(rng: random.Random, city: str, prof=None) -> Merchant:
    """A brand (42%) or a local business; ``prof`` (a :class:`Profile`) switches on the
    realism options: brand variants, place-word and long local names."""
    if rng.random() < 0.42:
        b = rng.choice(brands())
        name = rng.choice(b.names)
        tail = ""
        if prof is not None and rng.random() < prof.brand_variant:
            name, tail = brand_variant(rng, b, name)
        store = V.store_number(rng, b.store_style) if b.store_style != "none" and rng.random() < 0.8 else ""
        if store and not tail and "*" not in name:
            name = f"{name}{'' if name.endswith('#') else ' '}{store.lstrip('#') if name.endswith('#') else store}"
        elif name.endswith(" -"):
            name = name[:-2].rstrip()   # ``76 -`` prints only before a store number
        if rng.random() < 0.12:
            name = name.title() if "." not in name else name.lower()
        dom = b.domain
        is_dom = "." in name.split()[0] and not name.startswith(("APL*", "DNH*"))
        return Merchant(name, b.kind, b.dd_style, dom, b.state, True, domain_is_name=is_dom,
                        own_prefix="*" in name and not name.startswith("*"), tail=tail)
    name, cat = local_business(rng, city, prof)
    dd = {"saas": "star_alnum", "insurer": "num", "utility": "num", "hotel": "num"}.get(cat, "generic")
    dom = V.domain_for(name, rng) if cat in ("saas", "insurer", "utility") or rng.random() < 0.15 else ""
    return Merchant(name, cat, dd, dom, "", False)
