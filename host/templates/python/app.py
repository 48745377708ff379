"""`{{name}}`: a tta-host primitive. Edit `greet`; `./build.sh` makes `{{name}}.wasm`.

Written with the Python SDK, `tta.py` beside this file (one file; its docstring is the
guide). The input and output types below are the primitive's JSON Schemas, which tool
listings (MCP `tools/list`) show; the input is checked against them before `greet` runs.
"""

from dataclasses import dataclass, field

import tta


@dataclass
class Input:
    """Who to greet."""

    name: str = field(metadata={"description": "Who to greet"})


@dataclass
class Output:
    greeting: str = field(metadata={"description": "The greeting"})


@tta.primitive(
    "{{name}}",
    "0.1.0",
    "Greets `name` (edit me)",
    title="Greet someone",
    read_only=True,
    idempotent=True,
)
def greet(request: Input) -> Output:
    if not request.name.strip():
        raise tta.InvalidInput('`name` is empty: send {"name": "Ada"}')
    with tta.span("{{name}}.greet", {"name.length": len(request.name)}):
        # Configuration from the host (`wasi:config`): `run --config-value greeting=Howdy`,
        # or the tenant's `[tenants.config]` under `serve`.
        greeting = f"{tta.config.get('greeting', 'Hello')}, {request.name}!"
    tta.counter_add("greetings")
    tta.log.info("greeted", name=request.name)
    return Output(greeting)
