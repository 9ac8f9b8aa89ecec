"""A lost broker: redis-server killed while one job runs and two wait, then started again (empty, on the same port).

Fast: an API whose broker does not answer says so on GET /test and refuses POST /train and POST /studies with
503 and Retry-After, storing nothing. Slow, with real processes (redis-server, the API with --broker, one Celery
worker): while Redis is down the same holds and nothing accepted is lost; once it is back the queued jobs run,
the running job is finished by its worker, every job ends, and none ran twice (each job's history in the store
has at most one `running`).
"""

from __future__ import annotations

import signal

import pytest
import requests

from backend.app import create_app
from tests.servers import free_port, until, wait_for
from tests.test_workers_services import REDIS, TINY, Cluster

FINAL = ("succeeded", "failed", "cancelled")


def test_unreachable_broker_refuses_new_jobs_with_503(tmp_path):
    app = create_app(
        {"TESTING": True, "DATA_DIR": str(tmp_path / "data"), "BROKER_URL": f"redis://127.0.0.1:{free_port()}/0"}
    )
    try:
        client = app.test_client()
        health = client.get("/test").get_json()
        assert health["broker"] == "down" and health["status"] == "degraded"
        res = client.post("/train", json=TINY)
        assert res.status_code == 503 and res.headers["Retry-After"] == "10"
        assert res.get_json()["error"]["code"] == "broker_unavailable"
        res = client.post("/studies", json={**TINY, "grid": {"sparsity": [0.3], "structural_ratio": [0.5]}})
        assert res.status_code == 503 and res.headers["Retry-After"]
        assert client.get("/jobs").get_json()["count"] == 0  # nothing stored
    finally:
        app.extensions["jobs"].shutdown()


def test_embedded_mode_has_no_broker(client):
    assert client.get("/test").get_json()["broker"] is None


@pytest.mark.slow
@pytest.mark.services
def test_redis_killed_while_a_job_runs_and_two_wait(tmp_path):
    if REDIS is None:
        pytest.skip("redis-server is not installed (scripts/test.sh installs it)")
    c = Cluster(tmp_path)
    c.env["KD_WORKER_TIMEOUT_S"] = "20"  # the watch's round (a quarter of it) is how soon a new Redis is noticed
    try:
        c.start_redis()
        c.start_api()
        c.start_worker("w1")  # one worker: one job runs, the others wait in the broker
        wait_for(f"{c.base}/test", c.api, timeout=300)
        assert requests.get(f"{c.base}/test", timeout=10).json()["broker"] == "up"
        running = c.submit(TINY)
        waiting = [c.submit(TINY) for _ in range(2)]  # same seed: they reuse the first job's cached teacher
        until(lambda: c.job(running)["state"] == "running", 300, "the worker takes the first job")
        assert [c.job(j)["state"] for j in waiting] == ["queued", "queued"]

        c.redis.send_signal(signal.SIGKILL)  # the broker is lost, with the messages of the waiting jobs
        c.redis.wait(10)
        health = until(
            lambda: (h := requests.get(f"{c.base}/test", timeout=10).json())["broker"] == "down" and h, 20, ""
        )
        assert health["status"] == "degraded"
        res = requests.post(f"{c.base}/train", json=TINY, timeout=30)
        assert res.status_code == 503 and int(res.headers["Retry-After"]) > 0
        jobs = requests.get(f"{c.base}/jobs", timeout=10).json()
        assert jobs["count"] == 3  # nothing stored by the refused job, nothing accepted lost
        assert {j["id"]: j["state"] for j in jobs["jobs"] if j["id"] in waiting} == dict.fromkeys(waiting, "queued")

        c.start_redis()  # the same port, empty: nothing was persisted
        until(lambda: requests.get(f"{c.base}/test", timeout=10).json()["broker"] == "up", 30, "broker up again")
        ends = {j: c.finished(j, 900) for j in (running, *waiting)}
        for job_id in waiting:  # sent again by the API, run by the reconnected worker
            assert ends[job_id]["state"] == "succeeded", ends[job_id]["error"]
        first = ends[running]
        assert first["state"] == "succeeded" or (first["state"] == "failed" and first["error"]), first
        for job_id, job in ends.items():
            states = [h["state"] for h in job["history"]]
            assert states[0] == "queued" and states.count("running") == 1 and states[-1] in FINAL, (job_id, states)
            assert len(states) == 3, (job_id, states)  # one claim, one end: it ran once
        assert requests.post(f"{c.base}/train", json=TINY, timeout=30).status_code == 202  # admitted again
    finally:
        c.close()
