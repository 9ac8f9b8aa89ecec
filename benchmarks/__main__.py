"""python -m benchmarks: every measurement, written to BENCHMARKS.md and benchmarks/results.json."""

from __future__ import annotations

import argparse
import json
import os
import re
import time
from pathlib import Path

from backend.runtime import environment_info
from benchmarks import compression, server, training_loop
from benchmarks.report import render, splice_marked

# a section another benchmark script owns, between its markers
MARKED = re.compile(
    r"(?P<begin><!-- (?P<name>[a-z0-9 ]+?)(?P<sep> benchmark: |:)begin -->).*?(?P<end><!-- (?P=name)(?P=sep)end -->)",
    re.S,
)

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
    parser.add_argument("--render-only", action="store_true", help="rewrite BENCHMARKS.md from the saved results")
    args = parser.parse_args()
    started = time.perf_counter()
    raw = ROOT / "benchmarks" / "results.json"
    if args.render_only:
        write_markdown(json.loads(raw.read_text()))
        return
    old = json.loads(raw.read_text()) if args.merge and raw.exists() else {}
    results: dict = {
        "environment": environment_info(),
        "started_at": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "load_average_at_start": os.getloadavg()[0],
    }
    machine = (old.get("environment") or {}).get("cpu_model")

    def tag(item: dict, when: str, cpu: str | None = None) -> dict:
        """A figure labelled with the run (and machine) that measured it."""
        return {**item, "run_started_at": item.get("run_started_at", when), "run_machine": item.get("run_machine", cpu)}

    sections = [("compression: cold and cached teacher", "compression", lambda: compression.run(args.models))]
    if not args.skip_loop:
        sections.insert(0, ("training loop: framework vs bare PyTorch", "training_loop", training_loop.run))
    elif old.get("training_loop"):
        results["training_loop"] = tag(old["training_loop"], old["started_at"], machine)
    if not args.skip_server:
        sections.append(("server responsiveness", "server", server.run))
    elif old.get("server"):
        results["server"] = tag(old["server"], old["started_at"], machine)
    for title, key, run in sections:
        print(title, flush=True)
        results[key] = run()
        raw.write_text(json.dumps(results, indent=2, default=str))  # a later failure keeps what was measured
    if old:
        new_models = {r["model"] for r in results["compression"]}
        kept = [tag(r, old["started_at"], machine) for r in old.get("compression", []) if r["model"] not in new_models]
        results["compression"] = kept + [
            tag(r, results["started_at"], results["environment"].get("cpu_model")) for r in results["compression"]
        ]
    results["total_s"] = time.perf_counter() - started
    raw.write_text(json.dumps(results, indent=2, default=str))
    write_markdown(results)
    print(f"wrote BENCHMARKS.md and benchmarks/results.json in {results['total_s']:.0f} s")


def write_markdown(results: dict) -> None:
    """BENCHMARKS.md from `results`, the sections other benchmark scripts wrote kept."""
    md = ROOT / "BENCHMARKS.md"
    previous = md.read_text(encoding="utf-8") if md.exists() else ""
    md.write_text(keep_other_sections(previous, render(results)), encoding="utf-8")


def keep_other_sections(old: str, new: str) -> str:
    """`new` with the sections other benchmark scripts wrote into `old` kept: this script rewrites the file.

    Every section between a script's markers (`<!-- NAME benchmark: begin -->` ... `end -->`: study, deployment,
    evidence, pruning methods, ...) is kept whole, markers included, in the order of `old`; the memory,
    smoke-scale and GPU sections are the `## ` sections outside markers that `new` does not have.
    """
    text = new
    for found in MARKED.finditer(old):
        text = splice_marked(text, found.group(0), found.group("begin"), found.group("end"))
    for found in re.finditer(r"^(## [^\n]*)\n.*?(?=^## |^<!-- |\Z)", MARKED.sub("", old), re.S | re.M):
        if found.group(1) not in text:
            text = text.rstrip("\n") + "\n\n" + found.group(0).rstrip("\n") + "\n"
    return text


if __name__ == "__main__":
    main()
