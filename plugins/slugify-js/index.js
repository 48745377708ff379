// `slugify-js`: turns {"text": "Hello, World!"} into {"slug":"hello-world","words":2}.
//
// The JavaScript twin of `slugify-py` and `slugify-c`: same input, output, errors and
// telemetry. Written with the JavaScript SDK (`guest-sdk/js/tta.js`, copied beside this
// file at build time); built by `cargo xtask plugins` with componentize-js (StarlingMonkey).

import * as tta from "./tta.js";

/** The lowercase ASCII letter-and-digit runs of `text`; everything else separates. */
function slugWords(text) {
  return text.toLowerCase().split(/[^a-z0-9]+/).filter((w) => w.length > 0);
}

export const primitive = tta.primitive({
  name: "slugify-js",
  version: "0.2.0",
  description: "Turns text into a URL slug (JavaScript, componentize-js)",
  title: "Slugify (JavaScript)",
  hints: { readOnly: true, idempotent: true, openWorld: false },
  input: tta.object(
    { text: tta.string("Any text; its ASCII letters and digits make the slug") },
    { title: "Request", description: "Text to turn into a slug." },
  ),
  output: tta.object(
    { slug: tta.string(), words: tta.integer() },
    { title: "Slug", description: "The slug and how many words it has." },
  ),
  usage: 'send a JSON object with a string field "text", e.g. {"text": "Hello, World!"}',

  run({ text }) {
    const words = tta.span("slugify", { "text.bytes": new TextEncoder().encode(text).length }, (span) => {
      const words = slugWords(text);
      if (words.length === 0) {
        span.error("no letters or digits");
        throw new tta.InvalidInput("text has no ASCII letters or digits to make a slug from");
      }
      span.attr("slug.words", words.length);
      span.event("slugified");
      return words;
    });
    tta.counterAdd("slugs_made");
    tta.log.info("slugified", { words: words.length });
    return { slug: words.join("-"), words: words.length };
  },
});
