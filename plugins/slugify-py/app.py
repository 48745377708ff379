"""`slugify-py`: turns `{"text": "Hello, World!"}` into `{"slug": "hello-world", "words": 2}`.

The Python twin of `slugify-js` and `slugify-c`: same input, output, errors and telemetry,
so the tests can hold all three to the same spans, logs and metrics as the Rust guests.
Built by `cargo xtask plugins` with componentize-py.
"""

import json

from componentize_py_types import Err
from wit_world import exports
from wit_world.imports import telemetry
from wit_world.imports.types import Error, ErrorKind, Metadata

USAGE = 'send a JSON object with a string field "text", e.g. {"text": "Hello, World!"}'


def slugify(text: str) -> list[str]:
    """The lowercase ASCII letter-and-digit runs of `text`; everything else separates."""
    words, current = [], []
    for ch in text:
        if ch.isascii() and ch.isalnum():
            current.append(ch.lower())
        elif current:
            words.append("".join(current))
            current = []
    if current:
        words.append("".join(current))
    return words


def reject(message: str) -> Err:
    telemetry.log(telemetry.Level.WARN, "rejected input", [("reason", telemetry.Value_Str(message))])
    return Err(Error(ErrorKind.INVALID_INPUT, message, False))


class Primitive(exports.Primitive):
    def describe(self) -> Metadata:
        return Metadata("slugify-py", "0.1.0", "Turns text into a URL slug (Python, componentize-py)")

    def execute(self, ctx, input: bytes) -> bytes:
        try:
            request = json.loads(input)
        except (ValueError, UnicodeDecodeError) as e:
            raise reject(f"input is not JSON ({e}): {USAGE}")
        text = request.get("text") if isinstance(request, dict) else None
        if not isinstance(text, str):
            raise reject(f"input has no string field \"text\": {USAGE}")
        with telemetry.Span("slugify", [("text.bytes", telemetry.Value_Int(len(text.encode("utf-8", "surrogatepass"))))]) as span:
            words = slugify(text)
            if not words:
                span.set_error("no letters or digits")
                raise reject("text has no ASCII letters or digits to make a slug from")
            span.set_attribute("slug.words", telemetry.Value_Int(len(words)))
            span.add_event("slugified", [])
        telemetry.counter_add("slugs_made", 1.0, [])
        telemetry.log(telemetry.Level.INFO, "slugified", [("words", telemetry.Value_Int(len(words)))])
        return json.dumps({"slug": "-".join(words), "words": len(words)}, separators=(",", ":")).encode()
