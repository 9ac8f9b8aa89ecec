"""The framework's KD loop against a bare PyTorch KD loop doing the same work, interleaved in one run."""

from __future__ import annotations

import statistics
import time

import torch
import torch.nn.functional as F

from backend.data import datasets as ds
from backend.kd.callbacks import CallbackList
from backend.kd.loop import TrainSettings, train
from backend.models.adapters import VisionAdapter
from backend.models.student import make_student
from backend.models.zoo.resnet18 import build as build_resnet18

STEPS = 20
BATCH = 64


def _bare_kd(student, teacher, data: ds.TensorSet, settings: TrainSettings) -> None:
    """What a researcher writes by hand: the same loss, clipping, optimiser and schedule, no framework."""
    opt = torch.optim.AdamW(student.parameters(), lr=settings.learning_rate, weight_decay=settings.weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=settings.learning_rate, total_steps=data.num_batches(settings.batch_size), pct_start=0.2
    )
    T, a = settings.temperature, settings.alpha
    student.train()
    teacher.eval()
    for batch in data.batches(settings.batch_size, shuffle=True, seed=0):
        x, y = batch["pixel_values"], batch["labels"]
        s = student(x)
        with torch.no_grad():
            t = teacher(x)
        kl = F.kl_div(F.log_softmax(s / T, -1), F.log_softmax(t / T, -1), reduction="batchmean", log_target=True)
        loss = a * T * T * kl + (1 - a) * F.cross_entropy(s, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(student.parameters(), settings.max_grad_norm)
        opt.step()
        sched.step()


def run(rounds: int = 3) -> dict:
    """samples/s of both loops over `rounds` interleaved rounds of STEPS steps each; the ratio of medians."""
    torch.manual_seed(0)
    raw = ds.load_digits()
    data = ds.vision_tensors(raw, ds.split_indices(raw.labels, 0).train[: STEPS * BATCH], 32)
    teacher = build_resnet18(class_names=raw.class_names)[0].eval()
    student, _ = make_student("resnet18", teacher, 0.5, torch.zeros(1, 3, 32, 32))
    teacher.requires_grad_(False)
    settings = TrainSettings(epochs=1, learning_rate=1e-3, batch_size=BATCH)
    rates: dict[str, list[float]] = {"framework": [], "bare": []}
    adapter = VisionAdapter()
    _bare_kd(student, teacher, data, settings)  # warm-up
    for _ in range(rounds):
        for name in ("framework", "bare"):
            started = time.perf_counter()
            if name == "framework":
                train(student, adapter, data, settings, phase="distill", callbacks=CallbackList(), teacher=teacher)
            else:
                _bare_kd(student, teacher, data, settings)
            rates[name].append(len(data) / (time.perf_counter() - started))
    fw, bare = statistics.median(rates["framework"]), statistics.median(rates["bare"])
    return {
        "model": "resnet18 student (50% channels), digits 32x32",
        "batch_size": BATCH,
        "steps_per_round": STEPS,
        "rounds": rounds,
        "framework_samples_per_s": fw,
        "bare_samples_per_s": bare,
        "framework_over_bare": fw / bare,
        "target_min": 0.9,
        "all_rounds": rates,
    }
