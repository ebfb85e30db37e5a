"""Restart strategies: which children restart when one of them exits abnormally."""

from __future__ import annotations

import abc
from collections.abc import Sequence

__all__ = [
    "ONE_FOR_ALL",
    "ONE_FOR_ONE",
    "REST_FOR_ONE",
    "OneForAll",
    "OneForOne",
    "RestForOne",
    "RestartStrategy",
    "strategy_named",
]


class RestartStrategy(abc.ABC):
    """Picks the children to restart, in start order, when ``failed`` must restart."""

    name = "abstract"

    @abc.abstractmethod
    def affected(self, order: Sequence[str], failed: str) -> list[str]:
        """The ids to restart (``failed`` among them), in start order."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__}>"


class OneForOne(RestartStrategy):
    """Only the child that exited is restarted."""

    name = "one_for_one"

    def affected(self, order: Sequence[str], failed: str) -> list[str]:
        return [failed]


class OneForAll(RestartStrategy):
    """Every child is stopped and all are started again."""

    name = "one_for_all"

    def affected(self, order: Sequence[str], failed: str) -> list[str]:
        return list(order)


class RestForOne(RestartStrategy):
    """The child that exited and every child started after it are restarted."""

    name = "rest_for_one"

    def affected(self, order: Sequence[str], failed: str) -> list[str]:
        return list(order[list(order).index(failed) :])


ONE_FOR_ONE = OneForOne()
ONE_FOR_ALL = OneForAll()
REST_FOR_ONE = RestForOne()

_BY_NAME: dict[str, RestartStrategy] = {s.name: s for s in (ONE_FOR_ONE, ONE_FOR_ALL, REST_FOR_ONE)}


def strategy_named(name: str) -> RestartStrategy:
    """The strategy called ``name`` (``one_for_one``, ``one_for_all``, ``rest_for_one``)."""
    try:
        return _BY_NAME[name]
    except KeyError:
        known = ", ".join(sorted(_BY_NAME))
        raise ValueError(f"unknown restart strategy {name!r}; expected one of {known}") from None
