"""python -m benchmarks: every measurement, written to BENCHMARKS.md and benchmarks/results.json."""

from __future__ import annotations

import argparse
import json
import os
import re
import time
from pathlib import Path

from backend.runtime import environment_info
from benchmarks import compression, deployment, server, study, training_loop
from benchmarks.report import render

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks")
    parser.add_argument("--models", nargs="*", default=list(compression.MODELS))
    parser.add_argument("--skip-server", action="store_true")
    parser.add_argument("--skip-loop", action="store_true", help="do not re-measure the training loop")
    parser.add_argument(
        "--merge",
        action="store_true",
        help="keep the saved figures of what is not re-measured now (each row names its run)",
    )
    args = parser.parse_args()
    started = time.perf_counter()
    raw = ROOT / "benchmarks" / "results.json"
    old = json.loads(raw.read_text()) if args.merge and raw.exists() else {}
    results: dict = {
        "environment": environment_info(),
        "started_at": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "load_average_at_start": os.getloadavg()[0],
    }
    tag = lambda item, when: {**item, "run_started_at": item.get("run_started_at", when)}  # noqa: E731
    sections = [("compression: cold and cached teacher", "compression", lambda: compression.run(args.models))]
    if not args.skip_loop:
        sections.insert(0, ("training loop: framework vs bare PyTorch", "training_loop", training_loop.run))
    elif old.get("training_loop"):
        results["training_loop"] = tag(old["training_loop"], old["started_at"])
    if not args.skip_server:
        sections.append(("server responsiveness", "server", server.run))
    elif old.get("server"):
        results["server"] = tag(old["server"], old["started_at"])
    for title, key, run in sections:
        print(title, flush=True)
        results[key] = run()
        raw.write_text(json.dumps(results, indent=2, default=str))  # a later failure keeps what was measured
    if old:
        new_models = {r["model"] for r in results["compression"]}
        kept = [tag(r, old["started_at"]) for r in old.get("compression", []) if r["model"] not in new_models]
        results["compression"] = kept + [tag(r, results["started_at"]) for r in results["compression"]]
    results["total_s"] = time.perf_counter() - started
    raw.write_text(json.dumps(results, indent=2, default=str))
    md = ROOT / "BENCHMARKS.md"
    old = md.read_text(encoding="utf-8") if md.exists() else ""
    md.write_text(keep_other_sections(old, render(results)), encoding="utf-8")
    print(f"wrote BENCHMARKS.md and benchmarks/results.json in {results['total_s']:.0f} s")


if __name__ == "__main__":
    main()


def keep_other_sections(old: str, new: str) -> str:
    """`new` with the sections other benchmark scripts wrote into `old` kept: this script rewrites the file.

    The study and deployment sections sit between their scripts' markers; the memory, smoke-scale and GPU
    sections are the `## ` sections that `new` does not have.
    """
    text = study.keep_section(old, new)
    if deployment.BEGIN in old and deployment.END in old and deployment.BEGIN not in text:
        start, end = old.index(deployment.BEGIN), old.index(deployment.END) + len(deployment.END)
        text = text.rstrip("\n") + "\n\n" + old[start:end] + "\n"
    for found in re.finditer(r"^(## [^\n]*)\n.*?(?=^## |^<!-- |\Z)", old, re.S | re.M):
        if found.group(1) not in text:
            text = text.rstrip("\n") + "\n\n" + found.group(0).rstrip("\n") + "\n"
    return text
