"""Shared fixtures: an app on a temporary data directory, and its test client."""
from __future__ import annotations

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
