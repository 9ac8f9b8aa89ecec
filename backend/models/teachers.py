"""Where a teacher comes from: an upload, the teacher cache, pretrained weights, or a fresh initialisation."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import shutil
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from backend.cachefiles import seal, touch_cached
from backend.data.uploads import load_checkpoint
from backend.models.registry import ModelSpec
from backend.models.vision import PretrainedUnavailable


class TeacherError(ValueError):
    """A teacher that cannot be built or loaded as asked; the message says why."""


def cache_key(parts: dict[str, Any]) -> str:
    """A short stable hash of everything that shapes a trained teacher."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:20]


def build_fresh(
    spec: ModelSpec, *, preset: str, class_names: list[str], train_texts: list[str] | None, pretrained: bool, seed: int
) -> tuple[nn.Module, Any]:
    """(model, tokenizer or None) from the model's own builder, pretrained or newly initialised."""
    torch.manual_seed(seed)
    return spec.build(
        preset=preset, class_names=class_names, train_texts=train_texts or [], pretrained=pretrained, seed=seed
    )


def load_pretrained(spec: ModelSpec, *, mode: str, preset: str, class_names: list[str], train_texts, seed: int):
    """Pretrained weights per `mode` ("auto" | "true" | "false"): (model, tokenizer, source dict)."""
    if mode == "false":
        model, tok = build_fresh(
            spec, preset=preset, class_names=class_names, train_texts=train_texts, pretrained=False, seed=seed
        )
        return model, tok, {"kind": "trained", "detail": "initialised at random (pretrained=false), trained here"}
    if spec.family == "text" and preset != "standard":
        if mode == "true":
            raise TeacherError(
                f"pretrained weights exist only for the published size of {spec.display_name}; "
                "use preset 'standard' with pretrained=true, or pretrained='auto'/false."
            )
        model, tok = build_fresh(
            spec, preset=preset, class_names=class_names, train_texts=train_texts, pretrained=False, seed=seed
        )
        return (
            model,
            tok,
            {
                "kind": "trained",
                "detail": "initialised at random and trained here: no pretrained "
                "weights exist for the reduced 'quick' size",
            },
        )
    try:
        model, tok = build_fresh(
            spec, preset=preset, class_names=class_names, train_texts=train_texts, pretrained=True, seed=seed
        )
        return model, tok, {"kind": "pretrained", "detail": f"pretrained weights ({spec.source}), fine-tuned here"}
    except PretrainedUnavailable as exc:
        if mode == "true":
            raise TeacherError(f"pretrained=true but {exc}") from None
        model, tok = build_fresh(
            spec, preset=preset, class_names=class_names, train_texts=train_texts, pretrained=False, seed=seed
        )
        return model, tok, {"kind": "trained", "detail": f"initialised at random and trained here: {exc}"}


def save_teacher(path: Path, model: nn.Module, tokenizer, meta: dict) -> None:
    """Write a teacher to the cache atomically (a temporary folder, sealed with its digest, renamed into place)."""
    tmp = path.with_name(f"{path.name}.{uuid.uuid4().hex[:8]}.tmp")  # two jobs may write the same teacher
    tmp.mkdir(parents=True)
    try:
        if tokenizer is not None:
            model.save_pretrained(tmp)
            tokenizer.save_pretrained(tmp)
        else:
            save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(tmp / "model.safetensors"))
        (tmp / "meta.json").write_text(json.dumps(meta, default=str))
        seal(tmp)  # the digest last: an entry with one was written whole
    except BaseException:  # a full disk, a kill: no partial entry stays behind
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    shutil.rmtree(path, ignore_errors=True)
    try:
        tmp.rename(path)
    except OSError:  # another job put the same teacher there first
        shutil.rmtree(tmp, ignore_errors=True)


@contextlib.contextmanager
def cache_lock(path: Path, *, check: Callable[[], None] | None = None, poll_s: float = 0.5) -> Iterator[None]:
    """Hold an exclusive file lock for one teacher cache key, so that two workers needing the same teacher
    train it once (the second waits, then loads it from the cache). `check` runs while waiting (a cancel)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".lock"), "a+") as fh:
        while True:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if check is not None:
                    check()
                time.sleep(poll_s)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def load_cached(path: Path, spec: ModelSpec, *, preset: str, class_names: list[str]):
    """(model, tokenizer, meta) from the cache, or None when absent."""
    touch_cached(path)  # used now: eviction (LRU) spares it while this job loads it
    try:
        meta = json.loads((path / "meta.json").read_text())
    except FileNotFoundError:  # absent, or evicted just now: train it again
        return None
    if spec.family == "text":
        model, tok = load_text_folder(spec, path)
    else:
        model, tok = build_fresh(
            spec, preset=preset, class_names=class_names, train_texts=None, pretrained=False, seed=0
        )
        model.load_state_dict(load_file(str(path / "model.safetensors")))
    return model.eval(), tok, meta


def load_text_folder(spec: ModelSpec, folder: Path):
    """A save_pretrained folder, loaded without running any code from it."""
    from transformers import AutoModelForSeq2SeqLM, AutoModelForSequenceClassification, AutoTokenizer

    cls = AutoModelForSeq2SeqLM if spec.task == "encoder_decoder" else AutoModelForSequenceClassification
    model = cls.from_pretrained(str(folder), trust_remote_code=False)
    if spec.hf_model_type and model.config.model_type != spec.hf_model_type:
        raise TeacherError(
            f"the model folder holds a {model.config.model_type!r} model, not {spec.display_name} "
            f"({spec.hf_model_type!r})."
        )
    tok = AutoTokenizer.from_pretrained(str(folder), trust_remote_code=False)
    return model, tok


def load_state_dict_file(path: Path) -> dict[str, torch.Tensor]:
    """Tensors from .safetensors, or .pt/.pth through the upload checks (archive limits, weights_only=True)."""
    return load_checkpoint(path)


def load_vision_checkpoint(spec: ModelSpec, path: Path, class_names: list[str]) -> tuple[nn.Module, dict]:
    """A torchvision model with weights from an uploaded state dict; a mismatched classifier is re-initialised."""
    model, _ = build_fresh(spec, preset="quick", class_names=class_names, train_texts=None, pretrained=False, seed=0)
    state = {k.removeprefix("module."): v for k, v in load_state_dict_file(path).items()}
    own = model.state_dict()
    head = spec.classifier(model)
    head_keys = {k for k, v in model.named_parameters() if any(v is p for p in head.parameters())}
    mismatched = sorted(k for k, v in state.items() if k in own and own[k].shape != v.shape)
    if set(mismatched) - head_keys:
        raise TeacherError(f"checkpoint does not fit {spec.display_name}: shapes differ for {mismatched[:5]}.")
    usable = {k: v for k, v in state.items() if k in own and k not in mismatched}
    missing = sorted(set(own) - set(usable))
    if set(missing) - head_keys - {k for k in own if k.endswith("num_batches_tracked")}:
        raise TeacherError(f"checkpoint does not fit {spec.display_name}: missing {missing[:5]}.")
    model.load_state_dict(usable, strict=False)
    return model, {"classifier_reinitialised": bool(set(missing) & head_keys), "tensors_loaded": len(usable)}
