"""Training and evaluation loops, reporting through callbacks (torchvision-reference style functions)."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from backend.data.datasets import TensorSet
from backend.kd import DEFAULT_LOSS, get_loss
from backend.kd.callbacks import CallbackList
from backend.kd.loss import IGNORE_INDEX, distillation_loss


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
    kd_loss: str = DEFAULT_LOSS  # the distillation loss (backend.kd registry) when a teacher is given


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
) -> list[dict]:
    """Train `model` (with KD from `teacher` when given) with AdamW + one-cycle; returns one history row per step."""
    if settings.epochs == 0 or len(data) == 0:
        return []
    if teacher is not None:
        teacher.eval()  # frozen: its dropout off, its weights never updated
    optimizer = torch.optim.AdamW(
        _param_groups(model, settings), lr=settings.learning_rate, weight_decay=settings.weight_decay
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
    for epoch in range(settings.epochs):
        for batch in data.batches(settings.batch_size, shuffle=True, seed=settings.seed * 1000 + epoch):
            callbacks.check_stop()
            losses = _step(model, adapter, batch, settings, optimizer, teacher, scaler)
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


def _param_groups(model: nn.Module, settings: TrainSettings) -> list[dict]:
    """Trainable parameters; embeddings in a group of their own when they learn at a different rate."""
    params = [p for p in model.parameters() if p.requires_grad]
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
) -> tuple[TensorSet, dict]:
    """`data` plus the frozen teacher's logits for every example, computed once instead of once per step.

    Exact because the teacher is in eval mode (no dropout), never updated, and inputs are not augmented,
    so each example's teacher logits are the same in every epoch. Falls back to `data` (the teacher then
    runs at every step) when `data` is augmented (each epoch sees other crops) or when the logits would take
    more than `max_mb` (e.g. a 32k-word vocabulary).
    """
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


def loss_terms(model, adapter, batch, settings: TrainSettings, teacher=None) -> dict[str, torch.Tensor]:
    """The loss terms of `settings.kd_loss` on one batch (teacher logits from the batch, or from `teacher`)."""
    logits, targets = adapter.logits_and_targets(model, batch)
    kd = get_loss(settings.kd_loss)
    teacher_logits = None
    if TEACHER_LOGITS in batch:
        teacher_logits = batch[TEACHER_LOGITS].reshape(logits.shape)
    elif teacher is not None and kd.uses_teacher:
        with torch.no_grad():
            teacher_logits, _ = adapter.logits_and_targets(teacher, batch)
    return kd.compute(logits, teacher_logits, targets, settings)


def _step(model, adapter, batch, settings: TrainSettings, optimizer, teacher, scaler=None) -> dict[str, float | None]:
    """One optimisation step; returns the loss terms as floats."""
    terms = loss_terms(model, adapter, batch, settings, teacher)
    optimizer.zero_grad(set_to_none=True)
    if scaler is None:
        terms["loss"].backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), settings.max_grad_norm)
        optimizer.step()
    else:
        scaler.scale(terms["loss"]).backward()
        scaler.unscale_(optimizer)  # clip the true gradients
        torch.nn.utils.clip_grad_norm_(model.parameters(), settings.max_grad_norm)
        scaler.step(optimizer)
        scaler.update()
    out = {k: float(v.detach()) for k, v in terms.items()}
    out.setdefault("kd_loss", None)
    if not math.isfinite(out["loss"]):
        raise FloatingPointError(f"training diverged: loss is {out['loss']} (try a lower learning_rate)")
    return out


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
