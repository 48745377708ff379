// `{{name}}`: a tta-host primitive. Edit `run`; `./build.sh` makes `{{name}}.wasm`.
//
// Written with the JavaScript SDK, `tta.js` beside this file (one file; its header is the
// guide). `input` and `output` are the primitive's JSON Schemas, which tool listings (MCP
// `tools/list`) show; the input is checked against `input` before `run` is called.

import * as tta from "./tta.js";

export const primitive = tta.primitive({
  name: "{{name}}",
  version: "0.1.0",
  description: "Greets `name` (edit me)",
  title: "Greet someone",
  hints: { readOnly: true, idempotent: true },
  input: tta.object({ name: tta.string("Who to greet") }, { description: "Who to greet." }),
  output: tta.object({ greeting: tta.string("The greeting") }),

  run({ name }) {
    if (name.trim() === "") {
      throw new tta.InvalidInput('`name` is empty: send {"name": "Ada"}');
    }
    const greeting = tta.span("{{name}}.greet", { "name.length": name.length }, () =>
      // Configuration from the host (`wasi:config`): `run --config-value greeting=Howdy`,
      // or the tenant's `[tenants.config]` under `serve`.
      `${tta.config.get("greeting", "Hello")}, ${name}!`,
    );
    tta.counterAdd("greetings");
    tta.log.info("greeted", { name });
    return { greeting };
  },
});
