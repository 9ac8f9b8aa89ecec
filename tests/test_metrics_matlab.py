"""MATLAB data: valid identifiers, numeric [teacher, student] pairs, equal-length numeric series; CSV."""

from __future__ import annotations

import copy
import csv
import io
import json
import math
import re

import pytest

from backend.metrics.matlab import (
    GROUPS,
    matlab_all_models,
    matlab_data,
    matlab_identifier,
    matlab_problems,
    metrics_csv,
    pair_rows,
)
from backend.metrics.report import build_report
from tests.test_metrics_report import realistic_ctx, realistic_report

pytestmark = pytest.mark.usefixtures("one_torch_thread")


IDENT = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,62}$")


def is_number(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def decodes_to_array(values: list) -> bool:
    """What jsondecode turns into a plain array (not a cell array): all numbers, all strings, or a numeric matrix."""
    if all(is_number(v) for v in values) or all(isinstance(v, str) for v in values):
        return True
    rows = [v for v in values if isinstance(v, list)]
    return (
        len(rows) == len(values)
        and all(all(is_number(x) for x in r) for r in rows)
        and len({len(r) for r in rows}) <= 1
    )


def walk(obj, path="d"):
    """Every key valid, no nulls or non-finite numbers, every list decodes to an array; returns problems."""
    problems = []
    if isinstance(obj, dict):
        for key, value in obj.items():
            if not IDENT.match(key):
                problems.append(f"{path}: bad field {key!r}")
            problems += walk(value, f"{path}.{key}")
    elif isinstance(obj, list):
        if not decodes_to_array(obj):
            problems.append(f"{path}: list would decode to a cell array")
    elif obj is None or (isinstance(obj, float) and not math.isfinite(obj)):
        problems.append(f"{path}: null or non-finite")
    return problems


def series_structs(obj, path="d"):
    """(path, struct) for every struct holding lists: parallel series that must have equal lengths."""
    found = []
    if isinstance(obj, dict):
        lists = {k: v for k, v in obj.items() if isinstance(v, list)}
        if lists:
            found.append((path, lists))
        for key, value in obj.items():
            found += series_structs(value, f"{path}.{key}")
    return found


def check_single(data: dict) -> None:
    assert walk(data) == [] and matlab_problems(data) == []
    assert data["labels"] == ["teacher", "student"]
    for group in GROUPS:
        assert data[group], group
        for field, pair in data[group].items():
            assert isinstance(pair, list) and len(pair) == 2 and all(is_number(v) for v in pair), (group, field)
    assert all(is_number(v) for v in data["comparison"].values())
    for section in ("training", "pruning"):
        for path, lists in series_structs(data[section], section):
            lengths = {len(v) for v in lists.values()}
            assert len(lengths) == 1, (path, {k: len(v) for k, v in lists.items()})
    assert all(isinstance(v, str) and v for v in data["missing"].values())
    json.dumps(data, allow_nan=False)


def test_single_model_meets_every_rule():
    report = realistic_report()
    data = matlab_data(report)
    check_single(data)
    assert data["model_name"] == "resnet18"
    acc = report["teacher_vs_student_comparison"]["effectiveness"]["accuracy"]
    assert data["effectiveness"]["accuracy"] == [acc["teacher"], acc["student"]]
    assert data["efficiency"]["latency_median_ms_batch_1"][1] > 0
    history = realistic_ctx()["history"]["distill"]
    assert data["training"]["distill"]["kd_loss"] == [r["kd_loss"] for r in history]
    assert data["training"]["distill"]["step"] == [r["step"] for r in history]
    assert "kd_loss" not in data["training"]["teacher"] and "training_teacher_kd_loss" in data["missing"]
    steps = data["pruning"]["steps"]
    assert steps["step"] == [1, 2] and len(steps["val_accuracy"]) == len(steps["achieved_sparsity"]) == 2
    assert len(data["pruning"]["layers"]["name"]) == len(data["pruning"]["layers"]["sparsity"]) > 0
    assert "comparison_mean_kl" in data["missing"]  # the test job gave mean_kl null with a reason


def test_unknown_values_are_left_out_and_listed():
    ctx = realistic_ctx()
    ctx["measurements"]["student"]["efficiency"]["memory"]["param_buffer_mb"] = float("nan")
    ctx["history"]["distill"][3]["ce_loss"] = None
    data = matlab_data(build_report(ctx))
    check_single(data)
    assert "param_buffer_mb" not in data["efficiency"] and "efficiency_param_buffer_mb" in data["missing"]
    assert "ce_loss" not in data["training"]["distill"] and "training_distill_ce_loss" in data["missing"]
    assert len(data["training"]["distill"]["loss"]) == len(ctx["history"]["distill"])


def test_all_models_form():
    report = realistic_report()
    other = copy.deepcopy(report)
    other["metadata"]["model"]["id"] = "t5-small"
    data = matlab_all_models({"resnet18": report, "t5-small": other})
    assert walk(data) == [] and matlab_problems(data) == []
    assert data["model_fields"] == ["resnet18", "t5_small"] and data["model_ids"] == ["resnet18", "t5-small"]
    for field in data["model_fields"]:
        check_single(data["models"][field])
    assert data["pairs"]
    for field, matrix in data["pairs"].items():
        assert len(matrix) == 2 and all(len(row) == 2 and all(is_number(v) for v in row) for row in matrix), field
    assert all(len(v) == 2 and all(is_number(x) for x in v) for v in data["comparison"].values())
    assert data["pairs"]["accuracy"][0] == data["models"]["resnet18"]["effectiveness"]["accuracy"]
    assert matlab_all_models({})["models"] == {}


def test_identifiers():
    assert matlab_identifier("t5-small") == "t5_small"
    assert matlab_identifier("3d.conv") == "x3d_conv"
    assert IDENT.match(matlab_identifier("a" * 80))


def test_csv_rows_match_the_report():
    report = realistic_report()
    rows = list(csv.reader(io.StringIO(metrics_csv(report))))
    assert rows[0] == ["metric", "unit", "teacher", "student", "student_int8"]
    assert len(rows) == 1 + len(pair_rows(report))
    by_metric = {r[0]: r for r in rows[1:]}
    acc = report["teacher_vs_student_comparison"]["effectiveness"]["accuracy"]
    assert by_metric["effectiveness.accuracy"][1] == "fraction"
    assert float(by_metric["effectiveness.accuracy"][3]) == pytest.approx(acc["student"])
    assert by_metric["efficiency.model_size_mb"][1] == "MB"
