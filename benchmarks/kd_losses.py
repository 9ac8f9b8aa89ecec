"""Distillation losses against each other: a real study per model on its built-in task, `kd_loss` x
`structural_ratio` (the quick preset's default and 0.9), 3 seeds, each point with its `ce_only` control arm.

python -m benchmarks.kd_losses [--model resnet18] [--losses logits,logits:1+features:1] [--ratios default,0.9]
    [--seeds 0,1,2] [--work DIR] [--render-only]
python -m benchmarks.kd_losses --job --model t5-small --kd-loss logits:1+hidden_cosine:1 [--dataset D]
    (one quick job with a combined loss: each term, its weight and the layer mapping the report shows)

Per loss and ratio: the distilled student's test accuracy (mean over seeds with a 95% t-interval), its
kd_gain_points over the ce_only arm (the same student from the same initial weights, cross-entropy alone, same
budget) per seed with its paired interval and exact McNemar p, and their mean with a 95% t-interval across seeds;
and what the loss costs per training step against logits alone (the report's extra_cost, measured in the job).
Writes benchmarks/kd_losses.json (one entry per model, merged) and the section of BENCHMARKS.md. Nothing is
tuned: every option but the axes is the quick preset's default.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from backend.metrics.stats import t_interval
from backend.runtime import environment_info
from benchmarks.pruning_methods import TASKS
from benchmarks.report import splice_marked

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "benchmarks" / "kd_losses.json"
BEGIN, END = "<!-- kd losses benchmark: begin -->", "<!-- kd losses benchmark: end -->"


def measure(model: str, losses: list[str], ratios: list[float], seeds: list[int], work: Path) -> dict:
    """The study, then each point's own report."""
    from backend.models.registry import get_model_spec
    from backend.study_cli import run_study

    dataset = TASKS[get_model_spec(model).family]
    body = {
        "model_name": model,
        "dataset": dataset,
        "grid": {"kd_loss": losses, "structural_ratio": ratios, "sparsity": [_default(model, "sparsity")]},
        "seeds": seeds,
        "controls": ["ce_only"],
    }
    started = time.perf_counter()
    study = work / f"kd-losses-{model}"
    run_study(body, study, work / "cache", work / "uploads")
    wall = time.perf_counter() - started
    points = []
    for folder in sorted((study / "points").iterdir()):
        report = json.loads((folder / "report.json").read_text())
        kd = report["knowledge_distillation_analysis"]
        controls = kd.get("controls") or {}
        perf = report["student_model_performance"]
        config = report["metadata"]["config"]
        cost = kd.get("extra_cost") or {}
        points.append(
            {
                "job_id": folder.name,
                "kd_loss": config.get("kd_loss"),
                "structural_ratio": config["resolved"]["structural_ratio"],
                "seed": config.get("seed"),
                "test_samples": perf["test_samples"],
                "teacher_accuracy": report["teacher_vs_student_comparison"]["effectiveness"]["accuracy"]["teacher"],
                "student_accuracy": perf["accuracy"],
                "student_accuracy_ci": perf["accuracy_ci"],
                "ce_only_accuracy": ((controls.get("arms") or {}).get("ce_only") or {}).get("accuracy"),
                "kd_gain": controls.get("kd_gain_points"),
                "extra_cost_ratio": cost.get("ratio"),
                "extra_s_per_epoch": cost.get("extra_s_per_epoch_estimate"),
                "alignment": kd.get("alignment"),
                "student_source": (report["metadata"].get("student_source") or {}).get("kind"),
            }
        )
    return {
        "model": model,
        "dataset": dataset,
        "losses": losses,
        "ratios": ratios,
        "seeds": seeds,
        "points": points,
        "wall_s": wall,
        "environment": environment_info(),
        "measured_at": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }


def one_job(model: str, kd_loss: dict, dataset: str | None, work: Path) -> dict:
    """One quick job at the defaults but for `kd_loss` (and `dataset`): what its report shows of the loss."""
    from backend.jobconfig import JobConfig
    from backend.pipeline import run_job

    options = {"model_name": model, "kd_loss": kd_loss, **({"dataset": dataset} if dataset else {})}
    tag = f"{model}-" + "+".join(f"{k}{v:g}" for k, v in kd_loss.items())
    started = time.perf_counter()
    report = run_job(JobConfig.from_dict(options), None, job_id=tag, out_dir=work / tag, cache_dir=work / "cache",
                     upload_dir=work / "uploads").report  # fmt: skip
    kd, perf = report["knowledge_distillation_analysis"], report["student_model_performance"]
    cost = kd.get("extra_cost") or {}
    history = (kd.get("loss_history") or {}).get("distill") or {}
    return {
        "model": model,
        "dataset": report["metadata"]["dataset"].get("name") or dataset,
        "kd_loss": kd_loss,
        "formula": kd.get("loss_formula"),
        "weights": kd.get("loss_weights"),
        "terms": sorted(k for k in history if k not in ("rows", "epoch", "step", "loss", "lr")) or None,
        "alignment": kd.get("alignment"),
        "teacher_accuracy": report["teacher_vs_student_comparison"]["effectiveness"]["accuracy"]["teacher"],
        "student_accuracy": perf["accuracy"],
        "student_accuracy_ci": perf["accuracy_ci"],
        "test_samples": perf["test_samples"],
        "extra_cost_ratio": cost.get("ratio"),
        "wall_s": time.perf_counter() - started,
        "measured_at": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }


def _mapping_text(alignment: dict | None) -> str:
    if not alignment:
        return "none (logits only)"
    parts = []
    for name, block in alignment.items():
        if isinstance(block, dict) and block.get("layer_mapping") is not None:
            parts.append(f"{name}: student -> teacher {block['layer_mapping']}")
        else:
            parts.append(f"{name}: {json.dumps(block)[:120]}")
    return "; ".join(parts)


def render_jobs(jobs: list[dict]) -> list[str]:
    lines = [
        "### Quick jobs with combined losses",
        "",
        "`python -m benchmarks.kd_losses --job`: one quick job each, defaults but for `kd_loss`. The report shows "
        "each term with its weight, and where a loss reads inside the networks, the layer mapping taken from the "
        "structural recipe.",
        "",
        "| model | task | kd_loss | loss terms recorded | layer mapping | student accuracy | loss cost per step vs logits "
        "| wall time |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for j in jobs:
        ci = j["student_accuracy_ci"]
        cost = "n/a" if j["extra_cost_ratio"] is None else f"{j['extra_cost_ratio']:.2f}x"
        lines.append(
            f"| {j['model']} | {j['dataset']} | {_label(j['kd_loss'])} | "
            f"{', '.join(j['terms'] or []) or 'n/a'} | {_mapping_text(j['alignment'])} | "
            f"{j['student_accuracy'] * 100:.1f}% [{ci[0] * 100:.1f}, {ci[1] * 100:.1f}] ({j['test_samples']} test) | "
            f"{cost} | {j['wall_s']:.0f} s |"
        )
    return [*lines, ""]


def _default(model: str, name: str) -> float:
    """The quick job's default structural ratio (the model's) or sparsity (the option's)."""
    from backend.jobconfig import job_options
    from backend.models.registry import get_model_spec

    if name == "structural_ratio":
        return get_model_spec(model).default_structural_ratio
    return next(o.default for o in job_options() if o.name == name)


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{x * 100:.1f}%"


def _interval(
    values: list[float], scale: float = 1.0, fmt: str = "{:+.1f}", bounds: tuple[float, float] | None = None
) -> str:
    """mean [95% t-interval] across seeds; `bounds` clips the interval to what the quantity can be."""
    spread = t_interval([v * scale for v in values])
    if spread["mean"] is None:
        return "n/a"
    ci = spread["ci"]
    if ci and bounds:
        ci = [max(bounds[0], ci[0]), min(bounds[1], ci[1])]
    text = fmt.format(spread["mean"])
    return text + (f" [{fmt.format(ci[0])}, {fmt.format(ci[1])}]" if ci else "")


def _verdict(values: list[float]) -> str:
    ci = t_interval(values)["ci"]
    if not ci:
        return ""
    if ci[0] > 0:
        return "distillation helped (interval above 0)"
    if ci[1] < 0:
        return "distillation hurt (interval below 0)"
    return "within noise"


def render_model(r: dict) -> list[str]:
    lines = [
        f"### {r['model']} on `{r['dataset']}` ({r['points'][0]['test_samples']} test examples)",
        "",
        f"Run {r['measured_at']}: {len(r['points'])} jobs ({len(r['losses'])} losses x {len(r['ratios'])} ratios x "
        f"{len(r['seeds'])} seeds, each with its ce_only arm) in {r['wall_s'] / 60:.0f} min, "
        f"{r['environment'].get('cpu_model')}, torch {r['environment'].get('torch_version')} on "
        f"{r['environment'].get('torch_threads')} thread(s).",
        "",
        "| kd_loss | structural ratio | student accuracy, mean [95% t] | ce_only, mean | kd_gain per seed (pts, "
        "paired 95% interval, McNemar p) | kd_gain mean [95% t across seeds] | verdict | loss cost per step vs "
        "logits |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for loss in r["losses"]:
        for ratio in r["ratios"]:
            rows = [p for p in r["points"] if p["kd_loss"] == loss and p["structural_ratio"] == ratio]
            rows.sort(key=lambda p: p["seed"])
            gains = [p["kd_gain"] for p in rows if p.get("kd_gain")]
            per_seed = "; ".join(
                f"seed {p['seed']}: {g['points']:+.1f} [{g['ci_points'][0]:+.1f}, {g['ci_points'][1]:+.1f}], "
                f"p = {g['p_value']:.2g}"
                for p in rows
                if (g := p.get("kd_gain"))
            )
            costs = [p["extra_cost_ratio"] for p in rows if p.get("extra_cost_ratio")]
            cost = "1 (logits only)" if loss == "logits" else (_interval(costs, fmt="{:.2f}x") if costs else "n/a")
            lines.append(
                f"| {_label(loss)} | {ratio:g} | {_interval([p['student_accuracy'] for p in rows], 100, '{:.1f}', (0, 100))} | "
                f"{_interval([p['ce_only_accuracy'] for p in rows if p['ce_only_accuracy'] is not None], 100, '{:.1f}', (0, 100))}"
                f" | {per_seed} | {_interval([g['points'] for g in gains])} | {_verdict([g['points'] for g in gains])} "
                f"| {cost} |"
            )
    teachers = sorted({(p["seed"], p["teacher_accuracy"]) for p in r["points"]})
    lines += [
        "",
        "Teachers (one per seed, shared by its points): " + ", ".join(f"seed {s} {_pct(a)}" for s, a in teachers) + ".",
        "",
    ]
    return lines


def render(results: dict) -> str:
    lines = [
        BEGIN,
        "## Distillation losses: logits against hidden states, attention and features",
        "",
        "`python -m benchmarks.kd_losses`: a real study per model (`POST /studies` runs the same code), quick "
        "preset defaults but for the axes. kd_gain = the distilled student minus its ce_only control arm (same "
        "structural student, same initial weights, cross-entropy alone, same epochs and pruning), paired on the "
        "same test examples. The verdict is on the t-interval of the mean gain across seeds. Loss cost = median "
        "seconds per training step with the loss against logits alone, interleaved on the same batches in the job "
        "(mean across seeds).",
        "",
    ]
    for model in sorted(k for k in results if k not in ("jobs", "notes")):
        lines += render_model(results[model])
    for note in results.get("notes") or []:
        lines += [note, ""]
    if results.get("jobs"):
        lines += render_jobs(results["jobs"])
    lines.append(END)
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="resnet18")
    parser.add_argument("--losses", default=None, help="default: logits and every loss defined for the model")
    parser.add_argument("--ratios", default="default,0.9")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--work", default=None, help="the caches (teachers trained there are reused) and the study")
    parser.add_argument("--render-only", action="store_true")
    parser.add_argument("--job", action="store_true", help="one quick job with --kd-loss instead of the study")
    parser.add_argument("--kd-loss", default=None, help="with --job: name:weight+name:weight")
    parser.add_argument("--dataset", default=None, help="with --job: the task (default: the model's default)")
    parser.add_argument("--out", default=str(OUT))
    args = parser.parse_args()
    out = Path(args.out)
    results = json.loads(out.read_text()) if out.exists() else {}
    if args.job:
        kd_loss = _parse_loss(args.kd_loss)
        kd_loss = kd_loss if isinstance(kd_loss, dict) else {kd_loss: 1.0}
        work = Path(args.work or f"/tmp/kd-losses-{args.model}")
        row = one_job(args.model, kd_loss, args.dataset, work)
        results["jobs"] = [
            j for j in results.get("jobs", []) if (j["model"], j["kd_loss"]) != (row["model"], row["kd_loss"])
        ] + [row]
        out.write_text(json.dumps(results, indent=2, default=str))
    elif not args.render_only:
        losses = [_parse_loss(x) for x in args.losses.split(",")] if args.losses else _losses_for(args.model)
        ratios = [
            _default(args.model, "structural_ratio") if x == "default" else float(x) for x in args.ratios.split(",")
        ]
        work = Path(args.work or f"/tmp/kd-losses-{args.model}")
        work.mkdir(parents=True, exist_ok=True)
        seeds = [int(s) for s in args.seeds.split(",")]
        results[args.model] = measure(args.model, losses, ratios, seeds, work)
        out.write_text(json.dumps(results, indent=2, default=str))
    path = ROOT / "BENCHMARKS.md"
    path.write_text(splice_marked(path.read_text(), render(results), BEGIN, END))


def _losses_for(model: str) -> list:
    """logits, then logits combined (weight 1 each) with every other registered loss defined for the model's
    family. The richer losses read inside the networks and carry no label term, so each is compared as it is
    meant to be used, beside logits (ce is the control's, not a KD loss)."""
    from backend import kd
    from backend.models.registry import get_model_spec

    family = get_model_spec(model).family
    others = [x.name for x in kd.list_losses() if family in x.families and x.name not in (kd.DEFAULT_LOSS, "ce")]
    return [kd.DEFAULT_LOSS, *({kd.DEFAULT_LOSS: 1.0, name: 1.0} for name in others)]


def _parse_loss(text: str):
    """'logits' -> 'logits'; 'logits:1+features:1' -> {'logits': 1.0, 'features': 1.0}."""
    if ":" not in text:
        return text
    return {k: float(v) for k, v in (part.split(":") for part in text.split("+"))}


def _label(loss) -> str:
    """'logits', or '1 logits + 1 features'."""
    return loss if isinstance(loss, str) else " + ".join(f"{v:g} {k}" for k, v in loss.items())


if __name__ == "__main__":
    main()
