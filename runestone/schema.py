"""Shapes as types: msgspec checks them, and this module says what went wrong our way.

A :class:`Shape` is a frozen msgspec ``Struct`` whose field types carry their
constraints (``Annotated[int, Meta(ge=1)]``); unknown keys are refused. msgspec
does the checking; :func:`convert` turns its terse report (``Expected `int` >= 1
- at `$.pool.max_in_flight```) into one :class:`~runestone.exceptions.ConfigError`
naming the whole key path, what was expected and what was given::

    pool.max_in_flight: expected an integer >= 1, got 'lots'
    routing.polcy: unknown key; did you mean 'policy'?

What a field expects is read from its type; a field whose type cannot say it well
names it with ``Meta(extra={"expected": "a host name or address"})``. A union of
tagged shapes may word its own errors: ``extra={"unknown_tag": "unknown provider
type {got}; known types: {tags}", "missing_tag": "required: …"}``.

A :class:`Shape` built in Python is checked too (msgspec checks only what it
decodes), so ``RetryPolicy(max_attempts=0)`` raises the same error with the
field's name as its path. Checks across fields raise :class:`FieldError` from
``__post_init__``: it is both our ``ConfigError`` and, for msgspec, a
``ValueError``, so a decode reports it at its place in the file.
"""

from __future__ import annotations

import contextvars
import enum
import functools
import math
import re
import sys
import types
import typing
from collections.abc import Mapping, Sequence
from typing import Annotated, Any, Final, TypeVar, Union, get_args, get_origin

import msgspec

from runestone.exceptions import ConfigError
from runestone.suggest import unknown_key

__all__ = [
    "ANY_KEY",
    "FINITE",
    "AtLeastOne",
    "Count",
    "FieldError",
    "NonNegative",
    "Positive",
    "Shape",
    "check",
    "convert",
    "expected",
    "not_below",
    "report_steps",
    "shown",
    "split_report",
    "without_nulls",
]

_T = TypeVar("_T")

FINITE: Final = sys.float_info.max
"""The upper bound that keeps a number finite: ``Meta(le=FINITE)`` (msgspec has no
``finite`` constraint, and NaN fails every bound)."""


Count = Annotated[int, msgspec.Meta(ge=1)]
"""A whole number >= 1."""
Positive = Annotated[float, msgspec.Meta(gt=0, le=FINITE)]
"""A finite number > 0 (seconds, mostly)."""
NonNegative = Annotated[float, msgspec.Meta(ge=0, le=FINITE)]
"""A finite number >= 0."""
AtLeastOne = Annotated[float, msgspec.Meta(ge=1, le=FINITE)]
"""A finite number >= 1 (a growth factor)."""


class FieldError(ConfigError, ValueError):
    """A value one field of a shape cannot take (raised by checks across fields)."""


class Shape(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A frozen shape whose fields carry their constraints; unknown keys are refused."""

    def __post_init__(self) -> None:
        if not _DECODING.get():  # msgspec has checked every field it decoded
            _check_fields(self)


def not_below(field: str, value: float | None, bound: float | None) -> None:
    """Raise :class:`FieldError` for ``field`` when ``value`` is set and below ``bound``."""
    if value is not None and bound is not None and value < bound:
        # A decoded 1 is 1.0 by now; show it as it was most likely written.
        got = int(value) if float(value).is_integer() else value
        raise FieldError(f"expected a number >= {bound:g}, got {got!r}", path=field)


# ---------------------------------------------------------------------------
# Converting


def convert(value: object, target: type[_T], *, path: str = "") -> _T:
    """``value`` (plain data: mappings, lists, scalars) as ``target``, checked.

    Any problem raises one :class:`ConfigError` whose path is ``path`` joined
    with where in ``value`` it lies.
    """
    token = _DECODING.set(True)
    try:
        return msgspec.convert(value, target, strict=True)
    except msgspec.ValidationError as exc:
        raise _translate(str(exc), value, target, path) from exc
    finally:
        _DECODING.reset(token)


def check(value: object, target: Any, name: str) -> Any:
    """``value`` as ``target`` (an argument checked by its type): a :class:`FieldError`
    named ``name`` when it is not one."""
    try:
        return convert(value, target, path=name)
    except FieldError:
        raise
    except ConfigError as exc:
        raise FieldError(str(exc).removeprefix(f"{exc.path}: "), path=exc.path) from None


_DECODING: Final = contextvars.ContextVar("runestone_schema_decoding", default=False)

ANY_KEY: Final = -1
"""The step :func:`report_steps` gives for msgspec's ``[...]``: some key of a mapping."""

_AT: Final = " - at `"
_STEP: Final = re.compile(r"\.([^.\[]+)|\[(\d+|\.\.\.)\]")


def split_report(report: str) -> tuple[str, list[str]]:
    """A msgspec ``ValidationError``'s text as its message and its paths, outermost first.

    A decoder that re-raises a member's refusal adds its own path, so one report may
    carry several: ``Expected `str`, got `int` - at `$.text` - at `$.messages[0]```.
    """
    pieces = report.split(_AT)
    paths = [piece.removesuffix("`") for piece in pieces[1:]]
    return pieces[0], paths[::-1]


def report_steps(path: str) -> list[str | int]:
    """The field names and list indexes of one report path (``$.a.b[2]``); a mapping's
    ``[...]`` is :data:`ANY_KEY`, since msgspec does not say which key it was."""
    if not path.startswith("$"):  # "key` in `$.metadata": a mapping's key was refused
        path = path.rpartition("` in `")[2]
    steps: list[str | int] = []
    for name, index in _STEP.findall(path.removeprefix("$")):
        if name:
            steps.append(name)
        else:
            steps.append(ANY_KEY if index == "..." else int(index))
    return steps


def _translate(report: str, value: object, target: object, path: str) -> ConfigError:
    message, paths = split_report(report)
    segments: list[object] = [step for where in paths for step in report_steps(where)]
    if ANY_KEY in segments:
        # msgspec does not say which key of a mapping: find it by checking each entry.
        cut = segments.index(ANY_KEY)
        container = _lookup(value, segments[:cut])
        node = _walk(target, segments[:cut], value)
        value_type = _value_type(node)
        if isinstance(container, Mapping) and value_type is not None:
            for key, entry in container.items():
                try:
                    msgspec.convert(entry, value_type, strict=True)
                except msgspec.ValidationError as exc:
                    inner = _join(_join_all(path, segments[:cut]), key)
                    return _translate(str(exc), entry, value_type, inner)
        segments = segments[:cut]
    return _explain(message, value, target, segments, path)


def _explain(
    message: str, value: object, target: object, segments: list[object], path: str
) -> ConfigError:
    where = _join_all(path, segments)
    got = _lookup(value, segments)
    node = _walk(target, segments, value)
    if _is_union(_strip(node)[0]) and not isinstance(got, Mapping):
        node = _pick(_strip(node)[0], got) if "expected" not in _extra(node) else node
    unknown = re.fullmatch(r"Object contains unknown field `(.+)`", message)
    if unknown:
        fields = _field_names(node, got)
        return ConfigError(unknown_key(unknown[1], fields), path=_join(where, unknown[1]))
    missing = re.fullmatch(r"Object missing required field `(.+)`", message)
    if missing:
        tags = _tags(node)
        extra = _extra(node)
        if tags is not None and missing[1] == _tag_field(node):
            text = extra.get("missing_tag", "required: one of: {tags}")
            return ConfigError(text.format(tags=", ".join(tags)), path=_join(where, missing[1]))
        field_node = _walk(node, [missing[1]], got)
        text = _extra(field_node).get("required") or expected(field_node)
        return ConfigError(f"required: {text}", path=_join(where, missing[1]))
    invalid = re.fullmatch(r"Invalid (?:enum )?value (.+)", message)
    union = _walk(target, segments[:-1], value) if segments else None
    if invalid and _tags(union) is not None and segments[-1] == _tag_field(union):
        tags = _tags(union) or ()
        text = _extra(union).get("unknown_tag", "expected one of: {tags}, got {got}")
        return ConfigError(text.format(got=shown(got), tags=", ".join(tags)), path=where)
    if message.startswith(("Expected", "Invalid")):
        text = _extra(node).get("invalid")
        if text is not None:
            return ConfigError(text.format(got=shown(got), choices=_choices(node)), path=where)
        return ConfigError(f"expected {_expected_for(node, got)}, got {shown(got)}", path=where)
    # A FieldError from a shape's own checks: "field: what is wrong".
    field, sep, rest = message.partition(": ")
    if sep and field in _field_names(node, got):
        return ConfigError(rest, path=_join(where, field))
    return ConfigError(message, path=where)


def without_nulls(value: object, target: object) -> object:
    """``value`` with every key of a shape whose value is null left out: it takes its default.

    A YAML key written with nothing after it (``pool:``) is null; in a shape that
    means "as if not given". Entries of a mapping with free keys are kept (a model
    listed with nothing is still a model).
    """
    if not isinstance(value, Mapping | list):
        return value  # a scalar has no keys to leave out
    base, _ = _strip(target)
    if _is_union(base):
        base = _pick(base, value)
    if isinstance(value, Mapping):
        if isinstance(base, type) and issubclass(base, msgspec.Struct):
            hints = _hints(base)
            names = _names(base)
            return {
                key: without_nulls(item, hints.get(names.get(str(key), ""), Any))
                for key, item in value.items()
                if item is not None
            }
        if get_origin(base) in (dict, Mapping):
            item_type = get_args(base)[1]
            return {key: without_nulls(item, item_type) for key, item in value.items()}
        return value
    if isinstance(value, list) and get_origin(base) in (list, tuple, Sequence):
        item_type = get_args(base)[0]
        return [without_nulls(item, item_type) for item in value]
    return value


# ---------------------------------------------------------------------------
# Walking types alongside the data


def _strip(tp: object) -> tuple[object, dict[str, Any]]:
    """The type under ``Annotated``/``Optional``, with the metadata's ``extra`` merged."""
    extra: dict[str, Any] = {}
    while True:
        if get_origin(tp) is Annotated:
            base, *metas = get_args(tp)
            for meta in metas:
                if isinstance(meta, msgspec.Meta) and meta.extra:
                    extra.update(meta.extra)
            tp = base
            continue
        if _is_union(tp):
            members = [m for m in get_args(tp) if m is not type(None)]
            if len(members) == 1:
                tp = members[0]
                continue
        return tp, extra


def _is_union(tp: object) -> bool:
    return get_origin(tp) in (Union, types.UnionType)


def _members(tp: object) -> tuple[object, ...]:
    """A union's members, or the type alone."""
    return get_args(tp) if _is_union(tp) else (tp,)


def _walk(tp: object, segments: Sequence[object], data: object) -> object:
    for segment in segments:
        base, _ = _strip(tp)
        if _is_union(base):
            base = _pick(base, data)
        data = _lookup(data, [segment])
        if isinstance(base, type) and issubclass(base, msgspec.Struct):
            hints = _hints(base)
            names = {f.encode_name: f.name for f in _fields(base)}
            tp = hints.get(names.get(str(segment), str(segment)), Any)
        elif get_origin(base) in (dict, Mapping):
            tp = get_args(base)[1]
        elif get_origin(base) in (list, tuple, Sequence, frozenset, set):
            tp = get_args(base)[0]
        else:
            return Any
    return tp


def _value_type(tp: object) -> object | None:
    base, _ = _strip(tp)
    if get_origin(base) in (dict, Mapping):
        value_type: object = get_args(base)[1]
        return value_type
    return None


def _pick(union: object, data: object) -> object:
    """The member of ``union`` that ``data`` is meant to be, when that can be told."""
    members = get_args(union)
    if isinstance(data, Mapping):
        for member in members:
            config = getattr(member, "__struct_config__", None)
            if (
                config is not None
                and config.tag is not None
                and (data.get(config.tag_field) == config.tag)
            ):
                return member
        return union
    for member in members:
        base, _ = _strip(member)
        if isinstance(data, bool):
            if base is bool:
                return member
        elif (
            (isinstance(data, int | float) and base in (int, float))
            or (isinstance(data, str) and base is str)
            or (isinstance(data, list | tuple) and get_origin(base) in (list, tuple, Sequence))
        ):
            return member
    return union


def _tags(tp: object) -> tuple[str, ...] | None:
    base, _ = _strip(tp)
    if not _is_union(base):
        return None
    tags = [getattr(m, "__struct_config__", None) for m in get_args(base)]
    if not tags or any(c is None or c.tag is None for c in tags):
        return None
    return tuple(str(c.tag) for c in tags if c is not None)


def _tag_field(tp: object) -> str | None:
    base, _ = _strip(tp)
    for member in get_args(base):
        config = getattr(member, "__struct_config__", None)
        if config is not None:
            return str(config.tag_field)
    return None


def _extra(tp: object) -> dict[str, Any]:
    return _strip(tp)[1]


def _field_names(tp: object, data: object) -> list[str]:
    base, _ = _strip(tp)
    if _is_union(base):
        base = _pick(base, data)
    if isinstance(base, type) and issubclass(base, msgspec.Struct):
        config = base.__struct_config__
        names = [f.encode_name for f in _fields(base)]
        if config.tag_field is not None and config.tag is not None:
            names.insert(0, str(config.tag_field))
        return names
    return []


def _lookup(data: object, segments: Sequence[object]) -> object:
    for segment in segments:
        if isinstance(data, Mapping):
            data = data.get(segment)
        elif isinstance(data, list | tuple) and isinstance(segment, int) and segment < len(data):
            data = data[segment]
        else:
            return None
    return data


def _join(path: str, key: object) -> str:
    if isinstance(key, int) and not isinstance(key, bool):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else str(key)


def _join_all(path: str, segments: Sequence[object]) -> str:
    for segment in segments:
        path = _join(path, segment)
    return path


# ---------------------------------------------------------------------------
# Saying what a type expects


def expected(tp: object) -> str:
    """What a value of ``tp`` is, in words: ``"an integer >= 1"``, ``"true or false"``."""
    base, extra = _strip(tp)
    if "expected" in extra:
        return str(extra["expected"])
    bounds = _bounds(tp)
    if base is bool:
        return "true or false"
    if base is int:
        low, high = bounds.get("ge"), bounds.get("le")
        if low is not None and high is not None:
            return f"an integer from {low:g} to {high:g}"
        return "an integer" + _bound_text(bounds)
    if base is float:
        return "a number" + _bound_text(bounds)
    if base is str:
        return "a non-empty string" if bounds.get("min_length") else "a string"
    if _is_union(base) and all(
        isinstance(m, type) and issubclass(m, msgspec.Struct) for m in get_args(base)
    ):
        return "a mapping"
    choices = _choices(tp)
    if choices:
        return f"one of: {choices}"
    if (isinstance(base, type) and issubclass(base, msgspec.Struct)) or get_origin(base) in (
        dict,
        Mapping,
    ):
        return "a mapping"
    if get_origin(base) in (list, tuple, Sequence, frozenset, set):
        return "a list"
    return "a valid value"


def _expected_for(tp: object, value: object) -> str:
    """What ``tp`` expects, saying the one bound ``value`` breaks when that reads better."""
    base, extra = _strip(tp)
    if "expected" in extra or base not in (int, float) or isinstance(value, bool):
        return expected(tp)
    bounds = _bounds(tp)
    if not isinstance(value, int | float) or (base is int and not isinstance(value, int)):
        return expected(tp)
    if base is int and bounds.get("ge") is not None and bounds.get("le") is not None:
        return expected(tp)
    noun = "an integer" if base is int else "a number"
    if bounds.get("le") == FINITE and not math.isfinite(value) and not math.isnan(value):
        return "a finite number" + _bound_text(bounds)
    for op, name in ((">=", "ge"), (">", "gt"), ("<=", "le"), ("<", "lt")):
        bound = bounds.get(name)
        if bound is None or _holds(value, op, bound):
            continue
        lower = bounds.get("ge", bounds.get("gt"))
        if base is float and op in ("<=", "<") and bound == 1 and lower == 0:
            noun = "a fraction"
        return f"{noun} {op} {bound:g}"
    return expected(tp)


def _holds(value: float, op: str, bound: float) -> bool:
    if math.isnan(value):
        return False
    return {">=": value >= bound, ">": value > bound, "<=": value <= bound, "<": value < bound}[op]


def _bounds(tp: object) -> dict[str, Any]:
    found: dict[str, Any] = {}
    while True:
        if get_origin(tp) is Annotated:
            base, *metas = get_args(tp)
            for meta in metas:
                if isinstance(meta, msgspec.Meta):
                    for name in ("ge", "gt", "le", "lt", "min_length"):
                        if getattr(meta, name) is not None:
                            found[name] = getattr(meta, name)
            tp = base
        elif _is_union(tp) and len([m for m in get_args(tp) if m is not type(None)]) == 1:
            tp = next(m for m in get_args(tp) if m is not type(None))
        else:
            return found


def _bound_text(bounds: Mapping[str, Any]) -> str:
    parts = [
        f"{op} {bounds[name]:g}"
        for op, name in ((">=", "ge"), (">", "gt"), ("<=", "le"), ("<", "lt"))
        if bounds.get(name) is not None and bounds[name] != FINITE
    ]
    return " " + " and ".join(parts) if parts else ""


def _choices(tp: object) -> str:
    base, _ = _strip(tp)
    if isinstance(base, type) and issubclass(base, enum.Enum):
        return ", ".join(str(m.value) for m in base)
    if get_origin(base) is typing.Literal:
        return ", ".join(str(c) for c in get_args(base))
    return ""


def shown(value: object) -> str:
    """A value as an error message shows it: ``'lots'``, ``3``, ``a mapping``, ``nothing``."""
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list | tuple):
        return "a list"
    if value is None:
        return "nothing"
    return repr(value)


# ---------------------------------------------------------------------------
# Shapes built in Python


def _check_fields(shape: Shape) -> None:
    # One C call checks every field against its type; the slow walk below runs only to
    # say which field failed, and how, in our words.
    token = _DECODING.set(True)
    try:
        # From its fields as a mapping: msgspec hands an instance of the type back unchecked.
        data = msgspec.structs.asdict(shape)
        checked = msgspec.convert(data, type(shape), strict=True)
    except msgspec.ValidationError as exc:
        _report_field(shape)  # a field's own type refused it
        error = _translate(str(exc), data, type(shape), "")  # or a check across fields
        raise FieldError(str(error).removeprefix(f"{error.path}: "), path=error.path) from None
    finally:
        _DECODING.reset(token)
    # A member for the enum's value it was given ("transient" becomes the member).
    for name in _enum_fields(type(shape)):
        value = getattr(checked, name)
        if value is not getattr(shape, name):
            msgspec.structs.force_setattr(shape, name, value)


@functools.cache
def _enum_fields(cls: type[Shape]) -> tuple[str, ...]:
    """The fields that may hold an enum member."""
    hints = _hints(cls)
    return tuple(
        field.name
        for field in _fields(cls)
        if any(
            isinstance(option, type) and issubclass(option, enum.Enum)
            for option in _members(_strip(hints[field.name])[0])
        )
    )


def _report_field(shape: Shape) -> None:
    cls = type(shape)
    hints = _hints(cls)
    for field in _fields(cls):
        value = getattr(shape, field.name)
        tp = hints[field.name]
        try:
            msgspec.convert(value, tp, strict=True)
        except msgspec.ValidationError as exc:
            error = _translate(str(exc), value, tp, field.encode_name)
            raise FieldError(str(error).removeprefix(f"{error.path}: "), path=error.path) from None


_HINTS: dict[type, dict[str, Any]] = {}
_FIELDS: dict[type, tuple[msgspec.structs.FieldInfo, ...]] = {}


def _hints(cls: type) -> dict[str, Any]:
    hints = _HINTS.get(cls)
    if hints is None:
        hints = _HINTS[cls] = typing.get_type_hints(cls, include_extras=True)
    return hints


@functools.cache
def _names(cls: type[msgspec.Struct]) -> dict[str, str]:
    """Field names by the key that spells them."""
    return {f.encode_name: f.name for f in _fields(cls)}


def _fields(cls: type[msgspec.Struct]) -> tuple[msgspec.structs.FieldInfo, ...]:
    """``msgspec.structs.fields``, once per class (it evaluates annotations every call)."""
    found = _FIELDS.get(cls)
    if found is None:
        found = _FIELDS[cls] = msgspec.structs.fields(cls)
    return found
