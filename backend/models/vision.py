"""torchvision's MobileNetV2 and ResNet-18, with the classifier sized to the dataset."""
from __future__ import annotations

import torch
from torch import nn
from torchvision import models as tvm

IMAGE_SIZE = {"quick": 32, "standard": 224}


class PretrainedUnavailable(RuntimeError):
    """Pretrained weights are neither cached nor downloadable."""


def _imagenet_state_dict(weights: tvm.WeightsEnum) -> dict[str, torch.Tensor]:
    """torchvision's ImageNet weights from the torch hub cache (TORCH_HOME), downloading when possible."""
    try:
        return weights.get_state_dict(progress=False, weights_only=True)
    except Exception as exc:  # offline: URLError / gaierror; corrupt cache: RuntimeError
        raise PretrainedUnavailable(f"{weights} could not be loaded from the torch hub cache or downloaded "
                                    f"({type(exc).__name__}: {exc}).") from None


def _build(factory, weights: tvm.WeightsEnum, num_classes: int, pretrained: bool) -> nn.Module:
    model = factory(weights=None)
    if pretrained:
        model.load_state_dict(_imagenet_state_dict(weights))
    return model


def build_resnet18(*, num_classes: int, pretrained: bool = False, **_: object) -> nn.Module:
    """torchvision ResNet-18 (ImageNet weights when `pretrained`), new `fc` for `num_classes`."""
    model = _build(tvm.resnet18, tvm.ResNet18_Weights.IMAGENET1K_V1, num_classes, pretrained)
    model.fc = nn.Linear(model.fc.in_features, num_classes)
    return model


def build_mobilenetv2(*, num_classes: int, pretrained: bool = False, **_: object) -> nn.Module:
    """torchvision MobileNetV2 (ImageNet weights when `pretrained`), new last classifier layer."""
    model = _build(tvm.mobilenet_v2, tvm.MobileNet_V2_Weights.IMAGENET1K_V1, num_classes, pretrained)
    model.classifier[-1] = nn.Linear(model.classifier[-1].in_features, num_classes)
    return model


def classifier_layer(model: nn.Module) -> nn.Linear:
    """The final Linear layer, which structural pruning must keep at full width."""
    return model.fc if hasattr(model, "fc") else model.classifier[-1]
