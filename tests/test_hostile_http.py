"""Hostile callers against a real server process (python backend/app.py): each gets a clear 4xx JSON error,
nothing is stored, and the server stays healthy.

One server for the module, started with an API token, a queue cap of 3 and no workers (queued jobs stay
queued, so the queue cap can be reached without training anything).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading

import pytest
import requests
import socketio

from tests.servers import ROOT, free_port, start_app, stop

TOKEN = "hostile-test-token"
QUEUE_CAP = 3


def _wait_up(url: str, proc: subprocess.Popen, timeout: float = 90) -> None:
    """Like servers.wait_for, with the token."""
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"server exited with {proc.returncode}")
        try:
            if requests.get(f"{url}/test", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=2).ok:
                return
        except requests.RequestException:
            pass
        time.sleep(0.3)
    raise AssertionError(f"{url} did not answer within {timeout} s")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    data = tmp_path_factory.mktemp("hostile")
    proc, url = start_app(
        data / "d",
        data / "server.log",
        "--api-token",
        TOKEN,
        "--max-queued-jobs",
        str(QUEUE_CAP),
        env={"KD_START_WORKERS": "0"},
    )
    try:
        _wait_up(url, proc)
        yield url
    finally:
        stop(proc)


@pytest.fixture()
def http(server):
    """A session with the token, and a check after the test: healthy, and no job stored by it."""
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {TOKEN}"
    before = session.get(f"{server}/jobs", timeout=10).json()["count"]
    session.stored_on_purpose = 0
    yield session
    assert session.get(f"{server}/test", timeout=10).status_code == 200
    after = session.get(f"{server}/jobs", timeout=10).json()["count"]
    assert after == before + session.stored_on_purpose


def _error(res: requests.Response, status: int, code: str | None = None) -> dict:
    assert res.status_code == status, res.text[:500]
    assert res.headers["Content-Type"].startswith("application/json")
    error = res.json()["error"]
    assert error["message"]
    if code is not None:
        assert error["code"] == code
    return error


def test_cross_origin_only_for_allowed_origins(server, http):
    evil = http.get(f"{server}/test", headers={"Origin": "http://evil.example"})
    assert evil.status_code == 200 and "Access-Control-Allow-Origin" not in evil.headers
    local = http.get(f"{server}/test", headers={"Origin": "http://localhost:3999"})
    assert local.headers["Access-Control-Allow-Origin"] == "http://localhost:3999"
    preflight = http.options(
        f"{server}/train",
        headers={
            "Origin": "http://evil.example",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type,authorization",
        },
    )
    assert "Access-Control-Allow-Origin" not in preflight.headers
    # A foreign page's form post (no preflight needed) is refused before it can do anything.
    _error(
        http.post(f"{server}/train", json={"model_name": "resnet18"}, headers={"Origin": "http://evil.example"}),
        403,
        "origin_not_allowed",
    )


def test_socketio_handshake_refuses_a_foreign_origin(server):
    res = requests.get(
        f"{server}/socket.io/?EIO=4&transport=polling", headers={"Origin": "http://evil.example"}, timeout=10
    )
    assert res.status_code == 400 and "Access-Control-Allow-Origin" not in res.headers


def test_text_plain_train_is_415(server, http):
    res = http.post(
        f"{server}/train", data=json.dumps({"model_name": "resnet18"}), headers={"Content-Type": "text/plain"}
    )
    _error(res, 415, "unsupported_media_type")
    _error(http.post(f"{server}/upload", json={"file": "x"}), 415)  # /upload: multipart only


def test_foreign_host_is_421(server, http):
    _error(http.get(f"{server}/jobs", headers={"Host": "rebind.evil.example"}), 421, "misdirected_request")
    _error(http.get(f"{server}/socket.io/?EIO=4&transport=polling", headers={"Host": "rebind.evil.example:80"}), 421)
    assert http.get(f"{server}/test", headers={"Host": f"localhost:{server.rsplit(':', 1)[1]}"}).status_code == 200


@pytest.mark.slow
def test_token_required_on_rest_and_socketio(server, http):
    for res in (
        requests.get(f"{server}/jobs", timeout=10),
        requests.get(f"{server}/jobs", headers={"Authorization": "Bearer wrong"}, timeout=10),
        requests.post(f"{server}/train", json={"model_name": "resnet18"}, timeout=10),
    ):
        _error(res, 401, "unauthorized")
        assert res.headers["WWW-Authenticate"].startswith("Bearer")
    assert requests.get(f"{server}/", timeout=10).status_code == 200  # the page shell holds no data
    refused = socketio.Client(reconnection=False)
    with pytest.raises(socketio.exceptions.ConnectionError):
        refused.connect(server, transports=["polling"], wait_timeout=10)
    allowed = socketio.Client(reconnection=False)
    allowed.connect(server, transports=["polling"], auth={"token": TOKEN}, wait_timeout=10)
    assert allowed.connected
    allowed.disconnect()


def test_deep_json_is_400_and_big_body_413(server, http):
    headers = {"Content-Type": "application/json"}
    for deep in ("[" * 100_000 + "]" * 100_000, '{"a":' * 50_000 + "1" + "}" * 50_000, "[" * 40 + "]" * 40):
        _error(http.post(f"{server}/train", data=deep, headers=headers), 400, "too_deep")
    big = json.dumps({"model_name": "resnet18", "dataset": "x" * (2 << 20)})
    error = _error(http.post(f"{server}/train", data=big, headers=headers), 413)
    assert "1 MiB" in error["message"]


@pytest.mark.parametrize("raw", ["1000000000000000000", "1e308", "NaN", "Infinity", "-1", "2.5"])
def test_out_of_range_epochs_are_400_naming_the_range(server, http, raw):
    body = f'{{"model_name": "resnet18", "epochs": {raw}}}'
    error = _error(http.post(f"{server}/train", data=body, headers={"Content-Type": "application/json"}), 400)
    assert error["field"] == "epochs" and "[0, 200]" in error["message"] and len(error["message"]) < 300


def test_limits_are_listed(server, http):
    limits = http.get(f"{server}/models").json()["limits"]
    for name in (
        "epochs",
        "kd_epochs",
        "finetune_epochs",
        "pruning_steps",
        "batch_size",
        "max_samples",
        "latency_runs",
        "temperature",
        "learning_rate",
    ):
        assert "maximum" in limits[name] or "exclusiveMaximum" in limits[name], name
    spec = http.get(f"{server}/openapi.json").json()
    assert (
        spec["components"]["schemas"]["TrainOptions"]["properties"]["epochs"]["maximum"] == limits["epochs"]["maximum"]
    )
    assert spec["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"


def test_echoed_values_are_truncated(server, http):
    error = _error(http.post(f"{server}/train", json={"model_name": "resnet18", "dataset": "d" * 900_000}), 400)
    assert len(error["message"]) < 600 and "…" in error["message"] and "digits" in error["message"]
    error = _error(http.post(f"{server}/train", json={"model_name": "m" * 900_000}), 400)
    assert len(error["message"]) < 600 and "distilbert" in error["message"]
    res = http.get(f"{server}/jobs/" + "j" * 5000)
    assert res.status_code == 404 and len(res.text) < 600


def test_queue_cap_is_429_with_retry_after(server, http):
    queued = http.get(f"{server}/test").json()["queue_length"]
    for _ in range(QUEUE_CAP - queued):
        assert http.post(f"{server}/train", json={"model_name": "resnet18"}).status_code == 202
        http.stored_on_purpose += 1
    res = http.post(f"{server}/train", json={"model_name": "resnet18"})
    _error(res, 429, "queue_full")
    assert int(res.headers["Retry-After"]) > 0


@pytest.mark.slow
def test_test_metrics_runs_one_at_a_time(server, http):
    answers: list[requests.Response] = []

    def call() -> None:
        answers.append(http.get(f"{server}/test_metrics", timeout=300))

    threads = [threading.Thread(target=call) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(r.status_code for r in answers) == [200, 429]
    busy = next(r for r in answers if r.status_code == 429)
    _error(busy, 429, "busy")
    assert int(busy.headers["Retry-After"]) > 0


def test_security_headers_on_page_and_json(server, http):
    for res in (http.get(f"{server}/"), http.get(f"{server}/test"), http.get(f"{server}/nope")):
        csp = res.headers["Content-Security-Policy"]
        assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp and "object-src 'none'" in csp
        assert res.headers["X-Content-Type-Options"] == "nosniff"
        assert res.headers["X-Frame-Options"] == "DENY"
    page = http.get(f"{server}/").text
    tags = re.findall(r"<script\b[^>]*>", page)
    assert tags and all("src=" in tag for tag in tags)  # no inline script


def test_non_loopback_host_without_token_refuses_to_start(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "KD_API_TOKEN"}
    run = subprocess.run(
        [
            sys.executable,
            "backend/app.py",
            "--host",
            "0.0.0.0",
            "--port",
            str(free_port()),
            "--data-dir",
            str(tmp_path / "d"),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode != 0
    assert "--api-token" in run.stderr and "--insecure-no-token" in run.stderr
    assert not (tmp_path / "d").exists()  # refused before anything was created
