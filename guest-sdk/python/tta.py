"""tta: write a tta-host primitive in Python, built with componentize-py.

A primitive is one decorated function; its input and output types are its JSON Schemas:

    from dataclasses import dataclass
    import tta

    @dataclass
    class Request:
        text: str

    @dataclass
    class Reply:
        words: int

    @tta.primitive("count", "0.1.0", "Counts the words of `text`", read_only=True)
    def count(ctx: tta.Context, request: Request) -> Reply:
        with tta.span("split", chars=len(request.text)):
            words = len(request.text.split())
        tta.log.info("counted", words=words)
        tta.counter_add("texts_counted")
        return Reply(words)

The decorator makes the module's `Primitive` export (contract
`tta:primitives/primitive-plugin@0.2.0`). The input is parsed from JSON and checked
against the type before the function runs: a mismatch is answered with an `invalid-input`
error that names the field (`input has no string field "text"`), and the output is
serialized back to JSON. Types: `str`, `int`, `float`, `bool`, `None`, `list[T]`,
`dict[str, T]`, `Optional[T]` / `T | None`, `Literal[...]`, `Any`, dataclasses and
`TypedDict`s; `Annotated[T, "description"]` or `field(metadata={"description": ...})`
describes a field, a class docstring its type. An input of type `bytes` is the raw input,
and a returned `bytes` the raw output.

Errors are exceptions: raise `InvalidInput("what is wrong and how to fix it")`,
`NotFound`, `Unavailable` (retryable), `Timeout` (retryable) or `Internal`. Any other
exception is a bug: it traps the call, with its traceback in the call's logs.

This file is the whole SDK; `tta-host new --lang python` puts a copy beside `app.py`.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import sys
import types
import typing
from typing import Any, Callable, Optional

from componentize_py_types import Err
from wit_world import exports
from wit_world.imports import invoke as _invoke
from wit_world.imports import store as _store
from wit_world.imports import telemetry as _telemetry
from wit_world.imports import types as _types

__all__ = [
    "primitive",
    "Context",
    "PrimitiveError",
    "InvalidInput",
    "NotFound",
    "Unavailable",
    "Timeout",
    "Internal",
    "log",
    "span",
    "counter_add",
    "histogram_record",
    "invoke",
    "invoke_json",
    "config",
    "schema_of",
]

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"


# --- errors ---------------------------------------------------------------------------


class PrimitiveError(Exception):
    """A failure the primitive reports instead of an output: the WIT `error` record."""

    kind = _types.ErrorKind.INTERNAL
    default_retryable = False

    def __init__(self, message: str, retryable: Optional[bool] = None):
        super().__init__(message)
        self.message = message
        self.retryable = self.default_retryable if retryable is None else retryable

    def to_wit(self) -> _types.Error:
        return _types.Error(self.kind, self.message, self.retryable)


class InvalidInput(PrimitiveError):
    """The input was rejected: say what is wrong and how to fix it."""

    kind = _types.ErrorKind.INVALID_INPUT


class NotFound(PrimitiveError):
    """Something the input names does not exist."""

    kind = _types.ErrorKind.NOT_FOUND


class Unavailable(PrimitiveError):
    """A dependency is down or overloaded; the call may be retried."""

    kind = _types.ErrorKind.UNAVAILABLE
    default_retryable = True


class Timeout(PrimitiveError):
    """The primitive gave up waiting within its own budget; the call may be retried."""

    kind = _types.ErrorKind.TIMEOUT
    default_retryable = True


class Internal(PrimitiveError):
    """A bug or broken invariant in the primitive."""

    kind = _types.ErrorKind.INTERNAL


_BY_KIND = {cls.kind: cls for cls in (InvalidInput, NotFound, Unavailable, Timeout, Internal)}


def _from_wit(error: _types.Error) -> PrimitiveError:
    return _BY_KIND.get(error.kind, Internal)(error.message, error.retryable)


# --- telemetry ------------------------------------------------------------------------


def _value(value: Any) -> Any:
    if isinstance(value, bool):
        return _telemetry.Value_Boolean(value)
    if isinstance(value, int):
        return _telemetry.Value_Int(value)
    if isinstance(value, float):
        return _telemetry.Value_Float(value)
    return _telemetry.Value_Str(value if isinstance(value, str) else str(value))


def _attributes(attributes: Optional[dict], extra: dict) -> list:
    merged = dict(attributes or {})
    merged.update(extra)
    return [(str(k), _value(v)) for k, v in merged.items()]


class _Log:
    """`log.info("message", words=3)`: a structured record of the call, correlated with its
    trace; keyword arguments are its fields (a dict for keys that are not identifiers:
    `log.info("m", **{"http.status": 200})`)."""

    def _at(self, level, message: str, fields: dict) -> None:
        _telemetry.log(level, message, _attributes(None, fields))

    def trace(self, message: str, **fields: Any) -> None:
        self._at(_telemetry.Level.TRACE, message, fields)

    def debug(self, message: str, **fields: Any) -> None:
        self._at(_telemetry.Level.DEBUG, message, fields)

    def info(self, message: str, **fields: Any) -> None:
        self._at(_telemetry.Level.INFO, message, fields)

    def warn(self, message: str, **fields: Any) -> None:
        self._at(_telemetry.Level.WARN, message, fields)

    def error(self, message: str, **fields: Any) -> None:
        self._at(_telemetry.Level.ERROR, message, fields)


log = _Log()


class Span:
    """A child span of the current span. Use it as a context manager (`with span(...) as s`);
    an exception leaving the block marks it failed unless `error` was already called."""

    def __init__(self, name: str, attributes: list):
        self._span = _telemetry.Span(name, attributes)
        self._failed = False

    def attr(self, key: str, value: Any) -> None:
        self._span.set_attribute(key, _value(value))

    def event(self, name: str, **attributes: Any) -> None:
        self._span.add_event(name, _attributes(None, attributes))

    def error(self, message: str) -> None:
        self._failed = True
        self._span.set_error(message)

    def end(self) -> None:
        self._span.end()

    def __enter__(self) -> "Span":
        return self

    def __exit__(self, kind, error, _traceback) -> None:
        if error is not None and not self._failed:
            self.error(getattr(error, "message", None) or str(error) or kind.__name__)
        self.end()


def span(name: str, attributes: Any = None, fn: Optional[Callable] = None, **attrs: Any):
    """`with span("name", attr=1) as s:` or `span("name", fn)`: a child span around a block,
    or around `fn(span)` (whose result it returns). Attributes whose keys are not
    identifiers go in a dict: `span("name", {"text.bytes": 5})`."""
    if callable(attributes) and fn is None:
        attributes, fn = None, attributes
    opened = Span(name, _attributes(attributes, attrs))
    if fn is None:
        return opened
    with opened:
        return fn(opened) if _takes_an_argument(fn) else fn()


def _takes_an_argument(fn: Callable) -> bool:
    try:
        return len(inspect.signature(fn).parameters) > 0
    except (TypeError, ValueError):
        return False


def counter_add(name: str, value: float = 1.0, **attributes: Any) -> None:
    """Adds `value` to the guest counter `name` (exported as `tta_guest_<name>_total`)."""
    _telemetry.counter_add(name, float(value), _attributes(None, attributes))


def histogram_record(name: str, value: float, **attributes: Any) -> None:
    """Records `value` in the guest histogram `name` (exported as `tta_guest_<name>`)."""
    _telemetry.histogram_record(name, float(value), _attributes(None, attributes))


# --- invoke and config ----------------------------------------------------------------


def invoke(primitive_name: str, input: bytes) -> bytes:
    """Calls another primitive as a child of this call; its error is raised as ours."""
    try:
        return _invoke.call(primitive_name, input)
    except Err as e:
        raise _from_wit(e.value) from None


def invoke_json(primitive_name: str, value: Any) -> Any:
    """`invoke` with JSON in and out."""
    output = invoke(primitive_name, _dumps(_plain(value)))
    try:
        return json.loads(output)
    except ValueError as e:
        raise Internal(f"`{primitive_name}` answered with something that is not JSON ({e})") from None


class ConfigError(Exception):
    """The host could not answer a configuration read."""


class _Config:
    """The tenant's configuration and secrets (`wasi:config`): `config.get("model")`."""

    def get(self, key: str, default: Optional[str] = None) -> Optional[str]:
        """The value of `key`, or `default` when there is none (or the host cannot answer)."""
        try:
            value = self.try_get(key)
        except ConfigError:
            return default
        return default if value is None else value

    def try_get(self, key: str) -> Optional[str]:
        """The value of `key`, `None` when there is none; `ConfigError` when the host cannot answer."""
        try:
            return _store.get(key)
        except Err as e:
            raise ConfigError(str(getattr(e.value, "value", e.value))) from None

    def get_all(self) -> dict:
        """Every key and value the primitive may read."""
        try:
            return dict(_store.get_all())
        except Err as e:
            raise ConfigError(str(getattr(e.value, "value", e.value))) from None


config = _Config()


# --- the context ----------------------------------------------------------------------


class Context:
    """The workflow context of one call."""

    def __init__(self, ctx: _types.Context):
        self.correlation_id: str = ctx.correlation_id
        self.traceparent: str = ctx.traceparent
        self.tracestate: str = ctx.tracestate
        self.tenant: str = ctx.tenant
        self.data: dict = dict(ctx.data)
        self.deadline_ms: Optional[int] = ctx.deadline_ms

    def get(self, key: str, default: Optional[str] = None) -> Optional[str]:
        """A value of the workflow's data."""
        return self.data.get(key, default)


# --- schemas from types ---------------------------------------------------------------

_NONE = type(None)


def _is_typeddict(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, dict) and hasattr(tp, "__required_keys__")


def _unwrap(tp: Any) -> tuple:
    """The type without `Annotated`, and the description `Annotated` gave it."""
    if typing.get_origin(tp) is typing.Annotated:
        base, *extras = typing.get_args(tp)
        return base, next((e for e in extras if isinstance(e, str)), None)
    return tp, None


def _doc(cls: type) -> Optional[str]:
    doc = inspect.getdoc(cls)
    # A dataclass without a docstring gets its signature as one.
    if not doc or doc.startswith(cls.__name__ + "("):
        return None
    return doc


def _fields(cls: type) -> list:
    """(name, type, required, description) of a dataclass's or TypedDict's fields."""
    hints = typing.get_type_hints(cls, include_extras=True)
    if dataclasses.is_dataclass(cls):
        out = []
        for f in dataclasses.fields(cls):
            required = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
            out.append((f.name, hints.get(f.name, Any), required, f.metadata.get("description")))
        return out
    required = getattr(cls, "__required_keys__", frozenset(hints))
    return [(name, tp, name in required, None) for name, tp in hints.items()]


def schema_of(tp: Any) -> dict:
    """The JSON Schema of a Python type (see the module's docs for the types it knows)."""
    tp, description = _unwrap(tp)
    schema = _schema(tp)
    if description:
        schema["description"] = description
    return schema


def _schema(tp: Any) -> dict:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any or tp is object:
        return {}
    if tp is str:
        return {"type": "string"}
    if tp is bool:
        return {"type": "boolean"}
    if tp is int:
        return {"type": "integer"}
    if tp is float:
        return {"type": "number"}
    if tp is None or tp is _NONE:
        return {"type": "null"}
    if tp is list or origin is list:
        return {"type": "array", "items": schema_of(args[0])} if args else {"type": "array"}
    if tp is dict or origin is dict:
        if len(args) == 2:
            return {"type": "object", "additionalProperties": schema_of(args[1])}
        return {"type": "object"}
    if origin is typing.Literal:
        return {"enum": list(args)}
    if origin is typing.Union or origin is types.UnionType:
        return {"anyOf": [schema_of(a) for a in args]}
    if dataclasses.is_dataclass(tp) or _is_typeddict(tp):
        properties, required = {}, []
        for name, field_type, needed, described in _fields(tp):
            field_schema = schema_of(field_type)
            if described:
                field_schema["description"] = described
            properties[name] = field_schema
            if needed:
                required.append(name)
        schema = {"title": tp.__name__, "type": "object", "properties": properties}
        if required:
            schema["required"] = required
        if _doc(tp):
            schema["description"] = _doc(tp)
        return schema
    raise TypeError(f"tta: no JSON Schema for the type {tp!r}; use str, int, float, bool, list, dict, a dataclass or a TypedDict")


def _root_schema(tp: Any) -> dict:
    return {"$schema": SCHEMA_DIALECT, **schema_of(tp)}


# --- JSON in, JSON out ----------------------------------------------------------------


class _Mismatch(Exception):
    """Why the input does not fit its type; `wrong_type` names the field whose JSON type
    was wrong (as opposed to, say, a value outside a `Literal`)."""

    def __init__(self, message: str, wrong_type: Optional[str] = None):
        super().__init__(message)
        self.message = message
        self.wrong_type = wrong_type


_KIND = {str: "string", int: "integer", float: "number", bool: "boolean", list: "array", dict: "object"}


def _kind(tp: Any) -> str:
    tp, _ = _unwrap(tp)
    origin = typing.get_origin(tp) or tp
    if origin in _KIND:
        return _KIND[origin]
    if dataclasses.is_dataclass(tp) or _is_typeddict(tp):
        return "object"
    if origin is typing.Union or origin is types.UnionType:
        kinds = [_kind(a) for a in typing.get_args(tp) if a is not _NONE]
        return kinds[0] if len(kinds) == 1 else " or ".join(kinds)
    return "valid"


def _convert(value: Any, tp: Any, path: str) -> Any:
    """`value` (parsed JSON) as `tp`, or `_Mismatch` naming `path`."""
    tp, _ = _unwrap(tp)
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    wrong = _Mismatch(f'input field "{path}" is not {_article(_kind(tp))}', wrong_type=path)
    if tp is Any or tp is object:
        return value
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise wrong
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise wrong
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise wrong
    if tp is str:
        if isinstance(value, str):
            return value
        raise wrong
    if tp is None or tp is _NONE:
        if value is None:
            return None
        raise wrong
    if tp is list or origin is list:
        if not isinstance(value, list):
            raise wrong
        return [_convert(v, args[0], f"{path}[{i}]") for i, v in enumerate(value)] if args else value
    if tp is dict or origin is dict:
        if not isinstance(value, dict):
            raise wrong
        if len(args) == 2:
            return {k: _convert(v, args[1], f"{path}.{k}" if path else k) for k, v in value.items()}
        return value
    if origin is typing.Literal:
        if value in args:
            return value
        raise _Mismatch(f'input field "{path}" is not one of {", ".join(json.dumps(a) for a in args)}')
    if origin is typing.Union or origin is types.UnionType:
        for option in args:
            try:
                return _convert(value, option, path)
            except _Mismatch:
                continue
        raise wrong
    if dataclasses.is_dataclass(tp) or _is_typeddict(tp):
        fields = _fields(tp)
        if not isinstance(value, dict):
            first = next((f for f in fields if f[2]), None)
            if first is None:
                raise _Mismatch(f"input {'field ' + repr(path) + ' ' if path else ''}is not a JSON object")
            raise _missing(path, first)
        converted = {}
        for name, field_type, needed, _ in fields:
            where = f"{path}.{name}" if path else name
            if name not in value:
                if needed:
                    raise _missing(path, (name, field_type, needed, None))
                continue
            try:
                converted[name] = _convert(value[name], field_type, where)
            except _Mismatch as e:
                if e.wrong_type == where:
                    raise _missing(path, (name, field_type, needed, None)) from None
                raise
        return tp(**converted)
    return value


def _missing(path: str, field: tuple) -> _Mismatch:
    name, field_type = field[0], field[1]
    where = f"{path}.{name}" if path else name
    return _Mismatch(f'input has no {_kind(field_type)} field "{where}"')


def _article(kind: str) -> str:
    return ("an " if kind[:1] in "aeiou" else "a ") + kind


def _plain(value: Any) -> Any:
    """A dataclass (or anything holding one) as plain JSON values."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _dumps(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


# --- the decorator --------------------------------------------------------------------


class _Spec:
    def __init__(self, fn: Callable, metadata: dict, usage: Optional[str], log_rejections: bool):
        signature = inspect.signature(fn)
        hints = typing.get_type_hints(fn, include_extras=True)
        parameters = list(signature.parameters.values())
        if len(parameters) not in (1, 2):
            raise TypeError(f"tta: `{fn.__name__}` takes (input) or (ctx, input), not {len(parameters)} parameters")
        self.fn = fn
        self.with_ctx = len(parameters) == 2
        self.input_type = hints.get(parameters[-1].name, Any)
        self.output_type = hints.get("return", Any)
        self.metadata = metadata
        self.usage = usage
        self.log_rejections = log_rejections

    def describe(self) -> _types.Metadata:
        m = self.metadata
        input_schema = m["input_schema"]
        if input_schema is None and self.input_type not in (Any, bytes):
            schema = _root_schema(self.input_type)
            # Tool arguments are always an object; a schema of anything else is not given.
            input_schema = schema if schema.get("type") == "object" else None
        output_schema = m["output_schema"]
        if output_schema is None and self.output_type not in (Any, bytes):
            output_schema = _root_schema(self.output_type)
        text = lambda s: None if s is None else (s if isinstance(s, str) else json.dumps(s))  # noqa: E731
        return _types.Metadata(
            m["name"],
            m["version"],
            m["description"],
            m["title"],
            text(input_schema),
            text(output_schema),
            _types.Hints(m["read_only"], m["destructive"], m["idempotent"], m["open_world"]),
        )

    def reject(self, reason: str) -> InvalidInput:
        return InvalidInput(f"{reason}: {self.usage}" if self.usage else reason)

    def parse(self, input: bytes) -> Any:
        if self.input_type is bytes:
            return input
        try:
            value = json.loads(input)
        except (ValueError, UnicodeDecodeError) as e:
            raise self.reject(f"input is not JSON ({e})") from None
        try:
            return _convert(value, self.input_type, "")
        except _Mismatch as e:
            raise self.reject(e.message) from None

    def execute(self, ctx: _types.Context, input: bytes) -> bytes:
        try:
            request = self.parse(input)
            output = self.fn(Context(ctx), request) if self.with_ctx else self.fn(request)
        except PrimitiveError as e:
            if self.log_rejections and isinstance(e, InvalidInput):
                log.warn("rejected input", reason=e.message)
            raise Err(e.to_wit()) from None
        if isinstance(output, (bytes, bytearray)):
            return bytes(output)
        return _dumps(_plain(output))


def primitive(
    name: str,
    version: str,
    description: str,
    *,
    title: Optional[str] = None,
    read_only: Optional[bool] = None,
    destructive: Optional[bool] = None,
    idempotent: Optional[bool] = None,
    open_world: Optional[bool] = None,
    input_schema: Any = None,
    output_schema: Any = None,
    usage: Optional[str] = None,
    log_rejections: bool = True,
):
    """Makes the decorated function the module's primitive.

    `title` and the hints (`read_only`, `destructive`, `idempotent`, `open_world`; `None`
    leaves MCP's default) describe it as a tool. The schemas come from the function's
    annotations unless given (a dict or JSON text). `usage` is appended to every
    `invalid-input` message the SDK makes ("send {"text": "…"}"); with `log_rejections`,
    every `InvalidInput` answered is also logged at warn as `rejected input` with `reason`.
    """

    def register(fn: Callable) -> Callable:
        spec = _Spec(
            fn,
            {
                "name": name,
                "version": version,
                "description": description,
                "title": title,
                "read_only": read_only,
                "destructive": destructive,
                "idempotent": idempotent,
                "open_world": open_world,
                "input_schema": input_schema,
                "output_schema": output_schema,
            },
            usage,
            log_rejections,
        )

        class Primitive(exports.Primitive):
            def describe(self) -> _types.Metadata:
                return spec.describe()

            def execute(self, ctx: _types.Context, input: bytes) -> bytes:
                return spec.execute(ctx, input)

        # componentize-py finds the export as `Primitive` in the app module.
        sys.modules[fn.__module__].Primitive = Primitive
        fn.spec = spec
        return fn

    return register
