// `slugify-c`: turns {"text": "Hello, World!"} into {"slug":"hello-world","words":2}.
//
// The C twin of `slugify-py` and `slugify-js`: same input, output, errors and telemetry.
// Built by `cargo xtask plugins` with clang-22 for wasm32-wasi against the C bindings in
// guest-sdk/c, then made a component with the WASI preview1 reactor adapter.
//
// Memory the host hands in (ctx, input) is ours to free; memory handed back (the output,
// an error message, the metadata strings) must come from malloc: the bindings free it
// after the host has copied it out.

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "primitive_plugin.h"

#define USAGE "send a JSON object with a string field \"text\", e.g. {\"text\": \"Hello, World!\"}"

typedef struct {
  const uint8_t *at;
  const uint8_t *end;
} cursor_t;

static void skip_space(cursor_t *c) {
  while (c->at < c->end && (*c->at == ' ' || *c->at == '\t' || *c->at == '\n' || *c->at == '\r')) c->at++;
}

static int hex_digit(uint8_t ch) {
  if (ch >= '0' && ch <= '9') return ch - '0';
  if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
  if (ch >= 'A' && ch <= 'F') return ch - 'A' + 10;
  return -1;
}

static size_t put_utf8(uint8_t *out, uint32_t cp) {
  if (cp < 0x80) { out[0] = (uint8_t)cp; return 1; }
  if (cp < 0x800) { out[0] = 0xC0 | (cp >> 6); out[1] = 0x80 | (cp & 0x3F); return 2; }
  if (cp < 0x10000) {
    out[0] = 0xE0 | (cp >> 12); out[1] = 0x80 | ((cp >> 6) & 0x3F); out[2] = 0x80 | (cp & 0x3F);
    return 3;
  }
  out[0] = 0xF0 | (cp >> 18); out[1] = 0x80 | ((cp >> 12) & 0x3F);
  out[2] = 0x80 | ((cp >> 6) & 0x3F); out[3] = 0x80 | (cp & 0x3F);
  return 4;
}

// Parses a JSON string at the cursor. With `out` (at least as long as the rest of the
// input), writes its UTF-8 value there and its length to `len`. Returns 0 on success.
static int parse_string(cursor_t *c, uint8_t *out, size_t *len) {
  size_t n = 0;
  if (c->at >= c->end || *c->at != '"') return -1;
  c->at++;
  while (c->at < c->end && *c->at != '"') {
    uint8_t ch = *c->at++;
    if (ch < 0x20) return -1;
    if (ch != '\\') {
      if (out) out[n] = ch;
      n++;
      continue;
    }
    if (c->at >= c->end) return -1;
    uint8_t esc = *c->at++;
    uint8_t plain = 0;
    switch (esc) {
      case '"': plain = '"'; break;
      case '\\': plain = '\\'; break;
      case '/': plain = '/'; break;
      case 'b': plain = '\b'; break;
      case 'f': plain = '\f'; break;
      case 'n': plain = '\n'; break;
      case 'r': plain = '\r'; break;
      case 't': plain = '\t'; break;
      case 'u': {
        uint32_t cp = 0;
        for (int i = 0; i < 4; i++) {
          int d = c->at < c->end ? hex_digit(*c->at++) : -1;
          if (d < 0) return -1;
          cp = cp * 16 + (uint32_t)d;
        }
        // A surrogate pair spells one code point; a lone surrogate becomes U+FFFD.
        if (cp >= 0xD800 && cp <= 0xDBFF && c->end - c->at >= 6 && c->at[0] == '\\' && c->at[1] == 'u') {
          uint32_t low = 0;
          int ok = 1;
          for (int i = 2; i < 6; i++) {
            int d = hex_digit(c->at[i]);
            if (d < 0) ok = 0;
            low = low * 16 + (uint32_t)(d < 0 ? 0 : d);
          }
          if (ok && low >= 0xDC00 && low <= 0xDFFF) {
            cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
            c->at += 6;
          }
        }
        if (cp >= 0xD800 && cp <= 0xDFFF) cp = 0xFFFD;
        uint8_t buf[4];
        size_t k = put_utf8(buf, cp);
        if (out) memcpy(out + n, buf, k);
        n += k;
        continue;
      }
      default: return -1;
    }
    if (out) out[n] = plain;
    n++;
  }
  if (c->at >= c->end) return -1;
  c->at++;
  if (len) *len = n;
  return 0;
}

// Skips one JSON value of any kind. Returns 0 on success.
static int skip_value(cursor_t *c, int depth) {
  skip_space(c);
  if (c->at >= c->end || depth > 64) return -1;
  uint8_t ch = *c->at;
  if (ch == '"') return parse_string(c, NULL, NULL);
  if (ch == '{' || ch == '[') {
    uint8_t close = ch == '{' ? '}' : ']';
    c->at++;
    skip_space(c);
    if (c->at < c->end && *c->at == close) { c->at++; return 0; }
    for (;;) {
      if (ch == '{') {
        skip_space(c);
        if (parse_string(c, NULL, NULL)) return -1;
        skip_space(c);
        if (c->at >= c->end || *c->at++ != ':') return -1;
      }
      if (skip_value(c, depth + 1)) return -1;
      skip_space(c);
      if (c->at >= c->end) return -1;
      if (*c->at == ',') { c->at++; continue; }
      if (*c->at == close) { c->at++; return 0; }
      return -1;
    }
  }
  const uint8_t *start = c->at;
  while (c->at < c->end && (strchr("+-.eE", *c->at) || (*c->at >= '0' && *c->at <= '9') || (*c->at >= 'a' && *c->at <= 'z'))) c->at++;
  size_t n = (size_t)(c->at - start);
  if (n == 0) return -1;
  if ((*start >= 'a' && *start <= 'z') &&
      !((n == 4 && !memcmp(start, "true", 4)) || (n == 5 && !memcmp(start, "false", 5)) || (n == 4 && !memcmp(start, "null", 4))))
    return -1;
  return 0;
}

// 0 when `bytes` is valid UTF-8.
static int check_utf8(const uint8_t *s, size_t n) {
  size_t i = 0;
  while (i < n) {
    uint8_t b = s[i];
    size_t k = b < 0x80 ? 0 : (b >> 5) == 0x6 ? 1 : (b >> 4) == 0xE ? 2 : (b >> 3) == 0x1E ? 3 : 9;
    if (k == 9 || i + k >= n) return -1;
    for (size_t j = 1; j <= k; j++) if ((s[i + j] & 0xC0) != 0x80) return -1;
    i += k + 1;
  }
  return 0;
}

// Finds the string field "text" of the top-level object and decodes it into a fresh
// buffer. Returns NULL, with `why` set, when the input is not such an object.
static uint8_t *extract_text(const uint8_t *input, size_t input_len, size_t *text_len, const char **why) {
  cursor_t c = {input, input + input_len};
  uint8_t *text = NULL;
  *why = "input is not JSON";
  if (check_utf8(input, input_len)) { *why = "input is not UTF-8"; return NULL; }
  skip_space(&c);
  if (c.at >= c.end || *c.at != '{') {
    cursor_t probe = c;
    if (skip_value(&probe, 0) == 0) *why = "input has no string field \"text\"";
    return NULL;
  }
  c.at++;
  skip_space(&c);
  if (c.at < c.end && *c.at == '}') { *why = "input has no string field \"text\""; return NULL; }
  for (;;) {
    skip_space(&c);
    uint8_t key[8];
    const uint8_t *key_start = c.at;
    size_t key_len = 0;
    if (parse_string(&c, NULL, &key_len)) goto fail;
    int is_text = 0;
    if (key_len == 4) {
      cursor_t again = {key_start, c.end};
      parse_string(&again, key, NULL);
      is_text = memcmp(key, "text", 4) == 0;
    }
    skip_space(&c);
    if (c.at >= c.end || *c.at++ != ':') goto fail;
    skip_space(&c);
    if (is_text && c.at < c.end && *c.at == '"') {
      free(text);
      text = malloc((size_t)(c.end - c.at) + 1);
      if (!text || parse_string(&c, text, text_len)) goto fail;
    } else {
      if (is_text) { free(text); text = NULL; }
      if (skip_value(&c, 0)) goto fail;
    }
    skip_space(&c);
    if (c.at >= c.end) goto fail;
    if (*c.at == ',') { c.at++; continue; }
    if (*c.at++ != '}') goto fail;
    skip_space(&c);
    if (c.at != c.end) goto fail;
    if (!text) *why = "input has no string field \"text\"";
    return text;
  }
fail:
  free(text);
  *why = "input is not JSON";
  return NULL;
}

static primitive_plugin_string_t str(const char *s) {
  primitive_plugin_string_t out;
  primitive_plugin_string_set(&out, s);
  return out;
}

static tta_primitives_telemetry_tuple2_string_value_t int_attr(const char *key, int64_t value) {
  tta_primitives_telemetry_tuple2_string_value_t kv;
  kv.f0 = str(key);
  kv.f1.tag = TTA_PRIMITIVES_TELEMETRY_VALUE_INT;
  kv.f1.val.int_ = value;
  return kv;
}

static bool reject(const char *message, exports_tta_primitives_primitive_error_t *err) {
  tta_primitives_telemetry_tuple2_string_value_t reason;
  reason.f0 = str("reason");
  reason.f1.tag = TTA_PRIMITIVES_TELEMETRY_VALUE_STR;
  reason.f1.val.str = str(message);
  tta_primitives_telemetry_attributes_t fields = {&reason, 1};
  primitive_plugin_string_t text = str("rejected input");
  tta_primitives_telemetry_log(TTA_PRIMITIVES_TELEMETRY_LEVEL_WARN, &text, &fields);
  err->kind = TTA_PRIMITIVES_TYPES_ERROR_KIND_INVALID_INPUT;
  primitive_plugin_string_dup(&err->message, message);
  err->retryable = false;
  return false;
}

void exports_tta_primitives_primitive_describe(exports_tta_primitives_primitive_metadata_t *ret) {
  primitive_plugin_string_dup(&ret->name, "slugify-c");
  primitive_plugin_string_dup(&ret->version, "0.1.0");
  primitive_plugin_string_dup(&ret->description, "Turns text into a URL slug (C, clang + wit-bindgen)");
}

bool exports_tta_primitives_primitive_execute(exports_tta_primitives_primitive_context_t *ctx,
                                              primitive_plugin_list_u8_t *input,
                                              primitive_plugin_list_u8_t *ret,
                                              exports_tta_primitives_primitive_error_t *err) {
  exports_tta_primitives_primitive_context_free(ctx);
  size_t text_len = 0;
  const char *why = NULL;
  uint8_t *text = extract_text(input->ptr, input->len, &text_len, &why);
  primitive_plugin_list_u8_free(input);
  if (!text) {
    char message[256];
    snprintf(message, sizeof message, "%s: %s", why, USAGE);
    return reject(message, err);
  }

  tta_primitives_telemetry_tuple2_string_value_t length = int_attr("text.bytes", (int64_t)text_len);
  tta_primitives_telemetry_attributes_t span_attrs = {&length, 1};
  primitive_plugin_string_t span_name = str("slugify");
  tta_primitives_telemetry_own_span_t span = tta_primitives_telemetry_constructor_span(&span_name, &span_attrs);
  tta_primitives_telemetry_borrow_span_t borrowed = tta_primitives_telemetry_borrow_span(span);

  // The slug: lowercase ASCII letter-and-digit runs joined by '-'.
  char *slug = malloc(text_len + 1);
  size_t slug_len = 0;
  int64_t words = 0;
  int in_word = 0;
  for (size_t i = 0; slug && i < text_len; i++) {
    uint8_t ch = text[i];
    int alnum = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9');
    if (alnum) {
      if (!in_word) {
        if (words > 0) slug[slug_len++] = '-';
        words++;
        in_word = 1;
      }
      slug[slug_len++] = (char)((ch >= 'A' && ch <= 'Z') ? ch - 'A' + 'a' : ch);
    } else {
      in_word = 0;
    }
  }
  free(text);
  if (!slug) {
    tta_primitives_telemetry_span_drop_own(span);
    return reject("out of memory", err);
  }
  slug[slug_len] = '\0';

  if (words == 0) {
    primitive_plugin_string_t why_not = str("no letters or digits");
    tta_primitives_telemetry_method_span_set_error(borrowed, &why_not);
    tta_primitives_telemetry_span_drop_own(span);
    free(slug);
    return reject("text has no ASCII letters or digits to make a slug from", err);
  }
  primitive_plugin_string_t key = str("slug.words");
  tta_primitives_telemetry_value_t value = {.tag = TTA_PRIMITIVES_TELEMETRY_VALUE_INT, .val.int_ = words};
  tta_primitives_telemetry_method_span_set_attribute(borrowed, &key, &value);
  primitive_plugin_string_t event = str("slugified");
  tta_primitives_telemetry_attributes_t none = {NULL, 0};
  tta_primitives_telemetry_method_span_add_event(borrowed, &event, &none);
  tta_primitives_telemetry_span_drop_own(span);

  primitive_plugin_string_t counter = str("slugs_made");
  tta_primitives_telemetry_counter_add(&counter, 1.0, &none);
  tta_primitives_telemetry_tuple2_string_value_t count = int_attr("words", words);
  tta_primitives_telemetry_attributes_t log_fields = {&count, 1};
  primitive_plugin_string_t message = str("slugified");
  tta_primitives_telemetry_log(TTA_PRIMITIVES_TELEMETRY_LEVEL_INFO, &message, &log_fields);

  size_t cap = slug_len + 48;
  char *json = malloc(cap);
  if (!json) {
    free(slug);
    return reject("out of memory", err);
  }
  int n = snprintf(json, cap, "{\"slug\":\"%s\",\"words\":%lld}", slug, (long long)words);
  free(slug);
  ret->ptr = (uint8_t *)json;
  ret->len = (size_t)n;
  return true;
}
