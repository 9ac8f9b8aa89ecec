"""Training and evaluation loops, reporting through callbacks (torchvision-reference style functions)."""

from __future__ import annotations

import contextlib
import copy
import math
import statistics
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import torch
from torch import nn

from backend.data.datasets import TensorSet
from backend.kd import DEFAULT_LOSS, loss_needs
from backend.kd.callbacks import CallbackList
from backend.kd.loss import IGNORE_INDEX, distillation_loss
from backend.kd.objective import Objective
from backend.kd.outputs import Outputs


@dataclass
class TrainSettings:
    """Optimiser and schedule of one training phase."""

    epochs: int
    learning_rate: float
    batch_size: int
    weight_decay: float = 0.01
    max_grad_norm: float = 1.0
    seed: int = 0
    temperature: float = 3.0
    alpha: float = 0.7
    embedding_lr_scale: float = 1.0  # >1 for T5 from scratch: its embeddings start at std 1, made for Adafactor
    precision: str = "fp32"  # forward passes autocast by the adapter; fp16 also scales the loss (GradScaler)
    # the distillation loss (backend.kd registry) when a teacher is given: a name, or {name: weight}
    kd_loss: str | Mapping[str, float] = DEFAULT_LOSS
    # stack -> the teacher block each student block was initialised from (the structural recipe's); None: the
    # same depth, block for block
    block_map: Mapping[str, list[int]] | None = None


def train(
    model: nn.Module,
    adapter,
    data: TensorSet,
    settings: TrainSettings,
    *,
    phase: str,
    callbacks: CallbackList,
    teacher: nn.Module | None = None,
    row_extra: dict | None = None,
    on_epoch_end: Callable[[int], None] | None = None,
    record: dict | None = None,
) -> list[dict]:
    """Train `model` (with KD from `teacher` when given) with AdamW + one-cycle; returns one history row per step.

    Without a teacher the loss is cross-entropy on the labels. With one, the job's `kd_loss`; the projections its
    losses add are built from the first batch, trained beside the model and dropped when training ends (the
    model itself is never changed: hooks and eager attention last only while it trains). `record`, when given,
    receives the loss's name, weights, layer mapping and projection sizes.
    """
    if settings.epochs == 0 or len(data) == 0:
        return []
    objective = run_objective(settings, teacher)
    needs = objective.needs
    if teacher is not None:
        teacher.eval()  # frozen: its dropout off, its weights never updated
    with contextlib.ExitStack() as prepared:
        for m in (model, teacher) if teacher is not None else (model,):
            prepared.enter_context(adapter.prepared(m, needs))
        _build_bridge(objective, model, adapter, data, settings, teacher)
        if record is not None:
            record.update(objective.describe())
        return _train(model, adapter, data, settings, phase, callbacks, teacher, objective, row_extra, on_epoch_end)


def _build_bridge(objective: Objective, model, adapter, data: TensorSet, settings: TrainSettings, teacher) -> None:
    """The objective's projections, sized from the outputs of one batch (not trained on: nothing is updated, and
    the model runs in eval mode so that batch-norm statistics and the dropout stream are untouched)."""
    if objective.built or teacher is None:
        return
    batch = data.head(min(settings.batch_size, len(data)))
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            student_out = adapter.outputs(model, batch, objective.needs)
            teacher_out = adapter.outputs(teacher, batch, objective.needs)
    finally:
        model.train(was_training)
    objective.build(student_out, teacher_out, settings)


def _train(model, adapter, data, settings, phase, callbacks, teacher, objective, row_extra, on_epoch_end):
    optimizer = torch.optim.AdamW(
        _param_groups(model, settings, objective), lr=settings.learning_rate, weight_decay=settings.weight_decay
    )
    steps_per_epoch = data.num_batches(settings.batch_size)
    total = settings.epochs * steps_per_epoch
    scheduler = _schedule(optimizer, settings.learning_rate, total)
    device = next(model.parameters()).device
    # fp16 gradients underflow without loss scaling; bf16 has fp32's range and needs none
    scaler = torch.amp.GradScaler(device.type) if settings.precision == "fp16" else None
    history: list[dict] = []
    step, started = 0, time.perf_counter()
    model.train()
    objective.bridge.train()
    for epoch in range(settings.epochs):
        for batch in data.batches(settings.batch_size, shuffle=True, seed=settings.seed * 1000 + epoch):
            callbacks.check_stop()
            losses = _step(model, adapter, batch, settings, optimizer, teacher, scaler, objective)
            scheduler.step()
            step += 1
            elapsed = time.perf_counter() - started
            eta = elapsed / step * (total - step)
            row = {"epoch": epoch + 1, "step": step, **losses, "lr": scheduler.get_last_lr()[0], **(row_extra or {})}
            history.append(row)
            callbacks.on_step_end(phase, step, total, losses, eta)
        if on_epoch_end is not None:
            on_epoch_end(epoch + 1)
            model.train()
    model.eval()
    return history


def _param_groups(model: nn.Module, settings: TrainSettings, objective: Objective | None = None) -> list[dict]:
    """Trainable parameters (the objective's projections with the model's); embeddings in a group of their own
    when they learn at a different rate."""
    params = [p for p in model.parameters() if p.requires_grad]
    params += objective.parameters() if objective is not None else []
    if settings.embedding_lr_scale == 1.0:
        return [{"params": params}]
    embedding_ids = {id(m.weight) for m in model.modules() if isinstance(m, nn.Embedding)}
    return [
        {"params": [p for p in params if id(p) not in embedding_ids]},
        {
            "params": [p for p in params if id(p) in embedding_ids],
            "weight_decay": 0.0,
            "lr": settings.learning_rate * settings.embedding_lr_scale,
        },
    ]


def _schedule(optimizer, max_lr: float, total: int):
    """One-cycle (warm-up then anneal); a constant rate for runs too short to warm up (OneCycleLR needs 5+ steps)."""
    if total < 10:
        return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda _: 1.0)
    peaks = [group.get("lr", max_lr) for group in optimizer.param_groups]
    return torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=peaks, total_steps=total, pct_start=0.2)


TEACHER_LOGITS = "teacher_logits"


@torch.no_grad()  # not inference_mode: the KD loss saves these logits for its backward pass
def with_teacher_logits(
    teacher: nn.Module,
    adapter,
    data: TensorSet,
    *,
    max_mb: float = 256.0,
    batch_size: int = 128,
    check_stop: Callable[[], None] = lambda: None,
    kd_loss: str | Mapping[str, float] = DEFAULT_LOSS,
) -> tuple[TensorSet, dict]:
    """`data` plus the frozen teacher's logits for every example, computed once instead of once per step.

    Exact because the teacher is in eval mode (no dropout), never updated, and inputs are not augmented,
    so each example's teacher logits are the same in every epoch. Falls back to `data` (the teacher then
    runs at every step) when `data` is augmented (each epoch sees other crops) or when the logits would take
    more than `max_mb` (e.g. a 32k-word vocabulary), or when `kd_loss` reads more of the teacher than its logits
    (its hidden states, attentions or features are needed per batch, so it runs at every step anyway).
    """
    needs = loss_needs(kd_loss)
    if needs:
        return data, {
            "teacher_logits": "computed at every step",
            "reason": f"the distillation loss reads the teacher's {', '.join(needs)} of every batch, so the teacher "
            "runs at every step (with its logits)",
        }
    if data.augment:
        return data, {
            "teacher_logits": "computed at every step",
            "reason": "training inputs are augmented (random crops and flips differ every epoch)",
        }
    teacher.eval()
    chunks: list[torch.Tensor] = []
    megabytes = 0.0
    for batch in data.batches(batch_size):
        check_stop()
        logits = adapter.logits_and_targets(teacher, batch)[0]
        chunks.append(logits.reshape(len(batch["labels"]), -1, logits.shape[-1]))  # rows: 1, or T5's target tokens
        if len(chunks) == 1:  # the first batch tells the size of them all
            megabytes = len(data) * chunks[0][0].numel() * 4 / 1e6
            if megabytes > max_mb:
                return data, {"teacher_logits": "computed at every step", "would_need_mb": round(megabytes, 1)}
    logits = torch.cat(chunks).float().cpu()  # stored with the examples, served per batch on their device
    info = {"teacher_logits": "computed once per job", "memory_mb": round(megabytes, 1)}
    return data.with_tensors(**{TEACHER_LOGITS: logits}), info


def run_objective(settings: TrainSettings, teacher) -> Objective:
    """What a training run optimises: the job's distillation loss with a teacher, cross-entropy without one."""
    return Objective(settings.kd_loss if teacher is not None else "ce")


def loss_terms(
    model, adapter, batch, settings: TrainSettings, teacher=None, objective: Objective | None = None
) -> dict[str, torch.Tensor]:
    """The loss terms of the job's objective on one batch (teacher logits from the batch, or from `teacher`)."""
    objective = objective or run_objective(settings, teacher)
    student = adapter.outputs(model, batch, objective.needs)
    teacher_out = None
    if TEACHER_LOGITS in batch and not objective.needs:
        teacher_out = Outputs(batch[TEACHER_LOGITS].reshape(student.logits.shape), student.targets)
    elif teacher is not None and objective.uses_teacher:
        with torch.no_grad():  # the teacher gets no gradient
            teacher_out = adapter.outputs(teacher, batch, objective.needs)
    return objective.compute(student, teacher_out, settings)


def _step(
    model, adapter, batch, settings: TrainSettings, optimizer, teacher, scaler=None, objective: Objective | None = None
) -> dict[str, float | None]:
    """One optimisation step; returns the loss terms as floats."""
    objective = objective or run_objective(settings, teacher)
    terms = loss_terms(model, adapter, batch, settings, teacher, objective)
    trained = [*model.parameters(), *objective.parameters()]
    optimizer.zero_grad(set_to_none=True)
    if scaler is None:
        terms["loss"].backward()
        torch.nn.utils.clip_grad_norm_(trained, settings.max_grad_norm)
        optimizer.step()
    else:
        scaler.scale(terms["loss"]).backward()
        scaler.unscale_(optimizer)  # clip the true gradients
        torch.nn.utils.clip_grad_norm_(trained, settings.max_grad_norm)
        scaler.step(optimizer)
        scaler.update()
    out = {k: float(v.detach()) for k, v in terms.items()}
    out.setdefault("kd_loss", None)
    if not math.isfinite(out["loss"]):
        raise FloatingPointError(f"training diverged: loss is {out['loss']} (try a lower learning_rate)")
    return out


def extra_cost(
    model: nn.Module, adapter, data: TensorSet, settings: TrainSettings, teacher: nn.Module | None, *, steps: int = 4
) -> dict:
    """What the job's loss costs per training step against the logits loss alone, measured on this machine.

    On copies of the model (the job's own training is untouched; the random state is restored), `steps`
    logits-only steps and `steps` full-loss steps run interleaved on the same batches (the order alternating per
    batch, so drift cancels), after one untimed warm-up of each. The logits-only step reads the teacher's
    logits precomputed, as the per-job cache serves them; the full step runs the teacher at every step for the
    extras its losses need, as training does. Returns the median seconds per step of each, their ratio and the
    seconds per epoch they imply; {"measured": False, "reason": ...} when the loss needs nothing beyond logits.
    """
    full = Objective(settings.kd_loss)
    if teacher is None or not full.needs:
        return {"measured": False, "reason": "the loss reads only the logits: it costs what logits alone cost"}
    device = next(model.parameters()).device
    batches = []
    for i, batch in enumerate(data.batches(settings.batch_size, shuffle=True, seed=settings.seed * 1000 + 999)):
        if i > steps:
            break
        with torch.no_grad():
            cached = adapter.logits_and_targets(teacher, batch)[0]
        batches.append((batch, {**batch, TEACHER_LOGITS: cached.detach()}))
    logits_settings = copy.copy(settings)
    logits_settings.kd_loss = DEFAULT_LOSS
    times: dict[str, list[float]] = {"logits": [], "full": []}
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []), contextlib.ExitStack() as stack:
        arms = {}
        for name, objective, arm_settings in (
            ("logits", Objective(DEFAULT_LOSS), logits_settings),
            ("full", full, settings),
        ):
            clone = copy.deepcopy(model).train()
            stack.enter_context(adapter.prepared(clone, objective.needs))
            stack.enter_context(adapter.prepared(teacher, full.needs if name == "full" else ()))
            _build_bridge(objective, clone, adapter, data, arm_settings, teacher)
            optimizer = torch.optim.AdamW(_param_groups(clone, arm_settings, objective), lr=settings.learning_rate)
            arms[name] = (clone, objective, arm_settings, optimizer)
        for i, (plain, with_logits) in enumerate(batches):
            order = ("logits", "full") if i % 2 == 0 else ("full", "logits")
            for name in order:
                clone, objective, arm_settings, optimizer = arms[name]
                batch = with_logits if name == "logits" else plain
                if device.type == "cuda":
                    torch.cuda.synchronize(device)
                started = time.perf_counter()
                _step(clone, adapter, batch, arm_settings, optimizer, teacher, None, objective)
                if device.type == "cuda":
                    torch.cuda.synchronize(device)
                if i > 0:  # batch 0 warms both up
                    times[name].append(time.perf_counter() - started)
    if not times["full"]:
        return {"measured": False, "reason": "too few training batches to time (need at least 2)"}
    per_epoch = data.num_batches(settings.batch_size)
    logits_s, full_s = statistics.median(times["logits"]), statistics.median(times["full"])
    return {
        "measured": True,
        "how": f"{len(times['full'])} logits-only and {len(times['full'])} full-loss steps interleaved on the same "
        "batches, on copies of the student at the start of distillation (1 warm-up step each, not timed); "
        "logits-only steps read precomputed teacher logits (as the per-job cache serves them), full-loss steps "
        "run the teacher at every step",
        "steps_timed": len(times["full"]),
        "logits_only_s_per_step": logits_s,
        "full_loss_s_per_step": full_s,
        "ratio": full_s / logits_s if logits_s > 0 else None,
        # the same batch's pair, per batch: the spread a median of a few steps hides
        "ratio_per_batch": [f / g for f, g in zip(times["full"], times["logits"], strict=True) if g > 0],
        "seconds_per_step": times,
        "steps_per_epoch": per_epoch,
        "logits_only_s_per_epoch_estimate": logits_s * per_epoch,
        "full_loss_s_per_epoch_estimate": full_s * per_epoch,
        "extra_s_per_epoch_estimate": (full_s - logits_s) * per_epoch,
        "device": str(device),
    }


@torch.inference_mode()
def evaluate(model: nn.Module, adapter, data: TensorSet, batch_size: int = 128) -> dict[str, float]:
    """Accuracy (from predictions) and mean cross-entropy on `data`; restores the model's mode."""
    was_training = model.training
    model.eval()
    correct, loss_sum, rows = 0, 0.0, 0
    for batch in data.batches(batch_size):
        logits, targets = adapter.logits_and_targets(model, batch)
        terms = distillation_loss(logits, None, targets)
        n = int((targets != IGNORE_INDEX).sum())
        loss_sum += float(terms["ce_loss"]) * n
        rows += n
        correct += int((adapter.predict(model, batch) == batch["labels"]).sum())
    model.train(was_training)
    return {"accuracy": correct / max(1, len(data)), "loss": loss_sum / max(1, rows)}


@torch.inference_mode()
def mean_kl(
    teacher: nn.Module, student: nn.Module, adapter, data: TensorSet, temperature: float = 1.0, batch_size: int = 128
) -> float:
    """Mean KL(teacher || student) per logit row at `temperature` over `data` (teacher-forced for T5)."""
    total, rows = 0.0, 0
    for model in (teacher, student):
        model.eval()
    for batch in data.batches(batch_size):
        s_logits, targets = adapter.logits_and_targets(student, batch)
        t_logits, _ = adapter.logits_and_targets(teacher, batch)
        terms = distillation_loss(s_logits, t_logits, targets, temperature=temperature, alpha=1.0)
        n = int((targets != IGNORE_INDEX).sum())
        total += float(terms["kd_loss"]) * n
        rows += n
    return total / max(1, rows)
