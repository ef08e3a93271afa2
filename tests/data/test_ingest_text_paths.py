"""A CSV export (Arrow-backed text) and a JSON request (Python objects) validate to the same rows.

prepare_table takes a fast Arrow path for text read from files and a numpy path for request rows;
dates in plain ISO 8601 take Arrow's cast, anything else pandas' parser. Whichever path a value
takes, the contract frame and the problems must be the same.
"""

from __future__ import annotations

import io

import pandas as pd
import pytest

from pipelines.config import DataParams
from pipelines.ingest import prepare_table

DATA = DataParams(leads="unused", missing_values=["", "Select", "N/A"])
CSV = (
    "lead_id,created_at,industry,country,employees\n"
    "L1,2024-03-01 08:00:00,\u00a0Select ,NA,12\n"  # a no-break space around a missing marker
    "L2,2024-03-01,software, N/A\t,\n"
    "L3,2024-03-01T08:00:00.5,Retail,DE,about 50\n"
    "L4,yesterday,retail,FR,7\n"
)


def from_csv() -> pd.DataFrame:
    return pd.read_csv(io.StringIO(CSV), dtype=str, keep_default_na=False, na_values=[""])


def test_csv_text_and_request_objects_give_the_same_rows_and_problems():
    csv = from_csv()
    request = csv.astype(object).where(csv.notna(), None)

    from_file, file_problems = prepare_table(csv, "leads", DATA, "leads.csv")
    from_request, request_problems = prepare_table(request, "leads", DATA, "leads.csv")

    pd.testing.assert_frame_equal(from_file, from_request)
    assert file_problems == request_problems
    assert [(p.row, p.column, p.kind) for p in file_problems] == [
        (4, "created_at", "unparsable_date"), (3, "employees", "bad_number")
    ]
    assert from_file["industry"].isna().tolist() == [True, False]  # "\u00a0Select " is not answered
    assert from_file["country"].tolist()[0] == "NA" and pd.isna(from_file["country"].tolist()[1])


@pytest.mark.parametrize("make", [from_csv, lambda: from_csv().astype(object)], ids=["csv", "request"])
def test_plain_iso_dates_equal_what_pandas_parses(make):
    raw = make().drop(index=3)
    leads, problems = prepare_table(raw, "leads", DATA)

    expected = pd.to_datetime(raw["created_at"], format="mixed").astype("datetime64[us]")
    assert problems[0].kind == "bad_number"  # L3's employees; its date is fine
    pd.testing.assert_series_equal(
        leads["created_at"], expected.drop(index=2), check_names=False
    )


def test_zone_offsets_and_other_layouts_still_parse_to_naive_utc():
    raw = pd.DataFrame(
        {
            "lead_id": ["a", "b", "c", "d"],
            "created_at": ["2024-03-01T10:00:00+02:00", "2024-03-01 08:00:00", "2024-03-01T08:00:00Z",
                           "03/01/2024 08:00"],
        },
        dtype="str",
    )
    leads, problems = prepare_table(raw, "leads", DATA.model_copy(update={"day_first": False}))  # 03/01 is March 1

    assert problems == []
    assert leads["created_at"].dtype == "datetime64[us]"
    assert (leads["created_at"] == pd.Timestamp("2024-03-01 08:00")).all()
