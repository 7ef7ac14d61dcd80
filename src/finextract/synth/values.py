"""Value generators: phones, streets, ZIPs, domains, order/reference codes, store numbers,
and the bank's own wrapper text (dates, card digits, references) that belongs to no key.

Each generator draws its *format* as well as its content: a model must learn that
``(800)262-3246``, ``800.262.3246`` and ``+18002623246`` are all phones.
"""

from __future__ import annotations

import random
import string
from functools import lru_cache

ALNUM = string.ascii_uppercase + string.digits
TOLL_FREE = ["800", "888", "877", "866", "855", "844", "833"]


def digits(rng: random.Random, n: int) -> str:
    return "".join(rng.choice(string.digits) for _ in range(n))


def alnum(rng: random.Random, n: int, letters_first: bool = False) -> str:
    s = "".join(rng.choice(ALNUM) for _ in range(n))
    return (rng.choice(string.ascii_uppercase) + s[1:]) if letters_first else s


@lru_cache(maxsize=1)
def surnames() -> list[str]:
    from faker.providers.person.en_US import Provider

    return [n.upper() for n in Provider.last_names]


@lru_cache(maxsize=1)
def first_names() -> list[str]:
    from faker.providers.person.en_US import Provider

    return [n.upper() for n in Provider.first_names]


# ------------------------------------------------------------------------------ phones
def phone_digits(rng: random.Random, area_codes: tuple[str, ...] = (), toll_free: bool = False) -> str:
    if toll_free or not area_codes:
        area = rng.choice(TOLL_FREE) if toll_free or rng.random() < 0.5 else str(rng.randint(201, 989))
    else:
        area = rng.choice(area_codes)
    return area + str(rng.randint(200, 999)) + digits(rng, 4)


_VANITY_WORDS = ["FLOWERS", "CALLATT", "GETHELP", "MYBILLS", "PAYNOW", "CABLETV", "HELPME", "CONTACT", "SUPPORT"]


def phone(rng: random.Random, area_codes: tuple[str, ...] = (), toll_free: bool = False) -> str:
    """A phone number in one of the formats statements use."""
    d = phone_digits(rng, area_codes, toll_free)
    a, b, c = d[:3], d[3:6], d[6:]
    style = rng.random()
    if style < 0.30:
        return f"{a}-{b}-{c}"
    if style < 0.55:
        return d
    if style < 0.63:
        return f"({a}){b}-{c}"
    if style < 0.68:
        return f"({a}) {b}-{c}"
    if style < 0.74:
        return f"{a}.{b}.{c}"
    if style < 0.80:
        return f"+1{d}"
    if style < 0.85:
        return f"1{d}"
    if style < 0.89:
        return f"1-{a}-{b}-{c}"
    if style < 0.90:
        return f"{a} {b} {c}"
    if style < 0.92:
        return f"0{d}"
    if style < 0.96:
        return f"{rng.choice(TOLL_FREE)}-{rng.choice(_VANITY_WORDS)}"
    return f"{a}-{b}{c}"


def foreign_phone(rng: random.Random) -> str:
    r = rng.random()
    if r < 0.15:
        return rng.choice(["13", "1300", "1800"]) + digits(rng, 4 if r < 0.08 else 6)  # Australian short numbers
    return rng.choice(["+44", "+353", "+49", "+33", "+61", "0", "08", "00353", "+65", "353", "44"]) + \
        digits(rng, rng.randint(8, 10))


# ------------------------------------------------------------------------------ streets
_STREET_WORDS = ["MAIN", "OAK", "PINE", "MAPLE", "CEDAR", "ELM", "WASHINGTON", "LAKE", "HILL", "PARK", "MARKET",
                 "MISSION", "BROADWAY", "COLLEGE", "CHURCH", "MILL", "RIVER", "SPRING", "HIGHLAND", "SUNSET",
                 "VALENCIA", "GRAND", "UNION", "CENTRAL", "FRANKLIN", "JEFFERSON", "MADISON", "LINCOLN", "EL CAMINO",
                 "UNIVERSITY", "STATE", "WILSHIRE", "COLORADO", "OCEAN", "BAY", "HARBOR", "AIRPORT", "INDUSTRIAL",
                 "COMMERCE", "TECHNOLOGY", "CANAL", "FRONT", "WATER", "HOWARD", "FOLSOM", "PEACHTREE", "MONTGOMERY"]
_SUFFIX = ["ST", "AVE", "BLVD", "RD", "DR", "LN", "WAY", "PKWY", "HWY", "CT", "PL", "STREET", "AVENUE", "ROAD",
           "CIR", "TER", "PIKE", "St", "Ave", "Blvd"]
_DIRS = ["N", "S", "E", "W", "NE", "NW", "SE", "SW", "N.", "S.", "NORTH", "SOUTH"]
_ORDINAL = {1: "ST", 2: "ND", 3: "RD"}
_NUMWORD = ["ONE", "TWO", "THREE", "FOUR", "FIVE", "TEN", "ONE HUNDRED"]


def _ordinal(n: int) -> str:
    suf = "TH" if 10 <= n % 100 <= 20 else _ORDINAL.get(n % 10, "TH")
    return f"{n}{suf}"


def street(rng: random.Random) -> str:
    """Building number (or word), optional direction, name, suffix, optional suite."""
    r = rng.random()
    if r < 0.04:
        number = rng.choice(_NUMWORD)
    elif r < 0.5:
        number = str(rng.randint(1, 9999))
    else:
        number = str(rng.randint(10, 99999))
    if rng.random() < 0.25:
        name = _ordinal(rng.randint(1, 140))
    elif rng.random() < 0.35:
        name = rng.choice(surnames())
    else:
        name = rng.choice(_STREET_WORDS)
    parts = [number]
    if rng.random() < 0.25:
        parts.append(rng.choice(_DIRS))
    parts.append(name)
    if rng.random() < 0.92:
        parts.append(rng.choice(_SUFFIX))
    s = " ".join(parts)
    r = rng.random()
    if r < 0.12:
        s += f", STE {rng.randint(100, 2400)}"
    elif r < 0.2:
        s += f" STE {rng.choice([str(rng.randint(1, 999)), rng.choice('ABCDEFG')])}"
    elif r < 0.25:
        s += f" #{rng.randint(1, 999)}"
    elif r < 0.28:
        s += f" UNIT {rng.randint(1, 40)}"
    elif r < 0.31:
        s += f" FL {rng.randint(2, 40)}"
    elif r < 0.33:
        s += f", SUITE {rng.randint(100, 999)}"
    return s


def zip_code(rng: random.Random, base: str) -> str:
    r = rng.random()
    if r < 0.72:
        return base
    if r < 0.9:
        return f"{base}-{digits(rng, 4)}"
    return base + digits(rng, 4)


# ------------------------------------------------------------------------------ codes
def dynamic(rng: random.Random, style: str) -> str:
    """A transaction-specific id, with the ``*``/``-``/``#`` that introduces it."""
    if style == "star_alnum":
        return "*" + alnum(rng, rng.choice([9, 9, 10, 8, 12]))
    if style == "star_num":
        return "*" + digits(rng, rng.randint(6, 11))
    if style == "dash_alnum":
        return "-" + alnum(rng, rng.randint(8, 11), letters_first=True)
    if style == "hash_alnum":
        return "#" + alnum(rng, rng.randint(8, 14), letters_first=True)
    if style == "ticket":
        return digits(rng, rng.choice([13, 13, 14, 10]))
    if style == "ride":
        return rng.choice(["*", "", "*TRIP ", ""]) + alnum(rng, 5, letters_first=True) if rng.random() < 0.6 \
            else "*" + alnum(rng, 9)
    if style == "inv":
        return rng.choice(["*INV-", "*INV", "INV ", "#INV", "*ORDER-"]) + digits(rng, rng.randint(3, 7))
    if style == "num":
        return digits(rng, rng.randint(6, 12))
    return generic_dynamic(rng)


def generic_dynamic(rng: random.Random) -> str:
    r = rng.random()
    if r < 0.25:
        return "*" + alnum(rng, rng.randint(6, 10))
    if r < 0.4:
        return "-" + alnum(rng, rng.randint(6, 10), letters_first=True)
    if r < 0.5:
        return "#" + alnum(rng, rng.randint(6, 12))
    if r < 0.6:
        return rng.choice(["*INV-", "INV-", "#", "*"]) + digits(rng, rng.randint(3, 6))
    if r < 0.7:
        return rng.choice(["IT-", "ORD-", "PO", "TX"]) + digits(rng, rng.randint(6, 10))
    if r < 0.8:
        return digits(rng, rng.randint(6, 11))
    if r < 0.87:
        return rng.choice(["OPSNT", "RE", "TXN", "ORD", "PI", "CH"]) + "_" + alnum(rng, rng.randint(5, 10))
    if r < 0.93:
        return rng.choice(string.ascii_uppercase) * 1 + rng.choice(string.ascii_uppercase) + \
            rng.choice(string.ascii_uppercase) + digits(rng, rng.randint(4, 7))
    return alnum(rng, rng.randint(6, 12), letters_first=True)


def ref_slot(rng: random.Random) -> str:
    """The reference slot after city/state on fixed-width acceptor lines."""
    r = rng.random()
    if r < 0.6:
        return digits(rng, rng.choice([8, 8, 9, 11, 11, 10]))
    if r < 0.75:
        return "000" + digits(rng, rng.randint(5, 8))
    if r < 0.9:
        return alnum(rng, rng.randint(6, 9), letters_first=True)
    return rng.choice(["OPSNT", "RE", "CH", "TX"]) + "_" + alnum(rng, rng.randint(5, 9))


def ach_id(rng: random.Random) -> str:
    """NACHA individual-id / reference slot (15 characters at most)."""
    r = rng.random()
    if r < 0.55:
        return digits(rng, rng.randint(6, 10))
    if r < 0.75:
        return "0" + alnum(rng, 14)
    if r < 0.85:
        return rng.choice(["INV ", "INV", "PO ", "-"]) + digits(rng, rng.randint(4, 8))
    return alnum(rng, rng.randint(8, 12), letters_first=True)


def store_number(rng: random.Random, style: str) -> str:
    """Store/outlet numbers stay in MERCHANT_NAME (LABELING.md rule 5)."""
    n = rng.randint(1, 9999)
    return {
        "hash3": f"#{rng.randint(1, 999):03d}" if rng.random() < 0.5 else f"#{rng.randint(1, 999)}",
        "hash4": f"#{n:04d}" if rng.random() < 0.6 else f"#{n}",
        "hash5": f"#{rng.randint(1, 99999):05d}",
        "hash6": f"#{rng.randint(1, 999999):06d}",
        "pad4": f"{n:04d}",
        "pad8": f"{rng.randint(1, 3999):08d}" if rng.random() < 0.7 else f"T{n:04d}",
        "space5": f"{rng.randint(1, 99999):05d}",
        "store5": f"STORE {rng.randint(1, 99999):05d}" if rng.random() < 0.5 else f"#{rng.randint(1, 99999):05d}",
        "t4": f"R{rng.randint(1, 999):03d}",
        "dash3": f"- {rng.randint(1, 999)}" if rng.random() < 0.4 else f"{rng.randint(1, 999)}",
        "f5": f"F{rng.randint(1, 99999):05d}",
        "num6": digits(rng, rng.choice([6, 7, 8, 10])),
    }.get(style, "")


# ------------------------------------------------------------------------------ domains
_TLD = [".COM"] * 8 + [".NET", ".IO", ".CO", ".ORG", ".US", ".AI", ".APP"]


def domain_for(name: str, rng: random.Random) -> str:
    base = "".join(ch for ch in name.upper() if ch.isalnum())[: rng.randint(6, 18)] or "SHOP"
    return base + rng.choice(_TLD)


def website(rng: random.Random, dom: str) -> str:
    """A billing domain or URL in the styles statements show."""
    r = rng.random()
    if r < 0.4:
        s = dom
    elif r < 0.55:
        s = "WWW." + dom
    elif r < 0.65:
        s = dom + rng.choice(["/BILL", "/CHARGE", "/HELP", "/PAY"])
    elif r < 0.73:
        s = "HELP." + dom
    elif r < 0.8:
        s = "HTTPSWWW." + dom
    elif r < 0.85:
        s = "HTTPS" + dom
    else:
        s = dom.lower() if rng.random() < 0.6 else dom.capitalize()
    return s


# ------------------------------------------------------------------------------ bank text
def mmdd(rng: random.Random) -> str:
    return f"{rng.randint(1, 12):02d}/{rng.randint(1, 28):02d}"


def yymmdd(rng: random.Random) -> str:
    return f"{rng.randint(15, 25):02d}{rng.randint(1, 12):02d}{rng.randint(1, 28):02d}"


def bank_prefix(rng: random.Random, date: str) -> str:
    mmdd_nodash = date.replace("/", "")
    return rng.choice([
        "POS PURCHASE", "POS Debit", "Debit Card", "DEBIT CARD PURCHASE", "DBT Purchase", f"CHECKCARD {mmdd_nodash}",
        f"PURCHASE AUTHORIZED ON {date}", f"PURCHASE {date}", "POS DEB", "DEBIT PURCHASE -VISA", "CARD PURCHASE",
        f"Card Purchase {date}", "VISA DDA PUR", "POS WITHDRAWAL", "RECURRING PAYMENT", "PREAUTHORIZED DEBIT",
        f"Debit Card Purchase {date}", "PIN PURCHASE", "POINT OF SALE", "ONLINE PAYMENT", "Visa Check Card",
        "PIN ATM", "Cashier Check Purchase", "POS PUR-", "DDA PURCHASE",
    ])


def card_suffix(rng: random.Random) -> str:
    d = digits(rng, 4)
    return rng.choice([f"CARD {d}", f"Crd{d}", f"CARD#{d}", f"XXXXXXXXXXXX{d}", f"x{d}", f"CARD ENDING IN {d}",
                       f"Card {d}"])


def bank_reference(rng: random.Random) -> str:
    r = rng.random()
    if r < 0.35:
        return f"Ref{digits(rng, 8)}P{digits(rng, 2)}"
    if r < 0.5:
        return f"REF#{digits(rng, rng.randint(10, 16))}"
    if r < 0.6:
        return f"TID{digits(rng, 9)}"
    if r < 0.7:
        return f"S{digits(rng, 15)}"
    if r < 0.8:
        return f"P{digits(rng, 14)}"
    if r < 0.9:
        return digits(rng, rng.choice([11, 16, 23]))
    return f"TRACE {digits(rng, 15)}"


CATEGORY_WORDS = ["RESTAURANTS", "FAST FOOD RESTAURANTS", "GROCERY STORES", "SERVICE STATIONS", "BOOK STORE",
                  "HEATING/PLUMBING/AC", "TAXICAB & LIMOUSINE", "COMPUTER SOFTWARE", "AIRLINES", "LODGING",
                  "DRUG STORES", "MISC SPECIALTY RETAIL", "PARKING LOTS", "TELECOM SERVICES", "EATING PLACES",
                  "BUSINESS SERVICES", "ADVERTISING SERVICES", "MCC 5812", "MCC 5411", "MCC 4121", "MCC 7372"]


def lead_code(rng: random.Random) -> str:
    """A bank's own reference printed before the descriptor (``#CODE NAME*CODE CITY ST``,
    common on credit-union statements). It is bank text: no key (LABELING.md rule 6)."""
    r = rng.random()
    if r < 0.45:
        return "#" + digits(rng, rng.choice([6, 7, 8, 9, 10, 12]))
    if r < 0.65:
        return "#" + alnum(rng, rng.randint(6, 10))
    if r < 0.85:
        return digits(rng, rng.choice([8, 10, 11, 12]))
    return rng.choice(["REF ", "TRN ", "#REF", "SEQ ", "ID "]) + digits(rng, rng.randint(6, 10))
