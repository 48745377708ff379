// `{{name}}`: a tta-host primitive. Edit `execute`; `./build.sh` makes `{{name}}.wasm`.
//
// The world's imports are ES modules named after the WIT interfaces. Return a
// Uint8Array; throw `{ payload: error }` to return a typed error.

import { log, Span, counterAdd } from "tta:primitives/telemetry@0.1.0";
// Configuration from the host: `run --config-value greeting=Howdy`, or the tenant's
// `[tenants.config]` under `serve`; a missing key is `undefined`.
import { get as config } from "wasi:config/store@0.2.0-rc.1";

function invalid(message) {
  return { payload: { kind: "invalid-input", message, retryable: false } };
}

export const primitive = {
  describe() {
    return { name: "{{name}}", version: "0.1.0", description: "Greets `name` (edit me)" };
  },

  execute(ctx, input) {
    let request;
    try {
      request = JSON.parse(new TextDecoder().decode(input));
    } catch (e) {
      throw invalid(`input is not JSON (${e.message}): send {"name": "Ada"}`);
    }
    const name = request !== null && typeof request === "object" ? request.name : undefined;
    if (typeof name !== "string" || name.trim() === "") {
      throw invalid('`name` is missing or empty: send {"name": "Ada"}');
    }
    const span = new Span("{{name}}.greet", [["name.length", { tag: "int", val: BigInt(name.length) }]]);
    const greeting = `${config("greeting") ?? "Hello"}, ${name}!`;
    span.end();
    counterAdd("greetings", 1, []);
    log("info", "greeted", [["name", { tag: "str", val: name }]]);
    return new TextEncoder().encode(JSON.stringify({ greeting }));
  },
};
