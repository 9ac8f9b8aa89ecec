"""The registry: each model's behaviour in its own module, nothing model-specific anywhere else."""

from __future__ import annotations

import ast
import dataclasses
from pathlib import Path

import pytest
import torch

from backend.data.synthetic_text import CLASS_NAMES, generate
from backend.models import adapters
from backend.models.registry import (
    MODEL_MODULES,
    PRESETS,
    ModelSpec,
    get_model_spec,
    list_models,
    model_for_checkpoint,
    model_for_hf_type,
    register_model,
)
from backend.models.student import make_student

BACKEND = Path(__file__).resolve().parent.parent / "backend"
IDS = [spec.id for spec in list_models()]


def _names() -> set[str]:
    """Every id and alias, as spelt in the registry."""
    return {name.lower() for spec in list_models() for name in (spec.id, *spec.aliases)}


def test_no_model_id_outside_the_models_package():
    """pipeline, outputs, metrics, pruning, api, data, jobs: no string that is a model's id or alias."""
    names, found = _names(), []
    for path in sorted(BACKEND.rglob("*.py")):
        if path.relative_to(BACKEND).parts[0] == "models":
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value.lower() in names:
                found.append(f"{path.relative_to(BACKEND)}:{node.lineno} {node.value!r}")
    assert not found, found


def test_one_module_per_model_and_one_line_each():
    assert len(MODEL_MODULES) == len(IDS) == len(set(IDS))
    zoo = BACKEND / "models" / "zoo"
    assert {p.stem for p in zoo.glob("*.py")} - {"__init__"} == set(MODEL_MODULES)


def test_a_spec_that_does_not_fit_is_refused():
    spec = get_model_spec("bert")
    with pytest.raises(ValueError, match="task"):
        register_model(dataclasses.replace(spec, id="x-vision-bert", family="vision"))
    with pytest.raises(ValueError, match="presets"):
        register_model(dataclasses.replace(spec, id="x-no-standard", presets={"quick": {}}))
    assert "x-vision-bert" not in IDS and all(set(s.presets) == set(PRESETS) for s in list_models())


@pytest.mark.parametrize("model_id", IDS)
def test_every_model_builds_shrinks_runs_and_is_recognised(model_id, one_torch_thread):
    """Through its spec alone: quick teacher, structural student, a forward pass of each through the adapter, and
    the checkpoint and folder recognisers pointing back at it."""
    spec: ModelSpec = get_model_spec(model_id)
    torch.manual_seed(0)
    texts, labels = generate(120, seed=0)
    names = list(CLASS_NAMES) if spec.family == "text" else [str(i) for i in range(10)]
    teacher, tok = spec.build(preset="quick", class_names=names, train_texts=texts, pretrained=False, seed=0)
    adapter = adapters.adapter_for(spec, tok, names)
    if spec.family == "vision":
        batch = {"pixel_values": torch.rand(3, 3, 32, 32), "labels": torch.tensor([0, 1, 2])}
        example = batch["pixel_values"][:1]
    else:
        words = names if spec.labels_as_words else None
        batch = adapters.text_tensors(tok, texts[:3], labels[:3], 24, words).tensors
        example = None
    student, summary = make_student(spec, teacher.eval(), spec.default_structural_ratio, example)
    assert summary["student_parameters"] < 0.7 * summary["teacher_parameters"] and summary["removed"]
    with torch.no_grad():
        for model in (teacher, student.eval()):
            logits, targets = adapter.logits_and_targets(model, batch)
            assert logits.shape[0] == targets.shape[0] and torch.isfinite(logits).all()
            assert adapter.predict(model, batch).shape == (3,)
    assert model_for_checkpoint(set(teacher.state_dict())) == spec.id
    if spec.hf_model_type:
        assert model_for_hf_type(teacher.config.model_type) == spec.id
    assert spec.architecture("quick") != spec.architecture("standard")
