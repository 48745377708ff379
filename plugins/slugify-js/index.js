// `slugify-js`: turns {"text": "Hello, World!"} into {"slug":"hello-world","words":2}.
//
// The JavaScript twin of `slugify-py` and `slugify-c`: same input, output, errors and
// telemetry. Built by `cargo xtask plugins` with componentize-js (StarlingMonkey).
// Imports of the world are ES modules named after the WIT interfaces; a typed error is
// thrown as `{ payload: error }` (componentize-js turns it into `result::err`).

import { log, Span, counterAdd } from "tta:primitives/telemetry@0.1.0";

const USAGE = 'send a JSON object with a string field "text", e.g. {"text": "Hello, World!"}';

/** The lowercase ASCII letter-and-digit runs of `text`; everything else separates. */
function slugWords(text) {
  return text.toLowerCase().split(/[^a-z0-9]+/).filter((w) => w.length > 0);
}

function reject(message) {
  log("warn", "rejected input", [["reason", { tag: "str", val: message }]]);
  return { payload: { kind: "invalid-input", message, retryable: false } };
}

export const primitive = {
  describe() {
    return { name: "slugify-js", version: "0.1.0", description: "Turns text into a URL slug (JavaScript, componentize-js)" };
  },

  execute(ctx, input) {
    let request;
    try {
      request = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(input));
    } catch (e) {
      throw reject(`input is not JSON (${e.message}): ${USAGE}`);
    }
    const text = request !== null && typeof request === "object" ? request.text : undefined;
    if (typeof text !== "string") {
      throw reject(`input has no string field "text": ${USAGE}`);
    }
    const span = new Span("slugify", [["text.bytes", { tag: "int", val: BigInt(new TextEncoder().encode(text).length) }]]);
    const words = slugWords(text);
    if (words.length === 0) {
      span.setError("no letters or digits");
      span.end();
      throw reject("text has no ASCII letters or digits to make a slug from");
    }
    span.setAttribute("slug.words", { tag: "int", val: BigInt(words.length) });
    span.addEvent("slugified", []);
    span.end();
    counterAdd("slugs_made", 1, []);
    log("info", "slugified", [["words", { tag: "int", val: BigInt(words.length) }]]);
    return new TextEncoder().encode(JSON.stringify({ slug: words.join("-"), words: words.length }));
  },
};
