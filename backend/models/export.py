"""The student in a form a user loads without this project's code."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import torch
from safetensors.torch import save_file
from torch import nn

from backend.data.datasets import IMAGENET_MEAN, IMAGENET_STD


def export_text_model(model: nn.Module, tokenizer, folder: Path) -> list[str]:
    """save_pretrained folder (safetensors weights, config, tokenizer): loads with from_pretrained."""
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return sorted(p.name for p in folder.iterdir())


def export_vision_model(model: nn.Module, folder: Path, image_size: int, class_names: list[str]) -> list[str]:
    """A torch.export program (dynamic batch) plus safetensors weights and the preprocessing it expects."""
    folder.mkdir(parents=True, exist_ok=True)
    model = copy.deepcopy(model).eval()
    example = torch.zeros(2, 3, image_size, image_size)
    batch = torch.export.Dim("batch", min=1, max=4096)
    program = torch.export.export(model, (example,), dynamic_shapes=({0: batch},))
    torch.export.save(program, str(folder / "model.pt2"))
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(folder / "model.safetensors"))
    preprocessing = {
        "input": "float32 tensor [batch, 3, H, W]",
        "image_size": image_size,
        "scale": "pixel values in [0, 1]",
        "mean": IMAGENET_MEAN,
        "std": IMAGENET_STD,
        "class_names": class_names,
    }
    (folder / "preprocessing.json").write_text(json.dumps(preprocessing, indent=2))
    return sorted(p.name for p in folder.iterdir())
