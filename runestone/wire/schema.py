"""What the request schemas are built from: the Struct base, the open union, and decoding.

msgspec decodes straight into :class:`Wire` structs; what it cannot say on its own is
an *open* tagged union — known members by their tag, any other tag kept as it was
written (a content part of a type we do not model is passed on to the provider
verbatim). :class:`OpenUnion` is that, as a custom type msgspec hands to
:func:`dec_hook`. :func:`decode` and :func:`convert` run a schema on bytes or on
Python values and turn a refusal into a :class:`RequestValidationError`
(:mod:`runestone.wire.refusals`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, ClassVar, Final, TypeVar

import msgspec

from runestone.jsonio import json_kind
from runestone.messages import MAX_NESTING
from runestone.wire.refusals import refusal

__all__ = ["BodyError", "OpenUnion", "Wire", "convert", "dec_hook", "decoder", "may_nest_deep"]

T = TypeVar("T")


class Wire(msgspec.Struct, gc=False):
    """Base of the request schemas: unknown fields ignored (a subclass may forbid them).

    A wire value lives only from the body to the request model it is mapped onto
    (:class:`runestone.messages.ChatRequest`, frozen), so it is not frozen itself.

    ``gc=False``: decoded from JSON, a wire value holds only strings, numbers, lists,
    dicts and other wire values, so it can never be part of a reference cycle; leaving
    it out of the garbage collector makes each one cheaper to create.
    """


class BodyError(ValueError):
    """The body is no JSON object at all: empty, not JSON, or another kind of value."""


class OpenUnion:
    """A tagged union with a fallback: a member struct for each tag in ``MEMBERS``, a
    message of refusal for each tag in ``REFUSED``, and any other tag (a non-empty
    string) kept as the object it was, in ``value``.

    A subclass is a field's type in a schema; msgspec passes the JSON object to
    :func:`dec_hook`, which returns the subclass holding the decoded member (or the
    object). msgspec's tagged unions are closed: an unknown tag is refused.
    """

    __slots__ = ("value",)

    TAG: ClassVar[str] = "type"
    MEMBERS: ClassVar[Mapping[str, type[msgspec.Struct]]] = {}
    REFUSED: ClassVar[Mapping[str, str]] = {}

    def __init__(self, value: msgspec.Struct | dict[str, Any]) -> None:
        self.value = value

    @classmethod
    def member_for(cls, data: Mapping[str, Any]) -> type[msgspec.Struct] | None:
        """The member struct ``data``'s tag picks, if it is a known one."""
        tag = data.get(cls.TAG)
        return cls.MEMBERS.get(tag) if isinstance(tag, str) else None

    @classmethod
    def decode(cls, data: object) -> OpenUnion:
        """``data`` (a JSON object) as this union; raises ``TypeError`` in msgspec's words
        (msgspec adds the path)."""
        if not isinstance(data, dict):
            raise TypeError(f"Expected `object`, got `{_msgspec_kind(data)}`")
        tag = data.get(cls.TAG)
        if tag is None:
            raise TypeError(f"Object missing required field `{cls.TAG}`")
        if not isinstance(tag, str):
            raise TypeError(f"Expected `str`, got `{_msgspec_kind(tag)}` - at `$.{cls.TAG}`")
        if not tag:
            raise TypeError(f"Expected `str` of length >= 1 - at `$.{cls.TAG}`")
        member = cls.MEMBERS.get(tag)
        if member is not None:
            try:
                return cls(msgspec.convert(data, member, dec_hook=dec_hook))
            except msgspec.ValidationError as exc:
                # msgspec puts the path of this object after the member's own path.
                raise TypeError(str(exc)) from None
        refused = cls.REFUSED.get(tag)
        if refused is not None:
            raise TypeError(f"{refused} - at `$.{cls.TAG}`")
        return cls(data)


def _msgspec_kind(value: object) -> str:
    kinds = {"a string": "str", "a list": "array", "an object": "object", "null": "null"}
    return kinds.get(json_kind(value), "int" if isinstance(value, int) else "float")


_COUNTED: Final = 4096
"""Bodies up to this size have their brackets counted by :func:`may_nest_deep`; counting
a longer one costs more than measuring its few free-form values."""


def may_nest_deep(body: bytes) -> bool:
    """Whether ``body`` may nest deeper than :data:`runestone.messages.MAX_NESTING`: it is
    long, or has more brackets than that (inside strings too, so it over-counts, never
    under-counts). Most requests are short with far fewer, and their free-form values
    need no walk to measure them."""
    return len(body) > _COUNTED or body.count(b"[") + body.count(b"{") > MAX_NESTING


def dec_hook(type_: type[Any], data: object) -> Any:
    """msgspec's hook for the custom types of the schemas (:class:`OpenUnion`)."""
    if isinstance(type_, type) and issubclass(type_, OpenUnion):
        return type_.decode(data)
    raise NotImplementedError(f"no schema decodes {type_!r}")


def decoder(schema: type[T], *, dotted: bool = False) -> Callable[[bytes], T]:
    """A function decoding JSON bytes as ``schema``.

    It raises :class:`BodyError` for a body that is no JSON object and
    :class:`RequestValidationError` naming the first bad field (Anthropic's
    ``messages.0.content`` when ``dotted``).
    """
    typed = msgspec.json.Decoder(schema, dec_hook=dec_hook)
    untyped: Final = msgspec.json.Decoder()

    def decode(body: bytes) -> T:
        try:
            return typed.decode(body)
        except msgspec.ValidationError as exc:
            error = exc
        except msgspec.DecodeError as exc:
            raise _not_json(body, exc) from None
        # The cold path: the JSON as values, to find the refused one and to tell a value
        # refused early from text that is not JSON further on.
        try:
            data = untyped.decode(body)
        except msgspec.DecodeError as exc:
            raise _not_json(body, exc) from None
        if not isinstance(data, dict):
            raise BodyError(f"the request body must be a JSON object, got {json_kind(data)}")
        raise refusal(error, schema, data, dotted=dotted) from None

    return decode


def _not_json(body: bytes, exc: msgspec.DecodeError) -> BodyError:
    if not body.strip():
        return BodyError("the request body is empty; expected a JSON object")
    return BodyError(f"the request body is not valid JSON: {exc}")


def convert(data: object, schema: type[T], *, dotted: bool = False) -> T:
    """``data`` (Python values shaped like JSON) as ``schema``; raises
    :class:`RequestValidationError` naming the first bad field."""
    try:
        return msgspec.convert(data, schema, dec_hook=dec_hook)
    except msgspec.ValidationError as exc:
        raise refusal(exc, schema, data, dotted=dotted) from None
