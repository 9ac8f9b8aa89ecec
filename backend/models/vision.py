"""What the torchvision classifiers share: input sizes per preset, ImageNet weights from the torch hub cache."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

IMAGE_SIZE = {"quick": 32, "standard": 224}


class PretrainedUnavailable(RuntimeError):
    """Pretrained weights are neither cached nor downloadable."""


def imagenet_state_dict(weights: Any) -> dict:
    """torchvision's ImageNet weights from the torch hub cache (TORCH_HOME), downloading when possible."""
    try:
        return weights.get_state_dict(progress=False, weights_only=True)
    except Exception as exc:  # offline: URLError / gaierror; corrupt cache: RuntimeError
        raise PretrainedUnavailable(
            f"{weights} could not be loaded from the torch hub cache or downloaded ({type(exc).__name__}: {exc})."
        ) from None


def torchvision_classifier(factory: Callable[..., Any], weights: Any, pretrained: bool) -> Any:
    """A torchvision model, newly initialised or with its ImageNet weights (the head is the caller's to resize)."""
    model = factory(weights=None)
    if pretrained:
        model.load_state_dict(imagenet_state_dict(weights))
    return model


def image_sizes(**overrides: int) -> Callable[[str], dict]:
    """A spec's `architecture`: what shapes a CNN beyond its own code, the input size per preset (`IMAGE_SIZE`
    unless the model names its own for a preset). Every batch is resized to it (datasets.model_inputs)."""
    sizes = {**IMAGE_SIZE, **overrides}
    return lambda preset: {"image_size": sizes[preset]}


image_architecture = image_sizes()


def input_size(spec: Any, preset: str) -> int:
    """The side, in pixels, a vision model's inputs are resized to at `preset`."""
    return int(spec.architecture(preset)["image_size"])


def prune_channels(classifier: Callable[[Any], Any]) -> Callable[..., tuple[Any, dict]]:
    """A CNN's structural recipe: L1 channel pruning with torch-pruning, the classifier's outputs kept."""

    def make_student(teacher: Any, ratio: float, example_inputs: Any) -> tuple[Any, dict]:
        from backend.pruning.structural import prune_cnn_channels

        return prune_cnn_channels(teacher, ratio, example_inputs, [classifier(teacher)])

    return make_student
