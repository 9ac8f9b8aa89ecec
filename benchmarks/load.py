"""Many clients at once: 20 REST pollers and 50 Socket.IO clients, idle and while a job trains, on both servers.

    python -m benchmarks.load [--rounds 2] [--seconds 10] [--out benchmarks/load.json] [--render-only]

For each server (the development server `python backend/app.py`, and gunicorn with backend/gunicorn_conf.py)
on a fresh data dir: one untimed warm-up job (the worker imports torch, the teacher is cached, and a finished
job exists for /evaluate); then

- idle: 50 Socket.IO clients connected (WebSocket) and 20 pollers, each at 10 requests per second alternating
  GET /jobs/<id> and GET /evaluate?job_id=<id> of the finished job, for --seconds;
- the same job (fixed options, cached teacher) run with no clients and with the clients, in ABBA order per
  round (no clients, clients, clients, no clients, ...), so drift of a shared machine falls on both arms: the
  slowdown is each round's ratio of the job's own duration (started_at to finished_at in the store);
- while the job trains with clients: REST latencies (p50/p99 over all pollers), and the events each Socket.IO
  client received (listening from before the job was submitted, then joined to it) against a reference
  client that joined nothing, with whether every client's training_status sequence equals the reference's.

The Socket.IO clients run in a process of their own, so their threads do not slow the pollers' measurement.
Writes benchmarks/load.json and the "Many clients" section of BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil
import requests

from backend.metrics.stats import t_interval
from benchmarks.server import _free_port, _percentiles
from benchmarks.workers import write_section

ROOT = Path(__file__).resolve().parent.parent
HEADING = "## Many clients"
JOB = {  # a whole small job: DistilBERT at the quick preset's from-scratch sizes, shrunk (as the service tests)
    "model_name": "distilbert",
    "epochs": 1,
    "kd_epochs": 2,
    "finetune_epochs": 1,
    "max_samples": 200,
    "pruning_steps": 2,
    "pretrained": False,
    "seed": 3,
}
POLLERS, POLL_HZ, SOCKETS = 20, 10.0, 50
P99_GOAL_MS, SLOWDOWN_GOAL = 100.0, 0.10


class Server:
    """The API (dev server or gunicorn) on a fresh data dir, one local worker at one torch thread."""

    def __init__(self, kind: str) -> None:
        self.tmp = Path(tempfile.mkdtemp(prefix=f"kd-load-{kind}-"))
        port = _free_port()
        self.base = f"http://127.0.0.1:{port}"
        env = {**os.environ, "KD_TORCH_THREADS": "1", "KD_DATA_DIR": str(self.tmp / "data")}
        if kind == "gunicorn":
            argv = [sys.executable, "-m", "gunicorn", "-c", "backend/gunicorn_conf.py", "-b", f"127.0.0.1:{port}"]
            argv.append("backend.wsgi:app")
        else:
            argv = [sys.executable, "backend/app.py", "--port", str(port), "--data-dir", str(self.tmp / "data")]
        self.log = open(self.tmp / "server.log", "w")  # noqa: SIM115 - closed in close()
        self.proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            try:
                if requests.get(f"{self.base}/test", timeout=30).ok:
                    return
            except requests.RequestException:
                time.sleep(0.5)
        raise RuntimeError(f"{kind} server did not start (log: {self.tmp / 'server.log'})")

    def submit(self) -> str:
        res = requests.post(f"{self.base}/train", json=JOB, timeout=30)
        res.raise_for_status()
        return res.json()["job_id"]

    def wait(self, job_id: str) -> dict:
        while True:
            job = requests.get(f"{self.base}/jobs/{job_id}", timeout=30).json()
            if job["state"] in ("succeeded", "failed", "cancelled"):
                return job
            time.sleep(0.5)

    def close(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()
        shutil.rmtree(self.tmp, ignore_errors=True)


def load_cpus() -> set[int] | None:
    """The core the load generator runs on: the last one, where the machine has two or more. The pollers and the
    Socket.IO clients stand in for clients on other machines, so they are kept off the other cores, which the
    server and its worker share as they would in production; None (not pinned) on one core."""
    if not hasattr(os, "sched_setaffinity") or len(os.sched_getaffinity(0)) < 2:
        return None
    return {max(os.sched_getaffinity(0))}


def _pin_to_load_cpus() -> None:
    """Pin the calling thread (and the threads it starts) to load_cpus()."""
    cpus = load_cpus()
    if cpus is not None:
        os.sched_setaffinity(0, cpus)


def _sockets_main(base: str, n: int, commands, results) -> None:
    """A process holding n joined clients and a reference client: 'join <job>' and 'report <job>' commands."""
    import socketio

    _pin_to_load_cpus()  # before any client thread starts: they inherit it

    clients, lock = [], threading.Lock()

    def make(record: list) -> socketio.Client:
        sio = socketio.Client(reconnection=False)
        sio.on("*", lambda event, data: _keep(lock, record, event, data))
        sio.connect(base, transports=["websocket"], wait_timeout=60)
        return sio

    reference: list = []
    ref = make(reference)
    for _ in range(n):
        record: list = []
        clients.append((make(record), record))
    results.put("connected")
    joined: str | None = None
    while True:
        command, job_id = commands.get()
        if command == "listen":  # before a job is submitted: leave the last job (back to hearing every job)
            for sio, _ in clients:
                if joined:
                    sio.call("leave", {"job_id": joined}, timeout=60)
            with lock:
                reference.clear()
                for _, record in clients:
                    record.clear()
            results.put("listening")
        elif command == "join":  # narrowed to the job; it stays joined (so hears no other job) until "listen"
            for sio, _ in clients:
                sio.call("join", {"job_id": job_id}, timeout=60)
            joined = job_id
            results.put("joined")
        elif command == "report":
            time.sleep(1.0)  # the last events reach every client
            with lock:
                ref_events = [(e, d) for e, d in reference if d.get("job_id") == job_id]
                ref_status = [d.get("phase") for e, d in ref_events if e == "training_status"]
                got = [[(e, d) for e, d in record if d.get("job_id") == job_id] for _, record in clients]
            results.put(
                {
                    "reference_events": len(ref_events),
                    "reference_status_phases": ref_status,
                    "client_events": [len(g) for g in got],
                    "clients_with_every_status_in_order": sum(
                        [d.get("phase") for e, d in g if e == "training_status"] == ref_status for g in got
                    ),
                }
            )
        else:
            break
    for sio, _ in [(ref, None), *clients]:
        sio.disconnect()


def _keep(lock: threading.Lock, record: list, event: str, data) -> None:
    if isinstance(data, dict):
        with lock:
            record.append((event, data))


def _poll(base: str, urls: list[str], stop: threading.Event, out: list[float], errors: list[str]) -> None:
    """One poller: a request every 1/POLL_HZ s, cycling through urls; latencies (ms) into out."""
    _pin_to_load_cpus()  # this thread only (Linux affinity is per thread): the server it polls is not pinned
    session, period, i = requests.Session(), 1.0 / POLL_HZ, 0
    next_at = time.monotonic()
    while not stop.is_set():
        started = time.perf_counter()
        try:
            res = session.get(base + urls[i % len(urls)], timeout=30)
            if res.status_code != 200:
                errors.append(str(res.status_code))
        except requests.RequestException as exc:
            errors.append(type(exc).__name__)
        out.append((time.perf_counter() - started) * 1000)
        i += 1
        next_at += period
        time.sleep(max(0.0, next_at - time.monotonic()))


class Load:
    """20 pollers (threads of this process) and 50 Socket.IO clients (a process of their own)."""

    def __init__(self, base: str) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.base, self.commands, self.results = base, ctx.Queue(), ctx.Queue()
        self.proc = ctx.Process(target=_sockets_main, args=(base, SOCKETS, self.commands, self.results), daemon=True)
        self.proc.start()
        assert self.results.get(timeout=300) == "connected"

    def poll(self, urls: list[str], until: threading.Event) -> tuple[list[float], list[str]]:
        latencies: list[float] = []
        errors: list[str] = []
        threads = [
            threading.Thread(target=_poll, args=(self.base, urls, until, latencies, errors)) for _ in range(POLLERS)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return latencies, errors

    def listen(self) -> None:
        self.commands.put(("listen", ""))
        assert self.results.get(timeout=300) == "listening"

    def join(self, job_id: str) -> None:
        self.commands.put(("join", job_id))
        assert self.results.get(timeout=300) == "joined"

    def report(self, job_id: str) -> dict:
        self.commands.put(("report", job_id))
        return self.results.get(timeout=300)

    def pids(self) -> list[int]:
        """This process (the pollers) and the Socket.IO clients' process."""
        return [os.getpid(), self.proc.pid]

    def close(self) -> None:
        self.commands.put(("stop", ""))
        self.proc.join(60)
        if self.proc.is_alive():
            self.proc.kill()


def cpu_seconds(server_pid: int, load_pids: list[int]) -> dict[str, float]:
    """CPU seconds used so far by the API process, its worker processes (its children: the job), and the load."""

    def used(proc: psutil.Process) -> float:
        try:
            t = proc.cpu_times()
            return t.user + t.system
        except psutil.Error:
            return 0.0

    api = psutil.Process(server_pid)
    if "gunicorn" in " ".join(api.cmdline()):  # the gunicorn master: the app runs in its one worker
        api = next(iter(api.children()), api)
    workers = api.children(recursive=True)
    return {
        "api": used(api),
        "workers": sum(used(w) for w in workers),
        "load": sum(used(psutil.Process(p)) for p in load_pids),
    }


def _delta(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    return {k: round(after[k] - before[k], 2) for k in after}


def measure_server(kind: str, rounds: int, seconds: float) -> dict:
    """Idle load, then ABBA rounds of the job without and with clients, on one server."""
    server = Server(kind)
    try:
        done = server.wait(server.submit())  # warm-up, untimed: worker imports, teacher cached
        if done["state"] != "succeeded":
            raise RuntimeError(f"warm-up job {done['state']}: {done.get('error')}")
        finished = done["id"]
        idle_urls = [f"/jobs/{finished}", f"/evaluate?job_id={finished}"]
        load = Load(server.base)
        try:
            stop = threading.Event()
            threading.Timer(seconds, stop.set).start()
            idle, idle_errors = load.poll(idle_urls, stop)
            pairs, busy, busy_errors, deliveries = [], [], [], []
            cpu: dict[str, list[dict]] = {"alone": [], "clients": []}
            for r in range(rounds):
                order = ("alone", "clients") if r % 2 == 0 else ("clients", "alone")
                pair = {}
                for arm in order:
                    if arm == "alone":  # the clients stay joined to a finished job: they hear nothing of this one
                        before = cpu_seconds(server.proc.pid, load.pids())
                        pair[arm] = server.wait(server.submit())["duration_s"]
                        cpu["alone"].append(_delta(before, cpu_seconds(server.proc.pid, load.pids())))
                        continue
                    load.listen()  # every client hears the job from its "queued" on, then joins it
                    before = cpu_seconds(server.proc.pid, load.pids())
                    job_id = server.submit()
                    load.join(job_id)
                    stop = threading.Event()
                    waiter = threading.Thread(target=lambda j=job_id, s=stop: (server.wait(j), s.set()))
                    waiter.start()
                    lat, errs = load.poll([f"/jobs/{job_id}", f"/evaluate?job_id={finished}"], stop)
                    waiter.join()
                    cpu["clients"].append(_delta(before, cpu_seconds(server.proc.pid, load.pids())))
                    busy += lat
                    busy_errors += errs
                    job = requests.get(f"{server.base}/jobs/{job_id}", timeout=30).json()
                    pair[arm] = job["duration_s"]
                    deliveries.append({"job_state": job["state"], **load.report(job_id)})
                pair["ratio"] = round(pair["clients"] / pair["alone"], 4)
                pairs.append(pair)
        finally:
            load.close()
    finally:
        server.close()
    ratios = [p["ratio"] for p in pairs]
    return {
        "idle": {**_percentiles(idle), "errors": len(idle_errors)},
        "training": {**_percentiles(busy), "errors": len(busy_errors)},
        "pairs": pairs,
        "slowdown_ratio_mean": round(statistics.mean(ratios), 4),
        "cpu_seconds_per_arm": cpu,
        "deliveries": [
            {
                "job_state": d["job_state"],
                "reference_events": d["reference_events"],
                "events_delivered": sum(d["client_events"]),
                "events_expected": d["reference_events"] * len(d["client_events"]),
                "min_client_events": min(d["client_events"]),
                "clients_with_every_status_in_order": d["clients_with_every_status_in_order"],
                "clients": len(d["client_events"]),
                "status_phases": d["reference_status_phases"],
            }
            for d in deliveries
        ],
    }


def _slowdown_ci(x: dict) -> list[float] | None:
    """The 95% t-interval of the mean per-round ratio (job with clients / alone); None for one round."""
    return t_interval([p["ratio"] for p in x["pairs"]])["ci"]


def render(r: dict) -> str:
    """The BENCHMARKS.md section, from the measured figures only."""
    lines = [
        HEADING,
        "",
        f"Measured by `python -m benchmarks.load` (raw: `benchmarks/load.json`), started {r['started_at']}, "
        f"{r['cpu_count']} cores, load average {r['load_average_at_start']:.1f} at the start and "
        f"{r.get('load_average_at_end', float('nan')):.1f} at the end (the benchmark's own processes included). "
        "The slowdown is a ratio of runs interleaved in the same session (ABBA), so drift falls on both arms. "
        + (
            f"The load generator (pollers and Socket.IO clients, standing in for clients on other machines) is "
            f"pinned to core {sorted(r['load_cpus'])} so that it does not take the cores the server and its worker "
            "share; the server and the worker are not pinned. "
            if r.get("load_cpus")
            else "The load generator shares the cores with the server and its worker (not pinned). "
        )
        + "The job: "
        f"`{json.dumps(r['job'])}`, one local worker at one torch thread, teacher cached by an untimed warm-up job. "
        f"Load: {POLLERS} pollers at {POLL_HZ:g} requests/s each (GET /jobs/<id> and GET /evaluate alternately) and "
        f"{SOCKETS} Socket.IO clients (WebSocket) joined to the job, in a process of their own. In the job-alone "
        "arm nobody polls and the clients stay connected but joined to a finished job (only the reference client, "
        "which joined nothing, receives the job's events).",
        "",
        "| server | REST p50 / p99 ms, idle | REST p50 / p99 ms, training | errors | job with clients / alone "
        "(per round) | events delivered / expected | clients with every status in order |",
        "|---|---|---|---|---|---|---|",
    ]
    for kind, label in (
        ("dev", "development (`python backend/app.py`)"),
        ("gunicorn", "gunicorn (`gunicorn_conf.py`)"),
    ):
        x = r.get(kind)
        if not x:
            continue
        ratios = ", ".join(f"{p['ratio']:.3f}" for p in x["pairs"])
        ci = _slowdown_ci(x)
        interval = "" if ci is None else f"[{ci[0]:.3f}, {ci[1]:.3f}]"
        delivered = sum(d["events_delivered"] for d in x["deliveries"])
        expected = sum(d["events_expected"] for d in x["deliveries"])
        in_order = sum(d["clients_with_every_status_in_order"] for d in x["deliveries"])
        clients = sum(d["clients"] for d in x["deliveries"])
        lines.append(
            f"| {label} | {x['idle']['p50_ms']:.1f} / {x['idle']['p99_ms']:.1f} | {x['training']['p50_ms']:.1f} / "
            f"{x['training']['p99_ms']:.1f} | {x['idle']['errors'] + x['training']['errors']} | mean "
            f"{x['slowdown_ratio_mean']:.3f} {interval} ({ratios}) | {delivered} / {expected} | {in_order} / "
            f"{clients} |"
        )
    if any("cpu_seconds_per_arm" in (r.get(k) or {}) for k in ("dev", "gunicorn")):
        lines += [
            "",
            "CPU seconds during each arm (summed over rounds): the API process, its worker process (the job), and "
            "the load generator (pollers and Socket.IO clients, on the same machine):",
            "",
        ]
    for kind in ("dev", "gunicorn"):
        x = r.get(kind)
        if not x or "cpu_seconds_per_arm" not in x:
            continue
        for arm, rows in x["cpu_seconds_per_arm"].items():
            total = {k: sum(row[k] for row in rows) for k in ("api", "workers", "load")}
            lines.append(
                f"- {kind}, job {arm}: API {total['api']:.1f} s, worker {total['workers']:.1f} s, "
                f"load generator {total['load']:.1f} s"
            )
    lines += [
        "",
        f"Goals: REST p99 under {P99_GOAL_MS:g} ms while training, the job slowed by at most {SLOWDOWN_GOAL:.0%}:",
    ]
    for kind in ("dev", "gunicorn"):
        x = r.get(kind)
        if x:
            p99_met = x["training"]["p99_ms"] < P99_GOAL_MS
            slow_met = x["slowdown_ratio_mean"] <= 1 + SLOWDOWN_GOAL
            ci = _slowdown_ci(x)
            within = (
                ""
                if ci is None
                else f" (95% t-interval {ci[0] - 1:+.1%} to {ci[1] - 1:+.1%}: "
                + ("all of it under the bound)" if ci[1] <= 1 + SLOWDOWN_GOAL else "it reaches past the bound)")
            )
            lines.append(
                f"- {kind}: p99 {x['training']['p99_ms']:.0f} ms, {'met' if p99_met else '**missed**'}; slowdown "
                f"{x['slowdown_ratio_mean'] - 1:+.1%}{within}, {'met' if slow_met else '**missed**'}."
            )
    lines += [
        "",
        "Events expected = what the reference client (joined nothing) received, times the clients. The job's "
        "slowdown is the server's cost (its CPU seconds above) taken from the cores the job runs on, plus whatever "
        "of the load generator's work the pinning does not keep off them; with a few rounds a ratio moves by "
        "several points from run to run, so compare runs, not one figure.",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    """Run and write the figures as JSON and the BENCHMARKS.md section."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=2, help="ABBA rounds: jobs per arm per server")
    parser.add_argument("--seconds", type=float, default=10.0, help="the idle window")
    parser.add_argument("--servers", nargs="*", default=["dev", "gunicorn"], choices=["dev", "gunicorn"])
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "load.json"))
    parser.add_argument("--render-only", action="store_true", help="rewrite the section from the saved figures")
    args = parser.parse_args()
    if args.render_only:
        write_section(render(json.loads(Path(args.out).read_text())), HEADING)
        return
    results: dict = {
        "cpu_count": os.cpu_count(),
        "load_cpus": sorted(load_cpus() or []),
        "load_average_at_start": os.getloadavg()[0],
        "started_at": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "job": JOB,
        "rounds": args.rounds,
    }
    for kind in args.servers:
        print(kind, "...", flush=True)
        results[kind] = measure_server(kind, args.rounds, args.seconds)
        Path(args.out).write_text(json.dumps(results, indent=2))
    results["load_average_at_end"] = os.getloadavg()[0]
    Path(args.out).write_text(json.dumps(results, indent=2))
    write_section(render(results), HEADING)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
