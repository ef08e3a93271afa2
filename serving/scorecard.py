"""The rep's score card: one self-contained HTML page from a lead's latest logged score.

Inline CSS bars, no scripts and no external assets, so it renders inside a CRM iframe or from a
locked-down network. Every value is escaped: lead ids and phrases come from CRM data.
"""

from __future__ import annotations

from collections.abc import Mapping
from html import escape

from features import phrases
from models.explain import moves_score, shown_points
from models.reasons import reason_in_words

# What the card says when no factor moves the score by a point or more (``models.explain.moves_score``).
NOTHING_STANDS_OUT = "Nothing stands out: no single factor moves this lead's score by a point or more."

_STYLE = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:24px;color:#1f2933;max-width:760px}
h1{font-size:1.1rem;font-weight:600;margin:0 0 16px}
.summary{display:flex;gap:28px;align-items:center;margin-bottom:20px}
.score{font-size:3.2rem;font-weight:700;line-height:1}
.label{font-size:.75rem;text-transform:uppercase;letter-spacing:.05em;color:#52606d}
.tier{font-size:1.6rem;font-weight:700;padding:4px 14px;border-radius:6px;background:#e4e7eb}
.factors{width:100%;border-collapse:collapse}
.factors td{padding:5px 6px;font-size:.9rem;vertical-align:middle}
.phrase{width:44%}.pts{width:10%;text-align:right;font-variant-numeric:tabular-nums}
.axis{width:100%;display:flex}.half{width:50%;display:flex}.half.neg{justify-content:flex-end;border-right:1px solid #9aa5b1}
.bar{height:14px;border-radius:2px}.bar.pos{background:#2f9e44}.bar.neg{background:#e03131}
.meta{margin-top:18px;font-size:.8rem;color:#52606d}
.horizon{margin:0 0 16px;padding:8px 12px;border-left:4px solid #f08c00;background:#fff4e6;font-size:.9rem}
.never-seen{margin:0 0 16px;padding:8px 12px;border-left:4px solid #1c7ed6;background:#e7f5ff;font-size:.9rem}
.never-seen p{margin:0}.never-seen p+p{margin-top:6px}
"""


def _bar_row(factor: dict, largest: float) -> str:
    points = float(factor["points"])
    width = 100 * abs(points) / largest if largest else 0
    bar = f'<div class="bar {"pos" if points >= 0 else "neg"}" style="width:{width:.1f}%"></div>'
    negative, positive = ("", bar) if points >= 0 else (bar, "")
    return (
        f'<tr class="factor"><td class="phrase">{escape(str(factor["phrase"]))}</td>'
        f'<td><div class="axis"><div class="half neg">{negative}</div><div class="half">{positive}</div></div></td>'
        f'<td class="pts">{_points_text(points)}</td></tr>'
    )


def _points_text(points: float) -> str:
    """'+14 pts', '-1 pt': whole points as ``models.explain.shown_points`` rounds them."""
    whole = int(shown_points(points))
    return f"{whole:+d} pt{'' if abs(whole) == 1 else 's'}"


def render(score: dict, tiers: list[str], reason_spellings: Mapping[str, str] | None = None) -> str:
    """The score card of one lead.

    Args:
        score: a score-log row (``Store.latest_score``): lead_id, score, tier, probability,
            likely_rejection_reason (+ probability), factors, model_name, model_version, scored_at, and
            past_horizon_note for a lead past the label horizon and never_seen (CRM field -> value the model never
            saw in training), each worded above the factors.
        tiers: tier names best first, to show where the lead's tier sits.
        reason_spellings: how the serving model's training export spelled each reason code
            (``LeadScorer.reason_spellings``): the likely rejection reason reads "Ringing", "No budget".
    """
    # A score logged before the service listed factors by `moves_score` may hold 0-point ones: the same rule hides them.
    factors = [f for f in score.get("factors") or [] if moves_score(float(f["points"]))]
    factors.sort(key=lambda f: -float(f["points"]))
    largest = max((abs(float(f["points"])) for f in factors), default=0.0)
    rows = "".join(_bar_row(f, largest) for f in factors) or f'<tr id="no-factors"><td colspan="3">{NOTHING_STANDS_OUT}</td></tr>'
    reason = score.get("likely_rejection_reason")
    if reason:
        reason_p = score.get("likely_rejection_probability")
        reason_text = (escape(reason_in_words(str(reason), reason_spellings or {}))
                       + (f" ({reason_p:.0%} if rejected)" if reason_p is not None else ""))
    else:
        reason_text = "not predicted"
    note = score.get("past_horizon_note")
    notes = f'<p class="horizon" id="past-horizon">{escape(note)}</p>\n' if note else ""
    new_values = "".join(f"<p>{escape(phrases.never_seen(field, value))}</p>"
                         for field, value in (score.get("never_seen") or {}).items())
    notes += f'<div class="never-seen" id="never-seen">{new_values}</div>\n' if new_values else ""
    probability = float(score["probability"])  # past the horizon no chance of converting any more: a rank (the note says so)
    chance = (f'<div class="label">Ranks like</div><div id="chance">leads converting {probability:.0%}</div>' if note else
              f'<div class="label">Converts</div><div id="chance">{probability:.0%} of similar leads</div>')
    lead_id = escape(str(score["lead_id"]))
    scored_at = str(score.get("scored_at", ""))[:16]  # to the minute: "2025-12-31 10:00"
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Lead {lead_id}: score {int(score["score"])}</title>
<meta name="viewport" content="width=device-width,initial-scale=1"><style>{_STYLE}</style></head>
<body>
<h1>Lead {lead_id}</h1>
<div class="summary">
  <div><div class="label">Score</div><div class="score" id="score">{int(score["score"])}</div></div>
  <div><div class="label">Tier</div><div class="tier" id="tier">{escape(str(score["tier"]))}</div></div>
  <div>{chance}
       <div class="label" style="margin-top:8px">Likely rejection reason</div><div id="rejection">{reason_text}</div></div>
</div>
{notes}<table class="factors" aria-label="Factors behind the score">{rows}</table>
<div class="meta">Tiers best first: {escape(" > ".join(tiers))}. Scored {escape(scored_at)} UTC
by model {escape(str(score.get("model_name", "")))} version {escape(str(score.get("model_version", "")))}.</div>
</body></html>
"""


def notice(title: str, heading: str, text: str) -> str:
    """A short page in the card's style for a rep who gets no card: what happened and what to do."""
    return (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>'
        f'<meta name="viewport" content="width=device-width,initial-scale=1"><style>{_STYLE}</style></head>'
        f"<body><h1>{escape(heading)}</h1><p>{escape(text)}</p></body></html>\n"
    )


def not_found(lead_id: str) -> str:
    """The page for a lead the score log holds no score of: never scored, or its scores expired or erased."""
    return notice(f"Lead {lead_id}: no score", f"Lead {lead_id} has no score here",
                  "Scores appear here once the CRM has sent the lead to POST /score. A lead not scored for longer "
                  "than the service keeps scores, or one erased, has none until the CRM sends it again.")
