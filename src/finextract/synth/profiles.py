"""Generator profiles: which family mix, presence rates and realism options a run uses.

``study`` reproduces the study's synthetic set (its presence rates, STREET 31%, and the
original family mix). ``card`` is what US/Canadian card and credit-union statements look
like: plain card-acceptor lines (``NAME CITY ST`` with DE 43 fixed-width fields) dominate,
street, ZIP and country are rare, and the realism options below are on. The rates are
judgement from how card statements are printed (most card lines carry city and state, few
an address), not fitted to any labeled set; ``docs/generator.md`` gives the reasons.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from finextract.errors import InputError


@dataclass(frozen=True)
class Profile:
    name: str
    weights: dict[str, float]            # family -> share of records (normalised)
    presence: dict[str, float]           # key -> share of records with a value
    canada_share: float = 0.0            # domestic acceptors that are Canadian (province, postal code)
    more_prefixes: bool = False          # draw facilitators from the longer list too
    place_names: float = 0.0             # local names built on a place word (BROOKLYN BAGEL)
    long_names: float = 0.0              # local names of 20-40 characters (cut by the name field)
    brand_variant: float = 0.0           # brands printed as XYZ*BRAND, BRAND*PRODUCT, BRAND N RIDES MM-DD
    lead_code: float = 0.0               # card lines led by a bank reference code (#CODE NAME ...)
    name_cut: float = 0.3                # card families: name field cut at a width from name_widths
    name_widths: tuple[int, ...] = (16, 16, 18, 20, 22, 23, 25)
    acceptor_widths: tuple[int, ...] = (22, 25)    # the acceptor family's name field (DE 43)
    acceptor_glue: float = 0.0           # a full acceptor name field printed against the city (no space)
    fixed_families: frozenset[str] = frozenset()   # families that keep their own key rates (not rescaled)
    foreign_slot: float = 0.0            # COUNTRY records printed as a foreign acceptor: code in the state slot
    wire_memo_cut: float = 0.0           # long Fedwire memos cut at the memo column's width (200-300)
    dept_tags: float = 0.0               # ACH / name-only payees printed with a department tag (ACME CORP AP)
    fedwire_layout: float = 0.0          # wires printed as a Fedwire memo in the wire's own party order
    padded_phone: float = 0.0            # bank-wrapped lines: a plain 10-digit phone field zero-padded to 11 digits
    notes: dict[str, str] = field(default_factory=dict)


STUDY_PRESENCE: dict[str, float] = {
    "INTERMEDIARY": 0.267, "MERCHANT_NAME": 1.0, "DYNAMIC_DESCRIPTOR": 0.291, "STREET": 0.312, "ZIP": 0.120,
    "CITY": 0.468, "STATE": 0.685, "COUNTRY": 0.127, "PHONE": 0.196, "WEBSITE": 0.054,
}

CARD_PRESENCE: dict[str, float] = {
    "INTERMEDIARY": 0.18, "MERCHANT_NAME": 1.0, "DYNAMIC_DESCRIPTOR": 0.22, "STREET": 0.05, "ZIP": 0.06,
    "CITY": 0.62, "STATE": 0.80, "COUNTRY": 0.08, "PHONE": 0.22, "WEBSITE": 0.06,
}

STUDY_WEIGHTS = {"network": 0.17, "fixed_width": 0.12, "repeat_tail": 0.22, "debit_date": 0.12, "pos_wrapper": 0.07,
                 "online": 0.11, "ach": 0.08, "wire": 0.03, "name_only": 0.08, "acceptor": 0.0}

# Plain acceptor lines (acceptor + network + fixed_width) are about half; bank-wrapped card
# lines (repeat_tail, debit_date, pos_wrapper) a third; ACH, wires, name-only the rest.
CARD_WEIGHTS = {"acceptor": 0.28, "network": 0.11, "fixed_width": 0.10, "repeat_tail": 0.16, "debit_date": 0.08,
                "pos_wrapper": 0.07, "online": 0.08, "ach": 0.05, "wire": 0.03, "name_only": 0.04}

PROFILES: dict[str, Profile] = {
    "study": Profile("study", STUDY_WEIGHTS, STUDY_PRESENCE),
    "card": Profile("card", CARD_WEIGHTS, CARD_PRESENCE, canada_share=0.15, more_prefixes=True, place_names=0.15,
                    long_names=0.2, brand_variant=0.25, lead_code=0.06, name_cut=0.35,
                    name_widths=(22, 22, 25, 25, 16, 20, 23), fixed_families=frozenset({"wire"}),
                    foreign_slot=0.7, acceptor_widths=(22, 22, 25, 25, 20), acceptor_glue=0.8,
                    wire_memo_cut=0.6, dept_tags=0.12, fedwire_layout=0.6, padded_phone=0.3),
}

DEFAULT_PROFILE = "card"


def get_profile(profile: "str | Profile") -> Profile:
    """A profile by name (or the profile itself)."""
    if isinstance(profile, Profile):
        return profile
    try:
        return PROFILES[profile]
    except KeyError:
        raise InputError(f"profile: unknown generator profile {profile!r}; profiles are {sorted(PROFILES)}") from None


def with_options(profile: "str | Profile", options: dict) -> Profile:
    """A copy of ``profile`` with some fields replaced (ablations: ``{"name_cut": 0}``).

    ``weights`` may be a profile name, meaning that profile's family mix.
    """
    import dataclasses

    base = get_profile(profile)
    known = {f.name for f in dataclasses.fields(Profile)}
    bad = sorted(set(options) - known)
    if bad:
        raise InputError(f"profile: unknown option(s) {bad}; options are {sorted(known - {'name', 'notes'})}")
    opts = dict(options)
    if isinstance(opts.get("weights"), str):
        opts["weights"] = get_profile(opts["weights"]).weights
    if isinstance(opts.get("presence"), str):
        opts["presence"] = get_profile(opts["presence"]).presence
    for key in ("name_widths", "acceptor_widths"):
        if key in opts:
            opts[key] = tuple(opts[key])
    if "fixed_families" in opts:
        opts["fixed_families"] = frozenset(opts["fixed_families"])
    return dataclasses.replace(base, **opts)
