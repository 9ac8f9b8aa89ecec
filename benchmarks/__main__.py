"""python -m benchmarks: every measurement, written to BENCHMARKS.md and benchmarks/results.json."""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from backend.runtime import environment_info
from benchmarks import compression, server, training_loop
from benchmarks.report import render

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks")
    parser.add_argument("--models", nargs="*", default=list(compression.MODELS))
    parser.add_argument("--skip-server", action="store_true")
    args = parser.parse_args()
    started = time.perf_counter()
    results: dict = {"environment": environment_info(), "started_at": time.strftime("%Y-%m-%d %H:%M:%S %Z")}
    print("training loop: framework vs bare PyTorch", flush=True)
    results["training_loop"] = training_loop.run()
    print("compression: all models, cold and cached teacher", flush=True)
    results["compression"] = compression.run(args.models)
    if not args.skip_server:
        print("server responsiveness", flush=True)
        results["server"] = server.run()
    results["total_s"] = time.perf_counter() - started
    (ROOT / "benchmarks" / "results.json").write_text(json.dumps(results, indent=2, default=str))
    (ROOT / "BENCHMARKS.md").write_text(render(results))
    print(f"wrote BENCHMARKS.md and benchmarks/results.json in {results['total_s']:.0f} s")


if __name__ == "__main__":
    main()
