"""``${VAR}`` and ``${VAR:-default}`` in config values, expanded from the environment."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Final

from runestone.config.yaml_file import typed_scalar
from runestone.exceptions import ConfigError

__all__ = ["NAME", "Expansion", "expand_env"]


NAME: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

# Values that stay strings even when they are exactly one ${VAR} reference.
_STRING_KEYS: Final = frozenset(
    {
        "api_key",
        "key",
        "name",
        "base_url",
        "host",
        "type",
        "text",
        "organization",
        "project",
        "anthropic_version",
        "anthropic_beta",
        "default_model",
        "api_key_env",
        "level",
        "model",
        "provider",
        "policy",
    }
)


def expand_env(text: str, env: Mapping[str, str], *, path: str = "") -> str:
    """``text`` with ``${VAR}`` and ``${VAR:-default}`` replaced from ``env``.

    ``${VAR:-default}`` takes the default when VAR is unset or empty (as in a
    shell); defaults may hold references. ``$${`` is a literal ``${``. A
    malformed reference raises :class:`ConfigError` at ``path``.
    """
    return _expand(text, env, path)[0]


def _expand(text: str, env: Mapping[str, str], path: str) -> tuple[str, tuple[str, ...]]:
    """The expansion and the variable names referenced, in order."""
    out, names, end = _expand_until(text, 0, env, path, closing=False)
    assert end == len(text)
    return out, tuple(dict.fromkeys(names))


def _expand_until(
    text: str, start: int, env: Mapping[str, str], path: str, *, closing: bool
) -> tuple[str, list[str], int]:
    out: list[str] = []
    names: list[str] = []
    i = start
    while i < len(text):
        if closing and text[i] == "}":
            return "".join(out), names, i
        if text.startswith("$${", i):
            out.append("${")
            i += 3
        elif text.startswith("${", i):
            match = NAME.match(text, i + 2)
            if match is None:
                raise _bad_reference(text, i, path)
            name = match.group()
            names.append(name)
            i = match.end()
            value = env.get(name, "")
            if text.startswith("}", i):
                out.append(value)
                i += 1
            elif text.startswith(":-", i):
                default, inner, i = _expand_until(text, i + 2, env, path, closing=True)
                if i >= len(text):
                    raise _bad_reference(text, match.start() - 2, path)
                names.extend(inner)
                out.append(value or default)
                i += 1
            else:
                raise _bad_reference(text, match.start() - 2, path)
        else:
            out.append(text[i])
            i += 1
    return "".join(out), names, i


def _bad_reference(text: str, at: int, path: str) -> ConfigError:
    return ConfigError(
        f"malformed reference at {text[at : at + 24]!r}: expected ${{VAR}} or "
        "${VAR:-default} (write $${ for a literal ${)",
        path=path,
    )


def _is_whole_reference(text: str) -> bool:
    if not (text.startswith("${") and text.endswith("}")):
        return False
    depth = 0
    for i, char in enumerate(text):
        if text.startswith("${", i):
            depth += 1
        elif char == "}":
            depth -= 1
            if depth == 0 and i != len(text) - 1:
                return False
    return True


class Expansion:
    """Walks the raw tree, expanding strings; remembers the variables behind each path."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = env
        self.references: dict[str, tuple[str, ...]] = {}
        self._open: set[int] = set()  # containers being walked: a YAML alias can loop

    def walk(self, value: object, path: str, key: str = "", parent: str = "") -> object:
        if isinstance(value, str):
            if "$" not in value:
                return value
            expanded, names = _expand(value, self.env, path)
            if names:
                self.references[path] = names
            if (
                names
                and expanded
                and key not in _STRING_KEYS
                and parent != "headers"
                and _is_whole_reference(value)
            ):
                return typed_scalar(expanded)
            return expanded
        if not isinstance(value, Mapping | list | tuple):
            return value
        if id(value) in self._open:
            raise ConfigError("a YAML alias refers to a value that contains it", path=path)
        self._open.add(id(value))
        try:
            if isinstance(value, Mapping):
                return {k: self.walk(v, _join(path, k), str(k), key) for k, v in value.items()}
            return [self.walk(v, f"{path}[{i}]", key, parent) for i, v in enumerate(value)]
        finally:
            self._open.discard(id(value))


def _join(path: str, key: object) -> str:
    return f"{path}.{key}" if path else str(key)
