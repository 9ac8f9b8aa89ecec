"""The configuration of one job: a dataclass validated once, at the boundary, and stored in the report."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, fields
from typing import Any, Mapping

from backend.models.registry import PRESETS, UnknownModelError, get_model_spec

BUILTIN_DATASETS = {"vision": ("digits", "cifar10"), "text": ("synthetic_sentiment",)}
DEFAULT_DATASET = {"vision": "digits", "text": "synthetic_sentiment"}
UPLOAD_PREFIX = "upl_"
QUANTIZE_OPTIONS = ("none", "dynamic_int8")  # dynamic_int8: ONNX Runtime quantize_dynamic of the exported student


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
    quantize: str = "none"  # "none" | "dynamic_int8": an int8 student in ONNX Runtime, measured beside the others

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "JobConfig":
        """Validate a JSON-like mapping; ConfigError names the first bad field."""
        if not isinstance(data, Mapping):
            raise ConfigError("body", "The request body must be a JSON object.")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(unknown[0], f"Unknown option(s) {unknown}; valid options: {sorted(known)}.")
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
            raise ConfigError("preset", f"preset must be one of {list(PRESETS)}, got {self.preset!r}.")
        self.pretrained = _tri_state(self.pretrained)
        if self.dataset is None:
            self.dataset = DEFAULT_DATASET[spec.family]
        if not isinstance(self.dataset, str):
            raise ConfigError("dataset", "dataset must be a string.")
        if not self.dataset.startswith(UPLOAD_PREFIX) and self.dataset not in BUILTIN_DATASETS[spec.family]:
            raise ConfigError("dataset", f"dataset {self.dataset!r} does not fit {spec.id} ({spec.family}); "
                                         f"valid: {list(BUILTIN_DATASETS[spec.family])} or an upload_id of a "
                                         f"{'CSV' if spec.family == 'text' else 'ZIP of class folders'}.")
        if self.teacher_upload_id is not None and not (isinstance(self.teacher_upload_id, str)
                                                       and self.teacher_upload_id.startswith(UPLOAD_PREFIX)):
            raise ConfigError("teacher_upload_id", "teacher_upload_id must be an upload_id from POST /upload.")
        for name in ("epochs", "kd_epochs", "finetune_epochs"):
            _check_int(self, name, low=0, optional=True)
        _check_int(self, "pruning_steps", low=1, high=20)
        _check_int(self, "seed", low=0, high=2**31 - 1)
        _check_int(self, "batch_size", low=1, high=4096, optional=True)
        _check_int(self, "max_samples", low=20, optional=True)
        _check_int(self, "latency_runs", low=30, high=1000)
        if self.quantize not in QUANTIZE_OPTIONS:
            raise ConfigError("quantize", f"quantize must be one of {list(QUANTIZE_OPTIONS)}, got {self.quantize!r}.")
        _check_float(self, "temperature", low=0.0, low_open=True, high=100.0)
        _check_float(self, "alpha", low=0.0, high=1.0)
        _check_float(self, "sparsity", low=0.0, high=1.0, high_open=True)
        _check_float(self, "structural_ratio", low=0.0, high=0.95, optional=True)
        _check_float(self, "learning_rate", low=0.0, low_open=True, high=1.0, optional=True)
        _check_float(self, "max_grad_norm", low=0.0, low_open=True, high=1e6)

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
    raise ConfigError("pretrained", f"pretrained must be 'auto', true or false, got {value!r}.")


def _check_int(cfg: JobConfig, name: str, *, low: int, high: int | None = None, optional: bool = False) -> None:
    value = getattr(cfg, name)
    if value is None and optional:
        return
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, float) and value.is_integer():
            value = int(value)
            setattr(cfg, name, value)
        else:
            raise ConfigError(name, f"{name} must be an integer, got {value!r}.")
    if value < low or (high is not None and value > high):
        bound = f">= {low}" if high is None else f"between {low} and {high}"
        raise ConfigError(name, f"{name} must be {bound}, got {value}.")


def _check_float(cfg: JobConfig, name: str, *, low: float, high: float, low_open: bool = False,
                 high_open: bool = False, optional: bool = False) -> None:
    value = getattr(cfg, name)
    if value is None and optional:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
        raise ConfigError(name, f"{name} must be a number, got {value!r}.")
    value = float(value)
    setattr(cfg, name, value)
    too_low = value <= low if low_open else value < low
    too_high = value >= high if high_open else value > high
    if too_low or too_high:
        lo, hi = ("(" if low_open else "["), (")" if high_open else "]")
        raise ConfigError(name, f"{name} must be in {lo}{low}, {high}{hi}, got {value}.")
