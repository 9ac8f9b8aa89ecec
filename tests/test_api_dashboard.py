"""GET /: the dashboard page."""
from __future__ import annotations


def test_dashboard_is_html_that_reads_jobs(client):
    res = client.get("/")
    assert res.status_code == 200 and res.mimetype == "text/html"
    page = res.get_data(as_text=True)
    assert "/openapi.json" in page and "fetch('/jobs" in page and "<script src" not in page  # no external scripts
