"""Child specs refuse bad values with errors that name the field."""

from __future__ import annotations

from typing import Any

import pytest

from runestone.supervisors import (
    ChildKind,
    ChildSpec,
    ExitKind,
    ExitReason,
    RestartType,
)
from tests.supervisors.workers import Worker


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"id": ""}, ValueError, "ChildSpec.id must be a non-empty string"),
        ({"start": "not callable"}, TypeError, "ChildSpec.start of 'w' must be callable"),
        ({"shutdown": 0}, ValueError, "ChildSpec.shutdown of 'w' must be > 0"),
        ({"start_timeout": -1}, ValueError, "ChildSpec.start_timeout of 'w' must be > 0"),
        ({"restart": "sometimes"}, ValueError, "'sometimes' is not a valid RestartType"),
        ({"kind": "manager"}, ValueError, "'manager' is not a valid ChildKind"),
    ],
)
def test_a_bad_child_spec_is_refused_naming_the_field(
    kwargs: dict[str, Any], error: type[Exception], message: str
) -> None:
    values: dict[str, Any] = {"id": "w", "start": Worker.start} | kwargs
    with pytest.raises(error, match=message):
        ChildSpec(**values)


def test_strings_are_accepted_for_the_enums() -> None:
    spec = ChildSpec("w", Worker.start, restart="transient", kind="supervisor")  # type: ignore[arg-type]
    assert spec.restart is RestartType.TRANSIENT
    assert spec.kind is ChildKind.SUPERVISOR


@pytest.mark.parametrize(
    ("restart", "kind", "restarts"),
    [
        (RestartType.PERMANENT, ExitKind.NORMAL, True),
        (RestartType.PERMANENT, ExitKind.CRASHED, True),
        (RestartType.TRANSIENT, ExitKind.NORMAL, False),
        (RestartType.TRANSIENT, ExitKind.CRASHED, True),
        (RestartType.TRANSIENT, ExitKind.ESCALATED, True),
        (RestartType.TEMPORARY, ExitKind.CRASHED, False),
    ],
)
def test_restart_types_follow_otp(restart: RestartType, kind: ExitKind, restarts: bool) -> None:
    assert restart.should_restart(ExitReason(kind)) is restarts
