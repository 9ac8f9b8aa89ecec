"""The seed's method: progressive global L1-magnitude unstructured pruning (torch.nn.utils.prune), cubic schedule,
KD fine-tuning after each step, made permanent at the end."""

from __future__ import annotations

from backend.options import Option
from backend.pruning import PruningMethod

SCOPE = Option(
    "pruning_scope",
    "string",
    default="global",
    choices=("global", "layer"),
    help="l1_unstructured: rank weights across all prunable layers at once (global) or reach the sparsity in "
    "every layer separately (layer)",
    label="L1 pruning scope",
    group="pruning",
    owner="pruning_method:l1_unstructured",
)


def run(model, config, after_step, context=None) -> dict:
    """Prune to config.sparsity in config.pruning_steps steps by |weight|."""
    from backend.pruning import progressive  # torch: only where a job runs

    scope = getattr(config, "pruning_scope", SCOPE.default)
    progressive.progressive_prune(
        model, config.sparsity, config.pruning_steps, scope=scope, criterion="l1", after_step=after_step
    )
    return {"scope": scope, "schedule": "cubic", "criterion": "L1 magnitude"}


METHOD = PruningMethod(
    name="l1_unstructured",
    description="Progressive L1-magnitude unstructured pruning (torch.nn.utils.prune), cubic schedule, KD "
    "fine-tuning after each step; zeros weights but removes no structure, so dense FLOPs and latency stay.",
    run=run,
    options=(SCOPE,),
)
