"""The data contract: canonical tables every CRM export is mapped onto.

One place names the columns; ingest validates against it, the synthetic CRM writes it, features
read it. Columns beyond the contract are kept on `leads` (custom features may use them).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TableSpec:
    name: str
    required: tuple[str, ...]
    optional: tuple[str, ...] = ()
    dates: tuple[str, ...] = ()
    numeric: tuple[str, ...] = ()
    key: str | None = None  # unique per row when set

    @property
    def columns(self) -> tuple[str, ...]:
        return self.required + self.optional


LEADS = TableSpec(
    name="leads",
    required=("lead_id", "created_at"),
    optional=(
        "email",
        "phone",
        "company",
        "industry",
        "employees",
        "country",
        "job_title",
        "lead_source",
        "campaign",
    ),
    dates=("created_at",),
    numeric=("employees",),
    key="lead_id",
)

ACTIVITIES = TableSpec(
    name="activities",
    required=("lead_id", "occurred_at", "activity"),
    optional=("detail",),
    dates=("occurred_at",),
)

OUTCOMES = TableSpec(
    name="outcomes",
    required=("lead_id", "status"),
    optional=("reason", "decided_at", "amount"),
    dates=("decided_at",),
    numeric=("amount",),
    key="lead_id",
)

TABLES = {spec.name: spec for spec in (LEADS, ACTIVITIES, OUTCOMES)}

# The rejection reason codes sales uses in the synthetic CRM and the default params.yaml.
REASON_CODES = (
    "not_decision_maker",
    "no_budget",
    "bad_timing",
    "competitor",
    "unresponsive",
    "student",
    "invalid_contact",
    "duplicate",
)
