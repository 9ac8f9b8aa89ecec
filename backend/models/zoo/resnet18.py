"""ResNet-18 (torchvision): a residual CNN; the student loses channels to L1 structural pruning."""

from __future__ import annotations

from typing import Any

from backend.models.spec import ModelSpec
from backend.models.vision import image_architecture, prune_channels, torchvision_classifier


def build(*, class_names: list[str], pretrained: bool = False, **_: Any) -> tuple[Any, None]:
    """torchvision ResNet-18 (ImageNet weights when `pretrained`), a new `fc` for the dataset's classes."""
    from torch import nn
    from torchvision import models as tvm

    model = torchvision_classifier(tvm.resnet18, tvm.ResNet18_Weights.IMAGENET1K_V1, pretrained)
    model.fc = nn.Linear(model.fc.in_features, len(class_names))
    return model, None


def classifier(model: Any) -> Any:
    return model.fc


def looks_like(keys: set[str]) -> bool:
    return "conv1.weight" in keys and any(k.startswith("layer4.") for k in keys)


SPEC = ModelSpec(
    id="resnet18",
    display_name="ResNet-18",
    family="vision",
    aliases=("resnet-18", "resnet_18"),
    source="torchvision.models.resnet18",
    default_structural_ratio=0.5,
    presets={
        "quick": dict(epochs=8, kd_epochs=5, finetune_epochs=1, batch_size=64, learning_rate=3e-3),
        # 224x224 CNNs: batches of 32. At 64 the training activations alone took ~2 GB and the whole service
        # peaked at 3.1 GB for a 6,000-image upload (benchmarks/memory.py); a CPU gains nothing from larger ones.
        "standard": dict(epochs=10, kd_epochs=6, finetune_epochs=1, batch_size=32, learning_rate=1e-3),
    },
    build=build,
    make_student=prune_channels(classifier),
    architecture=image_architecture,
    task="image_classifier",
    classifier=classifier,
    feature_layers=("layer1", "layer2", "layer3", "layer4"),  # the four stages (64, 128, 256, 512 channels)
    looks_like=looks_like,
    # torchvision's published figures at 224x224 with 1000 classes
    reference={"factory": "torchvision.models:resnet18", "parameters": 11_689_512, "gmacs": 1.814},
)
