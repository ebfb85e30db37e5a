"""Reading the config file: safe YAML, a key given twice refused, errors naming file and line."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Final

import yaml

from runestone.exceptions import ConfigError

__all__ = ["read_yaml", "typed_scalar"]


def read_yaml(path: Path) -> object:
    """The YAML document at ``path`` as plain data; any problem is one ConfigError."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except IsADirectoryError:
        raise ConfigError(f"config path is a directory, not a file: {path}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from exc
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror or exc}") from exc
    try:
        # _StrictLoader is a SafeLoader: no arbitrary Python objects.
        return yaml.load(text, Loader=_StrictLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f", line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = exc.problem or "syntax error"
        if exc.context:
            context = exc.context
            started = exc.context_mark
            if started is not None and mark is not None and started.line != mark.line:
                context += f" that started at line {started.line + 1}"
            problem += f" ({context})"
        raise ConfigError(f"{path}{where}: invalid YAML: {problem}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: invalid YAML: {exc}") from exc


# libyaml's parser when PyYAML was built with it: ten times faster than the pure-Python one.
_SafeLoader: Final[type[yaml.SafeLoader]] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _StrictLoader(_SafeLoader):  # type: ignore[valid-type, misc]
    """A safe loader that refuses a key given twice in one mapping (PyYAML keeps the last)."""

    def construct_mapping(self, node: yaml.Node, deep: bool = False) -> dict[Any, Any]:
        if isinstance(node, yaml.MappingNode):
            seen: dict[object, yaml.Node] = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = self.construct_object(key_node, deep=True)
                try:
                    earlier = seen.get(key)
                except TypeError:
                    continue  # an unhashable key: the base class reports it
                if earlier is not None:
                    raise yaml.constructor.ConstructorError(
                        None,
                        None,
                        f"key {key!r} appears twice (first at line {earlier.start_mark.line + 1})",
                        key_node.start_mark,
                    )
                seen[key] = key_node
        mapping: dict[Any, Any] = super().construct_mapping(node, deep=deep)
        return mapping


def typed_scalar(text: str) -> object:
    """What YAML would have read for ``text`` written plainly, if a bool or number."""
    try:
        value = yaml.load(text, Loader=_SafeLoader)
    except yaml.YAMLError:
        return text
    if isinstance(value, bool | int | float):
        return value
    return text
