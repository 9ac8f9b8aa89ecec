"""Study pieces without training: Pareto flags by hand, grid validation, MATLAB/CSV shapes, the API's 4xx."""

from __future__ import annotations

import csv
import io

import pytest

from backend.app import create_app
from backend.jobconfig import ConfigError
from backend.jobs.studies import MAX_POINTS, expand_grid, study_state
from backend.metrics.matlab import matlab_problems
from backend.metrics.study import pareto_flags, study_csv, study_matlab, with_pareto

AXES = ("sparsity", "structural_ratio", "temperature", "alpha")


def test_pareto_flags_by_hand():
    # (accuracy, latency): B dominates D (more accurate and faster); A is fastest; C is most accurate;
    # E equals B (both stay); F is unmeasured
    points = [(0.90, 1.0), (0.95, 2.0), (0.99, 5.0), (0.94, 3.0), (0.95, 2.0), (None, 0.5)]
    assert pareto_flags(points) == [True, True, True, False, True, False]
    assert pareto_flags([(0.9, 2.0), (0.9, 1.0)]) == [False, True]  # same accuracy, slower: dominated
    assert pareto_flags([]) == []


def test_with_pareto_uses_latency_and_dense_size():
    rows = [
        {"accuracy": 0.9, "latency_batch_1_ms": 1.0, "model_size_mb": 9.0},
        {"accuracy": 0.95, "latency_batch_1_ms": 2.0, "model_size_mb": 1.0},
    ]
    flagged = with_pareto(rows)
    assert [r["pareto_latency"] for r in flagged] == [True, True]
    assert [r["pareto_size"] for r in flagged] == [False, True]


def test_expand_grid_orders_points_by_shared_student():
    axes, options, configs = expand_grid(
        {
            "model_name": "ResNet-18",
            "max_samples": 100,
            "grid": {"sparsity": [0.3, 0.5], "structural_ratio": [0.25, 0.5]},
        }
    )
    assert axes == {"sparsity": [0.3, 0.5], "structural_ratio": [0.25, 0.5]} and options["max_samples"] == 100
    assert [(c.structural_ratio, c.sparsity) for c in configs] == [(0.25, 0.3), (0.25, 0.5), (0.5, 0.3), (0.5, 0.5)]
    assert all(c.model_name == "resnet18" for c in configs)


@pytest.mark.parametrize(
    "grid, field",
    [
        ({"sparsity": [0.3]}, "grid.structural_ratio"),
        ({"sparsity": [], "structural_ratio": [0.5]}, "grid.sparsity"),
        ({"sparsity": [0.3, 0.3], "structural_ratio": [0.5]}, "grid.sparsity"),
        ({"sparsity": [0.3, 1.5], "structural_ratio": [0.5]}, "grid.sparsity"),
        ({"sparsity": [0.3], "structural_ratio": ["x"]}, "grid.structural_ratio"),
        ({"sparsity": [0.3], "structural_ratio": [0.5], "epochs": [1]}, "grid.epochs"),
        ({"sparsity": [0.1 * i for i in range(5)], "structural_ratio": [0.1 * i for i in range(5)]}, "grid"),
        ("nope", "grid"),
    ],
)
def test_bad_grids_name_the_value(grid, field):
    with pytest.raises(ConfigError) as info:
        expand_grid({"model_name": "resnet18", "grid": grid})
    assert info.value.field == field


def test_grid_axis_cannot_also_be_an_option():
    with pytest.raises(ConfigError) as info:
        expand_grid({"model_name": "resnet18", "sparsity": 0.2, "grid": {"sparsity": [0.3], "structural_ratio": [0.5]}})
    assert info.value.field == "sparsity"


def test_study_state():
    assert study_state(["queued", "queued"], False) == "queued"
    assert study_state(["succeeded", "queued"], False) == "running"
    assert study_state(["succeeded", "succeeded"], False) == "succeeded"
    assert study_state(["succeeded", "failed"], False) == "partial"
    assert study_state(["succeeded", "cancelled"], True) == "cancelled"
    assert study_state(["succeeded", "running"], True) == "cancelling"


def _rows():
    base = {"temperature": 3.0, "alpha": 0.7, "f1_macro": 0.9, "model_size_mb": 2.0, "teacher_accuracy": 0.99}
    rows = [
        {
            "index": 0,
            "job_id": "j0",
            "state": "succeeded",
            "sparsity": 0.3,
            "structural_ratio": 0.5,
            "accuracy": 0.97,
            "latency_batch_1_ms": 1.5,
            **base,
        },
        {
            "index": 1,
            "job_id": "j1",
            "state": "succeeded",
            "sparsity": 0.6,
            "structural_ratio": 0.5,
            "accuracy": 0.95,
            "latency_batch_1_ms": 1.2,
            **base,
        },
        {"index": 2, "job_id": "j2", "state": "cancelled", "sparsity": 0.3, "structural_ratio": 0.25},
    ]
    return with_pareto(rows)


def test_matlab_shapes_and_missing():
    data = study_matlab(_rows(), {"sparsity": [0.3, 0.6], "structural_ratio": [0.25, 0.5]}, AXES)
    assert matlab_problems({"matlab_data": data}) == []
    cols = data["columns"]
    assert len(data["points"]) == 2 and all(len(r) == len(cols) for r in data["points"])
    assert data["accuracy"] == [0.97, 0.95] and data["pareto_latency"] == [1, 1]
    assert "speedup_batch_1" in data["missing"] and "speedup_batch_1" not in cols
    assert all(isinstance(v, (int, float)) for row in data["points"] for v in row)


def test_csv_parses():
    rows = list(csv.DictReader(io.StringIO(study_csv(_rows(), AXES))))
    assert [r["job_id"] for r in rows] == ["j0", "j1", "j2"]
    assert rows[0]["accuracy"] == "0.97" and rows[2]["accuracy"] == "" and rows[0]["pareto_latency"] == "1"


@pytest.fixture()
def idle_app(tmp_path):
    app = create_app({"TESTING": True, "DATA_DIR": str(tmp_path / "data"), "START_WORKERS": False})
    yield app
    app.extensions["jobs"].shutdown()


def test_api_validates_before_submitting(idle_app):
    http = idle_app.test_client()
    res = http.post(
        "/studies", json={"model_name": "resnet18", "grid": {"sparsity": [0.3, 2.0], "structural_ratio": [0.5]}}
    )
    assert res.status_code == 400 and res.get_json()["error"]["field"] == "grid.sparsity"
    assert "2.0" in res.get_json()["error"]["message"]
    big = {"sparsity": [0.05 * i for i in range(1, 6)], "structural_ratio": [0.1 * i for i in range(1, 6)]}
    res = http.post("/studies", json={"model_name": "resnet18", "grid": big})
    assert res.status_code == 400 and str(MAX_POINTS) in res.get_json()["error"]["message"]
    assert (
        http.post(
            "/studies", json={"model_name": "nope", "grid": {"sparsity": [0.3], "structural_ratio": [0.5]}}
        ).status_code
        == 400
    )
    assert http.get("/jobs").get_json()["count"] == 0  # nothing submitted
    assert http.get("/studies/study_x").status_code == 404
    assert http.get("/matlab_metrics?study_id=study_x").status_code == 404
    assert http.get("/visualize?kind=pareto&study_id=study_x").status_code == 404


def test_api_queues_cancels_and_deletes(idle_app):
    http = idle_app.test_client()
    res = http.post(
        "/studies",
        json={
            "model_name": "resnet18",
            "max_samples": 100,
            "grid": {"sparsity": [0.3, 0.5], "structural_ratio": [0.5]},
        },
    )
    assert res.status_code == 202
    study_id, job_ids = res.get_json()["study_id"], res.get_json()["job_ids"]
    assert {j["id"] for j in http.get("/jobs").get_json()["jobs"]} == set(job_ids)
    detail = http.get(f"/studies/{study_id}").get_json()
    assert detail["state"] == "queued" and detail["points_total"] == 2 and detail["points_done"] == 0
    assert [r["sparsity"] for r in detail["rows"]] == [0.3, 0.5]
    assert http.delete(f"/studies/{study_id}").status_code == 409
    assert http.get(f"/studies/{study_id}?format=csv").mimetype == "text/csv"
    assert http.get(f"/visualize?kind=pareto&study_id={study_id}").data[:4] == b"\x89PNG"
    assert http.get(f"/visualize?kind=overview&study_id={study_id}").status_code == 400
    cancelled = http.post(f"/studies/{study_id}/cancel").get_json()
    assert cancelled["state"] == "cancelled" and cancelled["points_done"] == 2
    assert http.get("/studies").get_json()["studies"][0]["study_id"] == study_id
    assert http.delete(f"/studies/{study_id}").status_code == 200
    assert http.get(f"/studies/{study_id}").status_code == 404


def test_cli_study_arguments_and_files(tmp_path, capsys):
    import json as _json

    from backend import cli
    from backend.study_cli import body_from_args, parse_args, write_study_files

    args = parse_args(
        [
            "--model",
            "resnet18",
            "--sparsity",
            "0.3,0.5,0.7",
            "--structural-ratio",
            "0.25,0.5",
            "--max-samples",
            "100",
            "--epochs",
            "1",
        ]
    )
    body = body_from_args(args)
    assert body["grid"] == {"sparsity": [0.3, 0.5, 0.7], "structural_ratio": [0.25, 0.5]}
    assert body["max_samples"] == 100 and body["epochs"] == 1 and "temperature" not in body
    assert cli.main(["study", "--model", "resnet18", "--sparsity", "0.3,0.3", "--structural-ratio", "0.5"]) == 2
    assert "duplicate" in capsys.readouterr().err
    write_study_files(_rows(), {"sparsity": [0.3, 0.6], "structural_ratio": [0.25, 0.5]}, tmp_path, "resnet18")
    assert _json.loads((tmp_path / "matlab_study.json").read_text())["matlab_data"]["accuracy"] == [0.97, 0.95]
    assert len((tmp_path / "study.csv").read_text().splitlines()) == 4
    assert (tmp_path / "plots" / "pareto.png").read_bytes()[:4] == b"\x89PNG"
    assert (tmp_path / "plots" / "study_sparsity.png").read_bytes()[:4] == b"\x89PNG"


def test_benchmark_section_is_spliced_and_kept():
    from benchmarks.study import BEGIN, END, keep_section, render, splice

    results = {
        "started_at": "now",
        "environment": {"cpu": "x", "torch_threads": 1},
        "options": {},
        "study_s": 30.0,
        "separate_s": 100.0,
        "workers_s": {"1": 30.0, "2": 20.0},
        "rows": _rows(),
    }
    section = render(results)
    assert section.startswith(BEGIN) and section.rstrip().endswith(END)
    assert "**30%**" in section and "met" in section and "Two workers / one: 67%" in section
    doc = splice("# Benchmarks\n\nold text\n", section)
    assert doc.count(BEGIN) == 1 and "old text" in doc
    assert splice(doc, section.replace("**30%**", "**31%**")).count(BEGIN) == 1
    assert keep_section(doc, "# Benchmarks\n\nnew text\n").count("**30%**") == 1


def test_rewriting_benchmarks_md_keeps_every_other_scripts_section_with_its_markers():
    """python -m benchmarks rewrites the file: every marked section (study, deployment, evidence, ...) survives
    whole, markers included, and so do the unmarked `## ` sections it does not render."""
    from benchmarks.__main__ import keep_other_sections

    marked = {
        "evidence": "<!-- evidence benchmark: begin -->\n## Evidence\n\nkd_gain +0.1\n<!-- evidence benchmark: end -->",
        "deployment": "<!-- deployment:begin -->\n## Deployment\n\n2.1x\n<!-- deployment:end -->",
        "pruning": "<!-- pruning methods benchmark: begin -->\n## Pruning\n\n1.5x\n<!-- pruning methods benchmark: end -->",
    }
    old = "# Benchmarks\n\n## Compression results\n\nold row\n\n" + "\n\n".join(marked.values())
    old += "\n\n## Memory\n\n44 MB\n"
    out = keep_other_sections(old, "# Benchmarks\n\n## Compression results\n\nnew row\n")
    assert "new row" in out and "old row" not in out
    for section in marked.values():
        assert out.count(section) == 1
    assert out.count("## Memory") == 1 and "44 MB" in out
    assert out.index(marked["evidence"]) < out.index(marked["deployment"]) < out.index(marked["pruning"])


def test_a_full_queue_refuses_the_whole_study(idle_app):
    idle_app.config["MAX_QUEUED_JOBS"] = 1
    http = idle_app.test_client()
    body = {"model_name": "resnet18", "grid": {"sparsity": [0.3, 0.5], "structural_ratio": [0.25, 0.5]}}
    first = http.post("/studies", json=body)
    assert first.status_code == 202 and len(first.get_json()["job_ids"]) == 4  # admitted whole, past the cap
    second = http.post("/studies", json=body)
    assert second.status_code == 429 and second.get_json()["error"]["code"] == "queue_full"
    assert http.get("/jobs").get_json()["count"] == 4  # refused whole: nothing of it queued


def test_a_study_is_admitted_only_if_all_its_points_fit(idle_app):
    idle_app.config["MAX_QUEUED_JOBS"] = 5
    http = idle_app.test_client()
    small = {"model_name": "resnet18", "grid": {"sparsity": [0.3, 0.5], "structural_ratio": [0.25]}}
    assert http.post("/studies", json=small).status_code == 202  # 2 waiting
    big = {"model_name": "resnet18", "grid": {"sparsity": [0.3, 0.5], "structural_ratio": [0.25, 0.5]}}
    res = http.post("/studies", json=big)  # 2 + 4 > 5
    assert res.status_code == 429 and res.get_json()["error"]["code"] == "queue_full"
    assert (
        http.post(
            "/studies", json={**big, "grid": {"sparsity": [0.3, 0.5, 0.7], "structural_ratio": [0.25]}}
        ).status_code
        == 202
    )  # 2 + 3 fit
    assert http.get("/jobs").get_json()["count"] == 5
    bad = http.post("/studies", json={**small, "grid": {"sparsity": [7]}})  # a bad grid is a 400 before the cap
    assert bad.status_code == 400


def _fake_runner(config, callbacks, *, job_id, out_dir, cache_dir, upload_dir):
    """A scripted job: a report with the figures a study row reads; sparser is less accurate and faster."""
    from tests.fake_jobs import finished

    perf = {
        "accuracy": 1.0 - config.sparsity / 10,
        "f1_macro": 0.9,
        "model_size_mb": 4.0,
        "latency_ms": {"batch_1": {"median_ms": 1.0 - config.sparsity}},
    }
    return finished(out_dir, {"student_model_performance": perf, "metadata": {}})


def test_watcher_emits_one_study_progress_per_point(tmp_path):
    import time as _time

    from backend.jobs import JobManager
    from backend.jobs.studies import StudyService, StudyStore

    manager = JobManager(tmp_path, tmp_path / "uploads", start=False, runner=_fake_runner)
    service = StudyService(manager, StudyStore(tmp_path / "jobs.sqlite3"))
    events: list[dict] = []
    service.add_listener(events.append)
    service.start_watching(interval_s=0.05)
    try:
        study = service.create({"model_name": "resnet18", "grid": {"sparsity": [0.2, 0.4], "structural_ratio": [0.5]}})
        assert manager.run_next() and manager.run_next()
        deadline = _time.monotonic() + 10
        while len(events) < 2 and _time.monotonic() < deadline:
            _time.sleep(0.05)
        assert [e["points_done"] for e in events] == [1, 2] and events[-1]["state"] == "succeeded"
        assert {e["latest"]["job_id"] for e in events} == set(study.job_ids)
        assert events[-1]["points_total"] == 2 and events[-1]["latest"]["accuracy"] in (0.98, 0.96)
        rows = service.detail(study)["rows"]
        assert [r["pareto_latency"] for r in rows] == [True, True]  # more accurate is slower: both optimal
        _time.sleep(0.2)
        assert len(events) == 2  # nothing more once the study has ended
    finally:
        service.stop_watching()
        manager.shutdown()


def test_a_new_study_whose_points_end_before_the_first_poll_is_still_reported(tmp_path):
    """The watcher's first look may come after every point ended (a loaded machine): still one event a point."""
    from backend.jobs import JobManager
    from backend.jobs.studies import StudyService, StudyStore, _StudyWatcher

    manager = JobManager(tmp_path, tmp_path / "uploads", start=False, runner=_fake_runner)
    service = StudyService(manager, StudyStore(tmp_path / "jobs.sqlite3"))
    events: list[dict] = []
    service.add_listener(events.append)
    watcher = _StudyWatcher(service, interval_s=0.05)  # not started: polled by hand below
    try:
        study = service.create({"model_name": "resnet18", "grid": {"sparsity": [0.2, 0.4], "structural_ratio": [0.5]}})
        watcher.watch(study)
        assert manager.run_next() and manager.run_next()
        watcher._check(study.id, watcher._active[study.id])
        assert [e["points_done"] for e in events] == [1, 2] and events[-1]["state"] == "succeeded"
        ended = _StudyWatcher(service, interval_s=0.05)  # a restarted server finds the study already ended
        ended.watch(study, existing=True)
        ended._check(study.id, ended._active[study.id])
        assert len(events) == 2
    finally:
        manager.shutdown()


def _seed_runs() -> list[dict]:
    """Two grid points x three seeds: point 0 clearly better and faster than point 1; point 2 close to point 0."""
    runs = []
    figures = {0: ([0.90, 0.91, 0.92], [1.0, 1.1, 0.9]), 1: ([0.70, 0.72, 0.71], [2.0, 2.1, 1.9]),
               2: ([0.895, 0.905, 0.915], [1.05, 1.15, 0.95])}  # fmt: skip
    for point, (accs, lats) in figures.items():
        for seed, (acc, lat) in enumerate(zip(accs, lats, strict=True)):
            runs.append({"index": len(runs), "point": point, "seed": seed, "job_id": f"j{point}{seed}",
                         "state": "succeeded", "sparsity": 0.3 * (point + 1), "structural_ratio": 0.5,
                         "accuracy": acc, "latency_batch_1_ms": lat, "model_size_mb": 5.0 - point})  # fmt: skip
    return runs


def test_seeds_are_aggregated_to_means_with_t_intervals_and_the_frontier_uses_means():
    from backend.metrics.study import aggregate_seeds

    rows = with_pareto(aggregate_seeds(_seed_runs(), AXES))
    assert [r["n_seeds"] for r in rows] == [3, 3, 3] and rows[0]["seeds"] == [0, 1, 2]
    assert rows[0]["accuracy"] == pytest.approx(0.91) and rows[0]["accuracy_std"] == pytest.approx(0.01)
    low, high = rows[0]["accuracy_ci"]
    assert low == pytest.approx(0.91 - 4.302653 * 0.01 / 3**0.5, abs=1e-6) and high > 0.91
    assert [r["pareto_latency"] for r in rows] == [True, False, False]  # point 0's means dominate both
    # point 0 vs point 1: apart; point 0 vs point 2: both intervals overlap -> not separable
    assert rows[0]["separable_latency"] is False and rows[0]["separable"] is False
    two = with_pareto(aggregate_seeds([r for r in _seed_runs() if r["point"] != 2], AXES))
    assert two[0]["separable_latency"] is True


def test_study_seeds_validated_and_expanded():
    axes, options, configs = expand_grid(
        {"model_name": "resnet18", "seeds": [0, 1, 2], "grid": {"sparsity": [0.3, 0.5], "structural_ratio": [0.5]}}
    )
    assert [c.seed for c in configs] == [0, 0, 1, 1, 2, 2] and options["seeds"] == [0, 1, 2]
    for bad, field in (([0, 0], "seeds"), ([], "seeds"), (list(range(6)), "seeds"), ([-1], "seeds"), ("0", "seeds")):
        with pytest.raises(ConfigError) as exc:
            expand_grid(
                {"model_name": "resnet18", "seeds": bad, "grid": {"sparsity": [0.3], "structural_ratio": [0.5]}}
            )
        assert exc.value.field == field
    with pytest.raises(ConfigError, match="not both"):
        expand_grid(
            {"model_name": "resnet18", "seed": 1, "seeds": [0], "grid": {"sparsity": [0.3], "structural_ratio": [0.5]}}
        )
    with pytest.raises(ConfigError, match="jobs"):
        expand_grid({"model_name": "resnet18", "seeds": [0, 1, 2, 3, 4],
                     "grid": {"sparsity": [0.1, 0.2, 0.3, 0.4, 0.5], "structural_ratio": [0.5]}})  # fmt: skip


def test_seeded_study_csv_and_matlab_carry_the_spread():
    from backend.metrics.study import aggregate_seeds

    rows = with_pareto(aggregate_seeds(_seed_runs(), AXES))
    table = list(csv.DictReader(io.StringIO(study_csv(rows, AXES))))
    assert float(table[0]["accuracy"]) == pytest.approx(0.91) and float(table[0]["accuracy_std"]) == pytest.approx(0.01)
    assert (
        float(table[0]["accuracy_ci_low"]) < 0.91 < float(table[0]["accuracy_ci_high"]) and table[0]["n_seeds"] == "3"
    )
    data = study_matlab(rows, {"sparsity": [0.3, 0.6, 0.9], "structural_ratio": [0.5]}, AXES)
    assert matlab_problems({"matlab_data": data}) == []
    assert data["accuracy_ci_low"][0] < data["accuracy"][0] < data["accuracy_ci_high"][0]
    assert data["separable_latency"] == [0, -1, -1]
