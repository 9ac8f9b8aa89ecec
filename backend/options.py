"""What a job option is: one declaration from which validation, GET /models, OpenAPI, the CLIs and the dashboard
form are all derived.

`Option` lives at the bottom of the import layers so that anything may declare one: the core options are
declared in backend/jobconfig.py, and each pruning method (backend/pruning/) and distillation loss
(backend/kd/) declares its own beside its code.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from backend.echo import clip

TYPES = ("integer", "number", "boolean", "string", "array")
WEIGHT_MAX = 1000.0  # the largest weight of a weighted option's choice


class ConfigError(ValueError):
    """A bad option; `field` names it and the message says what is allowed."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class Option:
    """One job option, declared once.

    `preset_default`: None (the default) means "the preset's value for this model" (resolved in the pipeline).
    `study_axis`: the option may be swept in a study's grid. `choices`: the allowed values (of each item, for an
    array). `normalize` maps accepted spellings onto the canonical value before the checks.
    """

    name: str
    type: str
    default: Any = None
    help: str = ""
    label: str = ""
    minimum: float | None = None
    maximum: float | None = None
    exclusive_minimum: float | None = None
    exclusive_maximum: float | None = None
    choices: tuple[Any, ...] | None = None
    nullable: bool = False
    preset_default: bool = False
    study_axis: bool = False
    max_items: int | None = None  # arrays
    pattern: str | None = None  # strings: a regular expression (documentation; checks are in the validator)
    group: str = "training"  # where the dashboard shows it
    cli_flag: str | None = None  # default: --name-with-dashes
    required: bool = False
    normalize: Callable[[Any], Any] | None = None
    owner: str | None = None  # e.g. "pruning_method:random_unstructured": the method that declared it
    # strings with choices: also an object {choice: weight >= 0} (at least one weight > 0), e.g. losses combined
    weighted: bool = False

    def __post_init__(self) -> None:
        if self.type not in TYPES:
            raise ValueError(f"option {self.name}: type must be one of {TYPES}, got {self.type!r}")
        if not self.name.isidentifier():
            raise ValueError(f"option name {self.name!r} is not an identifier")

    @property
    def may_be_null(self) -> bool:
        return self.nullable or self.preset_default

    @property
    def flag(self) -> str:
        return self.cli_flag or "--" + self.name.replace("_", "-")

    @property
    def numeric(self) -> bool:
        return self.type in ("integer", "number")

    def bounds(self) -> dict[str, Any]:
        """The JSON Schema range keywords of a numeric option."""
        pairs = (
            ("minimum", self.minimum),
            ("maximum", self.maximum),
            ("exclusiveMinimum", self.exclusive_minimum),
            ("exclusiveMaximum", self.exclusive_maximum),
        )
        return {k: v for k, v in pairs if v is not None}

    def json_schema(self) -> dict[str, Any]:
        """The option's JSON Schema (OpenAPI 3.1 request bodies)."""
        kind: Any = self.type
        schema: dict[str, Any] = {}
        if self.type == "array":
            items: dict[str, Any] = {"type": "string"}
            if self.choices is not None:
                items["enum"] = list(self.choices)
            schema.update(items=items, uniqueItems=True)
            if self.max_items is not None:
                schema["maxItems"] = self.max_items
        else:
            schema.update(self.bounds())
            if self.choices is not None:
                schema["enum"] = list(self.choices) + ([None] if self.may_be_null else [])
        if self.pattern:
            schema["pattern"] = self.pattern
        if self.may_be_null:
            kind = [self.type, "null"]
        schema["type"] = kind
        if self.weighted:  # a choice, or {choice: weight}
            weights = {
                "type": "object",
                "minProperties": 1,
                "propertyNames": {"enum": list(self.choices or ())},
                "additionalProperties": {"type": "number", "minimum": 0, "maximum": WEIGHT_MAX},
            }
            schema = {"oneOf": [schema, weights]}
        if self.help:
            schema["description"] = self.help
        if self.default is not None:
            schema["default"] = list(self.default) if isinstance(self.default, tuple) else self.default
        return schema

    def describe(self) -> dict[str, Any]:
        """What GET /models says of the option (the dashboard builds its form from this)."""
        return {
            "name": self.name,
            "type": self.type,
            "label": self.label or self.name.replace("_", " "),
            "help": self.help,
            "default": list(self.default) if isinstance(self.default, tuple) else self.default,
            **self.bounds(),
            "choices": list(self.choices) if self.choices is not None else None,
            "nullable": self.may_be_null,
            "preset_default": self.preset_default,
            "study_axis": self.study_axis,
            "max_items": self.max_items,
            "pattern": self.pattern,
            "group": self.group,
            "required": self.required,
            "cli_flag": self.flag,
            "owner": self.owner,
            "weighted": self.weighted,
        }

    def range_text(self) -> str:
        """'[0, 200]', '(0, 100]', '[0, 1)'."""
        lo = f"({_num(self.exclusive_minimum)}" if self.exclusive_minimum is not None else f"[{_num(self.minimum)}"
        hi = f"{_num(self.exclusive_maximum)})" if self.exclusive_maximum is not None else f"{_num(self.maximum)}]"
        return f"{lo}, {hi}"

    def in_range(self, value: float) -> bool:
        ok = True
        if self.minimum is not None:
            ok &= value >= self.minimum
        if self.maximum is not None:
            ok &= value <= self.maximum
        if self.exclusive_minimum is not None:
            ok &= value > self.exclusive_minimum
        if self.exclusive_maximum is not None:
            ok &= value < self.exclusive_maximum
        return ok

    def check(self, value: Any, *, field: str | None = None) -> Any:
        """The value, checked and in canonical form; ConfigError naming the option otherwise."""
        field = field or self.name
        if self.normalize is not None:
            value = self.normalize(value)
        if value is None:
            if self.may_be_null:
                return None
            raise ConfigError(field, f"{field} may not be null; {self._expected()}.")
        if self.numeric:
            return self._check_number(value, field)
        if self.type == "boolean":
            if not isinstance(value, bool):
                raise ConfigError(field, f"{field} must be true or false, got {clip(value)}.")
            return value
        if self.type == "array":
            return self._check_array(value, field)
        if self.weighted and isinstance(value, Mapping):
            return self._check_weights(value, field)
        if not isinstance(value, str):
            raise ConfigError(field, f"{field} must be a string; {self._expected()}, got {clip(value)}.")
        if self.choices is not None and value not in self.choices:
            raise ConfigError(field, f"{field} must be one of {list(self.choices)}, got '{clip(value)}'.")
        return value

    def _check_number(self, value: Any, field: str) -> int | float:
        integer = self.type == "integer"
        number = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        given = value
        if number and integer and isinstance(value, float) and value.is_integer():
            value = int(value)
        if not number or (integer and not isinstance(value, int)) or not self.in_range(value):
            what = "an integer" if integer else "a number"
            raise ConfigError(field, f"{field} must be {what} in {self.range_text()}, got {clip(given)}.")
        return value if integer else float(value)

    def _check_array(self, value: Any, field: str) -> list[Any]:
        if not isinstance(value, list):
            raise ConfigError(field, f"{field} must be a list; {self._expected()}, got {clip(value)}.")
        if self.max_items is not None and len(value) > self.max_items:
            raise ConfigError(field, f"{field} may hold at most {self.max_items} items, got {len(value)}.")
        for item in value:
            if not isinstance(item, str) or (self.choices is not None and item not in self.choices):
                raise ConfigError(field, f"{field} items must be among {list(self.choices or [])}, got {clip(item)}.")
        if len(set(value)) != len(value):
            raise ConfigError(field, f"{field} lists an item twice: {clip(value)}.")
        return list(value)

    def _check_weights(self, value: Mapping, field: str) -> str | dict[str, float]:
        """{choice: weight}: known choices, finite weights >= 0, one of them > 0. Canonical form: a lone choice at
        weight 1 is its name (the plain string form); otherwise the object in the order of `choices`."""
        if not value:
            raise ConfigError(field, f"{field} must name at least one of {list(self.choices or [])}.")
        unknown = [k for k in value if not isinstance(k, str) or k not in (self.choices or ())]
        if unknown:
            raise ConfigError(field, f"{field} keys must be among {list(self.choices or [])}, got {clip(unknown)}.")
        for key, weight in value.items():
            number = isinstance(weight, (int, float)) and not isinstance(weight, bool) and math.isfinite(weight)
            if not number or weight < 0 or weight > WEIGHT_MAX:
                raise ConfigError(field, f"{field}.{key} must be a weight in [0, {WEIGHT_MAX:g}], got {clip(weight)}.")
        if not any(w > 0 for w in value.values()):
            raise ConfigError(field, f"{field} needs at least one weight above 0, got {clip(dict(value))}.")
        weights = {k: float(value[k]) for k in self.choices or () if k in value}
        if len(weights) == 1 and next(iter(weights.values())) == 1.0:
            return next(iter(weights))
        return weights

    def _expected(self) -> str:
        if self.choices is not None:
            return f"one of {list(self.choices)}"
        if self.numeric:
            return f"a number in {self.range_text()}"
        return f"a {self.type}"


def _num(value: float | None) -> str:
    """2147483647 rather than 2.14748e+09; 0.95 as it is."""
    if value is None:
        return "?"
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


# -- Command lines ---------------------------------------------------------------------------------------------


def _numbers(kind: type) -> Callable[[str], list[Any]]:
    def parse(text: str) -> list[Any]:
        try:
            return [kind(v) for v in text.split(",") if v.strip()]
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected comma-separated values, got {text!r}") from None

    return parse


def _words(text: str) -> list[str]:
    return [v.strip() for v in text.split(",") if v.strip()]


def _weighted(text: str) -> str | dict[str, float]:
    """'logits' as it is; 'logits:1+features:0.5' -> {"logits": 1.0, "features": 0.5} (a name alone weighs 1)."""
    if "+" not in text and ":" not in text:
        return text.strip()
    weights: dict[str, float] = {}
    for part in text.split("+"):
        name, _, weight = part.partition(":")
        try:
            weights[name.strip()] = float(weight) if weight.strip() else 1.0
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected NAME:WEIGHT+NAME:WEIGHT, got {text!r}") from None
    return weights


def _weighted_list(text: str) -> list[str | dict[str, float]]:
    return [_weighted(v) for v in text.split(",") if v.strip()]


def _cli_help(option: Option, sweep: bool) -> str:
    text = option.help or option.label or option.name
    if option.numeric and option.bounds():
        text += f"; range {option.range_text()}"
    if option.preset_default:
        text += "; default: the preset's"
    elif option.default is not None and not sweep:
        text += f"; default: {option.default}"
    if option.weighted:
        text += f"; one of {list(option.choices or [])}, or several weighted as NAME:WEIGHT+NAME:WEIGHT"
    if sweep:
        text += " (comma-separated values to sweep)"
    return text.replace("%", "%%")


def add_arguments(parser: argparse.ArgumentParser, options: Sequence[Option], *, sweep: Sequence[str] = ()) -> None:
    """One argument per option (--kd-epochs for kd_epochs); options named in `sweep` take comma-separated lists.

    Every argument defaults to None (not given), so the job's own defaults apply in one place: the option.
    """
    for option in options:
        kwargs: dict[str, Any] = {"dest": option.name, "default": None, "help": _cli_help(option, option.name in sweep)}
        if option.required:
            kwargs["required"] = True
        if option.name in sweep:
            kind = {"integer": int, "number": float}.get(option.type)
            kwargs["type"] = _numbers(kind) if kind else _weighted_list if option.weighted else _words
            kwargs["metavar"] = "V1,V2,..."
        elif option.weighted:  # checked with the option's own check, which names the choices
            kwargs["type"] = _weighted
            kwargs["metavar"] = "NAME | NAME:WEIGHT+NAME:WEIGHT"
        elif option.type == "boolean":
            kwargs["action"] = argparse.BooleanOptionalAction
        elif option.type == "array":
            kwargs["type"] = _words
            kwargs["metavar"] = "A,B"
        elif option.numeric:
            kwargs["type"] = int if option.type == "integer" else float
        elif option.choices is not None:
            kwargs["choices"] = list(option.choices)
        parser.add_argument(option.flag, **kwargs)


def values_from_args(args: argparse.Namespace, options: Sequence[Option]) -> dict[str, Any]:
    """The options given on the command line, by option name (those not given are left out)."""
    return {o.name: getattr(args, o.name) for o in options if getattr(args, o.name, None) is not None}
