"""The dashboard's study section: served with the page, its script present and offline."""

from __future__ import annotations

from backend.api import dashboard


def test_study_section_and_script_are_served(client):
    html = client.get("/").get_data(as_text=True)
    for marker in (
        'id="study-form"',
        'id="study-chart"',
        'id="study-table"',
        '<script type="module" src="studies.js"></script>',
    ):
        assert marker in html
    res = client.get("/static/dashboard/studies.js")
    assert res.status_code == 200 and "javascript" in res.mimetype
    res.close()
    script = (dashboard.STATIC_DIR / "dashboard" / "studies.js").read_text(encoding="utf-8")
    assert "https://" not in script and "cdn" not in script.lower()
    for call in ("'/studies'", "study_progress", "pareto_latency", "/cancel"):
        assert call in script


def test_study_script_reads_seeds_intervals_and_noise_marks():
    """Studies with seeds: the form sends `seeds` (checked against the `seed` option), rows are grid points with
    means, `<metric>_std` and `<metric>_ci`, n_seeds / n_succeeded and separable flags; progress counts jobs."""
    script = (dashboard.STATIC_DIR / "dashboard" / "studies.js").read_text(encoding="utf-8")
    for word in (
        "body.seeds",
        "byName.seed",
        "_ci`]",
        "_std`]",
        "n_seeds",
        "n_succeeded",
        "separable_latency",
        "separable_size",
        "grid_points",
        "within noise",
        "'job'",
        "errorbar",
    ):
        assert word in script, word
    assert "pct2" not in script
    html = (dashboard.STATIC_DIR / "dashboard" / "index.html").read_text(encoding="utf-8")
    assert 'id="study-note"' in html
    assert 'data-state="partial"' in (dashboard.STATIC_DIR / "dashboard" / "dashboard.css").read_text(encoding="utf-8")
