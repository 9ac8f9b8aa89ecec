"""MobileNetV2 (torchvision): inverted residuals with depthwise convolutions; the student loses channels."""

from __future__ import annotations

from typing import Any

from backend.models.spec import ModelSpec
from backend.models.vision import image_sizes, prune_channels, torchvision_classifier


def build(*, class_names: list[str], pretrained: bool = False, **_: Any) -> tuple[Any, None]:
    """torchvision MobileNetV2 (ImageNet weights when `pretrained`), a new last classifier layer."""
    from torch import nn
    from torchvision import models as tvm

    model = torchvision_classifier(tvm.mobilenet_v2, tvm.MobileNet_V2_Weights.IMAGENET1K_V1, pretrained)
    model.classifier[-1] = nn.Linear(model.classifier[-1].in_features, len(class_names))
    return model, None


def classifier(model: Any) -> Any:
    return model.classifier[-1]


def looks_like(keys: set[str]) -> bool:
    return any(k.startswith("features.") for k in keys) and any(k.startswith("classifier.") for k in keys)


SPEC = ModelSpec(
    id="mobilenetv2",
    display_name="MobileNetV2",
    family="vision",
    aliases=("mobilenet_v2", "mobilenet-v2", "mobilenet"),
    source="torchvision.models.mobilenet_v2",
    default_structural_ratio=0.4,
    presets={
        "quick": dict(epochs=10, kd_epochs=8, finetune_epochs=1, batch_size=64, learning_rate=3e-3),
        "standard": dict(epochs=12, kd_epochs=8, finetune_epochs=1, batch_size=32, learning_rate=1e-3),
    },
    build=build,
    make_student=prune_channels(classifier),
    # quick: 64x64 inputs, not the 32x32 of the other CNNs. At 32x32, from scratch, it stayed at chance on
    # `shapes` (validation 10-13% after 4 epochs, training loss at or above ln 10); at 64x64 it reached 57% after
    # the same 4 (48x48: 17% after 2, against 22% at 64; measured, one seed).
    architecture=image_sizes(quick=64),
    task="image_classifier",
    classifier=classifier,
    # the last inverted-residual block at each resolution: strides 4, 8, 16 and 32 (24, 32, 96, 320 channels)
    feature_layers=("features.3", "features.6", "features.13", "features.17"),
    looks_like=looks_like,
    reference={"factory": "torchvision.models:mobilenet_v2", "parameters": 3_504_872, "gmacs": 0.301},
)
