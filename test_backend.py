#!/usr/bin/env python3
"""Smoke test against a running server: python test_backend.py [--url http://127.0.0.1:5001] [--token T].

Checks connectivity, /test_model for every model GET /models lists, /test_metrics, a short training job followed to
the end through Socket.IO events, /evaluate, /matlab_metrics, /visualize and /download. Prints one
PASS/FAIL line per check and exits non-zero when any check fails.
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import threading
import time
import zipfile
from collections.abc import Callable
from typing import Any

import requests
import socketio

# The phases, finished states and report sections are the server's own words: read from GET /models (concepts).
VOCABULARY: dict[str, Any] = {}
TINY_JOB = {"epochs": 1, "kd_epochs": 1, "finetune_epochs": 1, "max_samples": 300, "pruning_steps": 1}


class Checks:
    """Runs named checks, prints PASS/FAIL lines, remembers failures."""

    def __init__(self) -> None:
        self.failed: list[str] = []
        self.passed = 0

    def run(self, name: str, check: Callable[[], str | None]) -> Any:
        start = time.perf_counter()
        try:
            detail = check()
        except Exception as exc:  # a failed check must not stop the others
            self.failed.append(name)
            print(f"FAIL {name}: {type(exc).__name__}: {exc}", flush=True)
            return None
        self.passed += 1
        print(f"PASS {name} ({time.perf_counter() - start:.1f} s){': ' + detail if detail else ''}", flush=True)
        return detail


def expect(condition: bool, message: str) -> None:
    if not condition:
        raise AssertionError(message)


def json_of(res: requests.Response, status: int = 200) -> Any:
    body = res.json() if res.headers.get("Content-Type", "").startswith("application/json") else res.text[:300]
    expect(res.status_code == status, f"HTTP {res.status_code} (expected {status}): {body}")
    return body


class JobWatcher:
    """Follows one job's Socket.IO events until it ends."""

    def __init__(self, url: str, token: str | None = None) -> None:
        self.sio = socketio.Client(reconnection=True)
        self.events: list[tuple[str, dict]] = []
        self.finished = threading.Event()
        self.job_id: str | None = None
        for name in ("training_status", "training_progress", "training_metrics", "training_error"):
            self.sio.on(name, self._handler(name))
        self.sio.connect(url, wait_timeout=20, auth={"token": token} if token else None)

    def _handler(self, name: str) -> Callable[[dict], None]:
        def handle(payload: dict) -> None:
            self.events.append((name, payload))
            if (
                name == "training_status"
                and payload.get("job_id") == self.job_id
                and payload.get("phase") in ("done", "failed", "cancelled")
            ):
                self.finished.set()

        return handle

    def follow(self, job_id: str) -> None:
        self.job_id = job_id
        ack = self.sio.call("join", {"job_id": job_id}, timeout=20)
        expect(bool(ack and ack.get("ok")), f"join refused: {ack}")
        if ack.get("status") in VOCABULARY["finished_states"]:
            self.finished.set()

    def mine(self, name: str) -> list[dict]:
        return [p for n, p in self.events if n == name and p.get("job_id") == self.job_id]

    def phases(self) -> list[str]:
        seen: list[str] = []
        for payload in self.mine("training_status"):
            if not seen or seen[-1] != payload["phase"]:
                seen.append(payload["phase"])
        return seen


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:5001", help="the server (default %(default)s)")
    parser.add_argument("--model", default="resnet18", help="model of the training job (default %(default)s)")
    parser.add_argument(
        "--token",
        default=os.environ.get("KD_API_TOKEN"),
        help="the server's API token, when it has one (default: $KD_API_TOKEN)",
    )
    parser.add_argument("--job-timeout", type=float, default=900, help="seconds to wait for the job")
    parser.add_argument("--full", action="store_true", help="train with the preset's defaults, not a tiny job")
    args = parser.parse_args(argv)
    url = args.url.rstrip("/")
    http = requests.Session()
    if args.token:
        http.headers["Authorization"] = f"Bearer {args.token}"
    checks = Checks()

    def connectivity() -> str:
        body = json_of(http.get(f"{url}/test", timeout=30))
        expect(body.get("status") == "ok", f"status is {body.get('status')!r}")
        return f"torch {body.get('torch_version')}, device {body.get('device')}"

    if checks.run("connectivity GET /test", connectivity) is None:
        print(f"\n0 passed, {len(checks.failed)} failed: the server at {url} does not answer", flush=True)
        return 1

    listing = json_of(http.get(f"{url}/models", timeout=30))
    VOCABULARY.update(listing["concepts"])
    models = [m["id"] for m in listing["models"]]
    for model in models:

        def test_model(model: str = model) -> str:
            body = json_of(http.post(f"{url}/test_model", json={"model_name": model}, timeout=300))
            params = body["parameters"]["total"]
            expect(params > 0 and body["forward_pass"]["ok"], f"bad answer: {body}")
            return f"{params:,} parameters, {body['size']['model_size_mb']:.1f} MB"

        checks.run(f"POST /test_model {model}", test_model)

    def test_metrics() -> str:
        body = json_of(http.get(f"{url}/test_metrics", timeout=300))
        expect(body["status"] == "ok", f"reference figures do not match: {body.get('reference_checks')}")
        return ", ".join(
            f"{k} {v['parameters']:,} params {v['gmacs']} GMACs" for k, v in body["reference_checks"].items()
        )

    checks.run("GET /test_metrics", test_metrics)

    state: dict[str, Any] = {}

    def training() -> str:
        watcher = JobWatcher(url, args.token)
        try:
            options = {"model_name": args.model, **({} if args.full else TINY_JOB)}
            body = json_of(http.post(f"{url}/train", json=options, timeout=30), 202)
            state["job_id"] = job_id = body["job_id"]
            watcher.follow(job_id)
            expect(watcher.finished.wait(args.job_timeout), f"job {job_id} did not end in {args.job_timeout} s")
            time.sleep(0.2)
            errors = watcher.mine("training_error")
            expect(not errors, f"training_error: {errors}")
            phases = watcher.phases()
            expect(phases[-1] == "done", f"job ended {phases[-1]!r}")
            required = [p for p in VOCABULARY["phases"] if p not in VOCABULARY["optional_phases"]]
            missing = [p for p in (*required, "done") if p not in phases]
            expect(not missing, f"phases not announced: {missing} (saw {phases})")
            expect(watcher.mine("training_progress"), "no training_progress events")
            job = json_of(http.get(f"{url}/jobs/{job_id}", timeout=30))
            expect(job["state"] == "succeeded", f"job state {job['state']}: {job.get('error')}")
            return f"job {job_id}: {len(watcher.events)} events, phases {' > '.join(phases)}"
        finally:
            watcher.sio.disconnect()

    checks.run("training job followed through Socket.IO", training)

    def job_query() -> dict[str, str]:
        expect("job_id" in state, "no finished training job to look at")
        return {"job_id": state["job_id"]}

    def evaluate() -> str:
        report = json_of(http.get(f"{url}/evaluate", params=job_query(), timeout=60))
        missing = [s for s in (*VOCABULARY["report_sections"], "metadata") if s not in report]
        expect(not missing, f"report lacks {missing}")
        perf = report["student_model_performance"]
        return f"student accuracy {perf.get('accuracy')}"

    checks.run("GET /evaluate", evaluate)

    def matlab() -> str:
        data = json_of(http.get(f"{url}/matlab_metrics", params=job_query(), timeout=60))["matlab_data"]
        expect(data.get("labels") == ["teacher", "student"], f"labels are {data.get('labels')}")
        return f"fields {sorted(data)}"

    checks.run("GET /matlab_metrics", matlab)

    def visualize() -> str:
        res = http.post(f"{url}/visualize", json={**job_query(), "kind": "effectiveness"}, timeout=120)
        expect(res.status_code == 200, f"HTTP {res.status_code}: {res.text[:300]}")
        expect(res.headers["Content-Type"] == "image/png" and res.content[:4] == b"\x89PNG", "not a PNG")
        overview = http.post(f"{url}/visualize", json=job_query(), timeout=120)  # no kind: the overview
        expect(overview.status_code == 200 and overview.content[:4] == b"\x89PNG", f"overview: {overview.status_code}")
        return f"{len(res.content):,} bytes PNG, overview {len(overview.content):,} bytes"

    checks.run("POST /visualize", visualize)

    def download() -> str:
        res = http.get(f"{url}/download", params=job_query(), timeout=300)
        expect(res.status_code == 200, f"HTTP {res.status_code}: {res.text[:300]}")
        expect(res.headers["Content-Type"] == "application/zip", f"type {res.headers['Content-Type']}")
        names = zipfile.ZipFile(io.BytesIO(res.content)).namelist()
        expect("report.json" in names, f"bundle lacks report.json: {names}")
        return f"{len(res.content) / 1e6:.1f} MB, {len(names)} files"

    checks.run("GET /download", download)

    print(f"\n{checks.passed} passed, {len(checks.failed)} failed", flush=True)
    return 1 if checks.failed else 0


if __name__ == "__main__":
    sys.exit(main())
