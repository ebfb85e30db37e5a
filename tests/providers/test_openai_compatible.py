"""OpenAI-compatible servers: any base_url, per-provider headers, optional key."""

from __future__ import annotations

import pytest

from runestone.exceptions import ConfigError
from runestone.io import DataPlane
from runestone.providers import OpenAICompatibleProvider, ProviderSettings
from runestone.testing.upstream import KNOWN_TEXT, FakeUpstream
from tests.providers.helpers import collect, make_provider, request


def test_custom_headers_reach_the_upstream_with_every_request(
    plane: DataPlane, fake_upstream: FakeUpstream
) -> None:
    provider = make_provider(
        plane,
        fake_upstream,
        "openai_compatible",
        headers={"HTTP-Referer": "https://runestone.example", "X-Title": "Runestone"},
    )
    assert collect(plane, provider, request("healthy")).text == KNOWN_TEXT
    plane.run(provider.complete(request("healthy")))
    for attempt in fake_upstream.attempts:
        assert attempt.headers["http-referer"] == "https://runestone.example"
        assert attempt.headers["x-title"] == "Runestone"
        assert "authorization" in attempt.headers


def test_a_server_without_a_key_gets_no_authorization_header(
    plane: DataPlane, fake_upstream: FakeUpstream
) -> None:
    provider = make_provider(plane, fake_upstream, "openai_compatible", api_key=None)
    assert collect(plane, provider, request("healthy")).text == KNOWN_TEXT
    assert "authorization" not in fake_upstream.attempts[0].headers


def test_a_header_can_carry_the_credential_instead(
    plane: DataPlane, fake_upstream: FakeUpstream
) -> None:
    provider = make_provider(
        plane, fake_upstream, "openai_compatible", api_key=None, headers={"api-key": "azure-key-1"}
    )
    collect(plane, provider, request("healthy"))
    assert "api-key" in fake_upstream.attempts[0].headers
    assert "azure-key-1" not in repr(provider.settings)


def test_max_tokens_goes_out_under_the_field_compatible_servers_know(
    plane: DataPlane, fake_upstream: FakeUpstream
) -> None:
    plain = make_provider(plane, fake_upstream, "openai_compatible")
    collect(plane, plain, request("healthy", max_tokens=12))
    newer = make_provider(
        plane, fake_upstream, "openai_compatible", max_tokens_field="max_completion_tokens"
    )
    collect(plane, newer, request("healthy", max_tokens=12))
    first, second = fake_upstream.attempts
    assert first.body["max_tokens"] == 12
    assert "max_completion_tokens" not in first.body
    assert second.body["max_completion_tokens"] == 12


def test_stream_usage_can_be_switched_off_for_servers_that_reject_it(
    plane: DataPlane, fake_upstream: FakeUpstream
) -> None:
    provider = make_provider(plane, fake_upstream, "openai_compatible", stream_usage=False)
    outcome = collect(plane, provider, request("healthy"))
    assert outcome.text == KNOWN_TEXT
    assert "stream_options" not in fake_upstream.attempts[0].body


def test_a_compatible_provider_needs_a_base_url() -> None:
    with pytest.raises(ConfigError) as missing:
        OpenAICompatibleProvider(ProviderSettings.from_dict("groq", {"type": "openai_compatible"}))
    assert missing.value.path == "providers.groq.base_url"
    with pytest.raises(ConfigError) as bad:
        OpenAICompatibleProvider(
            ProviderSettings.from_dict(
                "groq",
                {"type": "openai_compatible", "base_url": "http://h/v1", "stream_usage": "no"},
            )
        )
    assert bad.value.path == "providers.groq.stream_usage"
