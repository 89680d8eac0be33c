"""Field types of the policy spec: each one validates a JSON value and exports its own
JSON Schema, so the agent's validator and `policies/schema.json` cannot disagree.

`check(value, path, errors)` returns the normalised value (defaults filled in, numbers as
float) and appends (path, message) for every problem instead of stopping at the first, so
an operator sees all mistakes of a document at once. A value that failed returns INVALID;
callers only build a document when no error was collected.
"""

from __future__ import annotations

import copy
import math
import re
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

Errors = list[tuple[str, str]]

ROOT: Final = "(document)"
"""Path reported for a problem with the document as a whole."""


class _Invalid:
    def __repr__(self) -> str:
        return "INVALID"


INVALID: Final[Any] = _Invalid()
"""Placeholder for a value that failed validation."""

_MISSING: Final[Any] = object()


def json_type(value: object) -> str:
    """The JSON name of a Python value's type, for error messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list | tuple):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def join(path: str, key: object) -> str:
    """Dotted path of `key` under `path` (`failover` + `max_attempts`)."""
    return f"{path}.{key}" if path else str(key)


def _fmt(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


class Field(ABC):
    @abstractmethod
    def check(self, value: Any, path: str, errors: Errors) -> Any: ...

    @abstractmethod
    def schema(self) -> dict[str, Any]: ...


@dataclass(frozen=True, slots=True)
class Integer(Field):
    minimum: int
    maximum: int

    def check(self, value: Any, path: str, errors: Errors) -> Any:
        if isinstance(value, bool) or not isinstance(value, int):
            errors.append((path, f"expected an integer, got {json_type(value)} {value!r}"))
            return INVALID
        if not self.minimum <= value <= self.maximum:
            errors.append((path, f"must be between {self.minimum} and {self.maximum}, got {value}"))
            return INVALID
        return value

    def schema(self) -> dict[str, Any]:
        return {"type": "integer", "minimum": self.minimum, "maximum": self.maximum}


@dataclass(frozen=True, slots=True)
class Number(Field):
    """A finite number; `exclusive_minimum` for quantities that must be positive."""

    minimum: float
    maximum: float
    exclusive_minimum: bool = False

    def check(self, value: Any, path: str, errors: Errors) -> Any:
        if isinstance(value, bool) or not isinstance(value, int | float):
            errors.append((path, f"expected a number, got {json_type(value)} {value!r}"))
            return INVALID
        if not math.isfinite(value):
            errors.append((path, f"must be a finite number, got {value}"))
            return INVALID
        low_ok = value > self.minimum if self.exclusive_minimum else value >= self.minimum
        if not low_ok or value > self.maximum:
            low = "greater than" if self.exclusive_minimum else "at least"
            errors.append(
                (
                    path,
                    f"must be {low} {_fmt(self.minimum)} and at most {_fmt(self.maximum)}, "
                    f"got {value}",
                )
            )
            return INVALID
        return float(value)

    def schema(self) -> dict[str, Any]:
        low = "exclusiveMinimum" if self.exclusive_minimum else "minimum"
        return {"type": "number", low: self.minimum, "maximum": self.maximum}


@dataclass(frozen=True, slots=True)
class Boolean(Field):
    def check(self, value: Any, path: str, errors: Errors) -> Any:
        if not isinstance(value, bool):
            errors.append((path, f"expected true or false, got {json_type(value)} {value!r}"))
            return INVALID
        return value

    def schema(self) -> dict[str, Any]:
        return {"type": "boolean"}


@dataclass(frozen=True, slots=True)
class Text(Field):
    """A string; `pattern` (a full match) comes with `hint`, its meaning in words."""

    max_length: int
    min_length: int = 0
    pattern: str | None = None
    hint: str = ""

    def check(self, value: Any, path: str, errors: Errors) -> Any:
        if not isinstance(value, str):
            errors.append((path, f"expected a string, got {json_type(value)} {value!r}"))
            return INVALID
        if not self.min_length <= len(value) <= self.max_length:
            errors.append(
                (
                    path,
                    f"length must be between {self.min_length} and {self.max_length}, "
                    f"got {len(value)}",
                )
            )
            return INVALID
        if self.pattern is not None and re.fullmatch(self.pattern, value) is None:
            errors.append((path, f"must be {self.hint}, got {value!r}"))
            return INVALID
        return value

    def schema(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "type": "string",
            "minLength": self.min_length,
            "maxLength": self.max_length,
        }
        if self.pattern is not None:
            out["pattern"] = f"^(?:{self.pattern})$"
        return out


@dataclass(frozen=True, slots=True)
class Choice(Field):
    options: tuple[str, ...]

    def check(self, value: Any, path: str, errors: Errors) -> Any:
        if value not in self.options or not isinstance(value, str):
            errors.append((path, f"must be one of {', '.join(self.options)}, got {value!r}"))
            return INVALID
        return value

    def schema(self) -> dict[str, Any]:
        return {"type": "string", "enum": list(self.options)}


@dataclass(frozen=True, slots=True)
class ListOf(Field):
    """An array; with `unique`, a repeated item is an error naming both positions."""

    item: Field
    max_items: int
    unique: bool = False

    def check(self, value: Any, path: str, errors: Errors) -> Any:
        if not isinstance(value, list | tuple):
            errors.append((path, f"expected an array, got {json_type(value)}"))
            return INVALID
        if len(value) > self.max_items:
            errors.append((path, f"at most {self.max_items} items, got {len(value)}"))
            return INVALID
        out = [self.item.check(v, f"{path}[{i}]", errors) for i, v in enumerate(value)]
        if self.unique:
            for i, v in enumerate(out):
                first = next(j for j, w in enumerate(out) if w == v)
                if first < i and v is not INVALID:
                    errors.append((f"{path}[{i}]", f"repeats {path}[{first}] ({v!r})"))
        return out

    def schema(self) -> dict[str, Any]:
        out = {"type": "array", "items": self.item.schema(), "maxItems": self.max_items}
        if self.unique:
            out["uniqueItems"] = True
        return out


@dataclass(frozen=True, slots=True)
class Prop:
    """One key of a Record: its field, what it means, and its default when omitted
    (`{}` for a nested section, whose own defaults then apply)."""

    field: Field
    description: str
    default: Any = _MISSING

    @property
    def required(self) -> bool:
        return self.default is _MISSING

    def schema(self) -> dict[str, Any]:
        out = {"description": self.description, **self.field.schema()}
        if not self.required and self.default != {}:
            out["default"] = self.default
        return out


def _check_object(value: Any, path: str, errors: Errors) -> bool:
    if not isinstance(value, dict):
        errors.append((path or ROOT, f"expected an object, got {json_type(value)}"))
        return False
    return True


@dataclass(frozen=True, slots=True)
class Record(Field):
    """A JSON object with a fixed set of keys; unknown keys are errors, so a misspelt
    field never silently falls back to its default."""

    props: Mapping[str, Prop]

    def check(self, value: Any, path: str, errors: Errors) -> Any:
        if not _check_object(value, path, errors):
            return INVALID
        for key in value:
            if key not in self.props:
                known = ", ".join(self.props) or "none"
                errors.append((join(path, key), f"unknown key (known: {known})"))
        out: dict[str, Any] = {}
        for name, prop in self.props.items():
            sub = join(path, name)
            if name in value:
                out[name] = prop.field.check(value[name], sub, errors)
            elif prop.required:
                errors.append((sub, "required"))
            else:
                out[name] = prop.field.check(copy.deepcopy(prop.default), sub, errors)
        return out

    def schema(self) -> dict[str, Any]:
        return {
            "type": "object",
            "properties": {name: prop.schema() for name, prop in self.props.items()},
            "required": [name for name, prop in self.props.items() if prop.required],
            "additionalProperties": False,
        }


@dataclass(frozen=True, slots=True)
class KeyedRecords(Field):
    """An object keyed by a closed set of names (the clouds), each value a Record; every
    name is filled in with the Record's defaults, so consumers can index any of them."""

    keys: tuple[str, ...]
    value: Record

    def check(self, value: Any, path: str, errors: Errors) -> Any:
        if not _check_object(value, path, errors):
            return INVALID
        for key in value:
            if key not in self.keys:
                errors.append((join(path, key), f"unknown key (known: {', '.join(self.keys)})"))
        return {k: self.value.check(value.get(k, {}), join(path, k), errors) for k in self.keys}

    def schema(self) -> dict[str, Any]:
        return {
            "type": "object",
            "properties": {k: self.value.schema() for k in self.keys},
            "additionalProperties": False,
        }


@dataclass(frozen=True, slots=True)
class Tagged(Field):
    """`{"name": <tag>, "params": {...}}` where the allowed params depend on the tag."""

    variants: Mapping[str, Record]
    default_tag: str
    descriptions: Mapping[str, str] = field(default_factory=dict)

    def check(self, value: Any, path: str, errors: Errors) -> Any:
        if not _check_object(value, path, errors):
            return INVALID
        for key in value:
            if key not in ("name", "params"):
                errors.append((join(path, key), "unknown key (known: name, params)"))
        name = value.get("name", self.default_tag)
        tag_path = join(path, "name")
        if Choice(tuple(self.variants)).check(name, tag_path, errors) is INVALID:
            return INVALID
        params = self.variants[name].check(value.get("params", {}), join(path, "params"), errors)
        return {"name": name, "params": params}

    def schema(self) -> dict[str, Any]:
        return {
            "type": "object",
            "properties": {
                "name": {
                    "type": "string",
                    "enum": list(self.variants),
                    "default": self.default_tag,
                },
                "params": {"type": "object"},
            },
            "additionalProperties": False,
            "allOf": [self._branch(tag, rec) for tag, rec in self.variants.items()],
        }

    def _branch(self, tag: str, rec: Record) -> dict[str, Any]:
        """`if name == tag then params follow tag's Record`; the default tag also applies
        when `name` is omitted."""
        named = {"properties": {"name": {"const": tag}}, "required": ["name"]}
        condition = {"anyOf": [named, {"not": {"required": ["name"]}}]}
        params = {"description": self.descriptions.get(tag, ""), **rec.schema()}
        return {
            "if": condition if tag == self.default_tag else named,
            "then": {"properties": {"params": params}},
        }
