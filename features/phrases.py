"""Phrases a sales rep reads for each explanation signal: "Viewed pricing 4 times in the last 7 days".

A score comes with its top factors; each factor is one *signal* (``FeatureDef.signal``: every window
of pricing views plus the "ever viewed" flag is one signal) and needs words, not a column name.
Built-in templates cover the built-in signals and the data contract's lead columns; params
``features.phrases`` overrides them and must add every other lead column (X Education's
``occupation``). The templates live in ``FeatureParams``, so they are saved with the model and the
service never hard-codes one. ``phrase_templates`` refuses a signal without a template, a template
for a signal the model does not have (a typo) and a template that cannot render.

Template syntax: ``str.format`` with named fields, and alternatives per *state* of the lead's value
separated by ``|``. The alternative without a ``[state]`` prefix is the default for every state not
named::

    "Viewed pricing {times} in the last {days} days | [none] Has not viewed pricing in the last {days} days"

Category signals also take ``[=level]`` alternatives for one value (``[=yes] Asked not to be e-mailed``).
Conversions besides ``!s``/``!r``: ``!u`` upper case, ``!l`` lower case, ``!c`` capitalised, ``!t`` title
case, ``!n`` a name or its code ("Country: {value!n}" -> "Country: US" or "Country: United States": up to
three letters upper case, longer title case), ``!w`` a CRM code as words ("web_organic" -> "web
organic"), ``!m`` a number of seconds in whole minutes ("Spent {number!m} on the website" -> "Spent 25
minutes on the website"). Each signal has a *shape* that fixes its states and
fields (``SHAPES``); every shape has ``{value}``, the lead's value as shown next to the factor.

Rendering is vectorised: each distinct combination of a signal's input values is rendered once and
spread to the rows that share it, so a million leads cost what their distinct values cost.
"""

from __future__ import annotations

import math
import re
import string
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import NamedTuple

import numpy as np
import pandas as pd

from features.build import RECENCY_CAP_DAYS, UNKNOWN, FeatureDef, feature_catalog, icp_criteria, joined_into
from pipelines.config import FeatureParams
from pipelines.contract import true_false_spellings


@dataclass(frozen=True)
class Shape:
    """How one kind of signal reads: the states a template may name and the fields it may use."""

    states: tuple[str, ...]
    fields: tuple[str, ...]
    example: dict  # field values used to check that a template renders
    required: tuple[str, ...] = ()  # states every template must word: no other factor says them
    fallbacks: tuple[tuple[str, str], ...] = ()  # (state, state whose text it uses when a template has none)


SHAPES: dict[str, Shape] = {
    # Activity counts over windows; a score's factor names the window whose count moved it most
    # (Phrasebook.telling_windows), else (and in describe) the shortest window with any event.
    # "earlier": no event in any window, yet the "ever" flag says there was one before; a template without
    # [earlier] says its [none] text ("Has not viewed pricing" read "Viewed pricing 0 times in the last 90 days").
    "activity": Shape(
        ("active", "earlier", "none", "unknown"),
        ("value", "count", "times", "s", "days"),
        {"value": "7d: 2, 30d: 3", "count": 2, "times": "twice", "s": "s", "days": 7},
        fallbacks=(("earlier", "none"),),
    ),
    # "new": no activity yet, and the lead is younger than the recency window ({days}, {ago}: its age);
    # a template without [new] says its [none] text with those fields ("No activity in the last 2 days").
    "recency": Shape(
        ("recent", "new", "none", "unknown"), ("value", "days", "ago"), {"value": "2 days", "days": 2, "ago": "2 days ago"},
        fallbacks=(("new", "none"),),
    ),
    "trend": Shape(("up", "down", "flat", "unknown"), ("value", "change"), {"value": "+2", "change": 2}),
    "email_domain": Shape(("free", "student", "competitor", "business", "unknown"), ("value",), {"value": "free"}),
    # A derived yes/no fact; {value} says the lead's own side of it ("not given" for no phone), not the flag's 1/0.
    "flag": Shape(("yes", "no", "unknown"), ("value",), {"value": "not given"}),
    "icp": Shape(("some", "none"), ("value", "matched", "criteria"), {"value": "3 of 4", "matched": 3, "criteria": 4}),
    # {times}: a count as said aloud, "once", "twice", "3 times" ("Visited the website 1 time" read as a form).
    "number": Shape(
        ("nonzero", "zero", "unknown"), ("value", "number", "s", "times"),
        {"value": "12.5", "number": 12.5, "s": "s", "times": "12.5 times"},
    ),
    "category": Shape(("known", "unknown"), ("value",), {"value": "software"}),
    # The country with the unsupported_country flag joined to it: "unserved" is a country we do not serve.
    "served_country": Shape(("known", "unserved", "unknown"), ("value",), {"value": "ru"}, required=("unserved",)),
}
CATEGORY_SHAPES = ("category", "served_country")  # read from a text column; [=level] alternatives apply


def _activity(active: str, none: str, earlier: str | None = None) -> str:
    """An activity template: events in a window | [earlier] only before every window | [none] | [unknown]."""
    parts = [active, *([f"[earlier] {earlier}"] if earlier else []), f"[none] {none}", "[unknown] No activity data"]
    return " | ".join(parts)


# "ICP" in words, for a rep's factor and marketing's audit alike (pipelines.audit.SIGNAL_WORDS).
IDEAL_CUSTOMER_PROFILE = "ideal customer profile"

BUILT_IN_PHRASES: dict[str, str] = {
    # Activity types (features.activity_types).
    "page_view": _activity("Viewed {count} web page{s} in the last {days} days", "No web page views in the last {days} days"),
    "pricing_view": _activity(
        "Viewed pricing {times} in the last {days} days", "Has not viewed pricing", "Viewed pricing more than {days} days ago"
    ),
    "form_fill": _activity("Filled in {count} form{s} in the last {days} days", "No form filled in the last {days} days"),
    "demo_request": _activity(
        "Requested a demo in the last {days} days", "Has not requested a demo", "Requested a demo more than {days} days ago"
    ),
    "email_open": _activity("Opened {count} e-mail{s} in the last {days} days", "Opened no e-mail in the last {days} days"),
    "email_click": _activity("Clicked e-mail links {times} in the last {days} days", "No e-mail clicks in the last {days} days"),
    "webinar": _activity("Attended {count} webinar{s} in the last {days} days", "No webinar in the last {days} days"),
    "content_download": _activity(
        "Downloaded content {times} in the last {days} days", "No content downloads in the last {days} days"
    ),
    "activity_recency": (
        "Last activity {ago} | [new] No activity since it was created {ago} | [none] No activity in the last {days} days"
        " | [unknown] No activity data"
    ),
    "engagement_trend": (
        "Activity up by {change} this week vs the week before | [down] Activity down by {change} this week vs the"
        " week before | [flat] As active this week as the week before | [unknown] No activity data"
    ),
    # Derived fit and negative signals (features.derived).
    "email_domain_type": (
        "Business e-mail domain | [free] Free e-mail domain | [student] Student e-mail address"
        " | [competitor] Competitor's e-mail domain | [unknown] No usable e-mail address"
    ),
    "missing_email": "No e-mail address | [no] Has an e-mail address | [unknown] E-mail not in the CRM export",
    "missing_phone": "No phone number | [no] Has a phone number | [unknown] Phone not in the CRM export",
    "missing_company": "No company name | [no] Company name given | [unknown] Company not in the CRM export",
    "unsupported_country": "In a country we do not serve | [no] In a country we serve | [unknown] Country not given",
    "icp_match": (f"Matches {{matched}} of {{criteria}} {IDEAL_CUSTOMER_PROFILE} criteria"
                  f" | [none] Matches none of the {{criteria}} {IDEAL_CUSTOMER_PROFILE} criteria"),
    # build.UNKNOWN: no job title or none the rules know; build.OTHER_DEPARTMENT: a title naming no department.
    # [unknown]: no job title at all, which seniority tells by the department's UNKNOWN (_read_seniority).
    "seniority": ("Seniority: {value} | [=unknown] Seniority not clear from the job title"
                  " | [unknown] No job title to tell the seniority"),
    "department": (
        "Department: {value} | [=unknown] No job title to tell the department"
        " | [=other] Department not clear from the job title"
    ),
    "size_band": "Company size: {value} employees | [unknown] Company size not given",
    # The data contract's optional lead columns, when used as features.
    "industry": "Industry: {value!w} | [unknown] Industry not given",
    "country": "Country: {value!n} | [unknown] Country not given",
    "lead_source": "Lead source: {value!w} | [unknown] Lead source not given",
    "campaign": "Campaign: {value!w} | [unknown] No campaign",
    "employees": "{value} employee{s} | [zero] Employee count given as 0 | [unknown] Employee count not given",
}

# Derived signals and their shape; the shape applies only when params compute that derived group.
_DERIVED_SHAPES: dict[str, dict[str, str]] = {
    "icp_match": {"icp_match": "icp"},
    "email_signals": {"email_domain_type": "email_domain"},
    "contact_gaps": {"missing_email": "flag", "missing_phone": "flag", "missing_company": "flag"},
    "country_support": {"unsupported_country": "flag"},
}
# A flag signal's value shown beside its factor, when the flag is set and when not, in the lead's terms: the phone is
# "not given" or "given" (the phrase "Has a phone number" beside the flag's "no" read as a contradiction).
_FLAG_VALUES: dict[str, tuple[str, str]] = {
    "missing_email": ("not given", "given"),
    "missing_phone": ("not given", "given"),
    "missing_company": ("not given", "given"),
    "unsupported_country": ("not served", "served"),
}
# The shape a signal takes when a derived feature joins it (build._JOINS) and its words must say
# that feature's fact too, with the built-in template of that shape.
_JOINED_SHAPES: dict[str, str] = {"unsupported_country": "served_country"}
_JOINED_PHRASES: dict[str, str] = {
    "unsupported_country": "Country: {value!n} | [unserved] Country {value!n}, which we do not serve | [unknown] Country not given",
}
# Built-in derived category levels as a rep says them; other levels show as the rule's level in words. Each reads
# capitalised, as a CRM value does ("Department: Sales" beside "Department: IT", not "Department: sales").
_LEVEL_DISPLAY: dict[str, dict[str, str]] = {
    "seniority": {"c_level": "C-level", "vp": "VP", "individual": "Individual contributor"},
    "department": {"hr": "HR", "it": "IT", "customer_success": "Customer success", UNKNOWN: "No job title"},
}
NOT_GIVEN = "not given"
# Derived category levels that say the lead lacks something, as a flag's "not given" side does: department's
# build.UNKNOWN is no job title at all (a title no rule knows is "other").
_ABSENT_LEVELS: dict[str, frozenset[str]] = {"department": frozenset({UNKNOWN})}
# The states in which a factor says the lead lacks something: no event or activity, 0, no value.
_ABSENT_STATES = frozenset({"none", "new", "zero", "unknown"})
# Added to a factor that says the lead lacks something and raises its score (``Phrasebook.render``'s `signs`): "No
# form filled in the last 90 days +1 pt" read as nonsense to a rep. Its points are real: a factor is measured against
# an average lead, with this lead's other values, and the model does rate the absence higher for them; the words say
# that the finding is the model's, not a rule a rep should follow.
ABSENCE_RAISES = "{phrase} (for leads like this one, the model counts that as a plus)"
# The states in which a factor says the lead has something usually good: events in a window, activity up, a business
# e-mail domain, a flag of a lack not set ("no": "Has a phone number", "In a country we serve"). A category value is
# neither, and so is an amount (employees, ICP criteria matched, days since the last activity, X Education's time on
# the website): a rep reads it as more or less than other leads', not as present or absent (AMOUNT_WORDS).
_PRESENT_STATES = frozenset({"active", "up", "business", "no"})
# ABSENCE_RAISES's mirror, added to a factor that says the lead has something usually good and lowers its score:
# "Has a phone number -2 pts" and "Filled in 5 forms in the last 30 days -4 pts" read as nonsense or as a bug. Also
# added to an amount lowering the score where more usually raises it, but converting leads did not usually have more.
PRESENCE_LOWERS = "{phrase} (for leads like this one, the model counts that as a minus)"


class AmountDirection(NamedTuple):
    """How the fitted model scores more of an amount: ``more`` +1 (raises the score) or -1 (lowers it), up to the
    amount ``up_to`` where it turns (inf: it does not). The demo's model scores more employees higher up to about
    1,000, then lower: a lead of 22,664 employees that it scores lower has no fewer than the leads that convert.

    ``converting``: per feature whose value a factor's words state as the amount (``Phrasebook.stated_amounts``), its
    median among the converting leads the direction was learned on, which a comparison with them must hold against:
    the demo's model scored a lead's 3 webinars in 30 days lower (it split the windows), where converting leads had
    attended 1. None: a model saved before it kept them (the default an older pickle loads with)."""

    more: int
    up_to: float
    converting: dict[str, float] | None = None


class AmountWords(NamedTuple):
    """How an amount against the model's direction reads, for one shape of amount signal (or ``FEWER_IS_BETTER``).

    ``more_reads_better``: +1 where a rep reads more of the amount as better (employees, ICP criteria matched, a rise in
    activity), -1 where less (days since the last activity, a number params declare monotone_decreasing). ``states``:
    the states in which a factor says an amount (0 and no value say an absence, and so does "No activity in the last
    365 days"). Where the model's direction agrees with that reading, a factor lowering the score says the lead falls
    short of the leads that convert (``lowers``); where it goes the other way, one raising the score says the model
    counts what a rep reads as worse as a plus (``raises``; None: its declared direction is the model's own, or events
    in a window raising the score read right as they are, and an activity's direction, learned over its longest
    window, is no fair reading of the window a factor names: "Filled in 4 forms in the last 90 days +9 pts" would have
    read "(the model counts a low number as a plus)"). ``converting_past``: a value converting leads' median must lie
    past, as a rep reads the amount, for ``lowers`` to hold whatever the lead's amount (the trend's 0: "leads that
    convert usually pick up their activity" says their median week rises); None: none."""

    more_reads_better: int
    states: frozenset[str]
    lowers: str
    raises: str | None
    converting_past: float | None = None


# Added to an amount that lowers the score where more of it usually raises it: "Spent 5 minutes on the website -9 pts"
# read as if spending time lowered the score; the lead spent little, and the model scores more time higher. Only below
# converting leads' median (``AmountDirection.converting``), as each of these comparisons with them.
LOW_AMOUNT_LOWERS = "{phrase} (leads that convert usually have more)"
# Its mirror, an amount that raises the score where more of it usually lowers it: "Viewed 2 pages per visit +4 pts"
# read as if viewing pages raised the score; the lead viewed few, and the model counts few as a plus.
LOW_AMOUNT_RAISES = "{phrase} (the model counts a low number as a plus)"
# A number params declare monotone_decreasing (a CRM's own "Days Since Last Contact") reads the other way round: a rep
# reads fewer as better, so one lowering the score says the lead has more than the leads that convert ("12 days since
# the last contact -5 pts" said nothing of why), and one raising it reads as itself, where it read "(the model counts a
# low number as a plus)", a surprise about what a rep expects.
HIGH_AMOUNT_LOWERS = "{phrase} (leads that convert usually have fewer)"
# Days since the last activity read the other way round: "Last activity 40 days ago -3 pts" said nothing of why, where
# the model scores leads seen more recently higher; its mirror, for a model that scores a longer gap higher.
LONG_AGO_LOWERS = "{phrase} (leads that convert were usually seen more recently)"
LONG_AGO_RAISES = "{phrase} (the model counts a longer time without activity as a plus)"
# A week as active as, or less active than, the week before, where the model scores a rise higher (its mirror, lower).
SLOWER_LOWERS = "{phrase} (leads that convert usually pick up their activity)"
SLOWER_RAISES = "{phrase} (the model counts a slower week as a plus)"
# The shapes whose value is an amount ("250 employees", "Matches 2 of 4 ideal customer profile criteria", X Education's
# "Spent 5 minutes on the website", "Opened 1 e-mail in the last 30 days", "Last activity 40 days ago", "Activity down
# by 3 this week vs the week before") and how one reads against the model's direction. Whether more of an amount
# usually raises the score the fitted model tells (``models.explain.amount_directions``, saved as
# ``LeadScorer.amount_directions``), or params declare (``features.monotone_*``). An activity's amount is its count over
# the longest window (``Phrasebook.amount_feature``); its events are a presence too, whose words (``PRESENCE_LOWERS``)
# the amount's replace where the direction says more: "Opened 1 e-mail in the last 30 days (leads that convert usually
# have more)". Activity up is a presence only, not one of the trend's amount states. A number reads more of it as better
# unless params declare it monotone_decreasing (``FEWER_IS_BETTER``; ``Phrasebook.amount_words`` has each signal's).
AMOUNT_WORDS: dict[str, AmountWords] = {
    "number": AmountWords(1, frozenset({"nonzero"}), LOW_AMOUNT_LOWERS, LOW_AMOUNT_RAISES),
    "activity": AmountWords(1, frozenset({"active"}), LOW_AMOUNT_LOWERS, None),
    "icp": AmountWords(1, frozenset({"some"}), LOW_AMOUNT_LOWERS, LOW_AMOUNT_RAISES),
    "recency": AmountWords(-1, frozenset({"recent"}), LONG_AGO_LOWERS, LONG_AGO_RAISES),
    "trend": AmountWords(1, frozenset({"down", "flat"}), SLOWER_LOWERS, SLOWER_RAISES, converting_past=0.0),
}
# How a number params declare monotone_decreasing reads (``Phrasebook.amount_words``): fewer is better, and 0 is the
# best of it, not a lack ("Contacted today", no complaints). No mirror: the declared direction is the model's own.
FEWER_IS_BETTER = AmountWords(-1, frozenset({"nonzero"}), HIGH_AMOUNT_LOWERS, None)
# Added to a category factor whose value the model did not learn on its own (too rare in training, or
# never seen: ``CategoryEncoder`` pools them as ``__other__``): its points are those of the pool, and
# "Country: Bahrain  -2 pts" alone would read as if Bahrain itself lowered the score.
RARE_VALUE = "{phrase} (too few past leads had this value to judge it on its own)"
# RARE_VALUE for a value no past lead had (the lead's never_seen names it): "too few" would say training saw it.
NEVER_SEEN_VALUE = "{phrase} (no past lead had this value: judged as the rare ones are)"
_CONVERSIONS = {
    "u": str.upper,
    "l": str.lower,
    "c": lambda text: text[:1].upper() + text[1:],
    "t": lambda text: _title(text),
    "n": lambda text: text.upper() if len(text) <= 3 else _title(text),
    "w": lambda text: text.replace("_", " "),
    "m": lambda text: _minutes(text),
}


# Words a title leaves lower case after its first word, and Roman numerals it writes upper case: the
# CRM's "Other Cities of Maharashtra" and "Tier II Cities" read back as the form wrote them.
_TITLE_SMALL = frozenset({"a", "an", "and", "as", "at", "by", "for", "from", "in", "of", "on", "or", "the", "to", "with"})
_ROMAN = frozenset({"ii", "iii", "iv", "vi", "vii", "viii", "ix", "xi", "xii"})


def _title(text: str) -> str:
    """Title case as a form writes it: "media and advertising" -> "Media and Advertising", "e-business" ->
    "E-Business", "tier ii cities" -> "Tier II Cities" (string.capwords gave "Media And", "E-business", "Ii")."""
    def word(w: str, first: bool) -> str:
        if not first and w in _TITLE_SMALL:
            return w
        if w in _ROMAN:
            return w.upper()
        return "-".join(part[:1].upper() + part[1:] for part in w.split("-"))
    return " ".join(word(w, i == 0) for i, w in enumerate(text.lower().split()))


@dataclass(frozen=True)
class _Band:
    """A band of counts the audit merged, worded "3 to 4": a template's conversion and format spec apply to each
    end as to one count, so every template that renders a count ("{matched:d}") renders a band too."""

    low: object
    high: object

    def __str__(self) -> str:
        return f"{self.low} to {self.high}"

    def __format__(self, spec: str) -> str:
        return f"{format(self.low, spec)} to {format(self.high, spec)}"


class _PhraseFormatter(string.Formatter):
    """``str.format`` plus the !u / !l / !c / !t / !n / !w / !m conversions."""

    def convert_field(self, value, conversion):
        if isinstance(value, _Band):
            return _Band(self.convert_field(value.low, conversion), self.convert_field(value.high, conversion))
        if conversion in _CONVERSIONS:
            return _CONVERSIONS[conversion](str(value))
        return super().convert_field(value, conversion)


_FORMATTER = _PhraseFormatter()


@dataclass(frozen=True)
class Template:
    """A parsed template: the default text and the text per state (``"=level"`` for one category value)."""

    default: str | None
    by_state: dict[str, str]

    def text(self, state: str, level: str | None = None) -> str:
        level = self._true_false.get(level, level)
        if level is not None and f"={level}" in self.by_state:
            return self.by_state[f"={level}"]
        return self.by_state.get(state, self.default)

    @cached_property
    def _true_false(self) -> dict[str, str]:
        """A yes/no field's `[=true]`/`[=false]` alternatives also word the level a PostgreSQL CSV export trained it
        as, "t"/"f", and the other way round (contract.true_false_spellings, as a value map's labels read)."""
        return true_false_spellings({state[1:] for state in self.by_state if state.startswith("=")})


# One lead's values of a signal's features -> (state, template fields).
Reader = Callable[[list], tuple[str, dict]]


def signal_shapes(spec: FeatureParams) -> dict[str, str]:
    """Every explanation signal of ``spec``'s feature catalog (catalog order) and its shape."""
    activity_types = {t.strip().lower() for t in spec.activity_types}
    derived = {signal: shape for group in spec.derived for signal, shape in _DERIVED_SHAPES.get(group, {}).items()}
    catalog = feature_catalog(spec)
    joined = {signal: _JOINED_SHAPES[name] for name, signal in _joined(catalog).items() if name in _JOINED_SHAPES}
    shapes: dict[str, str] = {}
    for d in catalog:
        if d.signal in shapes:
            continue
        if d.signal in joined:
            shapes[d.signal] = joined[d.signal]
        elif d.signal in activity_types:
            shapes[d.signal] = "activity"
        elif d.signal == "activity_recency" and activity_types:
            shapes[d.signal] = "recency"
        elif d.signal == "engagement_trend" and activity_types:
            shapes[d.signal] = "trend"
        elif d.signal in derived:
            shapes[d.signal] = derived[d.signal]
        else:
            shapes[d.signal] = "category" if d.kind == "categorical" else "number"
    return shapes


def phrase_templates(spec: FeatureParams) -> dict[str, str]:
    """The template of every signal (catalog order): built-in, overridden by ``features.phrases``.

    Raises:
        ValueError: naming each signal without a template, each ``features.phrases`` key that is
            no signal of this feature catalog, and each template that cannot render (unknown field
            or state, bad format).
    """
    return dict(phrasebook(spec).raw)


def describe(
    features: pd.DataFrame, spec: FeatureParams, age_days: np.ndarray | None = None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Phrase and display value of every signal for every lead of a feature frame.

    Args:
        features: the feature frame (``build_features`` output) of any number of leads.
        spec: the ``features`` section the frame was built with (the scorer's).
        age_days: see ``Phrasebook.render``.

    Returns:
        (phrases, values): object frames indexed like ``features``, one column per signal in
        catalog order. A value is the lead's own: an unseen category shows as itself.

    Raises:
        ValueError: a signal lacks a valid template (see ``phrase_templates``).
    """
    book = phrasebook(spec)
    phrases, values = book.render(features, age_days=age_days)
    return (
        pd.DataFrame(phrases, index=features.index, columns=book.signals),
        pd.DataFrame(values, index=features.index, columns=book.signals),
    )


def past_horizon(age_days: float, horizon_days: int, oldest_snapshot_days: float) -> str:
    """What a rep reads about a lead older than the label horizon (``LeadScorer.past_horizon``): its score
    ranks it against leads of the oldest age training saw them at (``features.snapshot_days``), and is no
    chance of converting within the horizon any more."""
    created = _days_ago(age_days)
    ago = created["ago"] if created["days"] > horizon_days else f"more than {horizon_days} days ago"  # 120.5 days
    return (f"Created {ago}, past the {horizon_days}-day window this score predicts: it "
            f"ranks the lead against {_number(oldest_snapshot_days)}-day-old leads, not as a chance of converting now.")


def never_seen(field: str, value: str) -> str:
    """What a rep reads about a value of a category field the model never saw in training (the service's
    ``never_seen``): ``CategoryEncoder`` scores it as its shared ``__other__`` level, the one values too rare in
    training to learn on their own share, so its points say nothing about the value itself. ``field`` is the
    CRM's name ("Lead Source", "lead_source": "Lead source"), ``value`` the lead's as sent."""
    name = field.replace("_", " ").strip()
    return (f'{name[:1].upper() + name[1:]} "{value}" is new to the model: no past lead had it, so it is scored as '
            "one of the values too few past leads had to judge on their own.")


@dataclass(frozen=True)
class Phrasebook:
    """Everything rendering needs, derived once per ``FeatureParams``: signals, templates, readers."""

    signals: list[str]
    shapes: dict[str, str]
    raw: dict[str, str]
    templates: dict[str, Template]
    features: dict[str, list[FeatureDef]]  # the features each signal's words are read from
    readers: dict[str, Reader]
    signal_of: dict[str, str]  # feature name -> its signal
    zero_covers: dict[str, list[str]]  # features.zero_covers

    def render(
        self, features: pd.DataFrame, needed: np.ndarray | None = None, age_days: np.ndarray | None = None,
        learned: Mapping[str, Collection[str]] | None = None, spellings: Mapping[str, Mapping[str, str]] | None = None,
        windows: Mapping[str, np.ndarray] | None = None, as_sent: Mapping[str, np.ndarray] | None = None,
        signs: np.ndarray | None = None, directions: Mapping[str, AmountDirection] | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """(phrases, values): object arrays (rows, signals) for a feature frame; see ``describe``.

        Args:
            needed: optional (rows, signals) mask of the cells to render (the others stay None):
                a CRM import shows each lead's top few factors, not its ~30 signals.
            age_days: per row, the lead's age in days when scored (``lead_age_days``; NaN or None:
                unknown). A lead younger than the recency window without any activity then reads "No
                activity since it was created 2 days ago", not "No activity in the last 365 days",
                which sounds dormant; the feature says 365 days either way (``RECENCY_CAP_DAYS``).
            learned: per category feature, the levels the model learned (``CategoryEncoder.learned``);
                a value outside them reads with ``RARE_VALUE``, or ``NEVER_SEEN_VALUE`` where ``as_sent`` names it.
                None: every value reads as itself.
            spellings: per category feature read from a CRM column, each value as compared (lower case) -> as the CRM
                spells it (``LeadScorer.category_spellings``): the factor and its value say "Olark Chat", not "olark
                chat". A value without one (never seen in training) reads as ``as_sent`` gives it, else as compared.
            windows: per activity signal, per row, the window (days) its phrase names (``telling_windows``: the one
                whose count moved the score most); NaN, or a signal left out, names the shortest window with events.
            as_sent: per category feature, per row, the value as the lead sent it where training never saw it, else
                None (``models.explain.as_sent_columns``): "Industry: Asteroid Mining", as the lead's never_seen says.
            signs: optional (rows, signals) sign of each factor's contribution: one that says the lead lacks something
                and raises the score reads with ``ABSENCE_RAISES``, one that says it has something usually good and
                lowers the score with ``PRESENCE_LOWERS``, an amount against ``directions`` with its shape's
                ``amount_words`` (``_surprising``). None: as a factor of either sign (a description, not a reason).
            directions: per amount signal (``amount_words``), how the model scores more of it
                (``LeadScorer.amount_directions``); a signal left out, or None (a model saved before it kept them),
                reads as itself whatever its sign, and so does an amount past where its direction turns.
        """
        n = len(features)
        phrases = np.empty((n, len(self.signals)), dtype=object)
        values = np.empty((n, len(self.signals)), dtype=object)
        numeric = [d.name for s in self.signals for d in self.features[s] if d.kind == "numeric"]
        block = features[numeric].to_numpy(dtype=np.float64, na_value=np.nan) if numeric else np.empty((n, 0))
        column_of = {name: block[:, i] for i, name in enumerate(numeric)}
        for j, signal in enumerate(self.signals):
            rows = slice(None) if needed is None else np.flatnonzero(needed[:, j])
            if needed is not None and not len(rows):
                continue
            shape = self.shapes[signal]
            columns = [_render_input(features, d.name, column_of, shape)[rows] for d in self.features[signal]]
            if shape == "recency":  # the reader words a silent lead younger than the window by its age
                ages = np.full(n, np.nan) if age_days is None else np.asarray(age_days, dtype=np.float64)
                columns.append(_young_age(columns[0], ages[rows]))
            if shape == "activity":  # the reader names this window (NaN: its shortest with events)
                chosen = (windows or {}).get(signal)
                columns.append(np.full(n, np.nan)[rows] if chosen is None else np.asarray(chosen, dtype=np.float64)[rows])
            leveled = shape in CATEGORY_SHAPES
            known = (learned or {}).get(self.features[signal][0].name) if leveled else None
            spelled = (spellings or {}).get(self.features[signal][0].name, {}) if leveled else {}
            sent = (as_sent or {}).get(self.features[signal][0].name) if leveled else None
            if sent is not None:  # rendered apart per spelling sent; not the reader's
                columns.append(np.asarray(sent, dtype=object)[rows])
            first, inverse = _unique_rows(columns)
            amount_at = self.features[signal].index(self.amount_feature(signal))  # the value _surprising compares
            stated_at = {d.window_days: self.features[signal].index(d) for d in self.stated_amounts(signal)}
            texts, shown, surprising = [], [], []
            for row in first:
                lead_values = [c[row] for c in columns]
                sent_text = lead_values.pop() if sent is not None else None
                state, fields = self.readers[signal](lead_values)
                level = _level_key(lead_values[0]) if leveled and state != "unknown" else None
                if level is not None and (sent_text is not None or str(lead_values[0]) in spelled):
                    fields = {**fields, "value": sent_text if sent_text is not None else spelled[str(lead_values[0])]}
                text = _FORMATTER.format(self.templates[signal].text(state, level), **fields)
                if known is not None and state != "unknown" and str(lead_values[0]) not in known:
                    text = (RARE_VALUE if sent_text is None else NEVER_SEEN_VALUE).format(phrase=text)
                texts.append(text)
                shown.append(fields["value"])
                at = stated_at.get(fields["days"], amount_at) if shape == "activity" else amount_at  # the window named
                surprising.append(_surprising(signal, shape, state, fields, level, lead_values[amount_at],
                                              self.amount_words.get(signal), (directions or {}).get(signal),
                                              (self.features[signal][at].name, lead_values[at])))
            worded = np.asarray(texts, dtype=object)[inverse]
            if signs is not None and any(surprising):
                sign_of = np.sign(np.asarray(signs[:, j], dtype=np.float64)[rows])
                for sign in {sign for found in surprising for sign in found}:
                    said = np.asarray([found[sign].format(phrase=t) if sign in found else t
                                       for t, found in zip(texts, surprising)], dtype=object)
                    worded = np.where(sign_of == sign, said[inverse], worded)
            phrases[rows, j] = worded
            values[rows, j] = np.asarray(shown, dtype=object)[inverse]
        return phrases, values

    @cached_property
    def amount_words(self) -> dict[str, AmountWords]:
        """Per amount signal, how it reads against the model's direction: its shape's ``AMOUNT_WORDS``, or
        ``FEWER_IS_BETTER`` for a number params declare monotone_decreasing (a CRM's "Days Since Last Contact"), which a
        rep reads as they do (more is better for employees, fewer for days since the last contact)."""
        return {signal: FEWER_IS_BETTER if shape == "number" and self.amount_feature(signal).monotone < 0
                else AMOUNT_WORDS[shape] for signal, shape in self.shapes.items() if shape in AMOUNT_WORDS}

    def amount_feature(self, signal: str) -> FeatureDef:
        """The feature whose value is an amount signal's amount (``amount_words``): an activity's count over its
        longest window, which the shorter ones count within, else the signal's first feature."""
        windows = [d for d in self.features[signal] if d.window_days is not None]
        if self.shapes[signal] == "activity" and windows:
            return max(windows, key=lambda d: d.window_days)
        return self.features[signal][0]

    def stated_amounts(self, signal: str) -> list[FeatureDef]:
        """The features whose value a factor of an amount signal (``amount_words``) states as its amount: an activity's
        count in each window (its words name one, ``telling_windows``), else the amount itself (``amount_feature``)."""
        windows = [d for d in self.features[signal] if d.window_days is not None]
        return windows if self.shapes[signal] == "activity" and windows else [self.amount_feature(signal)]

    def telling_windows(self, features: pd.DataFrame, per_feature: np.ndarray, names: list[str],
                        contribution: np.ndarray) -> dict[str, np.ndarray]:
        """Per activity signal, per lead: the window (days) whose own count moved the factor most in its direction
        (``per_feature``: each feature's contribution, columns ``names``; ``contribution``: each signal's, columns
        ``signals``), among the windows with events; NaN where none did (``render`` then names the shortest with
        events). A lead who opened 1 e-mail in the last 7 days and 14 in the last 30, worth 15 points for the 14, read
        "Opened 1 e-mail in the last 7 days +15 pts", and another lead's one e-mail was worth -3 points in the same words.
        """
        position = {name: i for i, name in enumerate(names)}
        out = {}
        for j, signal in enumerate(self.signals):
            defs = [d for d in self.features[signal] if d.window_days is not None] if self.shapes[signal] == "activity" else []
            if not defs:
                continue
            counts = features[[d.name for d in defs]].to_numpy(dtype=np.float64, na_value=np.nan)
            toward = per_feature[:, [position[d.name] for d in defs]] * np.sign(contribution[:, j])[:, None]
            toward = np.where(counts > 0, toward, -np.inf)
            best = toward.argmax(axis=1)
            moved = np.take_along_axis(toward, best[:, None], axis=1)[:, 0] > 0
            out[signal] = np.where(moved, np.array([d.window_days for d in defs], dtype=np.float64)[best], np.nan)
        return out

    def said_by_others(self, features: pd.DataFrame) -> list[tuple[int, np.ndarray]]:
        """The factors another one already says, to fold into it: (position of the saying signal in
        ``signals``, (rows, signals) mask of the factors it says, per lead), one per saying signal.

        "No activity in the last 365 days" says a silent lead's activity factors (``_said_by_recency``);
        a number at 0 says the 0 of the columns ``features.zero_covers`` lists under it ("Never visited
        the website" says "Spent no time on the website"); a covered column that is not 0 stays its own factor.
        """
        said = [] if (recency := self._said_by_recency(features)) is None else [recency]
        for key, covered in self.zero_covers.items():
            block = features[[key, *covered]].to_numpy(dtype=np.float64, na_value=np.nan)
            mask = np.zeros((len(features), len(self.signals)), dtype=bool)
            for i, column in enumerate(covered, start=1):
                mask[:, self.signals.index(self.signal_of[column])] = (block[:, 0] == 0) & (block[:, i] == 0)
            said.append((self.signals.index(self.signal_of[key]), mask))
        return said

    def _said_by_recency(self, features: pd.DataFrame) -> tuple[int, np.ndarray] | None:
        """The factors "No activity in the last 365 days" already says, to fold into it.

        A lead with no activity within ``RECENCY_CAP_DAYS`` would otherwise also hear "No web page
        views in the last 90 days" and the like: each activity signal without any event (no "ever"
        flag either) and a trend of 0 say nothing more. An event before every window ("Requested a
        demo more than 90 days ago") is news and stays a factor of its own.

        Returns:
            (position of activity_recency in ``signals``, (rows, signals) mask of the factors it
            says, per lead), or None when there is no recency signal.
        """
        if self.shapes.get("activity_recency") != "recency":
            return None
        silent = [j for j, s in enumerate(self.signals) if self.shapes[s] in ("activity", "trend")]
        names = [[d.name for d in self.features[self.signals[j]]] for j in silent]
        flat = ["days_since_last_activity", *(name for group in names for name in group)]
        block = features[flat].to_numpy(dtype=np.float64, na_value=np.nan)  # one copy: a lead costs microseconds
        column = {name: i for i, name in enumerate(flat)}
        with np.errstate(invalid="ignore"):
            inactive = block[:, 0] >= RECENCY_CAP_DAYS
        said = np.zeros((len(features), len(self.signals)), dtype=bool)
        for j, group in zip(silent, names):
            said[:, j] = inactive & (block[:, [column[n] for n in group]] == 0).all(axis=1)
        return self.signals.index("activity_recency"), said


# Phrasebooks by FeatureParams object: a scorer explains with one spec for its whole life, and
# building the book (catalog, template checks) costs more than rendering one lead. The spec is
# kept alive with its book, so its id cannot be reused while cached.
_BOOKS: dict[int, tuple[FeatureParams, Phrasebook]] = {}
_BOOKS_KEPT = 16


def phrasebook(spec: FeatureParams) -> Phrasebook:
    """The checked templates and readers of ``spec`` (cached per spec object).

    Raises:
        ValueError: see ``phrase_templates``.
    """
    cached = _BOOKS.get(id(spec))
    if cached is not None and cached[0] is spec:
        return cached[1]
    book = _build_phrasebook(spec)
    if len(_BOOKS) >= _BOOKS_KEPT:
        _BOOKS.pop(next(iter(_BOOKS)), None)
    _BOOKS[id(spec)] = (spec, book)
    return book


def _build_phrasebook(spec: FeatureParams) -> Phrasebook:
    shapes = signal_shapes(spec)
    overrides = spec.phrases
    joined = _joined(feature_catalog(spec))
    joined_phrase = {signal: _JOINED_PHRASES[name] for name, signal in joined.items() if name in _JOINED_PHRASES}
    problems = [
        f"'{key}' is not a signal of this feature catalog: it is joined into '{joined[key]}' (one factor, one"
        f" phrase): write features.phrases.{joined[key]} instead" if key in joined else
        f"'{key}' is not a signal of this feature catalog (signals: {', '.join(shapes)})"
        for key in overrides
        if key not in shapes
    ]
    raw, templates = {}, {}
    for signal, shape in shapes.items():
        text = overrides.get(signal, joined_phrase.get(signal, BUILT_IN_PHRASES.get(signal)))
        if text is None:
            fields = ", ".join("{" + f + "}" for f in SHAPES[shape].fields)
            problems.append(f"'{signal}' has no template: add features.phrases.{signal} (a {shape} signal; fields: {fields})")
            continue
        try:
            raw[signal], templates[signal] = text, _parse(text, SHAPES[shape], shape)
        except ValueError as err:
            problems.append(f"'{signal}': {err} in template {text!r}")
    if problems:
        raise ValueError("features.phrases:\n  - " + "\n  - ".join(problems))
    by_signal: dict[str, list[FeatureDef]] = {}
    for d in feature_catalog(spec):
        by_signal.setdefault(d.signal, []).append(d)
    # A number or category is worded from its own column; one joined to it (build._JOINS, e.g.
    # size_band to employees) adds to the factor's points, not to its words (unless the joined
    # shape reads it, as served_country reads unsupported_country).
    by_signal = {signal: defs[:1] if shapes[signal] in ("number", "category") else defs for signal, defs in by_signal.items()}
    if shapes.get("seniority") == "category" and "department" in by_signal and "seniority" in spec.derived:
        by_signal["seniority"] = by_signal["seniority"] + by_signal["department"][:1]  # tells a title from none
    readers = {signal: _reader(signal, shape, by_signal[signal], spec) for signal, shape in shapes.items()}
    signal_of = {d.name: d.signal for d in feature_catalog(spec)}
    return Phrasebook(list(shapes), shapes, raw, templates, by_signal, readers, signal_of, dict(spec.zero_covers))


def _parse(raw: str, shape: Shape, shape_name: str) -> Template:
    """Split a template into its alternatives and check each one renders with the shape's fields."""
    default, by_state = None, {}
    for part in (p.strip() for p in raw.split("|")):
        match = re.fullmatch(r"\[\s*([^\]]+?)\s*\]\s*(.*)", part, flags=re.DOTALL)
        if match is None:
            if default is not None:
                raise ValueError("more than one alternative without a [state]")
            default = part
            continue
        state, text = match.group(1), match.group(2)
        if state.startswith("="):
            if shape_name not in CATEGORY_SHAPES:
                raise ValueError(f"[{state}] (one value) works only for category signals, this is a {shape_name} one")
            state = "=" + _level_key(state[1:])
        elif state not in shape.states:
            raise ValueError(f"unknown state [{state}]; states: {', '.join(shape.states)}")
        by_state[state] = text
    for state, other in shape.fallbacks:
        if state not in by_state and other in by_state:
            by_state[state] = by_state[other]
    uncovered = [s for s in shape.states if s not in by_state] if default is None else []
    if uncovered:
        raise ValueError(f"no text for state(s) {uncovered}: add a default alternative without [state]")
    unworded = [s for s in shape.required if s not in by_state]
    if unworded:
        raise ValueError(f"no [{'], ['.join(unworded)}] alternative: this {shape_name} signal must say it")
    for text in [default, *by_state.values()]:
        if text is None:
            continue
        if not text:
            raise ValueError("an empty alternative")
        for _, field, _, conversion in string.Formatter().parse(text):
            if field is None:
                continue
            if field not in shape.fields:
                raise ValueError(f"unknown field {{{field}}}; fields: {', '.join(shape.fields)}")
            if conversion not in (None, "s", "r", *_CONVERSIONS):
                raise ValueError(f"unknown conversion !{conversion}; use !u, !l, !c, !t, !n, !w or !m")
        try:
            _FORMATTER.format(text, **shape.example)
        except (ValueError, TypeError) as err:
            raise ValueError(f"does not render ({err})") from None
    return Template(default, by_state)


def _surprising(signal: str, shape: str, state: str, fields: dict, level: str | None, amount,
                words: AmountWords | None, direction: AmountDirection | None,
                stated: tuple[str, float]) -> dict[int, str]:
    """The signs of a factor's contribution its words make read as nonsense, each with the words that then say the
    finding is the model's: +1 (raising) for a factor saying the lead lacks something (``_says_absence``,
    ``ABSENCE_RAISES``), -1 (lowering) for one saying it has something usually good (``_PRESENT_STATES``,
    ``PRESENCE_LOWERS``), and for an `amount` the model scores in a `direction` up to where it turns, the sign of one
    on the side a rep reads as worse (its `words`, ``Phrasebook.amount_words``: "22 employees" or "Opened 1 e-mail in
    the last 30 days" lowering where more raises, "Last activity 40 days ago" lowering where fewer days raise), whose
    words say more than a presence's where the amount its words state (`stated`: feature, lead's value) is short of
    converting leads' (``_short_of_converting``), else ``PRESENCE_LOWERS``; empty: either sign reads as it is."""
    found = {}
    if _says_absence(signal, shape, state, fields, level, words):
        found[1] = ABSENCE_RAISES
    elif state in _PRESENT_STATES:
        found[-1] = PRESENCE_LOWERS
    if words is not None and state in words.states and direction is not None and amount <= direction.up_to:
        if direction.more == words.more_reads_better:
            found[-1] = words.lowers if _short_of_converting(direction, words, *stated) else PRESENCE_LOWERS
        elif words.raises is not None:
            found[1] = words.raises
    return found


def _short_of_converting(direction: AmountDirection, words: AmountWords, feature: str, value: float) -> bool:
    """Whether a lead's `value` of an amount's `feature` is on the side a rep reads as worse (`words`) of its median
    among converting leads (``AmountDirection.converting``), so "leads that convert usually have more" (or fewer, or
    were usually seen more recently) is true of it, and past the words' own ``converting_past`` ("usually pick up their
    activity" only where their median week is up). Not where that median is unknown: a model saved before it kept
    them."""
    typical = (direction.converting or {}).get(feature, np.nan)
    short = (typical - value) * words.more_reads_better > 0
    past = words.converting_past is None or (typical - words.converting_past) * words.more_reads_better > 0
    return bool(short and past)


def _says_absence(signal: str, shape: str, state: str, fields: dict, level: str | None,
                  words: AmountWords | None) -> bool:
    """Whether a factor's words say the lead lacks something ("No form filled in the last 90 days", "No phone number",
    "Country not given", "No job title to tell the department"): a state of no events, no activity, 0 or no value,
    a flag whose lead side is "not given" (``_FLAG_VALUES``) or a derived level of ``_ABSENT_LEVELS``. Not 0 of an
    amount a rep reads fewer of as better (`words`: ``FEWER_IS_BETTER``), the best of it: "Contacted today +5 pts"
    read "(for leads like this one, the model counts that as a plus)"."""
    if state == "zero" and words is not None and words.more_reads_better < 0:
        return False
    return (state in _ABSENT_STATES or (shape == "flag" and fields["value"] == NOT_GIVEN)
            or level in _ABSENT_LEVELS.get(signal, ()))


def _render_input(features: pd.DataFrame, name: str, numbers: dict[str, np.ndarray], shape: str) -> np.ndarray:
    """The values rendering depends on (recency in whole days), so fewer distinct rows to render."""
    if name not in numbers:  # a text column
        return features[name].to_numpy(dtype=object, na_value=None)
    return np.floor(numbers[name]) if shape == "recency" else numbers[name]


def _young_age(recency: np.ndarray, age_days: np.ndarray) -> np.ndarray:
    """Whole days of age where a lead without activity is younger than the recency window, else NaN
    (few distinct values to render)."""
    with np.errstate(invalid="ignore"):
        young = (recency >= RECENCY_CAP_DAYS) & (age_days < RECENCY_CAP_DAYS)
    return np.where(young, np.floor(np.maximum(age_days, 0)), np.nan)


def _unique_rows(columns: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """First row of each distinct combination of the columns' values, and each row's combination."""
    n = len(columns[0]) if columns else 0
    if n <= 1:
        return np.arange(n), np.arange(n)
    combined = np.zeros(n, dtype=np.int64)
    for values in columns:
        codes, uniques = pd.factorize(values, use_na_sentinel=False)
        combined, _ = pd.factorize(combined * len(uniques) + codes)  # stays below n: no overflow
    _, first = np.unique(combined, return_index=True)
    return first, combined


def _level_key(value) -> str:
    return str(value).strip().lower()


def _reader(signal: str, shape: str, defs: list[FeatureDef], spec: FeatureParams) -> Reader:
    """A function from one lead's values of the signal's features to (state, template fields)."""
    if shape == "activity":
        return lambda row: _read_activity(row, defs)
    if shape == "recency":
        return _read_recency
    if shape == "trend":
        return _read_trend
    if shape == "email_domain":
        return lambda row: _read_email_domain(row, [d.name for d in defs])
    if shape == "flag":
        return lambda row: _read_flag(row, _FLAG_VALUES[signal])
    if shape == "icp":
        criteria = icp_criteria(spec)
        return lambda row: _read_icp(row, criteria)
    if signal == "seniority" and len(defs) == 2:  # with the department (_build_phrasebook)
        return _read_seniority
    if shape == "category":
        derived = signal if signal in spec.derived else None
        return lambda row: _read_category(row, derived)
    if shape == "served_country":
        return _read_served_country
    return _read_number


def _joined(catalog: list[FeatureDef]) -> dict[str, str]:
    return joined_into({d.name: d.signal for d in catalog})


def _missing(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _number(value: float) -> str:
    """1234.0 -> "1,234"; 2.50 -> "2.5": how a rep writes a number."""
    if float(value).is_integer():
        return f"{int(value):,}"
    return f"{value:,.2f}".rstrip("0").rstrip(".")


def _minutes(seconds: str) -> str:
    """Seconds as a rep says a time spent: "1532" -> "25 minutes" (whole ones), "45" -> "less than a minute"."""
    number = float(seconds.replace(",", ""))  # {value} is "1,532"; text that is no number does not render
    if math.isnan(number):
        return "unknown"
    whole = int(number // 60)
    return "less than a minute" if whole == 0 else f"{_number(whole)} minute{'' if whole == 1 else 's'}"


def _times(count: float) -> str:
    return {1: "once", 2: "twice"}.get(count, f"{_number(count)} times")


def _read_activity(row: list, defs: list[FeatureDef]) -> tuple[str, dict]:
    """`row`: the signal's features' values, then the window to name (``Phrasebook.render``'s `windows`; NaN: the
    shortest with events)."""
    *row, named = row
    windows = [(d.window_days, v) for d, v in zip(defs, row) if d.window_days is not None]
    ever = [v for d, v in zip(defs, row) if d.window_days is None]
    longest = windows[-1][0] if windows else 0
    if all(_missing(v) for v in row):
        return "unknown", {"value": "unknown", "count": 0, "times": _times(0), "s": "s", "days": longest}
    shown = [f"{w}d: {_number(v)}" for w, v in windows if not _missing(v)]
    shown += [f"ever: {'yes' if v else 'no'}" for v in ever if not _missing(v)]
    active = [(w, v) for w, v in windows if not _missing(v) and v > 0]
    if active:
        state, (days, count) = "active", next((wv for wv in active if wv[0] == named), active[0])
    else:
        state = "earlier" if any(not _missing(v) and v > 0 for v in ever) else "none"
        days, count = longest, 0
    count = int(count)
    fields = {"value": ", ".join(shown), "count": count, "times": _times(count), "s": "" if count == 1 else "s", "days": days}
    return state, fields


def _read_recency(row: list) -> tuple[str, dict]:
    days, young_age = row  # young_age: NaN unless the lead is silent and younger than the window (_young_age)
    if _missing(days):
        return "unknown", {"value": "unknown", "days": RECENCY_CAP_DAYS, "ago": "unknown"}
    if not _missing(young_age):
        return "new", {"value": "none yet", **_days_ago(young_age)}
    if days >= RECENCY_CAP_DAYS:
        return "none", {"value": f"none in {RECENCY_CAP_DAYS} days", "days": RECENCY_CAP_DAYS, "ago": "never"}
    return "recent", {"value": f"{int(days)} day{'' if int(days) == 1 else 's'}", **_days_ago(days)}


def _days_ago(days: float) -> dict:
    whole = int(days)  # whole 24-hour periods, not calendar days: 15 hours ago may have been yesterday
    ago = "less than a day ago" if whole == 0 else f"{whole} day{'' if whole == 1 else 's'} ago"
    return {"days": whole, "ago": ago}


def _read_trend(row: list) -> tuple[str, dict]:
    (change,) = row
    if _missing(change):
        return "unknown", {"value": "unknown", "change": 0}
    state = "up" if change > 0 else "down" if change < 0 else "flat"
    return state, {"value": f"{change:+.0f}" if change else "0", "change": _number(abs(change))}


def _read_email_domain(row: list, names: list[str]) -> tuple[str, dict]:
    flags = dict(zip(names, row))  # the domain flags, plus missing_email when contact_gaps is computed
    if all(_missing(v) for name, v in flags.items() if name != "missing_email"):  # no e-mail with a domain
        return "unknown", {"value": "unknown"}
    for state, name in (("competitor", "email_competitor"), ("student", "email_student"), ("free", "email_free")):
        if flags.get(name) == 1:
            return state, {"value": state}
    return "business", {"value": "business"}


def _read_flag(row: list, values: tuple[str, str]) -> tuple[str, dict]:
    """`values`: the lead's value when the flag is set and when not (``_FLAG_VALUES``)."""
    (flag,) = row
    if _missing(flag):
        return "unknown", {"value": "unknown"}
    return ("yes", {"value": values[0]}) if flag else ("no", {"value": values[1]})


def _read_icp(row: list, criteria: int) -> tuple[str, dict]:
    (share,) = row
    return _icp_fields(0 if _missing(share) else int(round(share * criteria)), criteria)


def _icp_fields(matched: int | _Band, criteria: int) -> tuple[str, dict]:
    """The state and template fields of `matched` of `criteria` ideal customer profile criteria met: a count, or a
    band of counts (`icp_match_words`), which meets some at its top."""
    some = (matched.high if isinstance(matched, _Band) else matched) > 0
    return ("some" if some else "none"), {"value": f"{matched} of {criteria}", "matched": matched, "criteria": criteria}


def icp_match_words(spec: FeatureParams, matched: Collection[str]) -> dict[str, str]:
    """Each of `matched`, a count of ideal customer profile criteria met as text ("1") or a band of counts ("3 to 4"),
    in the words the score card gives a lead meeting it: `spec`'s icp_match template, built in ("Matches 1 of 4 ideal
    customer profile criteria") or its ``features.phrases`` override, a band with each end formatted as a count
    (`_Band`: an override validated with a count words a band too). The audit's value table says the ICP match so,
    and the two cannot word it differently.

    Raises:
        ValueError: see ``phrase_templates``.
    """
    template, criteria = phrasebook(spec).templates["icp_match"], icp_criteria(spec)
    words = {}
    for band in matched:
        low, _, high = band.partition(" to ")
        state, fields = _icp_fields(_Band(int(low), int(high)) if high else int(band), criteria)
        words[band] = _FORMATTER.format(template.text(state), **fields)
    return words


def _read_category(row: list, derived: str | None) -> tuple[str, dict]:
    """`derived`: the built-in derived signal (seniority) whose level this is, else None (a CRM column)."""
    (level,) = row
    if _missing(level):
        return "unknown", {"value": NOT_GIVEN}
    if derived:  # a built-in derived level such as "customer_success"
        return "known", {"value": _level_display(derived, level)}
    return "known", {"value": str(level)}  # the CRM's own value, as the rep knows it


def _read_seniority(row: list) -> tuple[str, dict]:
    """Seniority with the department beside it: both are build.UNKNOWN only for a lead without a job title (a title
    no rule knows is department "other"), which reads as no title, not as a title that does not tell the seniority.
    """
    level, department = row
    if level == UNKNOWN and department == UNKNOWN:
        return "unknown", {"value": "No job title"}
    return _read_category([level], "seniority")


def _level_display(signal: str, level) -> str:
    """A built-in derived category level as a rep says it, capitalised (``_LEVEL_DISPLAY``): "C-level", "Customer
    success", "Sales"."""
    return _CONVERSIONS["c"](_LEVEL_DISPLAY.get(signal, {}).get(level, str(level).replace("_", " ")))


def level_words(spec: FeatureParams, signal: str, levels) -> dict[str, str]:
    """Each of `levels` of a built-in derived category signal of `spec` (seniority, department) as a rep reads it:
    the text of its own ``[=level]`` alternative where the signal's template has one ("No job title to tell the
    department" for department's "unknown"), else as the factor shows it ("C-level"). The audit's tables show
    these; empty for any other signal, whose values are the CRM's own.

    Raises:
        ValueError: see ``phrase_templates``.
    """
    book = phrasebook(spec)
    if signal not in spec.derived or book.shapes.get(signal) != "category":
        return {}
    words = {}
    for level in levels:
        shown, own = _level_display(signal, level), book.templates[signal].by_state.get(f"={_level_key(level)}")
        words[level] = _FORMATTER.format(own, value=shown) if own else shown
    return words


def _read_served_country(row: list) -> tuple[str, dict]:
    level, unsupported = row
    if _missing(level):
        return "unknown", {"value": NOT_GIVEN}
    return ("unserved" if unsupported == 1 else "known"), {"value": str(level)}


def _read_number(row: list) -> tuple[str, dict]:
    (value,) = row
    if _missing(value):
        return "unknown", {"value": "unknown", "number": math.nan, "s": "s", "times": "unknown times"}
    fields = {"value": _number(value), "number": float(value), "s": "" if value == 1 else "s", "times": _times(value)}
    return ("nonzero" if value else "zero"), fields
