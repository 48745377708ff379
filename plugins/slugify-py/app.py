"""`slugify-py`: turns `{"text": "Hello, World!"}` into `{"slug": "hello-world", "words": 2}`.

The Python twin of `slugify-js` and `slugify-c`: same input, output, errors and telemetry,
so the tests can hold all three to the same spans, logs and metrics as the Rust guests.
Written with the Python SDK (`guest-sdk/python/tta.py`); built by `cargo xtask plugins`
with componentize-py.
"""

from dataclasses import dataclass, field

import tta


@dataclass
class Request:
    """Text to turn into a slug."""

    text: str = field(metadata={"description": "Any text; its ASCII letters and digits make the slug"})


@dataclass
class Slug:
    """The slug and how many words it has."""

    slug: str
    words: int


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


@tta.primitive(
    "slugify-py",
    "0.2.0",
    "Turns text into a URL slug (Python, componentize-py)",
    title="Slugify (Python)",
    read_only=True,
    idempotent=True,
    open_world=False,
    usage='send a JSON object with a string field "text", e.g. {"text": "Hello, World!"}',
)
def run(request: Request) -> Slug:
    with tta.span("slugify", {"text.bytes": len(request.text.encode("utf-8", "surrogatepass"))}) as span:
        words = slugify(request.text)
        if not words:
            span.error("no letters or digits")
            raise tta.InvalidInput("text has no ASCII letters or digits to make a slug from")
        span.attr("slug.words", len(words))
        span.event("slugified")
    tta.counter_add("slugs_made")
    tta.log.info("slugified", words=len(words))
    return Slug("-".join(words), len(words))
