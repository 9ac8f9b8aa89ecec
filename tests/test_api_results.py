"""Results endpoints before any job has finished: clear 404s, 409s and 400s."""

from __future__ import annotations

import pytest

from backend.app import create_app


@pytest.fixture()
def client(tmp_path):
    app = create_app({"TESTING": True, "DATA_DIR": str(tmp_path / "data"), "START_WORKERS": False})
    yield app.test_client()
    app.extensions["jobs"].shutdown()


@pytest.mark.parametrize(
    "method, url",
    [
        ("get", "/evaluate"),
        ("get", "/matlab_metrics"),
        ("get", "/matlab_metrics?all=1"),
        ("get", "/download"),
        ("post", "/visualize"),
        ("get", "/evaluate?model_name=t5"),
    ],
)
def test_no_results_yet_is_a_clear_404(client, method, url):
    kwargs = {"json": {"kind": "effectiveness"}} if method == "post" else {}
    res = getattr(client, method)(url, **kwargs)
    assert res.status_code == 404
    error = res.get_json()["error"]
    assert error["code"] == "no_results" and "POST /train" in error["message"]


def test_unfinished_job_is_409_and_unknown_404(client):
    job_id = client.post("/train", json={"model_name": "resnet18"}).get_json()["job_id"]
    for url in (f"/evaluate?job_id={job_id}", f"/matlab_metrics?job_id={job_id}", f"/download?job_id={job_id}"):
        res = client.get(url)
        assert res.status_code == 409 and res.get_json()["error"]["state"] == "queued"
    res = client.post("/visualize", json={"job_id": job_id, "kind": "efficiency"})
    assert res.status_code == 409
    assert client.get("/evaluate?job_id=job_nope").status_code == 404
    assert client.get("/download?job_id=job_nope").status_code == 404


def test_visualize_lists_kinds(client):
    from backend.metrics.plots import PLOT_KINDS

    res = client.post("/visualize", json={"kind": "pie"})
    assert res.status_code == 400
    assert all(kind in res.get_json()["error"]["message"] for kind in PLOT_KINDS)
    assert client.post("/visualize", json={}).status_code == 404  # no kind: the overview, of no job yet
    assert client.post("/visualize", data="nope", content_type="application/json").status_code == 400
    assert client.get("/evaluate?model_name=gpt2").status_code == 400


def test_visualize_without_kind_is_the_overview_png(tmp_path, one_torch_thread):
    from backend.metrics.plots import PLOT_KINDS, render_plot
    from tests.fake_jobs import finished
    from tests.test_metrics_report import realistic_report

    def runner(config, callbacks, *, job_id, out_dir, cache_dir, upload_dir):
        report = realistic_report()  # the overview drawn from a real report, as the pipeline draws it
        return finished(out_dir, report, {"plots/overview": ("plots/overview.png", render_plot(report, "overview"))})

    app = create_app({"TESTING": True, "DATA_DIR": str(tmp_path / "data"), "START_WORKERS": False})
    try:
        app.extensions["jobs"]._runner = runner
        client = app.test_client()
        job_id = client.post("/train", json={"model_name": "resnet18"}).get_json()["job_id"]
        app.extensions["jobs"].run_next()
        for res in (
            client.post("/visualize", json={}),
            client.post("/visualize"),
            client.get(f"/visualize?job_id={job_id}"),
        ):
            assert res.status_code == 200 and res.mimetype == "image/png"
            assert res.data.startswith(b"\x89PNG") and len(res.data) > 20_000  # four panels drawn
            assert "overview" in res.headers["Content-Disposition"]
        assert client.get("/visualize?kind=pie").status_code == 400
        # What the job did not write is a 404 naming it, never drawn or computed afresh from the report.
        other = next(kind for kind in PLOT_KINDS if kind != "overview")
        for res in (client.get(f"/visualize?kind={other}"), client.get("/matlab_metrics")):
            assert res.status_code == 404 and res.get_json()["error"]["code"] == "artifact_missing"
        assert set(client.get("/evaluate").get_json()) == set(realistic_report())  # the report.json it wrote
    finally:
        app.extensions["jobs"].shutdown()
