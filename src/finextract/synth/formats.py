"""Format families: how banks, card networks, ACH and wire systems lay a descriptor out.

Each family renders one merchant and a *plan* (the set of optional keys this record must
show) into labeled pieces. Every family can render every key, so presence rates stay
configurable, but each family has its own base rate per key (``BASE``): a wire usually
carries an address, an ACH entry almost never a city. :func:`calibrate` scales those base
rates so that the mix over families hits the requested marginal rates.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from finextract.synth import values as V
from finextract.synth.geo import Place, abbreviate_city, foreign_place, home_place, us_place
from finextract.synth.merchants import (ONLINE_FACILITATORS, POS_FACILITATORS, Merchant, intermediary, local_business,
                                        local_name, make_merchant)
from finextract.synth.pieces import P, Piece, flat, pad, text_of, truncate
from finextract.synth.profiles import PROFILES, Profile

OPTIONAL = ("INTERMEDIARY", "DYNAMIC_DESCRIPTOR", "STREET", "ZIP", "CITY", "STATE", "COUNTRY", "PHONE", "WEBSITE")

# family: (weight, base rates in OPTIONAL order)
FAMILIES: dict[str, tuple[float, tuple[float, ...]]] = {
    "network":     (0.17, (.40, .25, .45, .18, .60, .85, .15, .20, .06)),
    "fixed_width": (0.12, (.25, .55, .10, .15, .90, .95, .15, .35, .03)),
    "repeat_tail": (0.22, (.30, .25, .35, .10, .60, .85, .10, .20, .05)),
    "debit_date":  (0.12, (.30, .20, .30, .10, .70, .90, .08, .15, .03)),
    "pos_wrapper": (0.07, (.30, .20, .35, .10, .60, .85, .08, .15, .03)),
    "online":      (0.11, (.25, .60, .15, .10, .20, .75, .25, .45, .25)),
    "ach":         (0.08, (.03, .60, .05, .05, .05, .05, .03, .15, .05)),
    "wire":        (0.03, (.02, .30, .75, .55, .75, .55, .60, .05, .05)),
    "name_only":   (0.08, (.35, .20, .05, .03, .05, .05, .03, .05, .05)),
    # plain DE 43 acceptor line: NAME(22/25) CITY(13) ST; almost never a street
    "acceptor":    (0.00, (.30, .12, .01, .06, .95, .97, .06, .12, .03)),
}


def _weights(weights: dict[str, float] | None) -> dict[str, float]:
    return {n: (weights[n] if weights is not None else FAMILIES[n][0]) for n in FAMILIES}


def calibrate(presence: dict[str, float], weights: dict[str, float] | None = None,
              fixed: frozenset[str] = frozenset()) -> dict[str, float]:
    """Per-key scale s with sum_f w_f * rate_fk(s) == target (bisection), rate = min(1, s * base).

    ``weights`` is the family mix (a profile's); the default is the study mix in FAMILIES.
    Families in ``fixed`` keep their base rates unscaled (a wire carries an address whatever
    the card lines do); the others absorb the rest of the target.
    """
    w = _weights(weights)
    total = sum(w.values())
    scales = {}
    for i, key in enumerate(OPTIONAL):
        target = presence[key]
        if target <= 0:
            scales[key] = 0.0
            continue
        fixed_part = sum(w[n] * FAMILIES[n][1][i] for n in sorted(fixed)) / total
        lo, hi = 0.0, 1e4
        for _ in range(80):
            mid = (lo + hi) / 2
            got = fixed_part + sum(w[n] * min(1.0, mid * b[i]) for n, (_, b) in FAMILIES.items()
                                   if n not in fixed) / total
            lo, hi = (mid, hi) if got < target else (lo, mid)
        scales[key] = hi
    return scales


# what a fixed-width cut backs off from: a printed field never ends on a space or a separator
DANGLING = " -+/,*#.:("
_NO_FOREIGN_SLOT = ("ach", "wire")
_BANK_WRAPPED = ("repeat_tail", "debit_date", "pos_wrapper")   # the card line inside the bank's own wrapper


def _rate(family: str, key: str, scales: dict[str, float], fixed: frozenset[str]) -> float:
    b = FAMILIES[family][1][OPTIONAL.index(key)]
    return (b if scales[key] > 0 else 0.0) if family in fixed else min(1.0, scales[key] * b)


def plan_scales(presence: dict[str, float], prof: Profile) -> dict[str, float]:
    """:func:`calibrate` for a profile, with STATE raised to make up for the records whose
    state slot holds the country code instead (``foreign_slot``), so STATE still hits its target."""
    w = _weights(prof.weights)
    fixed = prof.fixed_families
    scales = calibrate(presence, w, fixed)
    if not prof.foreign_slot or presence["STATE"] <= 0:
        return scales
    total = sum(w.values())
    for _ in range(4):
        drop = sum(w[f] * _rate(f, "STATE", scales, fixed) * _rate(f, "COUNTRY", scales, fixed) *
                   (1 - _rate(f, "ZIP", scales, fixed)) for f in FAMILIES if f not in _NO_FOREIGN_SLOT)
        target = dict(presence, STATE=min(1.0, presence["STATE"] + prof.foreign_slot * drop / total))
        scales = calibrate(target, w, fixed)
    return scales


def draw_plan(rng: random.Random, scales: dict[str, float], weights: dict[str, float] | None = None,
              fixed: frozenset[str] = frozenset(), foreign_slot: float = 0.0) -> tuple[str, set[str]]:
    w = _weights(weights)
    names = list(FAMILIES)
    family = rng.choices(names, [w[n] for n in names])[0]
    base = FAMILIES[family][1]
    if family in fixed:
        plan = {k for i, k in enumerate(OPTIONAL) if scales[k] > 0 and rng.random() < base[i]}
    else:
        plan = {k for i, k in enumerate(OPTIONAL) if rng.random() < min(1.0, scales[k] * base[i])}
    if foreign_slot and {"COUNTRY", "STATE"} <= plan and "ZIP" not in plan and family not in _NO_FOREIGN_SLOT \
            and rng.random() < foreign_slot:
        # a foreign acceptor prints its country code where the state goes (``LONDON GB``)
        plan.discard("STATE")
    return family, plan


# ------------------------------------------------------------------ shared context
@dataclass
class Ctx:
    rng: random.Random
    plan: set[str]
    m: Merchant
    place: Place
    name: str
    inter: str
    dd: str
    street: str
    zip: str
    city: str
    state: str
    country: str
    phone: str
    web: str
    prof: Profile = PROFILES["study"]
    cut: dict | None = None        # fixed-width cuts applied: {"name": width, "city": width}

    def has(self, key: str) -> bool:
        return key in self.plan


_FACILITATOR_SITES = {"SQ": ["squareup.com/receipts", "GOSQ.COM", "gosq.com", "SQUAREUP.COM"],
                      "PAYPAL": ["PAYPAL.COM", "paypal.com"], "PP": ["PAYPAL.COM"], "TST": ["TOASTTAB.COM"],
                      "EB": ["EVENTBRITE.COM"], "BT": ["BRAINTREEPAYMENTS.COM"], "WAV": ["WAVEAPPS.COM"]}


DEPT_TAGS = (" AP", " AP", " AR", " A/P", " CO", " PA", " P.A.", " MD", " DO", " PC", " LP", " DDS", " AP DEPT")

_B2B_KINDS = {"insurer", "utility", "telecom", "software", "recurring", "marketplace"}


def make_ctx(rng: random.Random, family: str, plan: set[str], prof: Profile | None = None) -> Ctx:
    prof = prof or PROFILES["study"]
    realism = prof.name != "study"
    # A country code mostly means a foreign acceptor; printed in the state slot when no state.
    foreign = "COUNTRY" in plan and "ZIP" not in plan and rng.random() < (0.9 if "STATE" not in plan else 0.45)
    place = foreign_place(rng, "STATE" in plan) if foreign else home_place(rng, prof.canada_share)
    m = make_merchant(rng, place.city, prof if realism else None)
    name = m.name
    if m.domain_is_name and "WEBSITE" in plan:
        name = name.split(".")[0].split("/")[0] or "SHOP"
    elif (not m.domain_is_name and m.domain and "WEBSITE" not in plan and "/" not in m.domain and
          (m.kind in ("online", "recurring", "software", "marketplace", "saas") or not m.is_brand)
          and rng.random() < (0.35 if m.is_brand else 0.55)):
        # The domain is the only name (rule 3): MERCHANT_NAME, and WEBSITE stays empty.
        name = m.domain if rng.random() < 0.75 else m.domain.title()
        if rng.random() < 0.2:
            name += " " + rng.choice(["MEALS", "FLOWERS", "STORE", "SUBSCR", "ORDER", "SHOP", "BILLING"])
    online_brand = m.kind in ("software", "recurring", "online", "marketplace")
    if "INTERMEDIARY" in plan and m.is_brand and rng.random() < (0.6 if online_brand else 0.97):
        # Facilitators front small sellers, not national chains: swap in a local business.
        name, _ = local_business(rng, place.city, prof if realism else None)
        m = Merchant(name, "local", "generic", "", "", False)
    if family in ("ach", "wire") and (not m.is_brand or m.kind not in _B2B_KINDS) and rng.random() < 0.85:
        # ACH originators and wire counterparties are firms, often with a legal suffix
        name, _ = local_name(rng, place.city, b2b=True)
        if rng.random() < 0.4 and not name.endswith(("INC", "LLC", "CO", "CORP", "LTD", ".")):
            name += rng.choice([" INC", " LLC", ", INC.", " CORP", " LTD", " CO", " Inc.", " PTY LTD", " GMBH"])
        m = Merchant(name, "b2b", "num", "", "", False)
        if family == "ach" and rng.random() < 0.5:
            name = name[:16].rstrip(DANGLING)   # NACHA company name field: 16 characters
    if (prof.dept_tags and family in ("ach", "name_only") and not m.is_brand and not {"STATE", "INTERMEDIARY"} & plan
            and rng.random() < prof.dept_tags):
        # Payees whose name ends in a tag that reads like a state code: an accounts-payable desk
        # (AP), a professional suffix (PA, MD, PC): part of the name, not a location.
        name += rng.choice(DEPT_TAGS)
    if rng.random() < 0.03 and "  " not in name and " " in name:
        # space-padded descriptors: a run of spaces inside the name is kept verbatim
        i = name.index(" ")
        name = name[:i] + "  " + name[i + 1:]
    inter = intermediary(rng, prof.more_prefixes) if "INTERMEDIARY" in plan else ""
    if inter and m.is_brand and realism and inter.replace("*", " ").split()[0] in POS_FACILITATORS:
        inter = rng.choice(ONLINE_FACILITATORS)   # a brand is billed through an online processor, not a POS one
    if inter and m.own_prefix and len(name.split("*", 1)[0].strip()) <= 4:
        name = name.split("*", 1)[-1].strip() or name
    cut = None
    if family in ("network", "repeat_tail", "debit_date", "pos_wrapper") and rng.random() < prof.name_cut:
        # The network's name field is fixed width (prefix included), cut mid-word: what is
        # printed is the name (LABELING.md).
        width = rng.choice(prof.name_widths)
        if len(inter + name) > width and width - len(inter) >= 4:
            name = name[:width - len(inter)].rstrip(DANGLING) or name
            cut = {"name": width}
    dd = V.dynamic(rng, m.dd_style if m.dd_style != "none" else "generic") if "DYNAMIC_DESCRIPTOR" in plan else ""
    city = place.city
    if family in ("network", "repeat_tail", "debit_date", "pos_wrapper", "online", "fixed_width"):
        if rng.random() < 0.25:
            city = abbreviate_city(city, rng)
        if rng.random() < 0.12 and len(city) > 8:
            city = city[: rng.randint(6, len(city) - 1)].rstrip(DANGLING + "'")   # a cut never ends on a separator
    country = ""
    if "COUNTRY" in plan:
        country = place.country2 if rng.random() < 0.7 else place.country3
    state = place.state if "STATE" in plan else ""
    web = ""
    if "WEBSITE" in plan:
        fac = inter.strip(" *").split("*")[0]
        if fac in _FACILITATOR_SITES and rng.random() < 0.6:
            web = rng.choice(_FACILITATOR_SITES[fac])
        elif not inter and not m.is_brand and rng.random() < 0.25:
            web = rng.choice(_FACILITATOR_SITES["SQ"])   # Square receipt line: no prefix, receipt site
        else:
            dom = m.domain if m.domain and not m.domain_is_name else V.domain_for(name, rng)
            web = V.website(rng, dom) if "/" not in dom and "#" not in dom else dom
            if rng.random() < 0.15 and name.isupper() is False:
                web = web.lower()
    phone = ""
    zip_ = ""
    if "ZIP" in plan:
        if place.zip and not place.zip.isdigit():    # Canadian postal code, with or without its space
            zip_ = place.zip if rng.random() < 0.7 else place.zip.replace(" ", "")
        else:
            zip_ = V.zip_code(rng, place.zip or f"{rng.randint(10000, 99999)}")
    if "PHONE" in plan:
        if place.country2 not in ("US", "CA") and rng.random() < 0.6:
            phone = V.foreign_phone(rng)
        else:
            phone = V.phone(rng, place.area_codes, toll_free=m.is_brand or m.kind in ("saas", "insurer"))
            if (prof.padded_phone and family in _BANK_WRAPPED and len(phone) == 10 and phone.isdigit()
                    and rng.random() < prof.padded_phone):
                # some banks print the acceptor's phone as a zero-padded 11-digit field (0 + the 10 digits),
                # the shape of their reference numbers: the 0 belongs to the printed value
                phone = "0" + phone
    return Ctx(rng, plan, m, place, name, inter, dd, V.street(rng) if "STREET" in plan else "", zip_,
               city if "CITY" in plan else "", state, country, phone, web, prof, cut)


# ------------------------------------------------------------------ building blocks
def head(c: Ctx, with_dd: bool = True) -> list[Piece]:
    """[INTERMEDIARY]NAME[DYNAMIC] as the merchant's own descriptor prints them."""
    out = []
    if c.inter:
        out.append(P(c.inter, "INTERMEDIARY"))
    out.append(P(c.name, "MERCHANT_NAME"))
    if c.m.tail and c.m.tail not in c.name:
        out += [P(" "), P(c.m.tail)]
    if c.dd and with_dd:
        glue = "" if c.dd[0] in "*#-" and not c.m.tail and c.rng.random() < 0.6 else c.rng.choice([" ", " ", "  "])
        out += [P(glue), P(c.dd, "DYNAMIC_DESCRIPTOR")]
    return out


def location(c: Ctx, *, glue_state: float = 0.04) -> list[Piece]:
    """[STREET][,] [CITY][,] [STATE] [ZIP] [COUNTRY] with the separators statements use."""
    rng = c.rng
    comma = rng.random() < 0.25
    out: list[Piece] = []

    def add(text: str, key: str, sep: str = " ") -> None:
        if text:
            if out:
                out.append(P(sep))
            out.append(P(text, key))

    add(c.street, "STREET")
    add(c.city, "CITY", ", " if comma and out else " ")
    if c.state:
        if c.city and rng.random() < glue_state:
            out.append(P(c.state, "STATE"))
        else:
            add(c.state, "STATE", ", " if comma and rng.random() < 0.4 else " ")
    add(c.zip, "ZIP", rng.choice([" ", " ", "  "]))
    add(c.country, "COUNTRY", " ")
    return out


def contact(c: Ctx) -> list[Piece]:
    items = []
    if c.phone:
        items.append([P(c.phone, "PHONE")])
    if c.web:
        items.append([P(c.web, "WEBSITE")])
    c.rng.shuffle(items)
    return flat(items)


def card_core(c: Ctx) -> list[Piece]:
    rng = c.rng
    loc, con = location(c), contact(c)
    sep = rng.choice([" ", " ", " ", "  ", "   "])
    if c.dd and loc and rng.random() < 0.25:
        # receipt style (Square and other POS): NAME CITY ST CODE receipt-site
        code = P(c.dd.lstrip("*#-") if rng.random() < 0.6 else c.dd, "DYNAMIC_DESCRIPTOR")
        if rng.random() < 0.4:   # POS receipt lines often print the city in mixed case
            loc = [P(p.text.title(), p.key) if p.key == "CITY" else p for p in loc]
        return flat([head(c, with_dd=False), loc, [code], con], sep)
    if rng.random() < 0.65:
        return flat([head(c), con, loc], sep)
    return flat([head(c), loc, con], sep)


def collapse(pieces: list[Piece]) -> list[Piece]:
    """Banks that squeeze padding to single spaces (unlabeled pieces only)."""
    out = []
    for p in pieces:
        if p.key is None and p.text.isspace():
            p = P(" ")
        out.append(p)
    return out


# ------------------------------------------------------------------ families
def fam_network(c: Ctx) -> list[Piece]:
    pieces = card_core(c)
    if c.rng.random() < 0.1:
        pieces = flat([pieces, V.mmdd(c.rng)])
    if c.rng.random() < c.prof.lead_code:
        pieces = flat([V.lead_code(c.rng), pieces])
    return pieces


ACCEPTOR_NAME_WIDTHS = (22, 25)     # Mastercard / Visa DE 43 merchant name field
ACCEPTOR_CITY_WIDTH = 13


def acceptor_name_field(inter: str, name: str, dd: str, width: int) -> tuple[list[Piece], bool]:
    """``[INTER]NAME[*DD]`` printed in a ``width``-character field: cut exactly at ``width``
    (mid-word, as the network does) when longer. Returns (pieces, was_cut)."""
    full = flat([[P(inter, "INTERMEDIARY")] if inter else [], [P(name, "MERCHANT_NAME")],
                 [P(dd, "DYNAMIC_DESCRIPTOR")] if dd else []], "")
    if len(text_of(full)) <= width:
        return full, False
    return truncate(full, width), True


def fam_acceptor(c: Ctx) -> list[Piece]:
    """Plain card-acceptor line, ISO 8583 DE 43: NAME(20|22|25) CITY(13) ST [ZIP] [CC], the
    name field cut exactly at its width, the city field at 13; sometimes space-padded."""
    rng = c.rng
    width = rng.choice(c.prof.acceptor_widths or ACCEPTOR_NAME_WIDTHS)
    glue_dd = bool(c.dd) and c.dd[0] in "*#-" and len(c.inter + c.name + c.dd) <= width and rng.random() < 0.6
    field, was_cut = acceptor_name_field(c.inter, c.name, c.dd if glue_dd else "", width)
    cut = dict(c.cut or {})
    if was_cut:
        cut["name"] = width
    padded = rng.random() < 0.3
    # A full name field has no padding left to separate it from the city field: in the raw
    # fixed-width line (and after a bank squeezes the padding) the two touch,
    # `HARBOR VIEW SEAFOOD RESTASAN FRANCISCO CA`. Some banks re-space the subfields.
    glued = len(text_of(field)) >= width and (padded or rng.random() < c.prof.acceptor_glue)
    if padded:
        field = pad(field, width)
    slot: list[Piece] = []
    used = ""
    if c.city:
        city_w = rng.choice([13, 13, 13, 13, 12, 11, 10])
        city = c.city
        if len(city) > city_w:
            city = city[:city_w].rstrip(DANGLING) or city[:city_w]
            cut["city"] = city_w
        slot = [P(city, "CITY")]
        if padded:
            slot = pad(slot, city_w)
    elif c.phone and rng.random() < 0.5:
        slot, used = [P(c.phone, "PHONE")], "PHONE"
    elif c.web and rng.random() < 0.5:
        slot, used = [P(c.web, "WEBSITE")], "WEBSITE"
    tail: list = []
    if c.state:
        tail.append(P(c.state, "STATE"))
    if c.zip:
        tail.append(P(c.zip, "ZIP"))
    if c.country:
        tail.append(P(c.country, "COUNTRY"))
    if c.dd and not glue_dd:
        tail.append(P(c.dd if rng.random() < 0.5 else c.dd.lstrip("*#-") or c.dd, "DYNAMIC_DESCRIPTOR"))
    extras = []
    if c.phone and used != "PHONE":
        extras.append(P(c.phone, "PHONE"))
    if c.web and used != "WEBSITE":
        extras.append(P(c.web, "WEBSITE"))
    rng.shuffle(extras)
    street = [P(c.street, "STREET")] if c.street else []
    if extras and rng.random() < 0.5:       # phone/domain before the location (e-commerce acceptors)
        rest = flat([extras, street, slot, tail])
    else:
        rest = flat([street, slot, tail, extras])
    # an empty city field is printed as blanks, so only a filled slot right after the name touches it
    pieces = field + rest if glued and slot and not street and rest[0] is slot[0] else flat([field, rest])
    if padded and rng.random() < 0.3:
        pieces = collapse(pieces)
    if rng.random() < c.prof.lead_code * 2:
        pieces = flat([V.lead_code(rng), pieces])
    c.cut = cut or None
    return pieces


def fam_fixed_width(c: Ctx) -> list[Piece]:
    """ISO 8583 DE 43 style: name field (20-25) + city field (13) + state/country, then extras."""
    rng = c.rng
    width = rng.choice([20, 20, 22, 22, 23, 25])
    if len(c.inter + c.name) < width and rng.random() < 0.35:
        width = max(len(c.inter) + 6, len(c.inter + c.name) - rng.randint(0, 4))  # a full field glues to the city
    name_field = pad(flat([[P(c.inter, "INTERMEDIARY")] if c.inter else [], [P(c.name, "MERCHANT_NAME")]], ""), width)
    if not c.name[: max(0, width - len(c.inter))].strip():
        name_field = pad([P(c.name, "MERCHANT_NAME")], width)
    city_slot = [P(c.city, "CITY")] if c.city else ([P(c.phone, "PHONE")] if c.phone and rng.random() < 0.4 else [])
    if not city_slot and c.web and rng.random() < 0.5:
        city_slot = [P(c.web, "WEBSITE")]   # a billing domain in the 13-character city field, cut there
    used_phone = bool(city_slot) and city_slot[0].key == "PHONE"
    used_web = bool(city_slot) and city_slot[0].key == "WEBSITE"
    city_field = pad(city_slot, rng.choice([13, 13, 13, 11, 12])) if city_slot else [P(" " * rng.choice([1, 13]))]
    st = [P(c.state, "STATE")] if c.state else []
    tail: list = []
    if c.dd:
        ref = c.dd if rng.random() < 0.4 else V.ref_slot(rng)   # the acceptor's reference slot
        tail.append(P(ref, "DYNAMIC_DESCRIPTOR"))
    if c.phone and not used_phone:
        tail.append(P(c.phone, "PHONE"))
    if c.street:
        tail.insert(0, P(c.street, "STREET"))
    if c.zip:
        tail.append(P(c.zip, "ZIP"))
    if c.country:
        tail.append(P(c.country, "COUNTRY"))
    if c.web and not used_web:
        tail.insert(rng.randint(0, len(tail)), P(c.web, "WEBSITE"))
    if rng.random() < 0.08:
        tail.insert(rng.randint(0, len(tail)), P(V.digits(rng, 11)))
    pieces = name_field + city_field + flat([st, flat(tail)], " ") if st else name_field + city_field + flat(tail)
    if rng.random() < 0.7:
        pieces = collapse(pieces)
    return pieces


def _repeat(c: Ctx, core: list[Piece]) -> list[Piece]:
    rng = c.rng
    n = len(text_of(core))
    r = rng.random()
    name_len = sum(len(p.text) for p in core[:2] if p.key in ("INTERMEDIARY", "MERCHANT_NAME"))
    if r < 0.12 and name_len < n:
        first = truncate(core, name_len)   # the bank's first copy is just the name field
    elif r < 0.4 and n > 14:
        k = rng.randint(12, min(24, n - 1))
        if c.prof.name != "study" and rng.random() < 0.5:
            # the display cut backs off to the last whole word (``BED BATH & BED BATH & BEYOND``)
            space = text_of(core).rfind(" ", 0, k + 1)
            k = space if space >= 6 else k
        first = truncate(core, k)   # a fixed-width first copy
    elif r < 0.6 and n > 12:
        first = truncate(core, rng.randint(max(8, n // 3), n - 1))
    elif r < 0.8:
        first = core
    else:
        return core
    return flat([first, core])


def fam_repeat_tail(c: Ctx) -> list[Piece]:
    rng = c.rng
    core = _repeat(c, card_core(c))
    tail = [V.bank_reference(rng), V.card_suffix(rng) if rng.random() < 0.5 else f"Crd{V.digits(rng, 4)}",
            f"Dt{V.mmdd(rng)}" if rng.random() < 0.7 else V.mmdd(rng)]
    if rng.random() < 0.2:
        tail.insert(0, rng.choice(V.CATEGORY_WORDS))
    if rng.random() < 0.2:
        rng.shuffle(tail)
    return flat([core, " ".join(tail)])


def _debit_core(c: Ctx) -> list[Piece]:
    """NAME [extras] CITY(13)STATE: a 13-character city glues to its state (``...FRANCISCOCA``)."""
    rng = c.rng
    city = c.city[:13].rstrip() if c.city else ""
    tail: list[Piece] = []
    slot_key = ""
    if city:
        tail.append(P(city, "CITY"))
    elif c.web and rng.random() < 0.5:
        city, slot_key = c.web[:13], "WEBSITE"
        tail.append(P(city.rstrip(DANGLING), "WEBSITE"))
    if c.state:
        if city and len(city) < 13:
            tail.append(P(" "))
        tail.append(P(c.state, "STATE"))
    extras = flat([[P(c.street, "STREET")] if c.street else [],
                   [P(c.phone, "PHONE")] if c.phone else [],
                   [P(c.web, "WEBSITE")] if c.web and slot_key != "WEBSITE" else []])
    after = flat([[P(c.zip, "ZIP")] if c.zip else [], [P(c.country, "COUNTRY")] if c.country else []])
    return flat([head(c), extras, tail, after])


def fam_debit_date(c: Ctx) -> list[Piece]:
    rng = c.rng
    date = V.mmdd(rng)
    core = card_core(c) if rng.random() < 0.5 else _debit_core(c)
    n = len(text_of(core))
    if rng.random() < 0.7 and n > 12:
        first = truncate(core, rng.randint(max(8, n // 3), n - 1))
        pieces = flat([date, first, date, core])
    else:
        pieces = flat([date, core])
    if rng.random() < 0.3:
        pieces = flat([pieces, V.card_suffix(rng)])
    r = rng.random()
    wrap = rng.choice(["Debit Card", "DBT Purchase", "POS Debit", "Visa Debit", "Debit Card Purchase", "POS"])
    if r < 0.45:
        pieces = flat([pieces, wrap])
    elif r < 0.65:
        pieces = flat([wrap, pieces])
    return pieces


def fam_pos_wrapper(c: Ctx) -> list[Piece]:
    rng = c.rng
    date = V.mmdd(rng)
    pieces = flat([V.bank_prefix(rng, date), card_core(c)])
    extras = []
    if rng.random() < 0.5:
        extras.append(V.card_suffix(rng))
    if rng.random() < 0.25:
        extras.append(rng.choice(V.CATEGORY_WORDS))
    if rng.random() < 0.2:
        extras.append(V.bank_reference(rng))
    return flat([pieces, *extras])


def fam_online(c: Ctx) -> list[Piece]:
    """E-commerce / recurring billing: NAME*CODE, a billing domain or phone, then state."""
    rng = c.rng
    pieces = flat([head(c), contact(c), location(c)], rng.choice([" ", " ", "  "]))
    if rng.random() < 0.15:
        pieces = flat([rng.choice(["RECURRING PAYMENT", "RECURRING", "ONLINE PURCHASE", "PREAUTHORIZED DEBIT"]),
                       pieces])
    return pieces


_ENTRY = ["PAYROLL", "EXPENSE", "INVPMT", "SETL", "WEB PMTS", "HCCLAIMPMT", "BILL PMT", "ACH PMT", "AUTOPAY",
          "PREM", "DIRECT DEP", "SALE", "TAX PYMT", "INS PREM", "PAYMENT", "EPAY", "CORP PMT", "ACH TRNSFR",
          "VENDOR PMT", "PPD", "CCD", "DEBIT", "ONLINE PMT", "SUBSCRIPTN"]


_RECEIVER_SUFFIX = ["Inc.", "INC", "LLC", "Co", "Corp", "Medical Co", "Labs", ".ai", ".io", "Technologies"]


def _receiver(rng: random.Random) -> str:
    """The receiving account holder (the statement owner): printed, but no key."""
    name = local_name(rng, "")[0]
    word = name.split()[0] if rng.random() < 0.5 else name
    suffix = rng.choice(_RECEIVER_SUFFIX)
    out = word + suffix if suffix.startswith(".") else f"{word} {suffix}"
    return out.title() if rng.random() < 0.5 else out


def fam_ach(c: Ctx) -> list[Piece]:
    """NACHA: company name (16), entry description (10), individual id (15), receiver (22)."""
    rng = c.rng
    company = [P(c.inter, "INTERMEDIARY")] if c.inter else []
    company.append(P(c.name, "MERCHANT_NAME"))
    entry = rng.choice(_ENTRY)
    dd = c.dd if rng.random() < 0.3 else V.ach_id(rng)
    ident = [P(dd, "DYNAMIC_DESCRIPTOR")] if c.dd else []
    receiver = _receiver(rng) if rng.random() < 0.6 else ""
    extras = flat([[P(c.phone, "PHONE")] if c.phone else [], [P(c.web, "WEBSITE")] if c.web else [], location(c)])
    style = rng.random()
    if style < 0.3:
        pieces = flat([flat(company, ""), entry, ident, extras, receiver])
    elif style < 0.45:
        first = flat([flat(company, ""), entry])
        pieces = flat([first, first, ident, extras, receiver])
        if rng.random() < 0.4:
            pieces = flat([pieces, rng.choice(["ACH Debit", "ACH Credit", "ACH DEBIT", "ACH"])])
    elif style < 0.6:
        # COMPANY -ENTRY [ID]: the entry description glued to the name by a dash
        code = entry if rng.random() < 0.6 else V.alnum(rng, 3, letters_first=True)
        glue = " " if rng.random() < 0.7 else ""
        pieces = flat([flat(company + [P(glue + "-" + code)], ""), ident, extras])
    elif style < 0.72:
        pieces = flat([flat(company, ""), f"DES:{entry}", flat([P("ID:"), *ident], "") if ident else
                       f"ID:{V.digits(rng, 9)}", f"INDN:{receiver or rng.choice(V.surnames())}",
                       f"CO ID:{V.digits(rng, 10)}", rng.choice(["CCD", "PPD", "WEB"]), extras])
    elif style < 0.82:
        pieces = flat([flat([P("ORIG CO NAME:"), *company], ""), f"ORIG ID:{V.digits(rng, 10)}",
                       f"DESC DATE:{V.yymmdd(rng)}", f"CO ENTRY DESCR:{entry}", "SEC:" + rng.choice(["CCD", "PPD"]),
                       f"TRACE#:{V.digits(rng, 15)}", flat([P("IND ID:"), *ident], "") if ident else None,
                       f"IND NAME:{receiver}" if receiver else None, extras])
    elif style < 0.88:
        pieces = flat([ident, flat(company, ""), extras, rng.choice(["Miscellaneous Debit", "ACH Debit", "Bill Pay",
                                                                   "Online Payment", "Misc Debit", ""])])
    else:
        first = flat([flat(company, ""), entry])
        pieces = flat([first, first if rng.random() < 0.5 else truncate(first, rng.randint(5, len(text_of(first)))),
                       ident, extras, receiver])
    if rng.random() < 0.25:
        pieces = flat([rng.choice(["ACH Debit", "ACH WITHDRAWAL", "ELECTRONIC PMT", "ACH Pmt"]), pieces])
    return pieces


WIRE_MEMO_WIDTHS = (200, 300)   # a statement's memo column: long wire memos end mid-field


def _memo_cut(c: Ctx, memo: list[Piece]) -> list[Piece]:
    """A long Fedwire memo as a statement prints it: cut at the memo column's width, often in the
    middle of the counterparty's address (a cut value keeps its key, as a cut name does), so the
    merchant's own address may be partly or wholly gone while the account holder's is still there."""
    rng = c.rng
    if not c.prof.wire_memo_cut:
        return memo   # (no draw: profiles without the option keep their random stream)
    width = rng.randint(*WIRE_MEMO_WIDTHS)
    if len(text_of(memo)) <= width or rng.random() >= c.prof.wire_memo_cut:
        return memo
    c.cut = {**(c.cut or {}), "memo": width}
    return truncate(memo, width)


_SENDER_BANKS = ("CITIBANK NYC", "BANK OF AMERICA", "WELLS FARGO NA", "JPMCHASE", "SIL VLY BK SCLA", "FST REP BK SF",
                 "BARCLAYS", "BQE NAT PARIS", "HSBC USA", "US BANK NA")


def _fedwire_address(rng: random.Random, street: str, city: str, state: str, zip_: str, country: str,
                     key: bool) -> list[Piece]:
    """A party's address as the wire prints it: the street line and the city line joined with or
    without a space (the bank drops the line break: ``1200 HARBOR AVESEATTLE, WA 98101``), then
    ``CITY, ST ZIP``. ``key`` labels the values (the counterparty); the account holder's is text."""
    def part(text: str, name: str) -> Piece:
        return P(text, name if key else None)

    out: list[Piece] = []
    if street:
        out.append(part(street, "STREET"))
    if city:
        if out:
            out.append(P("" if rng.random() < 0.45 else " "))
        out.append(part(city, "CITY"))
    if state:
        if out:
            out.append(P(rng.choice([", ", ", ", ","]) if city else " "))
        out.append(part(state, "STATE"))
    if zip_:
        if out:
            out.append(P(" "))
        out.append(part(zip_, "ZIP"))
        if rng.random() < 0.1 and "-" not in zip_:
            out.append(P("-"))   # an empty ZIP+4 left as a dash
    if country:
        if out:
            out.append(P(" "))
        out.append(part(country, "COUNTRY"))
    return out


def _swift_address(c: Ctx, addr: list[Piece]) -> list[Piece]:
    """An address in SWIFT MT103 lines: ``2/STREET 3/CC/POSTCODE TOWN`` (or ``3/`` and the rest)."""
    swift = []
    if c.street:
        swift.append(flat([P("2/"), P(c.street, "STREET")], ""))
    rest = [p for p in addr if p.key not in ("STREET",)]
    while rest and rest[0].key is None:
        rest = rest[1:]
    if c.country and c.rng.random() < 0.6:   # line 3: country/postcode town
        line = [P("3/"), P(c.country, "COUNTRY")]
        if c.zip:
            line += [P("/"), P(c.zip, "ZIP")]
        if c.city:
            line += [P(" " if c.zip else "/"), P(c.city, "CITY")]
        if c.state:
            line += [P(" "), P(c.state, "STATE")]
        swift.append(line)
    elif rest:
        swift.append(flat([P("3/"), *rest], ""))
    return flat(swift, " ")


def _fedwire_memo(c: Ctx, out_going: bool, name: list[Piece]) -> list[Piece]:
    """A Fedwire ``FIELD:=value;`` memo in the order the wire message carries its parties: the sending
    bank, the originator (``ORG ID``, ``ORG``, ``ORG ADDRESS``), optionally its bank, then the
    beneficiary (``BNF ID``, ``BNF NAME``, ``BNF ADDRESS``), then the receiving bank's tags.

    The counterparty is the originator of an incoming wire and the beneficiary of an outgoing one;
    the account holder fills the other party's fields in exactly the same shape, address included.
    So position and field names cannot tell whose address to label: only the counterparty's name,
    which the memo also prints first, does (cut at 32 characters like the memo's name column)."""
    rng = c.rng
    holder_place = us_place(rng)
    holder_name = [P(_receiver(rng).upper())]
    holder_addr = (_fedwire_address(rng, V.street(rng), holder_place.city, holder_place.state, holder_place.zip, "",
                                    False) if rng.random() < 0.8 else [])
    if c.country and c.country not in ("US", "USA") and rng.random() < 0.5:
        own_addr = _swift_address(c, location(c))   # foreign banks often send the MT103 address lines
    else:
        own_addr = _fedwire_address(rng, c.street, c.city, c.state, c.zip, c.country, True)

    def party(role: str, who: list[Piece], addr: list[Piece]) -> list:
        label = "ORG:=" if role == "ORG" else ("BNF NAME:=" if rng.random() < 0.8 else "BNF:=")
        fields: list = [f"{role} ID:={V.digits(rng, rng.choice([9, 10, 10, 11, 12]))}"] if rng.random() < 0.75 else []
        fields.append(flat([P(label), *who], ""))
        if addr:
            fields.append(flat([P(f"{role} ADDRESS:="), *addr], ""))
        return fields

    org, bnf = (holder_name, holder_addr), (name, own_addr)
    if not out_going:
        org, bnf = bnf, org
    fields: list = []
    if rng.random() < 0.15:
        fields.append(f"INSTRUCTED AMOUNT:={rng.randint(100, 99999):,}.{V.digits(rng, 2)} - USD")
    if rng.random() < 0.85:
        fields.append("SENDER BNK:=" + rng.choice(_SENDER_BANKS))
    fields.append(f"SENDER ID:={V.digits(rng, 9) if rng.random() < 0.8 else V.alnum(rng, 8, letters_first=True)}")
    if rng.random() < 0.6:
        fields.append(f"SENDER REF:={V.digits(rng, 14)}")
    fields += party("ORG", *org)
    if rng.random() < 0.15:
        fields.append("ORG FI:=" + rng.choice(_SENDER_BANKS))
    fields += party("BNF", *bnf)
    if c.dd:
        fields.append(flat([P(rng.choice(["OBI:=", "REF:=", "BNF REF:="])), P(c.dd, "DYNAMIC_DESCRIPTOR")], ""))
    if rng.random() < 0.7:
        fields.append("REC FI:=" + rng.choice(_SENDER_BANKS))
    if rng.random() < 0.4:
        fields.append("OBI:=" + rng.choice(["BY ORDER OF:", "INVOICE " + V.digits(rng, 5), "PAYMENT FOR SERVICES"]))
    lead = truncate(name, 32) if rng.random() < 0.9 else []
    memo = flat([lead, flat(fields, "; "), [P(c.phone, "PHONE")] if c.phone else None,
                 [P(c.web, "WEBSITE")] if c.web else None])
    return _memo_cut(c, memo)


def fam_wire(c: Ctx) -> list[Piece]:
    rng = c.rng
    out_going = rng.random() < 0.6
    if c.prof.fedwire_layout and rng.random() < c.prof.fedwire_layout:
        # (no draw when the option is off: profiles without it keep their random stream; with it,
        # the older "FIELD:=value" layout below, parties in random order, is not drawn at all)
        name = flat([[P(c.inter, "INTERMEDIARY")] if c.inter else [], [P(c.name, "MERCHANT_NAME")]], "")
        return _fedwire_memo(c, out_going, name)
    role = "BNF" if out_going else rng.choice(["ORG", "ORIG"])
    name = flat([[P(c.inter, "INTERMEDIARY")] if c.inter else [], [P(c.name, "MERCHANT_NAME")]], "")
    addr = location(c)
    parts: list = []
    style = rng.random()
    date = V.yymmdd(rng)
    holder_role = "ORG" if out_going else "BNF"
    holder = [f"{holder_role}:={_receiver(rng).upper()}"]
    if rng.random() < 0.6:  # the account holder's own address: printed, never labeled
        hp = us_place(rng)
        holder.append(f"{holder_role} ADDRESS:={V.street(rng)} {hp.city}, {hp.state} {hp.zip}")
    if style < 0.5:
        parts = [f"WIRE TYPE:WIRE {'OUT' if out_going else 'IN'} DATE:{date} TIME:{rng.randint(0, 23):02d}{rng.randint(0, 59):02d} ET",
                 f"TRN:{V.digits(rng, 16)}", f"SERVICE REF:{V.digits(rng, 6)}",
                 flat([P(f"{role}:"), *name], ""), f"ID:{V.digits(rng, 10)}"]
        if addr:
            parts.append(flat([P(f"{role} ADDR:"), *addr], ""))
        parts.append(f"{role} BK:{rng.choice(['JPMORGAN CHASE BANK, N.A.', 'WELLS FARGO BANK', 'HSBC UK', 'SVB'])}")
        if c.dd:
            parts.append(flat([P("OBI:"), P(c.dd, "DYNAMIC_DESCRIPTOR")], ""))
    elif style < 0.8:
        if c.prof.fedwire_layout:
            return _fedwire_memo(c, out_going, name)
        lead = truncate(name, 32) if rng.random() < 0.7 else []
        parts = [lead, "SENDER BNK:=" + rng.choice(["CITIBANK NA", "BANK OF AMERICA", "BARCLAYS", "WELLS FARGO NA"]),
                 f"SENDER ID:={V.digits(rng, 9)}", f"SENDER REF:={V.digits(rng, 14)}",
                 f"{role} ID:={V.digits(rng, 10)}", flat([P(f"{role}:=" if rng.random() < 0.5 else f"{role} NAME:="),
                                                          *name], "")]
        if addr and rng.random() < 0.4:
            parts.append(flat([P(f"{role} ADDRESS:="), *addr], ""))
        elif addr:
            parts.append(_swift_address(c, addr))
        if c.dd:
            parts.append(flat([P("REF:"), P(c.dd, "DYNAMIC_DESCRIPTOR")], ""))
        if c.prof.wire_memo_cut and rng.random() < 0.7:   # the banks' own tags run on after the parties
            parts.append("REC FI:=" + rng.choice(["SIL VLY BK", "JPMCHASE", "WELLS FARGO NA", "BK AMER NYC", "CITIBANK NYC"]))
            if rng.random() < 0.5:
                parts.append("OBI:=" + rng.choice(["BY ORDER OF:", "INVOICE " + V.digits(rng, 5), "PAYMENT FOR SERVICES",
                                                   "REF " + V.alnum(rng, 8)]))
        for h in holder:
            parts.insert(rng.randint(1, len(parts)), h)
        parts.insert(rng.randint(1, len(parts)), f"INSTRUCTED AMOUNT:={rng.randint(100, 99999)}.{V.digits(rng, 2)} - USD")
        if rng.random() < 0.7:  # Fedwire-style "FIELD:=value;" memo: fields joined by "; "
            body = flat(parts[1:], "; ")
            memo = flat([parts[0], body, [P(c.phone, "PHONE")] if c.phone else None,
                         [P(c.web, "WEBSITE")] if c.web else None])
            return _memo_cut(c, memo)
    else:
        parts = [name, rng.choice(["Deposit-Wired Funds", "WIRE TRANSFER", "Outgoing Wire", "INCOMING WIRE"]),
                 [P(c.dd, "DYNAMIC_DESCRIPTOR")] if c.dd else None, addr]
    if c.phone:
        parts.append([P(c.phone, "PHONE")])
    if c.web:
        parts.append([P(c.web, "WEBSITE")])
    return flat(parts)


_TAILS = ["PURCHASE", "ONLINE ORDER", "RECURRING", "SUBSCRIPTION", "MEMBERSHIP", "PURCHASE WITH POINTS",
          "REFUND", "RENEWAL", "ANNUAL FEE", "MONTHLY", "DEPOSIT", "SERVICE FEE", "ORDER"]


def fam_name_only(c: Ctx) -> list[Piece]:
    rng = c.rng
    pieces = flat([head(c), contact(c), location(c), rng.choice(_TAILS) if rng.random() < 0.2 else None])
    if rng.random() < 0.3:
        pieces = flat([pieces, rng.choice(["ACH Debit", "Payment", "Bill Payment", "PMT", "ONLINE PMT", "AUTOPAY"])])
    return pieces


RENDER = {"network": fam_network, "fixed_width": fam_fixed_width, "repeat_tail": fam_repeat_tail,
          "debit_date": fam_debit_date, "pos_wrapper": fam_pos_wrapper, "online": fam_online, "ach": fam_ach,
          "wire": fam_wire, "name_only": fam_name_only, "acceptor": fam_acceptor}
