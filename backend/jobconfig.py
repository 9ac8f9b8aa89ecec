"""The options of one job, each declared once, and `JobConfig`: their values, validated once at the boundary and
stored in the report.

Everything else is derived from the declarations below (and from the options each pruning method and
distillation loss declares in its own module): validation here, `GET /models` (options, limits, defaults),
the OpenAPI request schemas of `/train` and `/studies` (grid axes included), the arguments of both command
lines (`add_cli_arguments`) and the dashboard's form, which it builds from `GET /models`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from backend import kd, pruning
from backend.data import names
from backend.devices import PRECISIONS, DeviceError, check_device, check_precision, resolve_device
from backend.echo import clip
from backend.metrics.keys import QUANTIZE_OPTIONS, TARGET_RUNTIMES
from backend.models.registry import PRESETS, UnknownModelError, get_model_spec, model_ids
from backend.options import ConfigError, Option, add_arguments, values_from_args

__all__ = [
    "BUILTIN_DATASETS",
    "CONTROL_ARMS",
    "DEFAULT_DATASET",
    "QUANTIZE_OPTIONS",
    "UPLOAD_PREFIX",
    "ConfigError",
    "JobConfig",
    "Option",
    "add_cli_arguments",
    "job_options",
    "limits",
    "register_option",
    "study_axes",
]

# The built-in and public datasets per model family (backend/data/names.py), and each family's default.
BUILTIN_DATASETS = {family: (*names.BUILTIN[family], *names.PUBLIC[family]) for family in names.BUILTIN}
DEFAULT_DATASET = dict(names.DEFAULT)
UPLOAD_PREFIX = "upl_"
# The control arms (option `controls`): the same student trained without the teacher, from the same initial
# weights (ce_only) or from random ones (scratch), with the same epochs, schedule, pruning and seed.
CONTROL_ARMS = {
    "ce_only": "the structural student from the same initial weights as the distilled one, trained with "
    "cross-entropy alone (alpha = 0): same KD epochs, learning rate, seed, pruning method, schedule and fine-tuning",
    "scratch": "the student's architecture from random initialisation (PyTorch's default per layer), trained "
    "with cross-entropy alone on the same budget as ce_only",
}


def _tri_state(value: Any) -> Any:
    """true/false/"TRUE"/"Auto" -> "true"/"false"/"auto"; anything else is left for the choices check to refuse."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return value.lower() if isinstance(value, str) else value


# The upper limits bound the work one request can ask for: the presets use far less (epochs <= 12 on 2 CPU cores).
CORE_OPTIONS: tuple[Option, ...] = (
    Option("model_name", "string", required=True, cli_flag="--model", group="model", label="Model",
           help="a model id or alias (GET /models lists them)"),
    Option("dataset", "string", nullable=True, group="model", label="Dataset",
           help="a built-in or public dataset that fits the model's family, or an upload_id from POST /upload; "
           "null: the family's built-in default"),
    Option("preset", "string", default="quick", choices=PRESETS, group="model", label="Preset",
           help="quick: reduced-size models, minutes on a CPU; standard: the published sizes"),
    Option("pretrained", "string", default="auto", choices=("auto", "true", "false"), normalize=_tri_state,
           group="teacher", label="Pretrained teacher",
           help="start the teacher from pretrained weights: auto (when they can be had), true, or false"),
    Option("teacher_upload_id", "string", nullable=True, pattern=f"^{UPLOAD_PREFIX}", group="teacher",
           label="Uploaded teacher", help="an upload_id of a teacher checkpoint (POST /upload)"),
    Option("epochs", "integer", minimum=0, maximum=200, preset_default=True, group="training",
           label="Teacher epochs", help="teacher training epochs"),
    Option("kd_epochs", "integer", minimum=0, maximum=200, preset_default=True, group="training",
           label="KD epochs", help="distillation epochs of the structural student"),
    Option("finetune_epochs", "integer", minimum=0, maximum=50, preset_default=True, group="training",
           label="Fine-tune epochs / step", help="KD fine-tuning epochs after each pruning step"),
    Option("sparsity", "number", default=0.3, minimum=0, exclusive_maximum=1, study_axis=True, group="pruning",
           label="Sparsity", help="the fraction of the student's prunable weights the pruning method removes"),
    Option("pruning_steps", "integer", default=3, minimum=1, maximum=20, group="pruning", label="Pruning steps",
           help="steps to reach the sparsity (cubic schedule), fine-tuned after each"),
    Option("structural_ratio", "number", minimum=0, maximum=0.95, preset_default=True, study_axis=True,
           group="pruning", label="Structural ratio",
           help="the fraction of channels / layers / FFN units the student loses; null: the model's default"),
    Option("seed", "integer", default=0, minimum=0, maximum=2**31 - 1, group="training", label="Seed",
           help="seeds the split, the initialisations and the batch order"),
    Option("batch_size", "integer", minimum=1, maximum=4096, preset_default=True, group="training",
           label="Batch size", help="training batch size"),
    Option("learning_rate", "number", exclusive_minimum=0, maximum=1, preset_default=True, group="training",
           label="Learning rate", help="peak learning rate of every phase (one-cycle); null: the preset's"),
    Option("max_grad_norm", "number", default=1.0, exclusive_minimum=0, maximum=1_000_000, group="training",
           label="Max grad norm", help="gradient clipping norm"),
    Option("max_samples", "integer", minimum=20, maximum=1_000_000, nullable=True, group="model",
           label="Max samples", help="cap on the dataset size, for quick checks; null: the whole dataset"),
    Option("latency_runs", "integer", default=30, minimum=30, maximum=1000, group="measurement",
           label="Latency runs", help="timed runs per model and batch size (after warm-up)"),
    Option("augment", "boolean", nullable=True, group="training", label="Augment",
           help="random resized crop + flip on vision training; null: on at the standard preset, off at quick"),
    Option("device", "string", nullable=True, pattern="^(auto|cpu|mps|cuda(:[0-9]{1,2})?)$", group="measurement",
           label="Device", help="where the job runs: auto (CUDA when present, else CPU), cpu, cuda, cuda:N, mps; "
           "null: the server's --device"),
    Option("precision", "string", nullable=True, choices=PRECISIONS, group="measurement", label="Precision",
           help="autocast of the forward passes; null: bf16 on CUDA where supported, else fp32"),
    Option("controls", "array", default=(), choices=tuple(CONTROL_ARMS), max_items=len(CONTROL_ARMS),
           group="distillation", label="Control arms",
           help="arms measured exactly like the student on the same split, to isolate what distillation buys: "
           "ce_only (same student, same initial weights, cross-entropy alone) and scratch (same architecture, "
           "random initialisation, cross-entropy alone)"),
    Option("quantize", "string", default="none", choices=QUANTIZE_OPTIONS, group="measurement", label="Quantize",
           help="dynamic_int8: the exported student quantized by ONNX Runtime's quantize_dynamic and measured "
           "(size, accuracy, latency) as a third column, student_int8"),
    Option("target_latency_ms", "number", nullable=True, exclusive_minimum=0, maximum=60_000, group="target",
           label="Target latency (ms)", study_axis=True,
           help="ask for a latency instead of a structural ratio: before any training the least structural ratio "
           "whose student's median latency (target_runtime, target_batch_size) is at most this is searched and "
           "trained; null: off. Not with target_speedup or structural_ratio"),
    Option("target_speedup", "number", nullable=True, exclusive_minimum=1, maximum=10_000, group="target",
           label="Target speedup", study_axis=True,
           help="ask for a speedup over the teacher instead of a structural ratio: the least structural ratio whose "
           "student runs at least this many times faster than the teacher (medians of the same rounds) is "
           "searched and trained; null: off. Not with target_latency_ms or structural_ratio"),
    Option("target_runtime", "string", default="onnxruntime", choices=TARGET_RUNTIMES, group="target",
           label="Target runtime",
           help="where a latency target is measured: onnxruntime (exported to ONNX, CPU) or pytorch (eager, on the "
           "job's device)"),
    Option("target_batch_size", "integer", default=1, minimum=1, maximum=256, group="target",
           label="Target batch size", help="the batch size a latency target is measured at"),
)  # fmt: skip
TARGET_OPTIONS = ("target_latency_ms", "target_speedup")

_EXTRA: list[Option] = []  # options registered at run time (register_option)

# The groups options are shown in (the dashboard's fieldsets, in this order); `open`: shown without unfolding.
# An option of a group not listed here goes into a group of its own, folded.
OPTION_GROUPS = {
    "model": {"title": "Model and data", "open": True},
    "pruning": {"title": "Pruning", "open": True},
    "distillation": {"title": "Distillation", "open": True},
    "teacher": {"title": "Teacher", "open": False},
    "training": {"title": "Training", "open": False},
    "measurement": {"title": "Measurement and deployment", "open": False},
    "target": {"title": "Latency target", "open": False},
}


def _method_options() -> tuple[Option, ...]:
    """`pruning_method` and `kd_loss` (their choices are the registries) and the options each method declares."""
    methods, losses = pruning.list_methods(), kd.list_losses()
    chooser = (
        Option("pruning_method", "string", default=pruning.DEFAULT_METHOD, choices=tuple(m.name for m in methods),
               study_axis=True, group="pruning", label="Pruning method",
               help="how the student is pruned after distillation (GET /models lists pruning_methods)"),
        Option("kd_loss", "string", default=kd.DEFAULT_LOSS, choices=tuple(loss.name for loss in losses),
               weighted=True, study_axis=True, group="distillation", label="Distillation loss",
               help="the loss the student is distilled with (GET /models lists kd_losses), or several combined "
               'with weights >= 0, e.g. {"logits": 1.0, "features": 1.0}'),
    )  # fmt: skip
    declared = tuple(o for owner in (*losses, *methods) for o in owner.options)
    return chooser + declared


def job_options() -> tuple[Option, ...]:
    """Every option of a job, in the order the report, /models and the CLIs show them."""
    options = (*CORE_OPTIONS, *_method_options(), *_EXTRA)
    names = [o.name for o in options]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ValueError(f"job option(s) declared twice: {twice}")
    return options


def option(name: str) -> Option:
    """The declaration of one option."""
    return next(o for o in job_options() if o.name == name)


def study_axes() -> tuple[str, ...]:
    """The options a study may sweep (its grid axes)."""
    return tuple(o.name for o in job_options() if o.study_axis)


def limits() -> dict[str, dict[str, Any]]:
    """The range of every numeric option, as JSON Schema (GET /models shows these)."""
    return {o.name: {"type": o.type, **o.bounds()} for o in job_options() if o.numeric}


@contextmanager
def register_option(extra: Option) -> Iterator[Option]:
    """Add an option for the duration of the block (a plugin's, or a test's)."""
    _EXTRA.append(extra)
    try:
        yield extra
    finally:
        _EXTRA.remove(extra)


def add_cli_arguments(parser, *, sweep: Sequence[str] = ()) -> None:
    """Every job option as a command-line argument (--kd-epochs for kd_epochs); `sweep` names take lists."""
    add_arguments(parser, job_options(), sweep=sweep)


def options_from_args(args) -> dict[str, Any]:
    """The job options given on a command line parsed with add_cli_arguments."""
    return values_from_args(args, job_options())


class JobConfig:
    """Every option of a job, as attributes (`config.sparsity`). None means: the preset's default for this model."""

    def __init__(self, **values: Any) -> None:
        options = job_options()
        unknown = sorted(set(values) - {o.name for o in options})
        if unknown:
            raise TypeError(f"unknown job option(s) {unknown}")
        for o in options:
            object.__setattr__(self, o.name, values.get(o.name, list(o.default) if o.type == "array" else o.default))

    def __setattr__(self, name: str, value: Any) -> None:
        if name not in {o.name for o in job_options()}:
            raise AttributeError(f"JobConfig has no option {name!r}")
        object.__setattr__(self, name, value)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, JobConfig) and other.to_dict() == self.to_dict()

    def __repr__(self) -> str:
        return f"JobConfig({', '.join(f'{k}={v!r}' for k, v in self.to_dict().items())})"

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> JobConfig:
        """Validate a JSON-like mapping; ConfigError names the first bad field."""
        if not isinstance(data, Mapping):
            raise ConfigError("body", "The request body must be a JSON object.")
        known = [o.name for o in job_options()]
        unknown = sorted(set(data) - set(known))
        if unknown:
            raise ConfigError(clip(unknown[0]), f"Unknown option(s) {clip(unknown)}; valid options: {sorted(known)}.")
        if "model_name" not in data:
            raise ConfigError("model_name", "model_name is required.")
        config = cls(**dict(data))
        config.validate()
        return config

    def replace(self, **changes: Any) -> JobConfig:
        """A copy with some options changed (not validated again)."""
        return JobConfig(**{**self.to_dict(), **changes})

    def validate(self) -> None:
        """Check and normalise every option in place: its declaration first, then what depends on the model."""
        try:
            spec = get_model_spec(self.model_name)
        except UnknownModelError as exc:
            raise ConfigError("model_name", str(exc)) from None
        object.__setattr__(self, "model_name", spec.id)
        for o in job_options():
            if o.name not in ("model_name", "device"):  # the device's check names the devices this machine has
                object.__setattr__(self, o.name, o.check(getattr(self, o.name)))
        if self.dataset is None:
            self.dataset = DEFAULT_DATASET[spec.family]
        if not self.dataset.startswith(UPLOAD_PREFIX) and self.dataset not in BUILTIN_DATASETS[spec.family]:
            raise ConfigError(
                "dataset",
                f"dataset '{clip(self.dataset)}' does not fit {spec.id} ({spec.family}); "
                f"valid: {list(BUILTIN_DATASETS[spec.family])} or an upload_id of a "
                f"{'CSV' if spec.family == 'text' else 'ZIP of class folders'}.",
            )
        if self.teacher_upload_id is not None and not self.teacher_upload_id.startswith(UPLOAD_PREFIX):
            raise ConfigError("teacher_upload_id", "teacher_upload_id must be an upload_id from POST /upload.")
        self._check_target()
        if self.augment and spec.family != "vision":
            raise ConfigError("augment", "augment (random resized crop + flip) applies to vision models only.")
        unfit = [loss.name for loss in kd.losses_of(self.kd_loss) if spec.family not in loss.families]
        if unfit:
            fit = [loss.name for loss in kd.list_losses() if spec.family in loss.families]
            raise ConfigError(
                "kd_loss", f"kd_loss {unfit} is not defined for {spec.id} ({spec.family}); valid for it: {fit}."
            )
        self._check_device()

    def _check_target(self) -> None:
        """A latency target is one of two, and it replaces the structural ratio (which it searches)."""
        if self.target_latency_ms is not None and self.target_speedup is not None:
            raise ConfigError("target_speedup", "give target_latency_ms or target_speedup, not both.")
        if self.latency_target is not None and self.structural_ratio is not None:
            raise ConfigError(
                "structural_ratio",
                "a latency target searches the structural ratio; leave structural_ratio null or drop the target.",
            )

    @property
    def latency_target(self) -> dict[str, float] | None:
        """{option: value} of the latency target asked for, or None."""
        asked = {name: getattr(self, name) for name in TARGET_OPTIONS if getattr(self, name) is not None}
        return asked or None

    def _check_device(self) -> None:
        """The device exists on this machine and can run the precision (400 naming what exists otherwise)."""
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
        return {o.name: getattr(self, o.name) for o in job_options()}

    @property
    def dataset_is_upload(self) -> bool:
        return bool(self.dataset and self.dataset.startswith(UPLOAD_PREFIX))


def model_help() -> str:
    """What --model accepts."""
    return ", ".join(model_ids()) + " (or an alias)"


def _cell(option: Option) -> str:
    if option.choices is not None:
        return ", ".join(f"`{c}`" for c in option.choices)
    if option.numeric:
        return f"{option.type} in {option.range_text()}"
    return option.type


def _md(text: str) -> str:
    return text.replace("|", "\\|")


def options_markdown() -> str:
    """The README's table of job options, and of the pruning methods and distillation losses."""
    lines = ["| option | values | default | study axis | what it does |", "|---|---|---|---|---|"]
    for o in job_options():
        default = "required" if o.required else "the preset's" if o.preset_default else f"`{o.default}`"
        if o.default is None and not o.required and not o.preset_default:
            default = "null"
        lines.append(f"| `{o.name}` | {_cell(o)} | {default} | {'yes' if o.study_axis else ''} | {_md(o.help)} |")
    lines += ["", "| `pruning_method` | what it does | its options |", "|---|---|---|"]
    for m in pruning.list_methods():
        lines.append(f"| `{m.name}` | {_md(m.description)} | {', '.join(f'`{o.name}`' for o in m.options)} |")
    lines += ["", "| `kd_loss` | loss | what it does | its options |", "|---|---|---|---|"]
    for loss in kd.list_losses():
        names = ", ".join(f"`{o.name}`" for o in loss.options)
        lines.append(f"| `{loss.name}` | `{_md(loss.formula)}` | {_md(loss.description)} | {names} |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(options_markdown())
