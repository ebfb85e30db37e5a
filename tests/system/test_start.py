"""runestone.start: the bundled config answers on a fresh machine; a bad config is one clear
error and leaves nothing running."""

from __future__ import annotations

import pytest

import runestone
from runestone.exceptions import ConfigError
from runestone.messages import Done, TextDelta


def test_the_bundled_config_answers_through_the_simulated_provider(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("RUNESTONE_SIM_TOKEN_RATE", "0")  # as fast as it goes
    monkeypatch.setenv("RUNESTONE_LOG_LEVEL", "WARNING")
    system = runestone.start()
    try:
        events = list(
            system.stream({"model": "fast", "messages": [{"role": "user", "content": "hi"}]})
        )
        done = events[-1]
        assert isinstance(done, Done)
        assert done.provider == "simulated"
        assert "".join(e.text for e in events if isinstance(e, TextDelta))
        assert sorted(system.health()["skipped"]) == ["anthropic", "openai"]
    finally:
        system.stop()


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"providers": {}}, "no usable provider"),
        ({"providers": {"x": {"type": "nope", "models": {"m": {}}}}}, "providers.x.type"),
        (
            {
                "providers": {"x": {"type": "simulated", "models": {"m": {}}}},
                "pool": {"max_in_flight": 0},
            },
            "pool.max_in_flight",
        ),
    ],
)
def test_a_bad_config_is_one_clear_error_and_starts_nothing(config: dict, message: str) -> None:  # type: ignore[type-arg]
    with pytest.raises(ConfigError, match=message):
        runestone.start(config)
