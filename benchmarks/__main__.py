"""python -m benchmarks: every measurement, written to BENCHMARKS.md and benchmarks/results.json."""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from backend.runtime import environment_info
from benchmarks import compression, server, study, training_loop
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
    md = ROOT / "BENCHMARKS.md"
    old = md.read_text(encoding="utf-8") if md.exists() else ""
    md.write_text(study.keep_section(old, render(results)))  # the study benchmark's section survives
    print(f"wrote BENCHMARKS.md and benchmarks/results.json in {results['total_s']:.0f} s")


if __name__ == "__main__":
    main()
