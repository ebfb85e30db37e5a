"""Which library should hold our shapes (issue 11)? msgspec and pydantic v2, measured on our
request path and on config load, against ours.

"Ours" on the request path is what the server runs since issue 11 (the msgspec schemas of
``runestone/wire``, mapped onto ``ChatRequest``); ``bench_request_decode.py`` compares it
with the hand-written parsers it replaced, side by side. On config load it is
``load_config``.

The same shapes are declared in both (the OpenAI chat request, the Anthropic messages request,
the config's sections) with their constraints. Measured, per library and for ours:

1. decode + validate, from the JSON bytes a client sends: a typical chat request (a system
   and a user message, a tool), a 100-message chat request, and an Anthropic messages
   request (content blocks, a tool result);
2. config load from the parsed YAML of the bundled config (a mapping; ours: ``load_config``,
   which also expands ``${VAR}`` and checks cross-references, so it does more);
3. the error each gives for a bad value and for an unknown key, as a user would read it.

Each figure is the median over ``--repeat`` runs of ``--number`` calls, in microseconds per
call, with the ratio to ours. Run: ``python bench/bench_schemas.py [--number 5000] [--repeat 7]``
"""

from __future__ import annotations

import argparse
import functools
import statistics
import time
from collections.abc import Callable
from typing import Annotated, Any, Literal

import msgspec
import orjson
import pydantic
import yaml
from _requests import ANTHROPIC, chat

from runestone.config import BUNDLED_CONFIG, load_config
from runestone.server.anthropic_schema import AnthropicDialect
from runestone.server.body import decode_body
from runestone.server.openai_schema import OpenAIDialect

# ----------------------------------------------------------------------------- pydantic


class _P(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid", frozen=True)


class PFunction(_P):
    name: str
    arguments: str


class PToolCall(_P):
    id: str
    type: Literal["function"] = "function"
    function: PFunction


class PPart(_P):
    type: Literal["text", "image_url"]
    text: str | None = None
    image_url: dict[str, Any] | None = None


class PMessage(_P):
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[PPart] | None = None
    name: str | None = None
    tool_calls: list[PToolCall] | None = None
    tool_call_id: str | None = None


class PFunctionDef(_P):
    name: str
    description: str | None = None
    parameters: dict[str, Any] | None = None


class PTool(_P):
    type: Literal["function"]
    function: PFunctionDef


class PChat(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="allow", frozen=True)
    model: Annotated[str, pydantic.Field(min_length=1)]
    messages: Annotated[list[PMessage], pydantic.Field(min_length=1)]
    stream: bool = False
    tools: list[PTool] | None = None
    tool_choice: str | dict[str, Any] | None = None
    temperature: Annotated[float, pydantic.Field(ge=0, le=2)] | None = None
    top_p: Annotated[float, pydantic.Field(ge=0, le=1)] | None = None
    max_tokens: Annotated[int, pydantic.Field(ge=1)] | None = None
    max_completion_tokens: Annotated[int, pydantic.Field(ge=1)] | None = None
    stop: str | list[str] | None = None
    response_format: dict[str, Any] | None = None
    user: str | None = None
    metadata: dict[str, str] | None = None


class PBlock(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="allow", frozen=True)
    type: str
    text: str | None = None
    id: str | None = None
    name: str | None = None
    input: dict[str, Any] | None = None
    tool_use_id: str | None = None
    content: str | list[dict[str, Any]] | None = None


class PAMessage(_P):
    role: Literal["user", "assistant"]
    content: str | list[PBlock]


class PATool(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="allow", frozen=True)
    name: str
    description: str | None = None
    input_schema: dict[str, Any] | None = None


class PAnthropic(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="allow", frozen=True)
    model: Annotated[str, pydantic.Field(min_length=1)]
    max_tokens: Annotated[int, pydantic.Field(ge=1)]
    messages: Annotated[list[PAMessage], pydantic.Field(min_length=1)]
    system: str | list[PBlock] | None = None
    tools: list[PATool] | None = None
    stream: bool = False
    temperature: Annotated[float, pydantic.Field(ge=0, le=1)] | None = None
    stop_sequences: list[str] | None = None
    metadata: dict[str, Any] | None = None


class PTimeouts(_P):
    connect: Annotated[float, pydantic.Field(gt=0)] = 5
    first_token: Annotated[float, pydantic.Field(gt=0)] = 30
    idle: Annotated[float, pydantic.Field(gt=0)] = 30
    total: Annotated[float, pydantic.Field(gt=0)] = 600


class PRetry(_P):
    max_attempts: Annotated[int, pydantic.Field(ge=1)] = 2
    base_delay: Annotated[float, pydantic.Field(ge=0)] = 0.5
    max_delay: Annotated[float, pydantic.Field(ge=0)] = 8


class PBreaker(_P):
    consecutive_failures: Annotated[int, pydantic.Field(ge=1)] = 5
    failure_rate: Annotated[float, pydantic.Field(gt=0, le=1)] = 0.5
    window: Annotated[float, pydantic.Field(gt=0)] = 60
    min_calls: Annotated[int, pydantic.Field(ge=1)] = 10
    recovery: Annotated[float, pydantic.Field(gt=0)] = 30
    half_open_probes: Annotated[int, pydantic.Field(ge=1)] = 1


class PModel(_P):
    input_per_1m: Annotated[float, pydantic.Field(ge=0)] | None = None
    output_per_1m: Annotated[float, pydantic.Field(ge=0)] | None = None
    context_window: Annotated[int, pydantic.Field(ge=1)] | None = None
    capabilities: list[Literal["tools", "vision", "json", "prefill"]] = []


class PProvider(_P):
    type: Literal["openai", "anthropic", "openai_compatible", "simulated"]
    api_key: str | None = None
    base_url: str | None = None
    token_rate: float | None = None
    first_token_delay: float | None = None
    timeouts: PTimeouts = PTimeouts()
    retry: PRetry = PRetry()
    circuit_breaker: PBreaker = PBreaker()
    models: dict[str, PModel | None]


class PRouting(_P):
    policy: Literal[
        "priority", "cost", "latency", "health", "round_robin", "weighted", "least_loaded"
    ] = "priority"
    aliases: dict[str, list[str]] = {}
    fallbacks: dict[str, list[str]] = {}
    context_window_fallbacks: dict[str, list[str]] = {}
    resume: dict[str, bool] = {}
    weights: dict[str, float] = {}


class PPool(_P):
    max_in_flight: Annotated[int, pydantic.Field(ge=1)] = 1000
    request_timeout: Annotated[float, pydantic.Field(gt=0)] = 600


class PServer(_P):
    host: str = "127.0.0.1"
    port: Annotated[int, pydantic.Field(ge=0, le=65535)] = 4003
    max_body_bytes: Annotated[int, pydantic.Field(ge=1)] = 1048576
    shutdown_grace: Annotated[float, pydantic.Field(ge=0)] = 30


class PKey(_P):
    key: str
    name: str
    rpm: Annotated[int, pydantic.Field(ge=1)] | None = None
    max_streams: Annotated[int, pydantic.Field(ge=1)] | None = None


class PAuth(_P):
    keys: list[PKey] = []
    admin_keys: list[PKey] = []


class PConfig(_P):
    providers: dict[str, PProvider]
    routing: PRouting = PRouting()
    supervision: dict[str, float] = {}
    pool: PPool = PPool()
    server: PServer = PServer()
    auth: PAuth = PAuth()
    logging: dict[str, Any] = {}


# ----------------------------------------------------------------------------- msgspec


class _M(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    pass


class MFunction(_M):
    name: str
    arguments: str


class MToolCall(_M):
    id: str
    function: MFunction
    type: Literal["function"] = "function"


class MPart(_M):
    type: Literal["text", "image_url"]
    text: str | None = None
    image_url: dict[str, Any] | None = None


class MMessage(_M):
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[MPart] | None = None
    name: str | None = None
    tool_calls: list[MToolCall] | None = None
    tool_call_id: str | None = None


class MFunctionDef(_M):
    name: str
    description: str | None = None
    parameters: dict[str, Any] | None = None


class MTool(_M):
    type: Literal["function"]
    function: MFunctionDef


class MChat(msgspec.Struct, frozen=True):
    model: Annotated[str, msgspec.Meta(min_length=1)]
    messages: Annotated[list[MMessage], msgspec.Meta(min_length=1)]
    stream: bool = False
    tools: list[MTool] | None = None
    tool_choice: str | dict[str, Any] | None = None
    temperature: Annotated[float, msgspec.Meta(ge=0, le=2)] | None = None
    top_p: Annotated[float, msgspec.Meta(ge=0, le=1)] | None = None
    max_tokens: Annotated[int, msgspec.Meta(ge=1)] | None = None
    max_completion_tokens: Annotated[int, msgspec.Meta(ge=1)] | None = None
    stop: str | list[str] | None = None
    response_format: dict[str, Any] | None = None
    user: str | None = None
    metadata: dict[str, str] | None = None


class MBlock(msgspec.Struct, frozen=True):
    type: str
    text: str | None = None
    id: str | None = None
    name: str | None = None
    input: dict[str, Any] | None = None
    tool_use_id: str | None = None
    content: str | list[dict[str, Any]] | None = None


class MAMessage(_M):
    role: Literal["user", "assistant"]
    content: str | list[MBlock]


class MATool(msgspec.Struct, frozen=True):
    name: str
    description: str | None = None
    input_schema: dict[str, Any] | None = None


class MAnthropic(msgspec.Struct, frozen=True):
    model: Annotated[str, msgspec.Meta(min_length=1)]
    max_tokens: Annotated[int, msgspec.Meta(ge=1)]
    messages: Annotated[list[MAMessage], msgspec.Meta(min_length=1)]
    system: str | list[MBlock] | None = None
    tools: list[MATool] | None = None
    stream: bool = False
    temperature: Annotated[float, msgspec.Meta(ge=0, le=1)] | None = None
    stop_sequences: list[str] | None = None
    metadata: dict[str, Any] | None = None


class MTimeouts(_M):
    connect: Annotated[float, msgspec.Meta(gt=0)] = 5
    first_token: Annotated[float, msgspec.Meta(gt=0)] = 30
    idle: Annotated[float, msgspec.Meta(gt=0)] = 30
    total: Annotated[float, msgspec.Meta(gt=0)] = 600


class MRetry(_M):
    max_attempts: Annotated[int, msgspec.Meta(ge=1)] = 2
    base_delay: Annotated[float, msgspec.Meta(ge=0)] = 0.5
    max_delay: Annotated[float, msgspec.Meta(ge=0)] = 8


class MBreaker(_M):
    consecutive_failures: Annotated[int, msgspec.Meta(ge=1)] = 5
    failure_rate: Annotated[float, msgspec.Meta(gt=0, le=1)] = 0.5
    window: Annotated[float, msgspec.Meta(gt=0)] = 60
    min_calls: Annotated[int, msgspec.Meta(ge=1)] = 10
    recovery: Annotated[float, msgspec.Meta(gt=0)] = 30
    half_open_probes: Annotated[int, msgspec.Meta(ge=1)] = 1


class MModel(_M):
    input_per_1m: Annotated[float, msgspec.Meta(ge=0)] | None = None
    output_per_1m: Annotated[float, msgspec.Meta(ge=0)] | None = None
    context_window: Annotated[int, msgspec.Meta(ge=1)] | None = None
    capabilities: list[Literal["tools", "vision", "json", "prefill"]] = []


class MProvider(_M):
    type: Literal["openai", "anthropic", "openai_compatible", "simulated"]
    models: dict[str, MModel | None]
    api_key: str | None = None
    base_url: str | None = None
    token_rate: float | None = None
    first_token_delay: float | None = None
    timeouts: MTimeouts = MTimeouts()
    retry: MRetry = MRetry()
    circuit_breaker: MBreaker = MBreaker()


class MRouting(_M):
    policy: Literal[
        "priority", "cost", "latency", "health", "round_robin", "weighted", "least_loaded"
    ] = "priority"
    aliases: dict[str, list[str]] = {}
    fallbacks: dict[str, list[str]] = {}
    context_window_fallbacks: dict[str, list[str]] = {}
    resume: dict[str, bool] = {}
    weights: dict[str, float] = {}


class MPool(_M):
    max_in_flight: Annotated[int, msgspec.Meta(ge=1)] = 1000
    request_timeout: Annotated[float, msgspec.Meta(gt=0)] = 600


class MServer(_M):
    host: str = "127.0.0.1"
    port: Annotated[int, msgspec.Meta(ge=0, le=65535)] = 4003
    max_body_bytes: Annotated[int, msgspec.Meta(ge=1)] = 1048576
    shutdown_grace: Annotated[float, msgspec.Meta(ge=0)] = 30


class MKey(_M):
    key: str
    name: str
    rpm: Annotated[int, msgspec.Meta(ge=1)] | None = None
    max_streams: Annotated[int, msgspec.Meta(ge=1)] | None = None


class MAuth(_M):
    keys: list[MKey] = []
    admin_keys: list[MKey] = []


class MConfig(_M):
    providers: dict[str, MProvider]
    routing: MRouting = MRouting()
    supervision: dict[str, float] = {}
    pool: MPool = MPool()
    server: MServer = MServer()
    auth: MAuth = MAuth()
    logging: dict[str, Any] = {}


# ----------------------------------------------------------------------------- inputs


def timed(fn: Callable[[], object], number: int, repeat: int) -> float:
    runs = []
    for _ in range(repeat):
        start = time.perf_counter()
        for _ in range(number):
            fn()
        runs.append((time.perf_counter() - start) / number)
    return statistics.median(runs) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--number", type=int, default=5000)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    n, r = args.number, args.repeat
    print(f"msgspec {msgspec.__version__}, pydantic {pydantic.VERSION}; us per call, median")
    anthropic, openai = AnthropicDialect(), OpenAIDialect()
    cases: list[tuple[str, bytes, Callable[[bytes], object], Any, Any]] = [
        (
            "chat, typical",
            orjson.dumps(chat(2)),
            lambda b: decode_body(b, openai.decode),
            PChat,
            MChat,
        ),
        (
            "chat, 100 messages",
            orjson.dumps(chat(100)),
            lambda b: decode_body(b, openai.decode),
            PChat,
            MChat,
        ),
        (
            "anthropic messages",
            orjson.dumps(ANTHROPIC),
            lambda b: decode_body(b, anthropic.decode),
            PAnthropic,
            MAnthropic,
        ),
    ]
    print("\n1. decode + validate from JSON bytes")
    print(f"  {'shape':22s} {'ours':>9s} {'pydantic':>16s} {'msgspec':>16s}")
    for name, body, ours, p_type, m_type in cases:
        number = n if "100" not in name else max(1, n // 10)
        decoder = msgspec.json.Decoder(m_type)
        t_ours = timed(functools.partial(ours, body), number, r)
        t_p = timed(functools.partial(p_type.model_validate_json, body), number, r)
        t_m = timed(functools.partial(decoder.decode, body), number, r)
        print(
            f"  {name:22s} {t_ours:9.1f} {t_p:9.1f} ({t_p / t_ours:4.2f}x) "
            f"{t_m:9.1f} ({t_m / t_ours:4.2f}x)"
        )

    raw = yaml.safe_load(BUNDLED_CONFIG.read_text(encoding="utf-8"))
    env = {"OPENAI_API_KEY": "sk-bench-0000", "ANTHROPIC_API_KEY": "sk-ant-bench-0000"}

    def expanded() -> dict[str, Any]:
        # Both libraries get the values after ${VAR} expansion, as ours expands them first.
        text = BUNDLED_CONFIG.read_text(encoding="utf-8")
        for name, value in {**env, "OPENAI_BASE_URL": "https://api.openai.com/v1"}.items():
            text = text.replace("${" + name + "}", value)
        text = text.replace(
            "${OPENAI_BASE_URL:-https://api.openai.com/v1}", "https://api.openai.com/v1"
        )
        text = text.replace(
            "${ANTHROPIC_BASE_URL:-https://api.anthropic.com}", "https://api.anthropic.com"
        )
        for var, default in (
            ("RUNESTONE_SIM_TOKEN_RATE", "50"),
            ("RUNESTONE_PORT", "4003"),
            ("RUNESTONE_LOG_LEVEL", "INFO"),
        ):
            text = text.replace("${" + var + ":-" + default + "}", default)
        return yaml.safe_load(text)

    data = expanded()
    PConfig.model_validate(data)
    msgspec.convert(data, MConfig)
    number = max(1, n // 20)
    t_ours = timed(lambda: load_config(raw, env=env), number, r)
    t_p = timed(lambda: PConfig.model_validate(data), number, r)
    t_m = timed(lambda: msgspec.convert(data, MConfig), number, r)
    print("\n2. config load from the parsed bundled config")
    print(
        f"  ours {t_ours:.1f}  pydantic {t_p:.1f} ({t_p / t_ours:.2f}x)  "
        f"msgspec {t_m:.1f} ({t_m / t_ours:.2f}x)"
    )

    print("\n3. errors, as a user reads them")
    bad_value = {**data, "pool": {"max_in_flight": "lots"}}
    unknown = {**data, "routing": {**data["routing"], "polcy": "cost"}}
    for label, bad in (("a bad value", bad_value), ("an unknown key", unknown)):
        print(f"  {label}:")
        try:
            load_config(bad, env=env)
        except Exception as exc:  # noqa: BLE001 - printed for comparison
            print(f"    ours:     {exc}")
        try:
            PConfig.model_validate(bad)
        except pydantic.ValidationError as exc:
            first = exc.errors()[0]
            print(
                f"    pydantic: {'.'.join(map(str, first['loc']))}: "
                f"{first['msg']} [{first['type']}]"
            )
        try:
            msgspec.convert(bad, MConfig)
        except msgspec.ValidationError as exc:
            print(f"    msgspec:  {exc}")


if __name__ == "__main__":
    main()
