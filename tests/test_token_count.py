"""The gateway's own estimate of a prompt's tokens."""

from __future__ import annotations

import json
from typing import Any

from runestone.routing.requirements import IMAGE_TOKENS, MESSAGE_OVERHEAD_TOKENS
from runestone.token_count import estimate_tokens

TEXT: Any = [{"role": "user", "content": "x" * 400}]
IMAGE: Any = {"type": "image", "source": {"type": "url", "url": "https://example.com/a.png"}}


def test_text_costs_a_token_per_four_characters_of_its_json_plus_framing() -> None:
    chars = len(json.dumps([None, TEXT, None], separators=(",", ":")))
    expected = chars // 4 + MESSAGE_OVERHEAD_TOKENS + 1
    assert estimate_tokens({"messages": TEXT}) == expected


def test_each_image_adds_its_allowance_and_system_and_tools_count_too() -> None:
    with_image = [{"role": "user", "content": [IMAGE, {"type": "text", "text": "what?"}]}]
    plain = [{"role": "user", "content": [{"type": "text", "text": "what?"}]}]
    difference = estimate_tokens({"messages": with_image}) - estimate_tokens({"messages": plain})
    assert difference >= IMAGE_TOKENS
    bare = estimate_tokens({"messages": TEXT})
    assert estimate_tokens({"messages": TEXT, "system": "Be brief." * 10}) > bare
    assert estimate_tokens({"messages": TEXT, "tools": [{"name": "t" * 40}]}) > bare
