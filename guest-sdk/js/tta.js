// tta: write a tta-host primitive in JavaScript, built with componentize-js.
//
// A primitive is one object given to `primitive`, exported under that name; its input and
// output are described by JSON Schema objects, which the SDK also checks the input with:
//
//   import * as tta from "./tta.js";
//
//   export const primitive = tta.primitive({
//     name: "count", version: "0.1.0", description: "Counts the words of `text`",
//     hints: { readOnly: true },
//     input: tta.object({ text: tta.string("The text") }),
//     output: tta.object({ words: tta.integer() }),
//     run(request, ctx) {
//       const words = tta.span("split", { chars: request.text.length }, () => request.text.split(/\s+/).length);
//       tta.log.info("counted", { words });
//       tta.counterAdd("texts_counted");
//       return { words };
//     },
//   });
//
// The input is parsed from JSON and checked against `input` before `run` is called (types,
// required properties, enums, array items, nested objects): a mismatch is answered with an
// `invalid-input` error naming the field (`input has no string field "text"`). What `run`
// returns is serialized to JSON; a `Uint8Array` is the raw output, and `input: "bytes"`
// hands `run` the raw input.
//
// Errors are thrown: `throw new tta.InvalidInput("what is wrong and how to fix it")`,
// `NotFound`, `Unavailable` (retryable), `Timeout` (retryable) or `Internal`. Anything else
// thrown is a bug: it traps the call, with its message and stack in the call's logs.
//
// This file is the whole SDK; `tta-host new --lang js` puts a copy beside `index.js`.

import { log as wlog, Span as WSpan, counterAdd as wcounterAdd, histogramRecord as whistogramRecord } from "tta:primitives/telemetry@0.2.0";
import { call as wcall } from "tta:primitives/invoke@0.2.0";
import { get as wget, getAll as wgetAll } from "wasi:config/store@0.2.0-rc.1";

const SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema";

// --- errors ----------------------------------------------------------------------------

/** A failure the primitive reports instead of an output: the WIT `error` record. */
export class PrimitiveError extends Error {
  constructor(kind, message, retryable = false) {
    super(message);
    this.kind = kind;
    this.retryable = retryable;
  }

  toWit() {
    return { kind: this.kind, message: this.message, retryable: this.retryable };
  }
}

/** The input was rejected: say what is wrong and how to fix it. */
export class InvalidInput extends PrimitiveError {
  constructor(message, retryable = false) {
    super("invalid-input", message, retryable);
  }
}

/** Something the input names does not exist. */
export class NotFound extends PrimitiveError {
  constructor(message, retryable = false) {
    super("not-found", message, retryable);
  }
}

/** A dependency is down or overloaded; the call may be retried. */
export class Unavailable extends PrimitiveError {
  constructor(message, retryable = true) {
    super("unavailable", message, retryable);
  }
}

/** The primitive gave up waiting within its own budget; the call may be retried. */
export class Timeout extends PrimitiveError {
  constructor(message, retryable = true) {
    super("timeout", message, retryable);
  }
}

/** A bug or broken invariant in the primitive. */
export class Internal extends PrimitiveError {
  constructor(message, retryable = false) {
    super("internal", message, retryable);
  }
}

const BY_KIND = {
  "invalid-input": InvalidInput,
  "not-found": NotFound,
  unavailable: Unavailable,
  timeout: Timeout,
  internal: Internal,
};

function fromWit(error) {
  const Kind = BY_KIND[error.kind] ?? Internal;
  return new Kind(error.message, error.retryable);
}

// --- telemetry -------------------------------------------------------------------------

function value(v) {
  if (typeof v === "boolean") return { tag: "boolean", val: v };
  if (typeof v === "bigint") return { tag: "int", val: v };
  if (typeof v === "number") return Number.isInteger(v) ? { tag: "int", val: BigInt(v) } : { tag: "float", val: v };
  return { tag: "str", val: typeof v === "string" ? v : String(v) };
}

function attributes(object) {
  return Object.entries(object ?? {}).map(([k, v]) => [k, value(v)]);
}

/** `log.info("message", { words: 3 })`: a structured record of the call, correlated with its trace. */
export const log = Object.freeze({
  trace: (message, fields) => wlog("trace", message, attributes(fields)),
  debug: (message, fields) => wlog("debug", message, attributes(fields)),
  info: (message, fields) => wlog("info", message, attributes(fields)),
  warn: (message, fields) => wlog("warn", message, attributes(fields)),
  error: (message, fields) => wlog("error", message, attributes(fields)),
});

/** A child span of the current span; `end()` it, or let `span(name, fn)` do it. */
export class Span {
  constructor(name, attrs) {
    this.inner = new WSpan(name, attributes(attrs));
    this.failed = false;
  }

  attr(key, v) {
    this.inner.setAttribute(key, value(v));
  }

  event(name, attrs) {
    this.inner.addEvent(name, attributes(attrs));
  }

  error(message) {
    this.failed = true;
    this.inner.setError(message);
  }

  end() {
    this.inner.end();
  }
}

/**
 * `span("name", fn)` or `span("name", { attr: 1 }, fn)`: runs `fn(span)` inside a child span
 * and returns its result; a throw marks the span failed (unless `error` was called) and
 * goes on. Without `fn`, returns the open span.
 */
export function span(name, attrs, fn) {
  if (typeof attrs === "function") {
    fn = attrs;
    attrs = undefined;
  }
  const opened = new Span(name, attrs);
  if (fn === undefined) return opened;
  try {
    return fn(opened);
  } catch (e) {
    if (!opened.failed) opened.error(e?.message ?? String(e));
    throw e;
  } finally {
    opened.end();
  }
}

/** Adds `value` to the guest counter `name` (exported as `tta_guest_<name>_total`). */
export function counterAdd(name, v = 1, attrs) {
  wcounterAdd(name, Number(v), attributes(attrs));
}

/** Records `value` in the guest histogram `name` (exported as `tta_guest_<name>`). */
export function histogramRecord(name, v, attrs) {
  whistogramRecord(name, Number(v), attributes(attrs));
}

// --- invoke and config -----------------------------------------------------------------

function witError(e) {
  return e?.payload ?? e;
}

/** Calls another primitive as a child of this call; its error is thrown as ours. */
export function invoke(primitiveName, input) {
  try {
    return wcall(primitiveName, input);
  } catch (e) {
    throw fromWit(witError(e));
  }
}

/** `invoke` with JSON in and out. */
export function invokeJson(primitiveName, request) {
  const output = invoke(primitiveName, new TextEncoder().encode(JSON.stringify(request)));
  try {
    return JSON.parse(new TextDecoder().decode(output));
  } catch (e) {
    throw new Internal(`\`${primitiveName}\` answered with something that is not JSON (${e.message})`);
  }
}

/** The host could not answer a configuration read. */
export class ConfigError extends Error {}

/** The tenant's configuration and secrets (`wasi:config`): `config.get("model")`. */
export const config = Object.freeze({
  /** The value of `key`, or `fallback` when there is none (or the host cannot answer). */
  get(key, fallback = undefined) {
    try {
      return this.tryGet(key) ?? fallback;
    } catch {
      return fallback;
    }
  },
  /** The value of `key`, `undefined` when there is none; `ConfigError` when the host cannot answer. */
  tryGet(key) {
    try {
      return wget(key);
    } catch (e) {
      throw new ConfigError(String(witError(e)?.val ?? e));
    }
  },
  /** Every key and value the primitive may read, as an object. */
  getAll() {
    try {
      return Object.fromEntries(wgetAll());
    } catch (e) {
      throw new ConfigError(String(witError(e)?.val ?? e));
    }
  },
});

// --- schemas ---------------------------------------------------------------------------

const described = (schema, description) => (description ? { ...schema, description } : schema);

/** `{"type": "string"}`, with a description. */
export const string = (description) => described({ type: "string" }, description);
/** `{"type": "integer"}`. */
export const integer = (description) => described({ type: "integer" }, description);
/** `{"type": "number"}`. */
export const number = (description) => described({ type: "number" }, description);
/** `{"type": "boolean"}`. */
export const boolean = (description) => described({ type: "boolean" }, description);
/** An array of `items`. */
export const array = (items, description) => described({ type: "array", items }, description);
/** One of `values`. */
export const oneOf = (values, description) => described({ enum: values }, description);

/**
 * An object of `properties`; every property is required unless `optional` names it.
 * `object({ text: string() }, { optional: ["lang"], description: "…" })`.
 */
export function object(properties, { optional = [], description, title } = {}) {
  const schema = { type: "object", properties };
  const required = Object.keys(properties).filter((k) => !optional.includes(k));
  if (required.length > 0) schema.required = required;
  if (title) schema.title = title;
  return described(schema, description);
}

/** Why the input does not fit its schema; `wrongType` names the field whose JSON type was wrong. */
class Mismatch extends Error {
  constructor(message, wrongType) {
    super(message);
    this.wrongType = wrongType;
  }
}

function kindOf(schema) {
  const type = schema?.type;
  if (Array.isArray(type)) return type.filter((t) => t !== "null").join(" or ") || "null";
  return type ?? "valid";
}

function article(kind) {
  return ("aeiou".includes(kind[0]) ? "an " : "a ") + kind;
}

function typeMatches(type, v) {
  switch (type) {
    case "string":
      return typeof v === "string";
    case "integer":
      return typeof v === "number" && Number.isInteger(v);
    case "number":
      return typeof v === "number";
    case "boolean":
      return typeof v === "boolean";
    case "null":
      return v === null;
    case "array":
      return Array.isArray(v);
    case "object":
      return v !== null && typeof v === "object" && !Array.isArray(v);
    default:
      return true;
  }
}

/** Checks `v` against the keywords of `schema` the SDK knows; a `Mismatch` naming `path`. */
function check(v, schema, path) {
  if (schema === undefined || schema === true || schema === null) return;
  const types = schema.type === undefined ? [] : [].concat(schema.type);
  const where = path === "" ? "input" : `input field "${path}"`;
  if (types.length > 0 && !types.some((t) => typeMatches(t, v))) {
    throw new Mismatch(`${where} is not ${article(kindOf(schema))}`, path);
  }
  if (schema.enum && !schema.enum.some((e) => JSON.stringify(e) === JSON.stringify(v))) {
    throw new Mismatch(`${where} is not one of ${schema.enum.map((e) => JSON.stringify(e)).join(", ")}`);
  }
  if (Array.isArray(v) && schema.items) {
    v.forEach((item, i) => check(item, schema.items, `${path}[${i}]`));
  }
  if (typeMatches("object", v) && schema.properties) {
    for (const [name, property] of Object.entries(schema.properties)) {
      const at = path === "" ? name : `${path}.${name}`;
      if (!(name in v)) {
        if ((schema.required ?? []).includes(name)) throw new Mismatch(`input has no ${kindOf(property)} field "${at}"`);
        continue;
      }
      try {
        check(v[name], property, at);
      } catch (e) {
        if (e instanceof Mismatch && e.wrongType === at) {
          throw new Mismatch(`input has no ${kindOf(property)} field "${at}"`);
        }
        throw e;
      }
    }
  }
}

/** What a non-object input is told: the first required field it lacks. */
function notAnObject(schema) {
  const first = (schema.required ?? [])[0];
  if (first === undefined) return "input is not a JSON object";
  return `input has no ${kindOf(schema.properties?.[first])} field "${first}"`;
}

// --- the primitive ---------------------------------------------------------------------

/** The workflow context of one call, as the SDK hands it to `run`. */
function context(ctx) {
  const data = Object.fromEntries(ctx.data);
  return {
    correlationId: ctx.correlationId,
    traceparent: ctx.traceparent,
    tracestate: ctx.tracestate,
    tenant: ctx.tenant,
    data,
    deadlineMs: ctx.deadlineMs === undefined ? undefined : Number(ctx.deadlineMs),
    get: (key) => data[key],
  };
}

const text = (schema) => (schema === undefined ? undefined : typeof schema === "string" ? schema : JSON.stringify(schema));
const withDialect = (schema) => (schema === undefined || typeof schema === "string" ? schema : { $schema: SCHEMA_DIALECT, ...schema });

/**
 * The primitive `spec` describes, as the `primitive` export componentize-js wants:
 * `name`, `version`, `description`, and optionally `title`, `hints` (`readOnly`,
 * `destructive`, `idempotent`, `openWorld`), the `input` and `output` JSON Schemas (or
 * `input: "bytes"`), `usage` (appended to every `invalid-input` message the SDK makes) and
 * `logRejections` (default true: every `InvalidInput` answered is logged at warn as
 * `rejected input` with its `reason`); and `run(request, ctx)`.
 */
export function primitive(spec) {
  const raw = spec.input === "bytes";
  const input = raw ? undefined : spec.input;
  const hints = spec.hints ?? {};
  const reject = (reason) => new InvalidInput(spec.usage ? `${reason}: ${spec.usage}` : reason);
  const parse = (bytes) => {
    if (raw) return bytes;
    let request;
    try {
      request = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes));
    } catch (e) {
      throw reject(`input is not JSON (${e.message})`);
    }
    if (input !== undefined) {
      if (kindOf(input) === "object" && !typeMatches("object", request)) throw reject(notAnObject(input));
      try {
        check(request, input, "");
      } catch (e) {
        if (e instanceof Mismatch) throw reject(e.message);
        throw e;
      }
    }
    return request;
  };
  return {
    describe() {
      return {
        name: spec.name,
        version: spec.version,
        description: spec.description,
        title: spec.title,
        // Tool arguments are always an object; a schema of anything else is not given.
        inputSchema: input !== undefined && kindOf(input) === "object" ? text(withDialect(input)) : undefined,
        outputSchema: text(withDialect(spec.output)),
        hints: {
          readOnly: hints.readOnly,
          destructive: hints.destructive,
          idempotent: hints.idempotent,
          openWorld: hints.openWorld,
        },
      };
    },

    execute(ctx, bytes) {
      let output;
      try {
        output = spec.run(parse(bytes), context(ctx));
      } catch (e) {
        if (e instanceof PrimitiveError) {
          if (spec.logRejections !== false && e instanceof InvalidInput) log.warn("rejected input", { reason: e.message });
          throw { payload: e.toWit() };
        }
        // Anything else is a bug: say what it was on stderr (the call's logs), as Python's
        // traceback does, before it traps the call.
        console.error(`Uncaught ${e?.name ?? "exception"}: ${e?.message ?? String(e)}\n${e?.stack ?? ""}`);
        throw e;
      }
      if (output instanceof Uint8Array) return output;
      return new TextEncoder().encode(JSON.stringify(output));
    },
  };
}
