"""Every plot kind renders a valid PNG, also for a run without pruning steps; unknown kinds are refused."""

from __future__ import annotations

import io
import threading

import pytest
from PIL import Image

from backend.metrics.plots import PLOT_KINDS, render_plot
from tests.test_metrics_report import realistic_report

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def assert_png(data: bytes) -> None:
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    image = Image.open(io.BytesIO(data))
    image.verify()
    assert image.format == "PNG" and image.size[0] > 100 and image.size[1] > 100


@pytest.mark.parametrize("kind", PLOT_KINDS)
def test_each_kind_is_a_png(kind):
    assert_png(render_plot(realistic_report(), kind))


def test_run_without_pruning_or_history_still_renders():
    report = realistic_report()
    report["pruning_analysis"]["steps"] = []
    report["pruning_analysis"]["per_layer_sparsity"] = {}
    for series in report["knowledge_distillation_analysis"]["loss_history"].values():
        series["rows"] = 0
    for kind in ("accuracy_vs_sparsity", "layer_sparsity", "loss_curves"):
        assert_png(render_plot(report, kind))


def test_sizes_missing_at_pruning_steps_still_render():
    report = realistic_report()
    for step in report["pruning_analysis"]["steps"]:
        step["compressed_size_mb"] = None
    assert_png(render_plot(report, "accuracy_vs_sparsity"))


def test_unknown_kind_lists_the_valid_ones():
    with pytest.raises(ValueError) as info:
        render_plot(realistic_report(), "pie")
    assert all(kind in str(info.value) for kind in PLOT_KINDS)


def test_threads_render_at_once():
    report, results = realistic_report(), []
    threads = [threading.Thread(target=lambda k=k: results.append(render_plot(report, k))) for k in PLOT_KINDS[:4]]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 4
    for png in results:
        assert_png(png)
