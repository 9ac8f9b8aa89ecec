"""The configuration of one job: a dataclass validated once, at the boundary, and stored in the report."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from backend.echo import clip
from backend.models.registry import PRESETS, UnknownModelError, get_model_spec

# public ones (cifar10, cifar100, fashion_mnist, sst2, imdb, ag_news) are described in backend/data/public.py
BUILTIN_DATASETS = {
    "vision": ("digits", "cifar10", "cifar100", "fashion_mnist"),
    "text": ("synthetic_sentiment", "sst2", "imdb", "ag_news"),
}
DEFAULT_DATASET = {"vision": "digits", "text": "synthetic_sentiment"}
UPLOAD_PREFIX = "upl_"
QUANTIZE_OPTIONS = ("none", "dynamic_int8")  # dynamic_int8: ONNX Runtime quantize_dynamic of the exported student

# The range of every numeric option, as JSON Schema (GET /models and /openapi.json show these). The upper
# limits bound the work one request can ask for: the presets use far less (epochs <= 12 on a 2-core CPU).
LIMITS: dict[str, dict[str, Any]] = {
    "epochs": {"type": "integer", "minimum": 0, "maximum": 200},
    "kd_epochs": {"type": "integer", "minimum": 0, "maximum": 200},
    "finetune_epochs": {"type": "integer", "minimum": 0, "maximum": 50},
    "pruning_steps": {"type": "integer", "minimum": 1, "maximum": 20},
    "seed": {"type": "integer", "minimum": 0, "maximum": 2**31 - 1},
    "batch_size": {"type": "integer", "minimum": 1, "maximum": 4096},
    "max_samples": {"type": "integer", "minimum": 20, "maximum": 1_000_000},
    "latency_runs": {"type": "integer", "minimum": 30, "maximum": 1000},
    "temperature": {"type": "number", "exclusiveMinimum": 0, "maximum": 100},
    "alpha": {"type": "number", "minimum": 0, "maximum": 1},
    "sparsity": {"type": "number", "minimum": 0, "exclusiveMaximum": 1},
    "structural_ratio": {"type": "number", "minimum": 0, "maximum": 0.95},
    "learning_rate": {"type": "number", "exclusiveMinimum": 0, "maximum": 1},
    "max_grad_norm": {"type": "number", "exclusiveMinimum": 0, "maximum": 1_000_000},
}
OPTIONAL = frozenset(
    {"epochs", "kd_epochs", "finetune_epochs", "batch_size", "max_samples", "structural_ratio", "learning_rate"}
)  # None: the preset's default


class ConfigError(ValueError):
    """A bad option; `field` names it and the message says what is allowed."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


@dataclass
class JobConfig:
    """Every option of a job. None means: the preset's default for this model."""

    model_name: str
    dataset: str | None = None
    preset: str = "quick"
    pretrained: str = "auto"  # "auto" | "true" | "false"
    teacher_upload_id: str | None = None
    epochs: int | None = None  # teacher training epochs
    kd_epochs: int | None = None  # KD epochs of the structural student
    finetune_epochs: int | None = None  # KD epochs after each pruning step
    temperature: float = 3.0
    alpha: float = 0.7
    sparsity: float = 0.3
    pruning_steps: int = 3
    structural_ratio: float | None = None
    seed: int = 0
    batch_size: int | None = None
    learning_rate: float | None = None
    max_grad_norm: float = 1.0
    max_samples: int | None = None  # cap on the dataset size, for quick checks
    latency_runs: int = 30
    augment: bool | None = None  # random resized crop + flip on vision training; None: on at standard, off at quick
    device: str | None = None  # "auto" | "cpu" | "cuda" | "cuda:N" | "mps"; None: the server's default (auto)
    precision: str | None = None  # "fp32" | "bf16" | "fp16"; None: bf16 on CUDA where supported, else fp32
    quantize: str = "none"  # "none" | "dynamic_int8": an int8 student in ONNX Runtime, measured beside the others

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> JobConfig:
        """Validate a JSON-like mapping; ConfigError names the first bad field."""
        if not isinstance(data, Mapping):
            raise ConfigError("body", "The request body must be a JSON object.")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(clip(unknown[0]), f"Unknown option(s) {clip(unknown)}; valid options: {sorted(known)}.")
        if "model_name" not in data:
            raise ConfigError("model_name", "model_name is required.")
        config = cls(**{k: v for k, v in data.items()})
        config.validate()
        return config

    def validate(self) -> None:
        """Check and normalise every field in place."""
        try:
            spec = get_model_spec(self.model_name)
        except UnknownModelError as exc:
            raise ConfigError("model_name", str(exc)) from None
        self.model_name = spec.id
        if self.preset not in PRESETS:
            raise ConfigError("preset", f"preset must be one of {list(PRESETS)}, got {clip(self.preset)}.")
        self.pretrained = _tri_state(self.pretrained)
        if self.dataset is None:
            self.dataset = DEFAULT_DATASET[spec.family]
        if not isinstance(self.dataset, str):
            raise ConfigError("dataset", "dataset must be a string.")
        if not self.dataset.startswith(UPLOAD_PREFIX) and self.dataset not in BUILTIN_DATASETS[spec.family]:
            raise ConfigError(
                "dataset",
                f"dataset '{clip(self.dataset)}' does not fit {spec.id} ({spec.family}); "
                f"valid: {list(BUILTIN_DATASETS[spec.family])} or an upload_id of a "
                f"{'CSV' if spec.family == 'text' else 'ZIP of class folders'}.",
            )
        if self.teacher_upload_id is not None and not (
            isinstance(self.teacher_upload_id, str) and self.teacher_upload_id.startswith(UPLOAD_PREFIX)
        ):
            raise ConfigError("teacher_upload_id", "teacher_upload_id must be an upload_id from POST /upload.")
        for name, limit in LIMITS.items():
            _check_number(self, name, limit, optional=name in OPTIONAL)
        if self.quantize not in QUANTIZE_OPTIONS:
            raise ConfigError(
                "quantize", f"quantize must be one of {list(QUANTIZE_OPTIONS)}, got '{clip(self.quantize)}'."
            )
        self._check_augment(spec.family)
        self._check_device()

    def _check_augment(self, family: str) -> None:
        if self.augment is not None and not isinstance(self.augment, bool):
            raise ConfigError("augment", f"augment must be true or false, got {self.augment!r}.")
        if self.augment and family != "vision":
            raise ConfigError("augment", "augment (random resized crop + flip) applies to vision models only.")

    def _check_device(self) -> None:
        """The device exists on this machine and can run the precision (400 naming what exists otherwise)."""
        from backend.devices import DeviceError, check_device, check_precision, resolve_device

        try:
            if self.device is not None:
                self.device = check_device(self.device)
        except DeviceError as exc:
            raise ConfigError("device", str(exc)) from None
        try:
            if self.precision is not None:
                check_precision(self.precision, resolve_device(self.device))
        except DeviceError as exc:
            raise ConfigError("precision", str(exc)) from None

    def to_dict(self) -> dict[str, Any]:
        """Plain dict, as stored in the report."""
        return dataclasses.asdict(self)

    @property
    def dataset_is_upload(self) -> bool:
        return bool(self.dataset and self.dataset.startswith(UPLOAD_PREFIX))


def _tri_state(value: Any) -> str:
    mapping = {True: "true", False: "false", "true": "true", "false": "false", "auto": "auto"}
    key = value.lower() if isinstance(value, str) else value
    if isinstance(key, (bool, str)) and key in mapping:
        return mapping[key]
    raise ConfigError("pretrained", f"pretrained must be 'auto', true or false, got {clip(value)}.")


def _check_number(cfg: JobConfig, name: str, limit: Mapping[str, Any], *, optional: bool) -> None:
    """A finite number in the option's range (LIMITS); an integral float is fine for an integer option."""
    given = value = getattr(cfg, name)
    if value is None and optional:
        return
    integer = limit["type"] == "integer"
    number = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if number and integer and isinstance(value, float) and value.is_integer():
        value = int(value)
    if not number or (integer and not isinstance(value, int)) or not _in_range(value, limit):
        what = "an integer" if integer else "a number"
        raise ConfigError(name, f"{name} must be {what} in {describe_range(limit)}, got {clip(given)}.")
    setattr(cfg, name, value if integer else float(value))


def _in_range(value: float, limit: Mapping[str, Any]) -> bool:
    low_ok = value > limit["exclusiveMinimum"] if "exclusiveMinimum" in limit else value >= limit["minimum"]
    high_ok = value < limit["exclusiveMaximum"] if "exclusiveMaximum" in limit else value <= limit["maximum"]
    return low_ok and high_ok


def describe_range(limit: Mapping[str, Any]) -> str:
    """'[0, 200]', '(0, 100]', '[0, 1)' from a LIMITS entry."""
    lo = f"({limit['exclusiveMinimum']}" if "exclusiveMinimum" in limit else f"[{limit['minimum']}"
    hi = f"{limit['exclusiveMaximum']})" if "exclusiveMaximum" in limit else f"{limit['maximum']}]"
    return f"{lo}, {hi}"
