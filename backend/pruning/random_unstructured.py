"""A control: progressive unstructured pruning of weights chosen at random (seeded), with the same schedule and
fine-tuning as l1_unstructured. The gap between the two is what ranking weights by magnitude buys."""

from __future__ import annotations

from backend.pruning import PruningMethod


def run(model, config, after_step, context=None) -> dict:
    """Prune to config.sparsity in config.pruning_steps steps, weights drawn at random (torch's seeded RNG)."""
    from backend.pruning import progressive  # torch: only where a job runs

    progressive.progressive_prune(
        model, config.sparsity, config.pruning_steps, scope="global", criterion="random", after_step=after_step
    )
    return {"scope": "global", "schedule": "cubic", "criterion": "random (seeded by the job's seed)"}


METHOD = PruningMethod(
    name="random_unstructured",
    description="Control: progressive unstructured pruning of randomly chosen weights (seeded), same schedule and "
    "fine-tuning as l1_unstructured; shows what magnitude ranking buys.",
    run=run,
)
