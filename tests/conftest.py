"""Shared fixtures: an app on a temporary data directory, and its test client."""
from __future__ import annotations

import pytest

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
