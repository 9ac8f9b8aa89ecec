"""Shared fixtures: an app on a temporary data directory, and its test client."""

from __future__ import annotations

import gc

import pytest
import torch

from backend.app import create_app


@pytest.fixture()
def app(tmp_path):
    app = create_app({"TESTING": True, "DATA_DIR": str(tmp_path / "data")})
    yield app
    manager = app.extensions.get("jobs")
    if manager is not None:
        manager.shutdown()


@pytest.fixture()
def client(app):
    return app.test_client()


@pytest.fixture(scope="module")
def one_torch_thread():
    """One intra-op thread: on a busy 2-core machine two threads wait on each other (tiny ops 30x slower)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def pytest_collection_finish(session: pytest.Session) -> None:
    """Every test module is imported: move what exists now out of the collector's way.

    A job ends with gc.collect() (backend.jobs.execute), and so does measuring a model's memory
    (backend.metrics.efficiency); each walked every object of torch, transformers and the test modules:
    about 0.4 s a call on a busy 2-core machine, dozens of calls in the fast tier. Later objects are collected
    as before.
    """
    gc.collect()
    gc.freeze()
