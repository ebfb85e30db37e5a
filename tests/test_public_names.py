"""Every package re-exports its public names with a sorted ``__all__`` (as httpx does), and
every module names its own."""

from __future__ import annotations

import importlib
import pkgutil

import pytest

import runestone


def _isort_key(name: str) -> tuple[int, str]:
    """ruff's RUF022 order: CONSTANTS, then Classes, then functions, each alphabetical."""
    if name.isupper() and len(name) > 1:
        return (0, name)
    if name[:1].isupper():
        return (1, name)
    return (2, name)


def _packages() -> list[str]:
    names = ["runestone"]
    for info in pkgutil.walk_packages(runestone.__path__, prefix="runestone."):
        if info.ispkg:
            names.append(info.name)
    return names


def _modules() -> list[str]:
    return [
        info.name
        for info in pkgutil.walk_packages(runestone.__path__, prefix="runestone.")
        if not info.ispkg and not info.name.endswith("__main__")
    ]


@pytest.mark.parametrize("package", _packages())
def test_a_package_all_is_sorted_and_every_name_exists(package: str) -> None:
    module = importlib.import_module(package)
    exported = getattr(module, "__all__", None)
    assert exported is not None, f"{package} has no __all__"
    assert list(exported) == sorted(exported, key=_isort_key), f"{package}.__all__ is not sorted"
    assert len(set(exported)) == len(exported), f"{package}.__all__ repeats a name"
    missing = [name for name in exported if not hasattr(module, name)]
    assert not missing, f"{package}.__all__ names what it does not define: {missing}"


@pytest.mark.parametrize("module_name", _modules())
def test_a_module_all_is_sorted_and_every_name_exists(module_name: str) -> None:
    module = importlib.import_module(module_name)
    exported = getattr(module, "__all__", None)
    assert exported is not None, f"{module_name} has no __all__"
    assert list(exported) == sorted(exported, key=_isort_key), f"{module_name}.__all__ unsorted"
    missing = [name for name in exported if not hasattr(module, name)]
    assert not missing, f"{module_name}.__all__ names what it does not define: {missing}"


def test_the_wire_package_exports_every_request_schema() -> None:
    import runestone.wire

    assert {
        "ChatBody",
        "MessagesBody",
        "ResponsesBody",
        "decode_chat",
        "decode_messages_body",
        "decode_responses",
    } <= set(runestone.wire.__all__)
