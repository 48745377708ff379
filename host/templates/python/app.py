"""`{{name}}`: a tta-host primitive. Edit `execute`; `./build.sh` makes `{{name}}.wasm`.

The bindings (`wit_world`) are generated from `wit/` by componentize-py at build time.
"""

import json

from componentize_py_types import Err
from wit_world import exports
from wit_world.imports import store, telemetry
from wit_world.imports.types import Error, ErrorKind, Metadata


def invalid(message: str) -> Err:
    return Err(Error(ErrorKind.INVALID_INPUT, message, False))


def greeting_word() -> str:
    """Configuration from the host (`wasi:config`): `run --config-value greeting=Howdy`,
    or the tenant's `[tenants.config]` under `serve`; a missing key is None."""
    try:
        return store.get("greeting") or "Hello"
    except Err:
        return "Hello"


class Primitive(exports.Primitive):
    def describe(self) -> Metadata:
        return Metadata("{{name}}", "0.1.0", "Greets `name` (edit me)")

    def execute(self, ctx, input: bytes) -> bytes:
        try:
            request = json.loads(input)
        except ValueError as e:
            raise invalid(f'input is not JSON ({e}): send {{"name": "Ada"}}')
        name = request.get("name") if isinstance(request, dict) else None
        if not isinstance(name, str) or not name.strip():
            raise invalid('`name` is missing or empty: send {"name": "Ada"}')
        with telemetry.Span("{{name}}.greet", [("name.length", telemetry.Value_Int(len(name)))]):
            greeting = f"{greeting_word()}, {name}!"
        telemetry.counter_add("greetings", 1.0, [])
        telemetry.log(telemetry.Level.INFO, "greeted", [("name", telemetry.Value_Str(name))])
        return json.dumps({"greeting": greeting}).encode()
