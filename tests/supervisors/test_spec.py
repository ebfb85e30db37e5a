"""Child specs refuse bad values with errors that name the field."""

from __future__ import annotations

from typing import Any

import pytest

from runestone.schema import FieldError
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
        ({"id": ""}, FieldError, "^id: expected a non-empty string, got ''$"),
        ({"start": "not callable"}, FieldError, "^start: expected a callable, got 'not callable'$"),
        ({"shutdown": 0}, FieldError, "^shutdown: expected a number > 0, got 0$"),
        ({"start_timeout": -1}, FieldError, "^start_timeout: expected a number > 0, got -1$"),
        (
            {"restart": "sometimes"},
            FieldError,
            "^restart: expected one of: permanent, transient, temporary, got 'sometimes'$",
        ),
        (
            {"kind": "manager"},
            FieldError,
            "^kind: expected one of: worker, supervisor, got 'manager'$",
        ),
        ({"store": 3}, FieldError, "^store: expected a ChildStore or None, got 3$"),
        (
            {"on_abandon": "later"},
            FieldError,
            "^on_abandon: expected a callable or None, got 'later'$",
        ),
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
