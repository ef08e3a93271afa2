"""Signed score-card links: what a rep's browser sends back must verify, for that lead and until expiry."""

from __future__ import annotations

from urllib.parse import unquote, urlsplit

import pytest

from serving.security import _card_link_problem, card_link, card_link_key

KEY = card_link_key("the-api-key")
NOW = 1_800_000_000


def _as_received(link: str) -> tuple[str, bytes]:
    """(path, query) as an ASGI server hands them over: the path percent-decoded, the query raw."""
    parts = urlsplit(link)
    return unquote(parts.path), parts.query.encode()


@pytest.mark.parametrize("lead_id", ["L0000042", "lead 7 (Zürich)", "a+b&c=d?e#f", "00Q5g000004xYz", "a/b", "../model"])
def test_a_link_verifies_for_its_own_lead_whatever_characters_the_crm_id_holds(lead_id):
    link = card_link(KEY, lead_id, NOW + 60)
    path, query = _as_received(link)
    # An id holding "/" goes in the query: proxies refuse or resolve a %2F in a path (test_scorecard).
    assert path == ("/leads/" if "/" in lead_id else f"/leads/{lead_id}") and "%2F" not in urlsplit(link).path
    assert _card_link_problem(KEY, path, query, NOW) is None


def test_a_link_under_the_public_url_is_a_full_link_that_verifies_where_the_proxy_forwards_it():
    link = card_link(KEY, "lead 7", NOW + 60, "https://crm.example.com/leadscore")
    assert link.startswith("https://crm.example.com/leadscore/leads/lead%207?expires=")
    path, query = _as_received(link.removeprefix("https://crm.example.com/leadscore"))
    assert _card_link_problem(KEY, path, query, NOW) is None
    assert card_link(KEY, "L1", NOW, None).startswith("/leads/L1?")  # no public URL: a path on the service


def test_a_link_is_refused_for_another_lead_after_expiry_or_under_another_api_key():
    path, query = _as_received(card_link(KEY, "L1", NOW + 60))
    assert "not valid for this lead" in _card_link_problem(KEY, "/leads/L2", query, NOW).message
    assert "expired on" in _card_link_problem(KEY, path, query, NOW + 61).message
    assert "not valid" in _card_link_problem(card_link_key("a-new-api-key"), path, query, NOW).message
    assert "not valid" in _card_link_problem(KEY, path, b"expires=never&signature=x", NOW).message


@pytest.mark.parametrize("expires", ["%C2%B2", "-5", "1e9", ""])
def test_an_expiry_that_is_not_plain_digits_is_refused_as_not_valid(expires):
    """"²" passes str.isdigit() but not int(): it was a 500 after the request timeout."""
    assert "not valid" in _card_link_problem(KEY, "/leads/C1", f"expires={expires}&signature=abc".encode(), NOW).message
