"""What a job option is: one declaration from which validation, GET /models, OpenAPI, the CLIs and the dashboard
form are all derived.

`Option` lives at the bottom of the import layers so that anything may declare one: the core options are
declared in backend/jobconfig.py, and each pruning method (backend/pruning/) and distillation loss
(backend/kd/) declares its own beside its code.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from backend.echo import clip

TYPES = ("integer", "number", "boolean", "string", "array")


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


def _cli_help(option: Option, sweep: bool) -> str:
    text = option.help or option.label or option.name
    if option.numeric and option.bounds():
        text += f"; range {option.range_text()}"
    if option.preset_default:
        text += "; default: the preset's"
    elif option.default is not None and not sweep:
        text += f"; default: {option.default}"
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
            kwargs["type"] = _numbers(kind) if kind else _words
            kwargs["metavar"] = "V1,V2,..."
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
