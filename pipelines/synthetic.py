"""Seeded synthetic B2B CRM: leads, their activities and closed-loop outcomes.

Tests and ``make demo`` need a CRM history that behaves like a real one without leaving the repo, so
the generator follows a small causal story instead of drawing columns independently:

* A lead is a person (business buyer, student or competitor) at a company with firmographics.
  Fit (industry, size, country, seniority) and a hidden *intent* set the odds of a sale; lead
  source and campaign shift both. An unobserved factor (budget cycle, rep skill) keeps the outcome
  noisy, so a good point-in-time model lands near AUC 0.8, not 0.99.
* Activities follow intent only loosely: a separate "chattiness" drives volume too, so many buyers
  are quiet and some tire-kickers click everything. Converted customers keep browsing after the
  sale: exactly the leak point-in-time features must not see.
* Reps reject with reasons that match what they saw (student e-mail -> student, tiny company ->
  no_budget, junior title -> not_decision_maker, ...), sometimes leave the reason blank, and mark
  re-submissions (same e-mail, other case/whitespace) as duplicates.
* "Now" is the end of the last quarter: leads whose decision would come later are still open, so
  the newest leads are immature and a label policy must censor them.

One ``numpy`` Generator drives everything and every draw is made for all leads (outcomes only
*filter* them), so a planted :class:`SourceShift` changes that source's late leads and nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from pipelines.contract import ACTIVITIES, LEADS, OUTCOMES, REASON_CODES

DAY = 86_400  # seconds

# --- Lead sources and campaigns -----------------------------------------------------------------
# source: (share of leads, mean intent, conversion log-odds shift, {campaign: log-odds shift},
#          share of leads without a campaign, what creates the lead on the web if anything)
SOURCES: dict[str, tuple[float, float, float, dict[str, float], float, str | None]] = {
    "web_organic": (0.20, 0.25, 0.3, {"blog": -0.2, "seo_pricing": 0.4}, 0.6, "form_fill"),
    "paid_search": (0.16, 0.10, 0.0, {"gads_brand": 0.5, "gads_generic": 0.0, "bing_generic": -0.1,
                                      "gads_competitor_kw": -0.6}, 0.05, "form_fill"),
    "webinar": (0.10, 0.0, -0.1, {"webinar_revops_101": -0.2, "webinar_ai_forecasting": 0.0,
                                  "webinar_customer_story": 0.4}, 0.0, "webinar"),
    "referral": (0.05, 0.6, 0.9, {"customer_referral": 0.2, "employee_referral": -0.1}, 0.4, None),
    "event": (0.08, -0.1, -0.2, {"saas_summit": 0.2, "revops_live": 0.0, "trade_fair_hannover": -0.4},
              0.1, None),
    "content_syndication": (0.15, -0.45, -0.8, {"ebook_pipeline_guide": -0.2, "whitepaper_roi": 0.0,
                                                "g2_report": 0.4}, 0.05, "content_download"),
    "partner": (0.06, 0.3, 0.5, {"partner_acme_consulting": 0.2, "partner_reseller_eu": -0.1}, 0.2, None),
    "outbound": (0.14, -0.5, -0.3, {"sdr_sequence_a": 0.0, "sdr_sequence_b": -0.2,
                                    "linkedin_outreach": 0.1}, 0.1, None),
    "paid_social": (0.06, -0.2, -0.5, {"linkedin_ads": 0.1, "facebook_lead_ads": -0.5}, 0.1, "form_fill"),
}

# --- Firmographics ------------------------------------------------------------------------------
# industry: (share of companies, conversion log-odds shift); ICP industries are the strong ones.
INDUSTRIES: dict[str, tuple[float, float]] = {
    "software": (0.22, 0.5), "fintech": (0.08, 0.5), "healthcare": (0.10, 0.4),
    "manufacturing": (0.12, 0.4), "retail": (0.09, 0.0), "education": (0.05, -0.6),
    "government": (0.03, -0.4), "media": (0.05, 0.0), "logistics": (0.05, 0.1),
    "consulting": (0.08, -0.1), "nonprofit": (0.03, -0.7), "real_estate": (0.03, -0.2),
    "telecom": (0.03, 0.1), "energy": (0.04, 0.1),
}
# country: (share of companies, phone country code, web domain suffix, conversion log-odds shift).
# RU and IR are unsupported markets: deals there almost never close.
COUNTRIES: dict[str, tuple[float, str, str, float]] = {
    "US": (0.33, "1", ".com", 0.3), "GB": (0.10, "44", ".co.uk", 0.3), "DE": (0.08, "49", ".de", 0.3),
    "FR": (0.05, "33", ".fr", 0.2), "NL": (0.03, "31", ".nl", 0.3), "CA": (0.05, "1", ".ca", 0.3),
    "IN": (0.10, "91", ".in", -0.4), "BR": (0.05, "55", ".com.br", -0.3), "AU": (0.04, "61", ".com.au", 0.1),
    "ES": (0.03, "34", ".es", 0.0), "IT": (0.03, "39", ".it", 0.0), "SE": (0.02, "46", ".se", 0.1),
    "PL": (0.02, "48", ".pl", -0.1), "MX": (0.02, "52", ".mx", -0.3), "SG": (0.015, "65", ".sg", 0.1),
    "JP": (0.01, "81", ".jp", -0.2), "NG": (0.01, "234", ".ng", -0.5), "RU": (0.02, "7", ".ru", -3.0),
    "IR": (0.005, "98", ".ir", -3.0),
}
COMPANY_PREFIXES = np.array([
    "Acme", "Blue", "Bright", "Cloud", "Crest", "Delta", "Evergreen", "First", "Global", "Granite",
    "Harbor", "Helix", "Iron", "Juniper", "Keystone", "Lumen", "Maple", "Meridian", "Nimbus", "North",
    "Nova", "Oak", "Orbit", "Peak", "Pioneer", "Prime", "Quantum", "Red", "Silver", "Summit",
    "Terra", "Union", "Vertex", "Vista", "West", "Zenith", "Atlas", "Beacon", "Cobalt", "Falcon",
])
# Company names say what the company does: industry -> name roots.
COMPANY_ROOTS: dict[str, list[str]] = {
    "software": ["Software", "Tech", "Labs", "Cloud", "Digital", "Data", "Systems"],
    "fintech": ["Capital", "Finance", "Pay", "Ledger"], "healthcare": ["Health", "Medical", "Bio", "Care"],
    "manufacturing": ["Industries", "Motors", "Works", "Robotics", "Manufacturing"],
    "retail": ["Retail", "Foods", "Goods", "Stores"], "education": ["Learning", "Academy"],
    "government": ["Public Services", "Agency"], "media": ["Media", "Studios"],
    "logistics": ["Logistics", "Freight"], "consulting": ["Partners", "Consulting", "Advisors"],
    "nonprofit": ["Foundation", "Trust"], "real_estate": ["Properties", "Realty"],
    "telecom": ["Networks", "Telecom"], "energy": ["Energy", "Power"],
}
LEGAL_FORMS: dict[str, list[str]] = {  # country -> legal suffixes (blank = none typed); others use "other"
    "US": ["", " Inc.", " LLC", " Corp"], "CA": ["", " Inc.", " Ltd"], "GB": ["", " Ltd", " plc"],
    "DE": ["", " GmbH", " AG"], "FR": ["", " SAS", " SA"], "NL": ["", " B.V."], "other": ["", " Ltd", " Group"],
}
UNIVERSITIES = (  # (name, country, domain); student domains match params.yaml student patterns
    ("Stanford University", "US", "stanford.edu"), ("University of Texas", "US", "utexas.edu"),
    ("Ohio State University", "US", "osu.edu"), ("University of Leeds", "GB", "leeds.ac.uk"),
    ("University of Bristol", "GB", "bristol.ac.uk"), ("Universität zu Köln", "DE", "student.uni-koeln.de"),
    ("TU München", "DE", "stud.tum.de"), ("IIT Delhi", "IN", "iitd.ac.in"),
    ("Universidade de São Paulo", "BR", "usp.br"), ("Universidad de Madrid", "ES", "estudiante.um.es"),
)
COMPETITORS = (("RivalSoft", "US", "rivalsoft.com", 850), ("CompeteCo", "DE", "competeco.io", 240))
FREE_DOMAINS = np.array(["gmail.com", "gmail.com", "gmail.com", "yahoo.com", "hotmail.com",
                         "outlook.com", "icloud.com", "aol.com", "gmx.de", "mail.ru"])
INVALID_EMAILS = np.array(["test", "asdf@asdf", "none", "x@x", "noemail@", "info@company", "na@na"])
JUNK_PHONES = np.array(["0000000", "123", "12345", "1111111111", "+1 555 0000", "0"])
FIRST_NAMES = np.array([
    "jane", "john", "maria", "james", "anna", "david", "sarah", "michael", "laura", "daniel", "emma",
    "lucas", "sofia", "thomas", "olivia", "pierre", "julia", "ahmed", "priya", "raj", "wei", "li",
    "carlos", "ana", "jan", "eva", "lars", "ingrid", "kenji", "yuki", "fatima", "omar", "peter",
    "nina", "marco", "giulia", "mateus", "camila", "oliver", "chloe", "ben", "hannah", "sam", "alex",
])
LAST_NAMES = np.array([
    "doe", "smith", "garcia", "mueller", "schmidt", "martin", "dubois", "rossi", "silva", "santos",
    "kumar", "sharma", "chen", "wang", "tanaka", "sato", "johnson", "brown", "jones", "miller",
    "davis", "wilson", "taylor", "anderson", "thomas", "moore", "jackson", "white", "harris", "clark",
    "lewis", "walker", "young", "king", "novak", "kowalski", "jansen", "devries", "larsen", "nilsson",
])

# --- People -------------------------------------------------------------------------------------
SENIORITIES = ("c_level", "vp", "director", "manager", "individual", "junior")
SENIORITY_EFFECT = np.array([0.5, 0.6, 0.6, 0.25, -0.3, -1.2])  # conversion log-odds per seniority
# job title as typed -> seniority index, relative frequency
TITLES: tuple[tuple[str, int, float], ...] = (
    ("CEO", 0, 3), ("Founder & CEO", 0, 2), ("Co-Founder", 0, 1), ("Owner", 0, 1.5), ("CTO", 0, 1.5),
    ("Chief Technology Officer", 0, 0.5), ("CFO", 0, 0.8), ("COO", 0, 0.7), ("CMO", 0, 0.8),
    ("Chief Revenue Officer", 0, 0.5),
    ("VP of Sales", 1, 2), ("VP Sales", 1, 1.5), ("Vice President, Marketing", 1, 1), ("VP Engineering", 1, 1),
    ("SVP Operations", 1, 0.5), ("VP Revenue Operations", 1, 0.7),
    ("Head of Marketing", 2, 2), ("Head of Sales", 2, 2), ("Director, IT", 2, 1.5), ("IT Director", 2, 1),
    ("Director of Sales Operations", 2, 1), ("Marketing Director", 2, 1.5), ("Finance Director", 2, 0.7),
    ("Head of Growth", 2, 1),
    ("Sales Manager", 3, 3), ("Marketing Manager", 3, 3), ("IT Manager", 3, 2), ("Product Manager", 3, 2),
    ("Operations Manager", 3, 1.5), ("RevOps Manager", 3, 1), ("Demand Generation Manager", 3, 1.5),
    ("Software Engineer", 4, 3), ("Sr. Developer", 4, 1.5), ("Data Analyst", 4, 2), ("Account Executive", 4, 2),
    ("Marketing Specialist", 4, 2), ("Consultant", 4, 2), ("Business Analyst", 4, 1.5), ("SDR", 4, 1),
    ("Marketing Intern", 5, 1.5), ("Sales Intern", 5, 1), ("Assistant", 5, 1.5), ("Office Manager", 5, 1),
    ("Working Student", 5, 0.7), ("Trainee", 5, 0.5),
)
STUDENT_TITLES = np.array(["Student", "Student", "student", "MBA Student", "PhD Candidate", "Research Assistant"])
# seniority mix multipliers: by source (outbound targets executives, syndication reaches juniors)
SOURCE_SENIORITY_MIX = {
    "outbound": (2.0, 2.0, 1.6, 1.0, 0.6, 0.3), "content_syndication": (0.6, 0.6, 0.8, 1.0, 1.5, 2.5),
    "event": (0.8, 1.0, 1.0, 1.0, 1.2, 1.5), "referral": (1.5, 1.3, 1.2, 1.0, 0.8, 0.5),
}
# by company size band (<20, 20-199, 200-1999, 2000+): founders answer at small firms
SIZE_SENIORITY_MIX = np.array([
    (4.0, 0.5, 0.6, 0.8, 1.0, 1.0), (1.5, 1.0, 1.0, 1.0, 1.0, 1.0),
    (0.6, 1.0, 1.1, 1.1, 1.1, 1.0), (0.2, 0.8, 1.0, 1.2, 1.4, 1.0),
])
SIZE_BAND_EDGES = np.array([20, 200, 2000])

# --- Activities ---------------------------------------------------------------------------------
ACTIVITY_TYPES = ("page_view", "pricing_view", "form_fill", "demo_request", "email_open",
                  "email_click", "webinar", "content_download")
# log-weight of each activity type = base + slope * intent: hot leads look at pricing and ask for demos
ACTIVITY_BASE = np.array([1.6, -1.2, -1.6, -3.0, 1.2, -0.2, -2.2, -1.0])
ACTIVITY_INTENT_SLOPE = np.array([0.0, 0.7, 0.25, 1.0, -0.1, 0.2, 0.1, 0.0])
CUSTOMER_ACTIVITY_MIX = np.array([0.45, 0.08, 0.02, 0.0, 0.25, 0.1, 0.05, 0.05])  # after the sale
ACTIVITY_DETAILS = {
    "page_view": ["/", "/product", "/features", "/integrations", "/customers", "/blog/lead-scoring-101",
                  "/blog/revops-metrics", "/docs/getting-started", "/about", "/careers"],
    "pricing_view": ["/pricing", "/pricing", "/pricing/enterprise"],
    "form_fill": ["/contact", "/newsletter", "/trial"],
    "demo_request": ["/demo"],
    "email_open": ["welcome", "nurture_1", "nurture_2", "newsletter", "product_update", "event_invite"],
    "email_click": ["welcome", "nurture_1", "nurture_2", "newsletter", "product_update", "event_invite"],
    "webinar": ["webinar_revops_101", "webinar_ai_forecasting", "webinar_customer_story"],
    "content_download": ["ebook_pipeline_guide", "whitepaper_roi", "g2_report", "checklist_lead_routing"],
}
# web visits before the lead identified itself, tied to it afterwards through the tracking cookie
PRE_CREATION_TYPES = tuple(ACTIVITY_TYPES.index(t) for t in ("page_view", "pricing_view", "content_download"))
PRE_CREATION_SHARE = 0.2
MAX_PRE_CREATION_DAYS = 1.0  # no activity is older than created_at minus this

# --- Outcome model ------------------------------------------------------------------------------
CONVERSION_INTERCEPT = -3.0
INTENT_EFFECT = 1.3
HIDDEN_NOISE_SD = 0.7  # log-odds noise no CRM field explains
BLOCKED_EFFECT = -6.0  # students, competitors and unreachable contacts do not buy
STALE_OPEN_SHARE = 0.02  # leads nobody ever works: open forever
MISSING_REASON_SHARE = 0.03
DUPLICATE_SHARE = 0.022


@dataclass(frozen=True)
class SourceShift:
    """A planted drop in one lead source's quality, for drift and backtest tests.

    Attributes:
        source: lead_source value whose leads get worse.
        from_quarter: 0-based quarter index from which the drop applies.
        conversion_factor: multiplies that source's conversion odds.
    """

    source: str
    from_quarter: int
    conversion_factor: float = 0.3

    def __post_init__(self) -> None:
        if self.source not in SOURCES:
            raise ValueError(f"shift.source: unknown lead source {self.source!r}; known: {sorted(SOURCES)}")
        if self.from_quarter < 0:
            raise ValueError(f"shift.from_quarter: must be >= 0, got {self.from_quarter}")
        if not self.conversion_factor > 0:
            raise ValueError(f"shift.conversion_factor: must be > 0, got {self.conversion_factor}")


# Where the default history ends ("now" for the sample data; the demo scores its open leads as of
# then). Fixed, not today: the same seed gives the same tables whenever it is run.
HISTORY_END = "2026-01-01"


def generate_crm(
    n_leads: int,
    seed: int = 0,
    start: str | None = None,
    quarters: int = 8,
    shift: SourceShift | None = None,
) -> dict[str, pd.DataFrame]:
    """Simulate a B2B CRM's closed-loop history.

    Args:
        n_leads: number of leads (0 gives empty tables with the contract columns).
        seed: seeds the one random generator; same seed, same tables.
        start: first day of the first quarter; default `quarters` before HISTORY_END, so any length
            of history lies in the past (ingest refuses leads created in the future).
        quarters: how many quarters the leads span; "now" is the end of the last one.
        shift: optional planted quality drop of one source from a given quarter on.

    Returns:
        {"leads": ..., "activities": ..., "outcomes": ...} with exactly the contract columns.
    """
    if n_leads < 0:
        raise ValueError(f"n_leads: must be >= 0, got {n_leads}")
    if quarters < 1:
        raise ValueError(f"quarters: must be >= 1, got {quarters}")
    try:
        first_day = (pd.Timestamp(start).normalize() if start is not None
                     else pd.Timestamp(HISTORY_END) - pd.DateOffset(months=3 * quarters))
    except ValueError:
        raise ValueError(f"start: not a date: {start!r}") from None
    if n_leads == 0:
        return _empty_tables()
    rng = np.random.default_rng(seed)
    bounds = np.array(
        [(first_day + pd.DateOffset(months=3 * q)).to_datetime64() for q in range(quarters + 1)]
    ).astype("datetime64[s]")

    created = _creation_times(rng, n_leads, bounds)
    people = _people(rng, created)
    quarter = np.searchsorted(bounds, created, side="right") - 1
    outcome = _outcomes(rng, people, created, quarter, bounds[-1], shift)
    return {
        "leads": _leads_frame(people, created),
        "activities": _activities(rng, people, created, outcome, bounds[-1]),
        "outcomes": _outcomes_frame(people["lead_id"], outcome),
    }


# Written beside the sample files, listing them: a later run may replace those, and no other file.
SAMPLE_MARKER = ".leadscore-sample"
_MARKER_HEADER = "Written by `leadscore sample-data`: the next run may replace these files of it, and no other:"
# A marker from before it listed its files covered the folder; it meant the default CSV set then.
_UNLISTED_MARKER_FILES = frozenset({"leads.csv", "activities.csv", "outcomes.csv", "open_leads.csv"})


def _sample_files(out_dir: Path) -> set[str]:
    """Names of the files an earlier sample-data run wrote into out_dir (none without its marker)."""
    marker = out_dir / SAMPLE_MARKER
    if not marker.is_file():
        return set()
    listed = {line.strip() for line in marker.read_text(errors="replace").splitlines()[1:] if line.strip()}
    return listed or set(_UNLISTED_MARKER_FILES)


def write_crm(tables: dict[str, pd.DataFrame], out_dir: Path, fmt: str = "csv") -> dict[str, Path]:
    """Write each table (leads/activities/outcomes, and any extra such as open_leads) as <name>.<fmt>.

    Raises:
        FileExistsError: a file it would write exists and is not listed in the SAMPLE_MARKER of an
            earlier run, e.g. the CRM export itself; nothing is written then.

    Args:
        tables: the three contract tables, as returned by :func:`generate_crm`, plus any extra ones.
        out_dir: folder to write into (created if missing).
        fmt: "csv" or "parquet".

    Returns:
        Table name -> path written.
    """
    if fmt not in ("csv", "parquet"):
        raise ValueError(f"fmt: expected 'csv' or 'parquet', got {fmt!r}")
    missing = [name for name in (LEADS.name, ACTIVITIES.name, OUTCOMES.name) if name not in tables]
    if missing:
        raise ValueError(f"tables: missing {missing}; expected leads, activities and outcomes")
    out_dir = Path(out_dir)
    paths = {name: out_dir / f"{name}.{fmt}" for name in tables}
    ours = _sample_files(out_dir)
    foreign = [p.name for p in paths.values() if p.exists() and p.name not in ours]
    if foreign:
        raise FileExistsError(f"{out_dir} already holds {', '.join(foreign)}, not written by sample-data: it may be "
                              "a CRM export, which the sample would replace; write the sample into another folder")
    out_dir.mkdir(parents=True, exist_ok=True)
    # The marker first: a run interrupted halfway still lets the next one replace what it wrote.
    written = sorted(ours | {p.name for p in paths.values()})
    (out_dir / SAMPLE_MARKER).write_text("\n".join([_MARKER_HEADER, *written]) + "\n")
    for name, path in paths.items():
        if fmt == "csv":
            tables[name].to_csv(path, index=False)
        else:
            tables[name].to_parquet(path, index=False)
    return paths


# --- Leads --------------------------------------------------------------------------------------


def _creation_times(rng: np.random.Generator, n: int, bounds: np.ndarray) -> np.ndarray:
    """Sorted creation times with growth, weekly and yearly seasonality, in business hours."""
    days = np.arange(bounds[0].astype("datetime64[D]"), bounds[-1].astype("datetime64[D]"))
    position = np.arange(len(days)) / len(days)
    weekday = (days.astype(np.int64) + 3) % 7  # 0 = Monday
    month = days.astype("datetime64[M]").astype(np.int64) % 12 + 1
    day_of_month = (days - days.astype("datetime64[M]")).astype(np.int64) + 1
    weight = (1 + 0.6 * position)  # marketing grows the funnel
    weight = weight * np.where(weekday >= 5, 0.3, 1.0)
    weight = weight * np.select([month == 8, month == 12, np.isin(month, (1, 9, 10))], [0.75, 0.85, 1.15], 1.0)
    holidays = ((month == 12) & (day_of_month >= 22)) | ((month == 1) & (day_of_month <= 2))
    weight = weight * np.where(holidays, 0.4, 1.0)
    day = rng.choice(len(days), size=n, p=weight / weight.sum())
    seconds = (np.clip(rng.normal(13.5, 3.2, n), 0, 23.99) * 3600).astype(np.int64)
    return np.sort(days[day].astype("datetime64[s]") + seconds)


def _people(rng: np.random.Generator, created: np.ndarray) -> dict[str, np.ndarray]:
    """Who each lead is: company, role, contact details, source, and the hidden intent."""
    n = len(created)
    source_share = np.array([s[0] for s in SOURCES.values()])
    source = rng.choice(len(SOURCES), size=n, p=source_share / source_share.sum())

    # Campaign: one of the source's named campaigns, or none.
    campaign_effect = np.array([e for s in SOURCES.values() for e in s[3].values()])
    _, campaign = _pick_per_group(rng, [list(s[3]) for s in SOURCES.values()], source)
    no_campaign_share = np.array([s[4] for s in SOURCES.values()])
    has_campaign = rng.random(n) >= no_campaign_share[source]

    # Person type: business buyer, student, competitor; syndication and events attract students.
    student_share = np.select([source == _source_index("content_syndication"), source == _source_index("event"),
                               source == _source_index("webinar")], [0.09, 0.07, 0.06], 0.025)
    competitor_share = np.where(np.isin(source, [_source_index("webinar"), _source_index("content_syndication")]),
                                0.025, 0.008)
    u = rng.random(n)
    is_student = u < student_share
    is_competitor = (u >= student_share) & (u < student_share + competitor_share)

    # Company: bigger companies produce more leads.
    n_companies = max(1, n // 3)
    employees_true = np.clip(np.round(rng.lognormal(np.log(80), 1.7, n_companies)), 1, 400_000).astype(np.int64)
    industry_share = np.array([v[0] for v in INDUSTRIES.values()])
    company_industry = rng.choice(len(INDUSTRIES), size=n_companies, p=industry_share / industry_share.sum())
    country_share = np.array([v[0] for v in COUNTRIES.values()])
    company_country = rng.choice(len(COUNTRIES), size=n_companies, p=country_share / country_share.sum())
    prefix = rng.integers(len(COMPANY_PREFIXES), size=n_companies)
    roots, root = _pick_per_group(rng, [COMPANY_ROOTS[i] for i in INDUSTRIES], company_industry)
    legal_forms, legal = _pick_per_group(
        rng, [LEGAL_FORMS.get(c, LEGAL_FORMS["other"]) for c in COUNTRIES], company_country
    )
    dot_com = rng.random(n_companies) < 0.5
    popularity = employees_true ** 0.3
    company = rng.choice(n_companies, size=n, p=popularity / popularity.sum())

    # Special populations overwrite the company they were assigned.
    university = rng.integers(len(UNIVERSITIES), size=n)
    competitor = rng.integers(len(COMPETITORS), size=n)
    employees = employees_true[company]
    employees = np.where(is_competitor, np.array([c[3] for c in COMPETITORS])[competitor], employees)
    employees = np.where(is_student, rng.integers(2_000, 40_000, n), employees)
    industry = np.where(is_student, _index(INDUSTRIES, "education"), company_industry[company])
    industry = np.where(is_competitor, _index(INDUSTRIES, "software"), industry)
    country_index = {code: i for i, code in enumerate(COUNTRIES)}
    country = company_country[company]
    country = np.where(is_student, np.array([country_index[u[1]] for u in UNIVERSITIES])[university], country)
    country = np.where(is_competitor, np.array([country_index[c[1]] for c in COMPETITORS])[competitor], country)

    # Seniority depends on company size and source; students are their own kind.
    size_band = np.searchsorted(SIZE_BAND_EDGES, employees, side="right")
    title_seniority = np.array([t[1] for t in TITLES])
    source_mix = np.ones((len(SOURCES), len(SENIORITIES)))
    for name, mix in SOURCE_SENIORITY_MIX.items():
        source_mix[_source_index(name)] = mix
    title_weight = (np.array([t[2] for t in TITLES])[None, :]
                    * source_mix[source][:, title_seniority] * SIZE_SENIORITY_MIX[size_band][:, title_seniority])
    title = _sample_rows(rng, title_weight)
    seniority = np.where(is_student, SENIORITIES.index("junior"), title_seniority[title])
    student_title = rng.integers(len(STUDENT_TITLES), size=n)

    # E-mail kind: corporate, free, invalid, missing; small firms and students use free mail more.
    free_share = np.select([is_student, employees < 20], [0.35, 0.45], 0.2)
    u = rng.random(n)
    email_kind = np.select(
        [u < 0.02, u < 0.035, u < 0.035 + free_share], ["invalid", "missing", "free"], "corporate"
    ).astype(object)
    phone_u = rng.random(n)
    phone_kind = np.select([phone_u < 0.025, phone_u < 0.025 + np.where(is_student, 0.4, 0.14)],
                           ["junk", "missing"], "valid")

    # Hidden intent: the source sets the mean, the campaign nudges it.
    source_intent = np.array([s[1] for s in SOURCES.values()])
    intent = source_intent[source] + np.where(has_campaign, 0.5 * campaign_effect[campaign], 0) \
        + rng.normal(0, 1, n)
    chattiness = rng.normal(0, 1, n)

    person = {
        "source": source, "campaign": campaign, "has_campaign": has_campaign, "is_student": is_student,
        "is_competitor": is_competitor, "company": company, "university": university, "competitor": competitor,
        "employees": employees, "industry": industry, "country": country, "title": title,
        "seniority": seniority, "student_title": student_title, "email_kind": email_kind,
        "phone_kind": phone_kind, "intent": intent,
        "chattiness": chattiness, "first_name": rng.integers(len(FIRST_NAMES), size=n),
        "last_name": rng.integers(len(LAST_NAMES), size=n), "email_pattern": rng.integers(4, size=n),
        "email_digits": rng.integers(1, 99, size=n), "free_domain": rng.integers(len(FREE_DOMAINS), size=n),
        "invalid_email": rng.integers(len(INVALID_EMAILS), size=n),
        "junk_phone": rng.integers(len(JUNK_PHONES), size=n),
        "phone_number": rng.integers(2 * 10**9, 10**10, size=n), "phone_style": rng.integers(3, size=n),
        "company_known": rng.random(n), "enriched": rng.random(n), "title_mess": rng.random(n),
        "email_mess": rng.random(n), "country_known": rng.random(n), "company_case": rng.random(n),
    }

    # Duplicates: a person re-submits later with the same e-mail typed differently.
    has_email = np.isin(email_kind, ["corporate", "free"])
    wants_duplicate = (rng.random(n) < DUPLICATE_SHARE) & (np.arange(n) > 0)
    lookback = 1 + rng.geometric(0.002, size=n)
    originals = np.flatnonzero(~wants_duplicate & has_email)
    position = np.searchsorted(originals, np.arange(n) - lookback, side="right") - 1
    is_duplicate = wants_duplicate & (position >= 0)
    duplicate_of = np.full(n, -1)
    duplicate_of[is_duplicate] = originals[position[is_duplicate]]
    copied = ("is_student", "is_competitor", "company", "university", "competitor", "employees", "industry",
              "country", "title", "student_title", "seniority", "email_kind", "phone_kind", "intent",
              "chattiness", "first_name",
              "last_name", "email_pattern", "email_digits", "free_domain", "phone_number", "phone_style",
              "company_known", "enriched", "title_mess", "country_known", "company_case")
    rows, sources = np.flatnonzero(is_duplicate), duplicate_of[is_duplicate]
    for key in copied:
        person[key][rows] = person[key][sources]
    person["duplicate_of"] = duplicate_of
    person["lead_id"] = np.char.add("L", np.char.zfill(np.arange(1, n + 1).astype(str), 7))

    company_name = np.char.add(np.char.add(np.char.add(COMPANY_PREFIXES[prefix], " "), roots[root]),
                               legal_forms[legal])
    tld = np.array([v[2] for v in COUNTRIES.values()])[company_country]
    domain_name = np.char.lower(np.char.add(COMPANY_PREFIXES[prefix], np.char.replace(roots[root], " ", "")))
    company_domain = np.char.add(domain_name, np.where(dot_com, ".com", tld))
    person["company_name"], person["company_domain"] = company_name, company_domain
    return person


def _leads_frame(p: dict[str, np.ndarray], created: np.ndarray) -> pd.DataFrame:
    """The leads table as a CRM shows it: messy titles, missing enrichment, inconsistent e-mails."""
    free = p["email_kind"] == "free"
    student, competitor = p["is_student"], p["is_competitor"]

    company = pd.Series(p["company_name"][p["company"]], dtype="str")
    company = company.where(~pd.Series(p["company_case"] < 0.05), company.str.lower())
    company = company.mask(pd.Series(student), pd.Series(np.array([u[0] for u in UNIVERSITIES])[p["university"]]))
    company = company.mask(pd.Series(competitor),
                           pd.Series(np.array([c[0] for c in COMPETITORS])[p["competitor"]]))
    company = company.mask(pd.Series(p["company_known"] < np.select([student, free], [0.4, 0.35], 0.05)))

    # Enrichment works from the corporate domain; free-mail leads often lack industry and size.
    enriched = p["enriched"] >= np.where(free | (p["email_kind"] != "corporate"), 0.5, 0.05)
    employees = pd.Series(p["employees"], dtype="Int64").where(enriched)
    industry = np.array(list(INDUSTRIES))[p["industry"]]
    industry = pd.Series(industry, dtype="str").where(enriched)
    country = pd.Series(np.array(list(COUNTRIES))[p["country"]], dtype="str")
    country = country.where(p["country_known"] >= 0.015)

    # Job title: the seniority's typed title, sometimes re-cased, padded, blank or "N/A".
    title = pd.Series(np.array([t[0] for t in TITLES])[p["title"]], dtype="str")
    title = title.mask(pd.Series(student), pd.Series(STUDENT_TITLES[p["student_title"]]))
    mess = p["title_mess"]
    title = title.mask(pd.Series(mess < 0.08), title.str.lower())
    title = title.mask(pd.Series((mess >= 0.08) & (mess < 0.10)), title.str.upper())
    title = title.mask(pd.Series((mess >= 0.10) & (mess < 0.12)), title + " ")
    title = title.mask(pd.Series((mess >= 0.12) & (mess < 0.13)), "N/A")
    title = title.mask(pd.Series((mess >= 0.13) & (mess < 0.19)))

    phone = pd.Series(_phones(p), dtype="str")
    email = pd.Series(_emails(p), dtype="str")
    source = np.array(list(SOURCES))[p["source"]]
    campaign_names = np.array([c for s in SOURCES.values() for c in s[3]])
    campaign = pd.Series(campaign_names[p["campaign"]], dtype="str")
    leads = pd.DataFrame({
        "lead_id": pd.Series(p["lead_id"], dtype="str"),
        "created_at": pd.Series(created.astype("datetime64[us]")),
        "email": email,
        "phone": phone,
        "company": company,
        "industry": industry,
        "employees": employees,
        "country": country,
        "job_title": title,
        "lead_source": pd.Series(source, dtype="str"),
        "campaign": campaign.where(p["has_campaign"]),
    })
    return leads[list(LEADS.columns)]


def _emails(p: dict[str, np.ndarray]) -> np.ndarray:
    """E-mail addresses; a duplicate repeats its original's address in another case or spacing."""
    first, last = FIRST_NAMES[p["first_name"]], LAST_NAMES[p["last_name"]]
    dot = np.char.add(np.char.add(first, "."), last)
    local = np.select(
        [p["email_pattern"] == 0, p["email_pattern"] == 1, p["email_pattern"] == 2],
        [dot, np.char.add(first.astype("<U1"), last), first],
        np.char.add(np.char.add(first, "_"), last),
    ).astype(str)
    free = p["email_kind"] == "free"
    local = np.where(free, np.char.add(local, p["email_digits"].astype(str)), local)
    domain = p["company_domain"][p["company"]]
    domain = np.where(p["is_student"], np.array([u[2] for u in UNIVERSITIES])[p["university"]], domain)
    domain = np.where(p["is_competitor"], np.array([c[2] for c in COMPETITORS])[p["competitor"]], domain)
    domain = np.where(free, FREE_DOMAINS[p["free_domain"]], domain)
    email = pd.Series(np.char.add(np.char.add(local, "@"), domain), dtype="str")
    mess = pd.Series(p["email_mess"])
    email = email.mask(mess < 0.08, email.str.title()).mask((mess >= 0.08) & (mess < 0.10), email.str.upper())
    email = email.mask((mess >= 0.10) & (mess < 0.12), email + " ")
    email = email.mask(p["email_kind"] == "invalid", pd.Series(INVALID_EMAILS[p["invalid_email"]]))
    email = email.mask(p["email_kind"] == "missing")

    rows = np.flatnonzero(p["duplicate_of"] >= 0)
    original = email.iloc[p["duplicate_of"][rows]].reset_index(drop=True)
    retyped = original.str.lower().where(original != original.str.lower(), original.str.title())
    retyped = retyped.where(mess.iloc[rows].reset_index(drop=True) < 0.5, retyped + " ")
    values = email.to_numpy(dtype=object, na_value=np.nan)
    values[rows] = retyped.to_numpy(dtype=object)
    return values


def _phones(p: dict[str, np.ndarray]) -> np.ndarray:
    """Phone numbers in a few national styles; some missing or junk."""
    code = np.array([v[1] for v in COUNTRIES.values()])[p["country"]]
    area = (p["phone_number"] // 10**7).astype(str)
    exchange = np.char.zfill((p["phone_number"] // 10**4 % 1000).astype(str), 3)
    line = np.char.zfill((p["phone_number"] % 10**4).astype(str), 4)
    plus_code = np.char.add("+", code)
    spaced = np.char.add(np.char.add(np.char.add(np.char.add(np.char.add(plus_code, " "), area), " "),
                                     np.char.add(exchange, " ")), line)
    national = np.char.add(np.char.add(np.char.add("0", area), "-"), np.char.add(exchange, line))
    compact = np.char.add(np.char.add(plus_code, area), np.char.add(exchange, line))
    phone = np.select([p["phone_style"] == 0, p["phone_style"] == 1], [spaced, national], compact).astype(object)
    phone = np.where(p["phone_kind"] == "junk", JUNK_PHONES[p["junk_phone"]], phone)
    return np.where(p["phone_kind"] == "missing", np.nan, phone)


# --- Outcomes -----------------------------------------------------------------------------------


def _outcomes(
    rng: np.random.Generator,
    p: dict[str, np.ndarray],
    created: np.ndarray,
    quarter: np.ndarray,
    now: np.datetime64,
    shift: SourceShift | None,
) -> dict[str, np.ndarray]:
    """What sales decided for each lead, when, why, and for how much; open if not decided by now."""
    n = len(created)
    employees = p["employees"]
    size_effect = np.select([employees < 10, employees < 50, employees <= 5000], [-1.2, -0.5, 0.4], 0.0)
    free_mail = p["email_kind"] == "free"
    fit = (np.array([v[1] for v in INDUSTRIES.values()])[p["industry"]]
           + np.array([v[3] for v in COUNTRIES.values()])[p["country"]]
           + SENIORITY_EFFECT[p["seniority"]] + size_effect - 0.4 * free_mail)
    invalid_contact = np.isin(p["email_kind"], ["invalid", "missing"]) | (p["phone_kind"] == "junk")
    blocked = p["is_student"] | p["is_competitor"] | invalid_contact
    campaign_effect = np.array([e for s in SOURCES.values() for e in s[3].values()])
    source_effect = (np.array([s[2] for s in SOURCES.values()])[p["source"]]
                     + np.where(p["has_campaign"], campaign_effect[p["campaign"]], 0.0))
    log_odds = (CONVERSION_INTERCEPT + fit + source_effect + INTENT_EFFECT * p["intent"]
                + rng.normal(0, HIDDEN_NOISE_SD, n) + BLOCKED_EFFECT * blocked)
    if shift is not None:
        hit = (p["source"] == _source_index(shift.source)) & (quarter >= shift.from_quarter)
        log_odds = log_odds + np.log(shift.conversion_factor) * hit
    converted = rng.random(n) < _sigmoid(log_odds)
    nurture_chance = np.where(blocked, 0.03, _sigmoid(-1.4 + 0.5 * fit + 0.4 * p["intent"]))
    nurture = ~converted & (rng.random(n) < nurture_chance)

    # Reps pick the reason that matches what they saw; the draw is a softmax over these scores.
    engagement = _engagement(p)
    reason_score = np.column_stack([
        np.array([-1.5, -1.0, -0.5, 0.5, 1.5, 2.5])[p["seniority"]] - 2.5 * p["is_student"],  # not_decision_maker
        np.select([employees < 10, employees < 50, employees < 200], [2.5, 1.5, 0.2], -1.0)
        + 0.7 * np.isin(p["industry"], [_index(INDUSTRIES, "nonprofit"), _index(INDUSTRIES, "education")]),
        np.full(n, 0.3),  # bad_timing
        np.where(p["is_competitor"], 6.0, -3.0),  # competitor: or lost to one
        0.6 - 1.2 * engagement,  # unresponsive
        np.where(p["is_student"], 6.0, -5.0),  # student
        np.select([invalid_contact, p["phone_kind"] == "missing"], [5.0, 0.3], -2.5),  # invalid_contact
    ])
    reason = np.argmax(reason_score + rng.gumbel(size=(n, reason_score.shape[1])), axis=1)
    unsupported = np.array([v[3] <= -3 for v in COUNTRIES.values()])[p["country"]]
    reason_missing = rng.random(n) < np.where(unsupported, 0.4, MISSING_REASON_SHARE)
    duplicate = p["duplicate_of"] >= 0
    duplicate_as_rejection = rng.random(n) < 0.25

    status = np.select([duplicate, converted, nurture], ["duplicate", "converted", "nurture"], "rejected")
    status = status.astype(object)
    status[duplicate & duplicate_as_rejection] = "rejected"
    reason = np.where(duplicate, REASON_CODES.index("duplicate"), reason)
    reason_code = np.array(REASON_CODES, dtype=object)[reason]
    unresponsive = reason == REASON_CODES.index("unresponsive")

    # Delays in days: sales cycles take weeks, rejections days, unresponsive leads get chased first.
    conversion_delay = np.clip(rng.lognormal(np.log(45) - 0.15 * p["intent"], 0.55), 10, 150)
    rejection_delay = np.clip(rng.lognormal(np.log(9), 0.9, n) + 14 * unresponsive, 1, 60)
    nurture_delay = np.clip(rng.lognormal(np.log(50), 0.5, n), 14, 200)
    duplicate_delay = rng.uniform(0.1, 5, n)
    delay = np.select([status == "converted", status == "nurture", duplicate],
                      [conversion_delay, nurture_delay, duplicate_delay], rejection_delay)
    decided = created + (delay * DAY).astype(np.int64)
    never_worked = (rng.random(n) < STALE_OPEN_SHARE) & ~duplicate
    still_open = never_worked | (decided >= now)
    status[still_open] = "open"
    decided[still_open] = np.datetime64("NaT")
    reason_code[(status != "rejected") | (reason_missing & ~duplicate)] = np.nan

    deal = 6000 * (employees / 100) ** 0.4 * rng.lognormal(0, 0.45, n)
    amount = np.where(status == "converted", np.round(deal, -2), np.nan)
    return {"status": status, "reason": reason_code, "decided_at": decided, "amount": amount}


def _outcomes_frame(lead_id: np.ndarray, outcome: dict[str, np.ndarray]) -> pd.DataFrame:
    frame = pd.DataFrame({
        "lead_id": pd.Series(lead_id, dtype="str"),
        "status": pd.Series(outcome["status"], dtype="str"),
        "reason": pd.Series(outcome["reason"], dtype="str"),
        "decided_at": pd.Series(outcome["decided_at"].astype("datetime64[us]")),
        "amount": pd.Series(outcome["amount"], dtype="float64"),
    })
    return frame[list(OUTCOMES.columns)]


# --- Activities ---------------------------------------------------------------------------------


def _activities(
    rng: np.random.Generator,
    p: dict[str, np.ndarray],
    created: np.ndarray,
    outcome: dict[str, np.ndarray],
    now: np.datetime64,
) -> pd.DataFrame:
    """Activity log: the action that created the lead, engagement over the following weeks (tapering
    after the decision) and, for customers, their use of the site after the sale.

    Every event is drawn before the outcome filters it, so changing one lead's outcome leaves all
    other leads' activities untouched.
    """
    n = len(created)
    intent = p["intent"]
    decided = outcome["decided_at"]

    # The action that created the lead (form, webinar sign-up, download); hot web leads ask for a demo.
    web_kind = np.array([-1 if s[5] is None else ACTIVITY_TYPES.index(s[5]) for s in SOURCES.values()])
    first_kind = web_kind[p["source"]]
    asks_demo = (first_kind == ACTIVITY_TYPES.index("form_fill")) & (rng.random(n) < _sigmoid(intent - 2.2))
    first_kind = np.where(asks_demo, ACTIVITY_TYPES.index("demo_request"), first_kind)
    first = np.flatnonzero(first_kind >= 0)
    campaign_names = np.array([c for s in SOURCES.values() for c in s[3]], dtype=object)
    first_detail = np.where(p["has_campaign"][first], campaign_names[p["campaign"][first]],
                            _activity_details(rng, first_kind[first]))

    # Engagement while sales works the lead: volume from intent and chattiness, overdispersed;
    # hot leads act sooner. Some web visits predate the lead (tracked anonymously, then matched).
    mean_events = 11.0 * np.exp(0.55 * _engagement(p))
    lead = np.repeat(np.arange(n), rng.poisson(mean_events * rng.gamma(2.5, 1 / 2.5, n)))
    kind = np.argmax(ACTIVITY_BASE + np.outer(intent[lead], ACTIVITY_INTENT_SLOPE)
                     + rng.gumbel(size=(len(lead), len(ACTIVITY_TYPES))), axis=1)
    offset_days = rng.exponential(8 * np.exp(-0.3 * intent[lead]))
    before_creation = np.isin(kind, PRE_CREATION_TYPES) & (rng.random(len(lead)) < PRE_CREATION_SHARE)
    offset_days = np.where(before_creation, -MAX_PRE_CREATION_DAYS * rng.random(len(lead)), offset_days)
    occurred = created[lead] + (offset_days * DAY).astype(np.int64)
    detail = _activity_details(rng, kind)
    taper = rng.random(len(lead))
    days_after_decision = (occurred - decided[lead]).astype(np.float64) / DAY  # NaN while undecided
    keep = ~(days_after_decision > 0) | (taper < 0.5 * np.exp(-np.clip(days_after_decision, 0, None) / 10))

    # Customers keep using the site after the sale: the leak point-in-time features must not see.
    customer = np.repeat(np.arange(n), rng.poisson(15 * np.exp(0.3 * p["chattiness"])))
    customer_kind = rng.choice(len(ACTIVITY_TYPES), size=len(customer), p=CUSTOMER_ACTIVITY_MIX)
    customer_at = decided[customer] + (rng.uniform(0, 180, len(customer)) * DAY).astype(np.int64)
    customer_detail = _activity_details(rng, customer_kind)
    is_customer = outcome["status"][customer] == "converted"

    lead_all = np.concatenate([first, lead[keep], customer[is_customer]])
    kind_all = np.concatenate([first_kind[first], kind[keep], customer_kind[is_customer]])
    at_all = np.concatenate([created[first], occurred[keep], customer_at[is_customer]])
    detail_all = np.concatenate([first_detail, detail[keep], customer_detail[is_customer]])
    in_past = np.flatnonzero(at_all < now)
    rows = in_past[np.lexsort((lead_all[in_past], at_all[in_past]))]
    frame = pd.DataFrame({
        "lead_id": pd.Series(p["lead_id"][lead_all[rows]], dtype="str"),
        "occurred_at": pd.Series(at_all[rows].astype("datetime64[us]")),
        "activity": pd.Series(np.array(ACTIVITY_TYPES, dtype=object)[kind_all[rows]], dtype="str"),
        "detail": pd.Series(detail_all[rows], dtype="str"),
    })
    return frame[list(ACTIVITIES.columns)]


def _activity_details(rng: np.random.Generator, kind: np.ndarray) -> np.ndarray:
    """A page path, e-mail or asset name per activity; some left empty as trackers do."""
    flat, chosen = _pick_per_group(rng, [ACTIVITY_DETAILS[t] for t in ACTIVITY_TYPES], kind)
    detail = flat.astype(object)[chosen]
    detail[rng.random(len(kind)) < 0.08] = np.nan
    return detail


def _empty_tables() -> dict[str, pd.DataFrame]:
    """Zero-row tables with the same columns and dtypes as generated ones."""
    dtypes = {"employees": "Int64", "amount": "float64"}
    tables = {}
    for spec in (LEADS, ACTIVITIES, OUTCOMES):
        tables[spec.name] = pd.DataFrame({
            column: pd.Series([], dtype="datetime64[us]" if column in spec.dates else dtypes.get(column, "str"))
            for column in spec.columns
        })
    return tables


# --- Helpers ------------------------------------------------------------------------------------


def _engagement(p: dict[str, np.ndarray]) -> np.ndarray:
    """How much a lead interacts: partly intent, partly a personal habit unrelated to buying."""
    return 0.8 * p["intent"] + 0.6 * p["chattiness"]


def _sample_rows(rng: np.random.Generator, weights: np.ndarray) -> np.ndarray:
    """One category per row, drawn with that row's (unnormalised) weights."""
    cumulative = np.cumsum(weights, axis=1)
    u = rng.random(len(weights)) * cumulative[:, -1]
    return np.minimum((cumulative < u[:, None]).sum(axis=1), weights.shape[1] - 1)


def _pick_per_group(
    rng: np.random.Generator, options: list[list[str]], group: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """A uniformly chosen option from each row's group: (all options flat, chosen index per row)."""
    flat = np.array([o for group_options in options for o in group_options])
    sizes = np.array([len(o) for o in options])
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    return flat, starts[group] + (rng.random(len(group)) * sizes[group]).astype(np.int64)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-x))


def _source_index(name: str) -> int:
    return list(SOURCES).index(name)


def _index(table: dict, name: str) -> int:
    return list(table).index(name)
