"""One job end to end: data -> teacher -> student -> distillation -> progressive pruning -> measurement.

Knows nothing of Flask or Socket.IO: progress and cancellation go through callbacks.
"""

from __future__ import annotations

import contextlib
import copy
import json
import logging
import random
import shutil
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from backend import cachefiles, devices, kd, pruning
from backend.cachefiles import touch_cached
from backend.data import datasets as ds
from backend.data import public
from backend.data.builtin import load_builtin
from backend.data.uploads import DATASET_KINDS, extract_model_zip, resolve_upload
from backend.jobconfig import CONTROL_ARMS, JobConfig, job_options
from backend.kd import loop
from backend.kd.callbacks import OPTIONAL_PHASES, PHASES, CallbackList, Callbacks
from backend.metrics.compression import count_parameters, sparsity
from backend.metrics.deployment import measure_deployment
from backend.metrics.effectiveness import classification_metrics, paired_differences
from backend.metrics.efficiency import measure_latency, model_size
from backend.metrics.inference_memory import BATCH_SIZES, measure_inference_memory, pickle_globals
from backend.metrics.latency_target import (
    CandidateTimer,
    LatencyTargetUnreachable,
    RuntimeTimer,
    describe_target,
    meets,
    search_amount,
)
from backend.metrics.measure import measure_pair, measure_pruning_effect
from backend.metrics.report import build_report
from backend.metrics.sparse_kernels import semi_structured_speed
from backend.metrics.stats import paired_accuracy_difference
from backend.models import adapters, teachers, vision
from backend.models import text as text_models
from backend.models.registry import ModelSpec, defaults, get_model_spec
from backend.models.student import make_student
from backend.outputs import write_outputs
from backend.pruning import progressive
from backend.runtime import environment_info

log = logging.getLogger(__name__)

AUGMENTATION = (
    f"training split only: per image random resized crop (area {ds.AUGMENT_SCALE[0]:g}-"
    f"{ds.AUGMENT_SCALE[1]:g}) + horizontal flip (torchvision.transforms.v2); teacher logits per step"
)


@dataclass
class JobResult:
    """What a finished job leaves: the report and the files written under out_dir."""

    report: dict
    out_dir: Path
    artifacts: dict[str, str] = field(default_factory=dict)


@dataclass
class JobState:
    """Everything one run builds up, handed from phase to phase."""

    config: JobConfig
    spec: ModelSpec
    hp: dict
    raw: ds.RawDataset | None = None
    splits: ds.Splits | None = None
    train: ds.TensorSet | None = None
    kd_train: ds.TensorSet | None = None  # train plus the teacher's logits, when they fit in memory
    val: ds.TensorSet | None = None
    test: ds.TensorSet | None = None
    tokenizer: Any = None
    adapter: Any = None
    teacher: nn.Module | None = None
    student: nn.Module | None = None
    teacher_source: dict = field(default_factory=dict)
    student_source: dict = field(default_factory=dict)
    structural: dict = field(default_factory=dict)
    history: dict = field(default_factory=lambda: {"teacher": [], "distill": [], "finetune": []})
    validation: list = field(default_factory=list)
    stages: list = field(default_factory=list)
    pruning: dict = field(default_factory=dict)
    timings: dict = field(default_factory=dict)
    image_size: int = 32
    max_length: int = 0
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    precision: str = "fp32"
    teacher_logits: dict = field(default_factory=dict)  # how KD got the teacher's logits (cached or per step)
    kd: dict = field(default_factory=dict)  # the distillation loss as trained: weights, layer mapping, extra cost
    onnx_dir: Path | None = None  # where the student's ONNX files are written (the bundle ships them)
    student_template: nn.Module | None = None  # the structural student as built, before any training
    student_init: dict | None = None  # its initial weights: the control arms start from them
    controls: dict = field(default_factory=dict)  # arm -> its trained model and record
    latency_target: dict = field(default_factory=dict)  # the search for a latency target, when one was asked


def resolved_hyperparameters(config: JobConfig, spec: ModelSpec) -> dict:
    """The preset's defaults for this model, overridden by whatever the config sets."""
    hp = defaults(spec.id, config.preset)
    for key in ("epochs", "kd_epochs", "finetune_epochs", "batch_size", "learning_rate"):
        if getattr(config, key) is not None:
            hp[key] = getattr(config, key)
    hp["structural_ratio"] = (
        config.structural_ratio if config.structural_ratio is not None else spec.default_structural_ratio
    )
    # the student's rate (KD, and fine-tuning at a third of it): the preset's, unless the request sets one for all
    if config.learning_rate is not None or "kd_learning_rate" not in hp:
        hp["kd_learning_rate"] = hp["learning_rate"]
    # random resized crop + flip: on for vision at the standard preset (224 inputs from smaller sources), off at quick
    hp["augment"] = (
        bool(config.augment)
        if config.augment is not None
        else (spec.family == "vision" and config.preset == "standard")
    )
    return hp


def place(state: JobState) -> None:
    """Resolve where the job runs ('auto': CUDA when present) and at what precision (bf16 on CUDA where supported)."""
    state.device = devices.resolve_device(state.config.device)
    state.precision = state.config.precision or devices.default_precision(state.device)
    devices.check_precision(state.precision, state.device)
    state.hp.update(device=str(state.device), precision=state.precision)


def seed_everything(seed: int) -> None:
    """Same seed, same machine, same numbers."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


@contextmanager
def phase(state: JobState, cb: CallbackList, name: str) -> Iterator[dict]:
    """Time a phase and tell the callbacks when it starts and ends."""
    cb.check_stop()
    cb.on_phase_start(name, {"phase": name})
    info: dict = {}
    started = time.perf_counter()
    yield info
    state.timings[name] = time.perf_counter() - started
    cb.on_phase_end(name, {"phase": name, "seconds": state.timings[name], **info})


def run_job(
    config: JobConfig,
    callbacks: Callbacks | None = None,
    *,
    job_id: str,
    out_dir: Path,
    cache_dir: Path,
    upload_dir: Path,
) -> JobResult:
    """Run one job; raises JobCancelled when the callbacks ask to stop."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    cb = callbacks if isinstance(callbacks, CallbackList) else CallbackList(callbacks)
    spec = get_model_spec(config.model_name)
    state = JobState(
        config=config, spec=spec, hp=resolved_hyperparameters(config, spec), onnx_dir=Path(out_dir) / "onnx"
    )
    place(state)
    started = time.perf_counter()
    seed_everything(config.seed)
    with phase(state, cb, "data") as info:
        load_data(state, Path(upload_dir), Path(cache_dir))
        info.update(dataset=state.raw.name, **state.splits.sizes())
    if config.latency_target:
        with phase(state, cb, "latency_target") as info:
            search_latency_target(state, cb, Path(upload_dir))
            info.update({k: state.latency_target[k] for k in ("chosen", "met", "stopped")})
        seed_everything(config.seed)  # from here on, the same job as one asking for the chosen ratio
    with phase(state, cb, "teacher") as info:
        obtain_teacher(state, cb, Path(cache_dir), Path(upload_dir))
        info.update(source=state.teacher_source)
    with phase(state, cb, "student") as info:
        build_student(state, cb)
        info.update(state.structural)
    with phase(state, cb, "distill") as info:
        info.update(distill(state, cb, Path(cache_dir)), student_source=state.student_source)
    with phase(state, cb, "prune"):
        prune_progressively(state, cb)
    if config.controls:
        with phase(state, cb, "controls") as info:
            run_controls(state, cb)
            info.update(arms={arm: round(c["wall_time_s"], 3) for arm, c in state.controls.items()})
    with phase(state, cb, "evaluate"):
        report = evaluate_and_report(state, cb, job_id, started)
    _to_cpu(state)  # the exported bundle is for the CPU
    artifacts = write_outputs(report, state, Path(out_dir))
    return JobResult(report=report, out_dir=Path(out_dir), artifacts=artifacts)


def _to_cpu(state: JobState) -> None:
    """Models and data back in host memory (frees accelerator memory too)."""
    for model in (state.teacher, state.student):
        model.cpu()
    state.train, state.val, state.test = (s.to("cpu") for s in (state.train, state.val, state.test))


def load_data(state: JobState, upload_dir: Path, cache_dir: Path) -> None:
    """Load and split the dataset; vision tensors now, text tensors once the tokenizer is known."""
    config, spec = state.config, state.spec
    if spec.family == "vision":
        state.image_size = vision.input_size(spec, config.preset)
    if config.dataset_is_upload:
        path, meta = resolve_upload(upload_dir, config.dataset)
        if meta.get("kind") not in DATASET_KINDS[spec.family]:
            raise ds.DataError(
                f"upload {config.dataset} is a {meta.get('kind')!r} file; {spec.display_name} needs "
                f"one of {list(DATASET_KINDS[spec.family])}."
            )
        raw = ds.load_upload(
            spec.family,
            path,
            meta.get("filename", config.dataset),
            state.image_size,
            max_samples=config.max_samples,
            seed=config.seed,
        )
    elif config.dataset in public.PUBLIC:
        raw = public.load(config.dataset, cache_dir / "datasets", max_samples=config.max_samples, seed=config.seed)
    else:
        raw = load_builtin(config.dataset, seed=config.seed)
    state.raw = ds.subsample(raw, config.max_samples, config.seed)
    state.splits = ds.split_indices(state.raw.labels, config.seed)
    if spec.family == "vision":
        train, val, test = state.splits.train, state.splits.val, state.splits.test
        state.train, state.val, state.test = (
            ds.vision_tensors(state.raw, idx, state.image_size, augment=state.hp["augment"] and idx is train).to(
                state.device
            )
            for idx in (train, val, test)
        )
        state.raw.images = None  # the splits hold their own (source-size) copies
        state.adapter = _adapter(state)


def search_latency_target(state: JobState, cb: CallbackList, upload_dir: Path) -> None:
    """The least structural ratio whose student meets the job's latency target (backend.metrics.latency_target),
    searched before any training; it replaces the job's structural ratio. LatencyTargetUnreachable (the job fails
    at once) when even the most compressed candidate misses it.

    The candidates are structural students of an untrained build of the teacher's architecture: dense latency
    does not depend on the weights' values, so the search need not wait for the teacher to be trained."""
    config = state.config
    teacher, adapter, inputs = _architecture_only(state, upload_dir)
    device = state.device if config.target_runtime == "pytorch" else torch.device("cpu")
    if device.type == "cpu":
        adapter = copy.copy(adapter)
        adapter.amp = contextlib.nullcontext  # ONNX Runtime and the CPU run fp32
    teacher, inputs = teacher.to(device).eval(), inputs.to(device)
    example = inputs.head(1)["pixel_values"] if state.spec.family == "vision" else None
    work = Path(tempfile.mkdtemp(prefix="kd-latency-target-"))
    try:
        timer = _target_timer(state, adapter, inputs.head, work)
        measure = CandidateTimer(
            timer, teacher, lambda ratio: make_student(state.spec, teacher, ratio, example)[0], inputs.head(1)
        )

        def measured(amount: float) -> tuple:
            student_ms, teacher_ms, details = measure(amount)
            cb.on_metrics(
                "latency_target",
                {"phase": "latency_target", "candidate": measure.count, "structural_ratio": amount, **details},
            )
            return student_ms, teacher_ms, details

        result = search_amount(
            measured,
            target_latency_ms=config.target_latency_ms,
            target_speedup=config.target_speedup,
            high=_option_maximum("structural_ratio"),
            check_stop=cb.check_stop,
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    state.latency_target = {
        **result,
        "asked": {**config.latency_target, "runtime": config.target_runtime, "batch_size": config.target_batch_size},
        "amount": "structural_ratio",
        "conditions": {**timer.conditions(), "device": str(device)},
        "teacher_flops_per_sample": measure.teacher_flops,
        "teacher_parameters": measure.teacher_parameters,
    }
    if not result["met"]:
        fastest = result["fastest"]
        raise LatencyTargetUnreachable(
            f"no student within the limits meets {describe_target(config.target_latency_ms, config.target_speedup)} "
            f"in {config.target_runtime} at batch size {config.target_batch_size}: the fastest candidate "
            f"(structural_ratio {fastest['amount']:g}, the most compressed) measured {fastest['student_ms']:.3f} ms, "
            f"{fastest['speedup']:.2f}x the teacher's speed; ask for less."
        )
    state.hp["structural_ratio"] = result["chosen"]


def _option_maximum(name: str) -> float:
    """The upper limit of a numeric job option (the search stays within what a request could ask for)."""
    return float(next(o.maximum for o in job_options() if o.name == name))


def _target_timer(state: JobState, adapter, head, work: Path) -> RuntimeTimer:
    """Times models as the job's latency target asks: its runtime, batch size and number of rounds."""
    config = state.config
    return RuntimeTimer(
        config.target_runtime,
        state.spec.id,
        adapter,
        head,
        batch_size=config.target_batch_size,
        runs=config.latency_runs,
        work_dir=work,
    )


def _architecture_only(state: JobState, upload_dir: Path) -> tuple[nn.Module, Any, ds.TensorSet]:
    """The teacher's architecture, untrained (an uploaded teacher as uploaded), its adapter, and inputs to time."""
    config, spec = state.config, state.spec
    train_texts = [state.raw.texts[i] for i in state.splits.train] if spec.family == "text" else None
    if config.teacher_upload_id:
        model, tok, _source, _epochs = _uploaded_teacher(state, upload_dir, state.raw.class_names)
    else:
        model, tok = teachers.build_fresh(
            spec,
            preset=config.preset,
            class_names=state.raw.class_names,
            train_texts=train_texts,
            pretrained=False,
            seed=config.seed,
        )
    if spec.family == "vision":
        return model, state.adapter, state.train
    idx = state.splits.train[:64]
    max_length = adapters.fitted_length(tok, train_texts, text_models.MAX_LENGTH[config.preset])
    words = state.raw.class_names if spec.labels_as_words else None
    inputs = adapters.text_tensors(tok, [state.raw.texts[i] for i in idx], state.raw.labels[idx], max_length, words)
    return model, _adapter(state, tok), inputs


def _adapter(state: JobState, tokenizer=None):
    """The model's adapter, its forward passes under the job's autocast."""
    adapter = adapters.adapter_for(state.spec, tokenizer, state.raw.class_names)
    adapter.amp = devices.autocast(state.device, state.precision)
    return adapter


def _tokenise(state: JobState) -> None:
    """Text tensors for all three splits with the teacher's tokenizer."""
    raw, tok = state.raw, state.tokenizer
    train_texts = [raw.texts[i] for i in state.splits.train]
    state.max_length = adapters.fitted_length(tok, train_texts, text_models.MAX_LENGTH[state.config.preset])
    words = raw.class_names if state.spec.labels_as_words else None
    state.train, state.val, state.test = (
        adapters.text_tensors(tok, [raw.texts[i] for i in idx], raw.labels[idx], state.max_length, words).to(
            state.device
        )
        for idx in (state.splits.train, state.splits.val, state.splits.test)
    )
    state.adapter = _adapter(state, tok)


def _settings(state: JobState, epochs: int, lr: float | None = None, kd_loss: Any = None) -> loop.TrainSettings:
    c, hp = state.config, state.hp
    return loop.TrainSettings(
        epochs=epochs,
        learning_rate=lr or hp["learning_rate"],
        batch_size=hp["batch_size"],
        max_grad_norm=c.max_grad_norm,
        seed=c.seed,
        temperature=c.temperature,
        alpha=c.alpha,
        embedding_lr_scale=hp.get("embedding_lr_scale", 1.0),
        precision=state.precision,
        kd_loss=kd_loss or c.kd_loss,
        block_map=state.structural.get("details", {}).get("block_map"),  # the recipe's: student block <- teacher's
    )


def _teacher_key(state: JobState) -> str:
    """Everything that shapes a trained teacher, hashed: equal keys mean an equal teacher."""
    c, hp = state.config, state.hp
    parts = {
        "model": c.model_name,
        "dataset": c.dataset,
        "preset": c.preset,
        "seed": c.seed,
        "pretrained": c.pretrained,
        "epochs": hp["epochs"],
        "lr": hp["learning_rate"],
        "batch_size": hp["batch_size"],
        "max_samples": c.max_samples,
        "grad_norm": c.max_grad_norm,
        "embedding_lr_scale": hp.get("embedding_lr_scale", 1.0),
        "architecture": _architecture(state),
        "version": 2,
    }
    # only when not the defaults of before, so existing cached teachers keep their keys
    parts.update({k: hp[k] for k in ("augment",) if hp.get(k)})
    parts.update({"precision": state.precision} if state.precision != "fp32" else {})
    return f"{c.model_name}-{teachers.cache_key(parts)}"


def _architecture(state: JobState) -> dict:
    """The sizes a from-scratch teacher is built with (a changed preset size must not load an old teacher)."""
    return state.spec.architecture(state.config.preset)


def obtain_teacher(state: JobState, cb: CallbackList, cache_dir: Path, upload_dir: Path) -> None:
    """Teacher from an upload, the cache, or pretrained / fresh weights trained on the train split."""
    if state.config.teacher_upload_id:
        _obtain_teacher(state, cb, None, upload_dir)
        return
    cache_path = cache_dir / "teachers" / _teacher_key(state)
    # One worker trains a given teacher; another that needs it meanwhile waits, then reuses it from the cache.
    with teachers.cache_lock(cache_path, check=cb.check_stop):
        _obtain_teacher(state, cb, cache_path, upload_dir)


def _obtain_teacher(state: JobState, cb: CallbackList, cache_path: Path | None, upload_dir: Path) -> None:
    config, spec = state.config, state.spec
    class_names = state.raw.class_names
    train_texts = [state.raw.texts[i] for i in state.splits.train] if spec.family == "text" else None
    rebuilt = None
    if cache_path is None:
        model, tok, source, epochs = _uploaded_teacher(state, upload_dir, class_names)
    else:
        rebuilt = _discard_if_corrupt(cache_path, "teacher")
        cached = (
            None if rebuilt else teachers.load_cached(cache_path, spec, preset=config.preset, class_names=class_names)
        )
        if cached is not None:
            state.teacher, state.tokenizer, meta = cached
            state.teacher.to(state.device)
            state.teacher_source = {
                **meta["source"],
                "kind": "cache",
                "detail": f"reused from the teacher cache ({meta['source']['detail']})",
            }
            state.history["teacher"] = meta.get("history", [])
            state.validation += meta.get("validation", [])
            if spec.family == "text":
                _tokenise(state)
            state.teacher.requires_grad_(False)
            return
        model, tok, source = teachers.load_pretrained(
            spec,
            mode=config.pretrained,
            preset=config.preset,
            class_names=class_names,
            train_texts=train_texts,
            seed=config.seed,
        )
        epochs = state.hp["epochs"]
    state.teacher, state.tokenizer, state.teacher_source = model.to(state.device), tok, source
    if spec.family == "text":
        _tokenise(state)
    seed_everything(config.seed)
    validate = _epoch_validator(state, cb, "teacher", state.teacher)
    state.history["teacher"] = loop.train(
        state.teacher,
        state.adapter,
        state.train,
        _settings(state, epochs),
        phase="teacher",
        callbacks=cb,
        on_epoch_end=validate,
    )
    state.teacher.eval().requires_grad_(False)
    if cache_path is not None:
        teachers.save_teacher(
            cache_path,
            state.teacher,
            state.tokenizer,
            {
                "source": state.teacher_source,
                "history": state.history["teacher"],
                "dataset": state.config.dataset,  # DELETE /uploads/<id> removes its teachers
                "validation": [v for v in state.validation if v["phase"] == "teacher"],
            },
        )
    if rebuilt:  # the report says so; the cached entry's own record does not
        state.teacher_source = _rebuilt_note(state.teacher_source, "teacher", rebuilt)


def _discard_if_corrupt(path: Path, what: str) -> str | None:
    """None when a cache entry is absent or matches its sha256 digest; otherwise discard it (the job rebuilds it)
    and return what was wrong."""
    if not path.exists():
        return None
    problem = cachefiles.check(path)
    if problem is not None:
        log.warning("the cached %s %s is corrupt (%s): discarded, this job rebuilds it", what, path.name, problem)
        cachefiles.discard(path)
    return problem


def _rebuilt_note(source: dict, what: str, problem: str) -> dict:
    """A teacher_source / student_source that says its cache entry was found corrupt and rebuilt."""
    return {
        **source,
        "cache_rebuilt": True,
        "cache_rebuilt_reason": problem,
        "detail": f"{source.get('detail', '')}; the cached {what} was corrupt ({problem}): discarded and rebuilt",
    }


def _uploaded_teacher(state: JobState, upload_dir: Path, class_names: list[str]):
    """(model, tokenizer, source, epochs) from an uploaded checkpoint; trained further only when needed or asked."""
    config, spec = state.config, state.spec
    path, meta = resolve_upload(upload_dir, config.teacher_upload_id)
    name = meta.get("filename", path.name)
    if spec.family == "text":
        if path.suffix != ".zip":
            raise teachers.TeacherError(f"a {spec.display_name} teacher must be a ZIP of a save_pretrained folder.")
        folder = extract_model_zip(path, upload_dir / config.teacher_upload_id / "model")
        model, tok = teachers.load_text_folder(spec, folder)
        if spec.task == "sequence_classifier" and model.config.num_labels != len(class_names):
            raise teachers.TeacherError(
                f"uploaded model has {model.config.num_labels} labels, the dataset {len(class_names)}."
            )
        reinit = False
    else:
        model, info = teachers.load_vision_checkpoint(spec, path, class_names)
        tok, reinit = None, info["classifier_reinitialised"]
    epochs = config.epochs if config.epochs is not None else (state.hp["epochs"] if reinit else 0)
    detail = (
        f"uploaded checkpoint {name}"
        + (", classifier re-initialised" if reinit else "")
        + (f", trained {epochs} more epoch(s) here" if epochs else ", used as uploaded")
    )
    return model, tok, {"kind": "upload", "detail": detail, "upload_id": config.teacher_upload_id}, epochs


def _epoch_validator(state: JobState, cb: CallbackList, phase_name: str, model: nn.Module):
    """An on_epoch_end hook: validation accuracy and loss, recorded and reported."""

    def validate(epoch: int) -> None:
        result = loop.evaluate(model, state.adapter, state.val)
        row = {"phase": phase_name, "epoch": epoch, "pruning_step": None, **result}
        state.validation.append(row)
        cb.on_metrics(phase_name, row)

    return validate


def _stage(state: JobState, stage: str, model: nn.Module, val_accuracy: float | None = None) -> None:
    """Validation accuracy at one stage, and a snapshot of the weights to measure on the test split at the end."""
    if val_accuracy is None:
        val_accuracy = loop.evaluate(model, state.adapter, state.val)["accuracy"]
    # the whole module, not a state dict: structured pruning changes the student's shapes between stages
    snapshot = None if stage == "teacher" else copy.deepcopy(model).eval()
    state.stages.append({"stage": stage, "val_accuracy": val_accuracy, "test_accuracy": None, "_model": snapshot})


def _test_correct(model: nn.Module, state: JobState) -> np.ndarray:
    """Per test example: did `model` predict its label (the same predictions loop.evaluate counts)."""
    predictions, labels = _predictions(model, state)
    return np.asarray(predictions, dtype=np.int64) == np.asarray(labels, dtype=np.int64)


def _stage_test_accuracies(state: JobState, cb: CallbackList) -> None:
    """Test accuracy of every stage, measured only now, in the evaluate phase, and used for no choice; each stage
    against the one before it is a paired difference on the same test examples (McNemar, Newcombe interval)."""
    previous: tuple[str, np.ndarray] | None = None
    for row in state.stages:
        cb.check_stop()
        snapshot = row.pop("_model", None)
        correct = _test_correct(state.teacher if snapshot is None else snapshot, state)
        del snapshot
        row["test_accuracy"] = float(correct.mean()) if correct.size else None
        if previous is not None and correct.size:
            row["test_difference_from_previous"] = {
                "previous": previous[0],
                **paired_accuracy_difference(previous[1], correct),
            }
        previous = (row["stage"], correct)


def build_student(state: JobState, cb: CallbackList) -> None:
    """The structurally smaller copy of the teacher."""
    teacher, spec = state.teacher, state.spec
    _stage(state, "teacher", teacher)
    example = state.train.head(1)["pixel_values"] if spec.family == "vision" else None
    state.student, state.structural = make_student(spec, teacher, state.hp["structural_ratio"], example)
    state.student.requires_grad_(True)
    if state.config.controls:  # the arms start from these very weights
        state.student_template = copy.deepcopy(state.student)
        state.student_init = {k: v.detach().clone() for k, v in state.student.state_dict().items()}
    _stage(state, "student_structural", state.student)
    cb.on_metrics("student", {"phase": "student", **state.structural})


def distill(state: JobState, cb: CallbackList, cache_dir: Path | None = None) -> dict:
    """KD of the structural student from the frozen teacher, or the same student from the student cache."""
    seed_everything(state.config.seed + 1)
    state.kd_train, info = loop.with_teacher_logits(
        state.teacher, state.adapter, state.train, check_stop=cb.check_stop, kd_loss=state.config.kd_loss
    )
    state.teacher_logits = info
    key = _student_key(state)
    if cache_dir is None or key is None:
        state.student_source = {
            "kind": "distilled",
            "detail": "distilled here; not cached: "
            + ("the teacher was uploaded" if key is None else "no cache directory"),
        }
        _distill_here(state, cb)
        return info
    path = cache_dir / "students" / key
    # points of a study that share teacher, structural ratio and KD options share this student
    with teachers.cache_lock(path, check=cb.check_stop):
        rebuilt = _discard_if_corrupt(path, "student")
        if not _load_cached_student(state, path):
            _distill_here(state, cb)
            _save_student(state, path)
            state.student_source = {
                "kind": "distilled",
                "cache_key": key,
                "detail": "distilled here and stored in the student cache",
            }
            if rebuilt:
                state.student_source = _rebuilt_note(state.student_source, "student", rebuilt)
        state.student_source["teacher_cache_key"] = _teacher_key(state)
    return info


def _distill_here(state: JobState, cb: CallbackList) -> None:
    """Train the structural student by KD and record its validation."""
    validate = _epoch_validator(state, cb, "distill", state.student)
    settings = _settings(state, state.hp["kd_epochs"], state.hp["kd_learning_rate"])
    extra_cost = loop.extra_cost(state.student, state.adapter, state.kd_train, settings, state.teacher)
    state.kd = {}
    state.history["distill"] = loop.train(
        state.student,
        state.adapter,
        state.kd_train,
        settings,
        phase="distill",
        callbacks=cb,
        teacher=state.teacher,
        on_epoch_end=validate,
        record=state.kd,
    )
    state.kd["extra_cost"] = extra_cost
    last = [v for v in state.validation if v["phase"] == "distill"]
    _stage(state, "student_kd", state.student, last[-1]["accuracy"] if last else None)


def _student_key(state: JobState) -> str | None:
    """Teacher key + structural ratio + KD options + seed, hashed; None for an uploaded teacher (no teacher key)."""
    if state.config.teacher_upload_id:
        return None
    teacher_key = _teacher_key(state)
    c, hp = state.config, state.hp
    parts = {
        "teacher": teacher_key,
        "structural_ratio": hp["structural_ratio"],
        "temperature": c.temperature,
        "alpha": c.alpha,
        "kd_epochs": hp["kd_epochs"],
        "kd_lr": hp["kd_learning_rate"],
        "batch_size": hp["batch_size"],
        "grad_norm": c.max_grad_norm,
        "seed": c.seed,
        "version": 1,
    }
    # only when not the seed's loss, so existing cached students keep their keys
    parts.update({"kd_loss": c.kd_loss} if c.kd_loss != kd.DEFAULT_LOSS else {})
    return f"{c.model_name}-{teachers.cache_key(parts)}"


def _save_student(state: JobState, path: Path) -> None:
    """The distilled student's weights and KD record, written to a temporary folder, sealed with its sha256
    digest and renamed into place; a failed write (a full disk) leaves nothing behind."""
    tmp = path.with_name(f"{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    tmp.mkdir(parents=True)
    try:
        weights = {k: v.detach().contiguous().clone() for k, v in state.student.state_dict().items()}
        save_file(weights, str(tmp / "student.safetensors"))
        kd_stage = next(r for r in state.stages if r["stage"] == "student_kd")
        meta = {
            "history": state.history["distill"],
            "validation": [v for v in state.validation if v["phase"] == "distill"],
            "val_accuracy": kd_stage["val_accuracy"],
            "kd": state.kd,
            "job_config": state.config.to_dict(),
            "dataset": state.config.dataset,
        }  # DELETE /uploads/<id> removes the students trained on it
        (tmp / "meta.json").write_text(json.dumps(meta, default=str))
        cachefiles.seal(tmp)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    shutil.rmtree(path, ignore_errors=True)
    tmp.rename(path)


def _load_cached_student(state: JobState, path: Path) -> bool:
    """Load the distilled weights into the freshly built structural student; False when absent or unfit."""
    if not (path / "meta.json").is_file():
        return False
    touch_cached(path)  # used now: least-recently-used eviction spares it
    meta = json.loads((path / "meta.json").read_text())
    try:  # the structure comes from the same teacher and ratio, so the shapes match; if not, distil again
        state.student.load_state_dict(load_file(str(path / "student.safetensors")))
    except (RuntimeError, OSError):
        return False
    state.history["distill"] = meta.get("history", [])
    state.kd = meta.get("kd", {})
    state.validation += meta.get("validation", [])
    _stage(state, "student_kd", state.student, meta.get("val_accuracy"))
    state.student_source = {
        "kind": "cache",
        "cache_key": path.name,
        "detail": "distilled student reused from the student cache (same teacher, structural "
        "ratio, KD options and seed); only pruning and measurement ran here",
    }
    return True


def _prune(
    state: JobState, cb: CallbackList, model: nn.Module, *, kd_loss: Any, phase_name: str, extra: dict | None = None
) -> tuple[dict, list[dict], list[dict]]:
    """The job's pruning method on `model`, fine-tuned (with `kd_loss`) and validated after each of its steps.

    Returns (what the method says of itself, one row per step, the fine-tuning history)."""
    config = state.config
    method = pruning.get_method(config.pruning_method)
    steps: list[dict] = []
    history: list[dict] = []
    lr = state.hp["kd_learning_rate"] / 3  # fine-tuning: gentler than distilling from the start
    teacher = state.teacher if kd.uses_teacher(kd_loss) else None

    def after_step(done: pruning.PruningStep) -> None:
        step = done.step
        seed_everything(config.seed + 10 + step)
        if method.fine_tunes:
            history.extend(
                loop.train(
                    model,
                    state.adapter,
                    state.kd_train,
                    _settings(state, state.hp["finetune_epochs"], lr, kd_loss=kd_loss),
                    phase=phase_name,
                    callbacks=cb,
                    teacher=teacher,
                    row_extra={"pruning_step": step, **(extra or {})},
                )
            )
        val = loop.evaluate(model, state.adapter, state.val)
        size = model_size(model)
        row = {
            "step": step,
            "target_sparsity": done.target_sparsity,
            "achieved_sparsity": done.achieved_sparsity,
            "val_accuracy": val["accuracy"],
            "val_loss": val["loss"],
            "nonzero_parameters": count_parameters(model)["nonzero"],
            "model_size_mb": size["model_size_mb"],
            "compressed_size_mb": size["compressed_size_mb"],
        }
        steps.append(row)
        cb.on_metrics(phase_name, {"phase": phase_name, **(extra or {}), **row})

    info: dict = {}
    if config.sparsity > 0:
        seed_everything(config.seed + 10)  # a random criterion draws from here: same seed, same weights
        info = method.run(model, config, after_step, _pruning_context(state, teacher, kd_loss))
    model.eval()
    fine_tuning = (
        f"{state.hp['finetune_epochs']} epoch(s) with the '{kd_loss}' loss after each step"
        if method.fine_tunes
        else "none: the method is one-shot (the pipeline skipped fine-tuning; validated only)"
    )
    return (
        {"method": method.name, "description": method.description, "fine_tuning": fine_tuning, **info},
        steps,
        history,
    )


def _pruning_context(state: JobState, teacher: nn.Module | None, kd_loss: str) -> pruning.PruningContext:
    """What a pruning method may use of the job: train batches, the forward pass, the fine-tuning loss and where
    the model's structure is (its registry entry)."""
    spec, adapter = state.spec, state.adapter
    settings = _settings(state, state.hp["finetune_epochs"], kd_loss=kd_loss)
    data = state.kd_train if state.kd_train is not None else state.train

    def forward(model: nn.Module, batch: dict) -> torch.Tensor:
        return adapter.logits_and_targets(model, batch)[0]

    def loss(model: nn.Module, batch: dict) -> torch.Tensor:
        return loop.loss_terms(model, adapter, batch, settings, teacher)["loss"]

    return pruning.PruningContext(
        family=spec.family,
        train_batch=lambda n: data.head(min(n, len(data))),
        forward=forward,
        loss=loss,
        keep_layers=lambda model: [spec.classifier(model)] if spec.classifier is not None else [],
        transformer_parts=spec.transformer_parts,
    )


def prune_progressively(state: JobState, cb: CallbackList) -> None:
    """The job's pruning method (backend.pruning registry) to the target sparsity, fine-tuned with the job's
    distillation loss and validated after each of its steps."""
    config, student = state.config, state.student
    info, steps, history = _prune(state, cb, student, kd_loss=config.kd_loss, phase_name="prune")
    state.history["finetune"] += history
    state.validation += [
        {"phase": "prune", "epoch": state.hp["finetune_epochs"], "pruning_step": r["step"], "accuracy": r["val_accuracy"],
         "loss": r["val_loss"]}
        for r in steps
    ]  # fmt: skip
    state.pruning = {
        **info,
        "target_sparsity": config.sparsity,
        "steps": steps,
        "masks_removed": not progressive.has_masks(student),
    }
    _stage(state, "student_pruned", student, steps[-1]["val_accuracy"] if steps else None)


@torch.no_grad()
def _reinitialise(model: nn.Module) -> None:
    """Random weights for every layer: PyTorch's default initialisation where a layer has one; the parameters of
    layers without one (e.g. T5's LayerNorm) get ones for 1-d scales, zeros for biases and N(0, 0.02) otherwise,
    as transformers initialises them."""
    for module in model.modules():
        if hasattr(module, "reset_parameters"):
            module.reset_parameters()
            continue
        for name, param in module.named_parameters(recurse=False):
            if param.dim() == 1:
                param.fill_(0.0 if "bias" in name else 1.0)
            else:
                param.normal_(0.0, 0.02)


def run_controls(state: JobState, cb: CallbackList) -> None:
    """Train and prune each control arm the job asked for; measured with the student in the evaluate phase."""
    for arm in state.config.controls:
        cb.check_stop()
        started = time.perf_counter()
        model = copy.deepcopy(state.student_template)
        model.load_state_dict(state.student_init)
        if arm == "scratch":
            seed_everything(state.config.seed + 2)
            _reinitialise(model)
        model.requires_grad_(True)
        seed_everything(state.config.seed + 1)  # the distilled student's seed: same batch order
        history = loop.train(
            model,
            state.adapter,
            state.kd_train,
            _settings(state, state.hp["kd_epochs"], state.hp["kd_learning_rate"], kd_loss="ce"),
            phase="controls",
            callbacks=cb,
            row_extra={"arm": arm},
        )
        val_after_training = loop.evaluate(model, state.adapter, state.val)["accuracy"]
        info, steps, finetune = _prune(state, cb, model, kd_loss="ce", phase_name="controls", extra={"arm": arm})
        state.controls[arm] = {
            "model": model,
            "description": CONTROL_ARMS[arm],
            "kd_loss": "ce",
            "history": history,
            "finetune_history": finetune,
            "val_accuracy_after_training": val_after_training,
            "pruning_steps": steps,
            "wall_time_s": time.perf_counter() - started,
        }
        cb.on_metrics("controls", {"phase": "controls", "arm": arm, "val_accuracy": steps[-1]["val_accuracy"] if steps
                                   else val_after_training})  # fmt: skip


def evaluate_and_report(state: JobState, cb: CallbackList, job_id: str, started: float) -> dict:
    """Measure teacher and student the same way on the test split, and build the report."""
    evaluate_started = time.perf_counter()
    unpruned = next((row.get("_model") for row in state.stages if row["stage"] == "student_kd"), None)
    _stage_test_accuracies(state, cb)
    cb.check_stop()
    test_batches = _LabelledBatches(state.test)
    measurements = measure_pair(
        state.teacher,
        state.student,
        predict=state.adapter.predict,
        test_batches=test_batches,
        example_batch=state.test.head,
        class_names=state.raw.class_names,
        latency_runs=state.config.latency_runs,
    )
    measurements["latency"]["device"] = _device_label(state)
    measurements["pruning_effect"] = _pruning_effect(state, unpruned)
    measurements["semi_structured"] = _semi_structured(state)
    del unpruned
    if state.controls:
        measurements["controls"] = _measure_controls(state, measurements["predictions"], cb)
    if state.device.type != "cpu":
        measurements["latency_cpu"] = _cpu_latency(state)
    cb.check_stop()
    measurements["deployment"] = _deployment(state, measurements)
    if state.latency_target:
        cb.check_stop()
        measurements["latency_target"] = _achieved(state)
    cb.check_stop()
    final = measurements["student"]["effectiveness"]["accuracy"]
    state.stages.append({"stage": "final", "val_accuracy": state.stages[-1]["val_accuracy"], "test_accuracy": final})
    kl = loop.mean_kl(state.teacher, state.student, state.adapter, state.test, temperature=1.0)
    now = time.perf_counter()  # the report is built inside the evaluate phase: its time so far
    state.timings["evaluate"], state.timings["total"] = now - evaluate_started, now - started
    ctx = build_context(state, job_id, measurements, kl)
    return build_report(ctx)


def _pruning_effect(state: JobState, unpruned: nn.Module | None) -> dict:
    """The distilled student before the pruning method against the pruned one (FLOPs, weights, PyTorch latency)."""
    if unpruned is None or not (state.pruning.get("steps") or []):
        return {"error": "not measured: no pruning step ran (sparsity 0) or no pre-pruning student was kept"}
    return measure_pruning_effect(
        unpruned,
        state.student,
        predict=state.adapter.predict,
        example_batch=state.test.head,
        latency_runs=state.config.latency_runs,
    )


def _semi_structured(state: JobState) -> dict:
    """The student's 2:4 Linear layers run by torch's semi-structured sparse kernel against dense (CUDA 8.0+ only:
    null with the reason elsewhere); its own fp16, so the adapter runs without the job's autocast."""
    adapter = copy.copy(state.adapter)
    adapter.amp = contextlib.nullcontext
    return semi_structured_speed(state.student, adapter.predict, state.test.head, runs=state.config.latency_runs)


def _predictions(model: nn.Module, state: JobState) -> tuple[list[int], list[int]]:
    """A model's predictions on the test split and the labels, in the order measure_pair reads it."""
    out: list[int] = []
    labels: list[int] = []
    model.eval()
    with torch.inference_mode():
        for batch, y in _LabelledBatches(state.test):
            out.extend(int(v) for v in state.adapter.predict(model, batch).reshape(-1).tolist())
            labels.extend(int(v) for v in y.reshape(-1).tolist())
    return out, labels


def _measure_controls(state: JobState, predictions: dict, cb: CallbackList) -> dict:
    """Each control arm measured on the test split like the student (metrics with intervals), and the paired
    gains: kd_gain = student - ce_only (what the teacher's soft targets bought), init_gain = ce_only - scratch
    (what starting from the teacher's weights bought)."""
    labels, names = predictions["labels"], state.raw.class_names
    arms: dict[str, dict] = {}
    preds: dict[str, list[int]] = {}
    for arm, record in state.controls.items():
        cb.check_stop()
        preds[arm], _ = _predictions(record["model"], state)
        arms[arm] = {
            "description": record["description"],
            "kd_loss": record["kd_loss"],
            "effectiveness": classification_metrics(labels, preds[arm], names),
            "val_accuracy_after_training": record["val_accuracy_after_training"],
            "pruning_steps": record["pruning_steps"],
            "global_sparsity": sparsity(record["model"])["global_sparsity"],
            "history": record["history"],
            "finetune_history": record["finetune_history"],
            "wall_time_s": record["wall_time_s"],
            "student_minus_arm": paired_differences(labels, preds[arm], predictions["student"], names),
        }
    out: dict = {"arms": arms}
    if "ce_only" in preds:
        out["kd_gain"] = paired_differences(labels, preds["ce_only"], predictions["student"], names)["accuracy"]
    if "ce_only" in preds and "scratch" in preds:
        out["init_gain"] = paired_differences(labels, preds["scratch"], preds["ce_only"], names)["accuracy"]
    return out


def _device_label(state: JobState) -> str:
    """The device and precision latency was measured at, e.g. 'cuda:0 (NVIDIA H200, bf16 autocast)'."""
    index = state.device.index if state.device.index is not None else 0
    name = torch.cuda.get_device_name(index) if state.device.type == "cuda" else None
    precision = "fp32" if state.precision == "fp32" else f"{state.precision} autocast"
    return f"{state.device}" + (f" ({name}, {precision})" if name else f" ({precision})")


class _LabelledBatches:
    """(batch, labels) of a split, made one batch at a time on every pass.

    A list would hold the whole test split at model size (4.5 GB for 7,500 images at 224); a generator could be
    read only once, and the accuracy of each model (and runtime) reads the split again.
    """

    def __init__(self, split: Any, batch_size: int = 128) -> None:
        self.split, self.batch_size = split, batch_size

    def __iter__(self):
        return ((b, b["labels"]) for b in self.split.batches(self.batch_size))


def _on_cpu(state: JobState) -> tuple[nn.Module, nn.Module, Any, Any]:
    """Teacher, student, adapter and test split on the CPU at fp32 (copies when the job ran elsewhere)."""
    if state.device.type == "cpu" and state.precision == "fp32":
        return state.teacher, state.student, state.adapter, state.test
    adapter = copy.copy(state.adapter)
    adapter.amp = contextlib.nullcontext
    return (copy.deepcopy(state.teacher).cpu(), copy.deepcopy(state.student).cpu(), adapter, state.test.to("cpu"))


def _cpu_latency(state: JobState) -> dict:
    """Latency of CPU copies of both models at fp32: the deployment target most users ship to."""
    teacher, student, adapter, test = _on_cpu(state)
    latency = measure_latency(
        {"teacher": teacher, "student": student}, adapter.predict, test.head, runs=state.config.latency_runs
    )
    latency["device"] = "cpu (fp32)"
    return latency


def _achieved(state: JobState) -> dict:
    """The trained teacher and student timed as the candidates were (same runtime, batch size, rounds), and
    whether the student met the target."""
    config = state.config
    teacher, student, adapter, test = (
        (state.teacher, state.student, state.adapter, state.test)
        if config.target_runtime == "pytorch"
        else _on_cpu(state)
    )
    work = Path(tempfile.mkdtemp(prefix="kd-latency-achieved-"))
    try:
        timer = _target_timer(state, adapter, test.head, work)
        timing = timer.time(timer.load("teacher", teacher), timer.load("student", student))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    met = meets(
        timing["student_ms"],
        timing["teacher_ms"],
        target_latency_ms=config.target_latency_ms,
        target_speedup=config.target_speedup,
    )
    return {**timing, "met": met, "structural_ratio": state.hp["structural_ratio"]}


def _deployment(state: JobState, measurements: dict) -> dict:
    """Teacher, student (and int8 student) in ONNX Runtime on the CPU; on a failure, null figures with the reason."""
    pytorch_accuracy = {name: measurements[name]["effectiveness"]["accuracy"] for name in ("teacher", "student")}
    work = Path(tempfile.mkdtemp(prefix="kd-deploy-"))  # the teacher's ONNX files and the memory probe's inputs
    try:
        teacher, student, adapter, test = _on_cpu(state)
        block = measure_deployment(
            state.spec.id,
            teacher,
            student,
            adapter=adapter,
            test_batches=_LabelledBatches(test),
            example_batch=test.head,
            class_names=state.raw.class_names,
            pytorch_accuracy=pytorch_accuracy,
            out_dir=state.onnx_dir or Path("onnx"),
            quantize=state.config.quantize,
            runs=state.config.latency_runs,
            teacher_dir=work / "teacher",
        )
        measurements["inference_memory"] = _inference_memory(state, teacher, student, adapter, test, block, work)
        return block
    except Exception as exc:  # noqa: BLE001 - the PyTorch figures stand on their own; say why ORT's are missing
        measurements.setdefault(
            "inference_memory", {"error": f"not measured: ONNX export failed ({type(exc).__name__})"}
        )
        return {"runtime": "onnxruntime", "error": f"{type(exc).__name__}: {str(exc)[:300]}"}
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _inference_memory(state: JobState, teacher, student, adapter, test, deployment: dict, work: Path) -> dict:
    """Peak RSS of a fresh process that loads each saved model (PyTorch pickle, ONNX files) and runs a batch of
    1 and of 32 (backend.metrics.inference_memory); {"error": reason} when it cannot be measured."""
    if state.tokenizer is not None:
        state.tokenizer.save_pretrained(work / "tokenizer")
    torch.save(test.head(max(BATCH_SIZES)), work / "batch.pt")
    entries = []
    for label, model in (("teacher", teacher), ("student", student)):
        torch.save(model, work / f"{label}.pt")  # the whole module; the probe loads it with weights_only=True
        entries.append({"label": label, "runtime": "pytorch", "path": str(work / f"{label}.pt")})
    folders = {"teacher": work / "teacher", "student": (state.onnx_dir or Path("onnx")) / "student"}
    for label in ("teacher", "student"):
        entries.append(
            {
                "label": label,
                "runtime": "onnxruntime",
                "path": str(folders[label]),
                "exported": deployment["exported"][label],
            }
        )
    spec = {
        "entries": entries,
        "model_id": state.spec.id,
        "class_names": state.raw.class_names,
        "tokenizer": str(work / "tokenizer") if state.tokenizer is not None else None,
        "batch": str(work / "batch.pt"),
        "threads": torch.get_num_threads(),
        "allowed_globals": pickle_globals(teacher, student),
    }
    try:
        return measure_inference_memory(spec, work)
    except Exception as exc:  # noqa: BLE001 - a failed probe leaves every other figure standing
        return {"error": f"{type(exc).__name__}: {str(exc)[:300]}"}


def _config_with_reasons(state: JobState) -> dict:
    """The job config as asked, what it resolved to, and why each unset (null) field is null."""
    out = {**state.config.to_dict(), "resolved": state.hp}
    for key, value in list(out.items()):
        if value is not None:
            continue
        if key == "structural_ratio" and state.latency_target:
            why = (
                "not set in the request: searched for the latency target; the chosen ratio "
                f"({state.hp['structural_ratio']}) was used (resolved.structural_ratio, latency_target.chosen)"
            )
        elif key in ("device", "precision"):
            why = f"not set in the request: resolved for this machine (resolved.{key}: 'auto' picks CUDA when present)"
        elif key in state.hp:
            why = f"not set in the request: the {state.config.preset} preset's default (resolved.{key}) was used"
        elif key == "teacher_upload_id":
            why = "not set in the request: the teacher was not uploaded (see teacher_source)"
        elif key == "max_samples":
            why = "not set in the request: the whole dataset was used"
        else:
            why = "not set in the request"
        out[f"{key}_reason"] = why
    return out


def build_context(state: JobState, job_id: str, measurements: dict, kl: float) -> dict:
    """The measured facts of this run, in the shape the report builder takes."""
    raw = state.raw
    env = environment_info()
    return {
        "job_id": job_id,
        "model_name": state.spec.id,
        "display_name": state.spec.display_name,
        "family": state.spec.family,
        "config": _config_with_reasons(state),
        "dataset": {
            "name": raw.name,
            "num_classes": len(raw.class_names),
            "class_names": raw.class_names,
            **state.splits.sizes(),
            "description": raw.description,
            "synthetic": raw.synthetic,
            **(
                {"image_size": state.image_size}
                if state.spec.family == "vision"
                else {"max_length_tokens": state.max_length}
            ),
            **(
                {"augmentation": AUGMENTATION if state.hp["augment"] else "none"}
                if state.spec.family == "vision"
                else {}
            ),
        },
        "teacher_source": state.teacher_source,
        "student_source": state.student_source,
        "environment": {
            **env,
            "device": str(state.device),
            "precision": state.precision,
            "device_name": _device_label(state),
        },
        "timings_s": {
            p: state.timings.get(p) for p in (*PHASES, "total") if p not in OPTIONAL_PHASES or p in state.timings
        },
        "structural": state.structural,
        "history": state.history,
        "validation": state.validation,
        "pruning": state.pruning,
        "stages": state.stages,
        "teacher_logits": state.teacher_logits,
        "kd_loss": {**kd.describe_combination(state.config.kd_loss), **state.kd},
        "kd_agreement": {
            "mean_kl": kl,
            "mean_kl_reason": None,
            "mean_kl_note": "KL(teacher || student) at T=1 per logit row on the test split"
            + (" (decoder positions, teacher-forced)" if state.spec.labels_as_words else ""),
        },
        "measurements": measurements,
        "latency_target": state.latency_target,
    }
