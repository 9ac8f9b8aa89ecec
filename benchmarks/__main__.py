"""python -m benchmarks: every measurement, written to BENCHMARKS.md and benchmarks/results.json."""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from backend.runtime import environment_info
from benchmarks import compression, deployment, server, training_loop
from benchmarks.report import render

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks")
    parser.add_argument("--models", nargs="*", default=list(compression.MODELS))
    parser.add_argument("--skip-server", action="store_true")
    args = parser.parse_args()
    started = time.perf_counter()
    results: dict = {"environment": environment_info(), "started_at": time.strftime("%Y-%m-%d %H:%M:%S %Z")}
    raw = ROOT / "benchmarks" / "results.json"
    sections = [("training loop: framework vs bare PyTorch", "training_loop", training_loop.run),
                ("compression: all models, cold and cached teacher", "compression",
                 lambda: compression.run(args.models))]
    if not args.skip_server:
        sections.append(("server responsiveness", "server", server.run))
    for title, key, run in sections:
        print(title, flush=True)
        results[key] = run()
        raw.write_text(json.dumps(results, indent=2, default=str))  # a later failure keeps what was measured
    results["total_s"] = time.perf_counter() - started
    raw.write_text(json.dumps(results, indent=2, default=str))
    previous = (ROOT / "BENCHMARKS.md").read_text() if (ROOT / "BENCHMARKS.md").exists() else ""
    text = render(results)
    if deployment.BEGIN in previous and deployment.END in previous:  # python -m benchmarks.deployment's section
        start, end = previous.index(deployment.BEGIN), previous.index(deployment.END) + len(deployment.END)
        text = text.rstrip("\n") + "\n\n" + previous[start:end] + "\n"
    (ROOT / "BENCHMARKS.md").write_text(text)
    print(f"wrote BENCHMARKS.md and benchmarks/results.json in {results['total_s']:.0f} s")


if __name__ == "__main__":
    main()
