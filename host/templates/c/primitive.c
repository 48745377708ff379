// `{{name}}`: a tta-host primitive in C. Edit `execute`; `./build.sh` makes `{{name}}.wasm`.
//
// sdk/ holds the bindings of tta:primitives@0.1.0 and wasi:config (made by `wit-bindgen c`). Memory the
// host hands in (ctx, input) is ours to free; memory handed back (output, error message,
// metadata strings) must come from malloc: the bindings free it after the host copies it.

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "primitive_plugin.h"

static primitive_plugin_string_t str(const char *s) {
  primitive_plugin_string_t out;
  primitive_plugin_string_set(&out, s);
  return out;
}

void exports_tta_primitives_primitive_describe(exports_tta_primitives_primitive_metadata_t *ret) {
  primitive_plugin_string_dup(&ret->name, "{{name}}");
  primitive_plugin_string_dup(&ret->version, "0.1.0");
  primitive_plugin_string_dup(&ret->description, "Echoes its input, counting bytes (edit me)");
}

bool exports_tta_primitives_primitive_execute(exports_tta_primitives_primitive_context_t *ctx,
                                              primitive_plugin_list_u8_t *input,
                                              primitive_plugin_list_u8_t *ret,
                                              exports_tta_primitives_primitive_error_t *err) {
  exports_tta_primitives_primitive_context_free(ctx);
  if (input->len == 0) {
    primitive_plugin_list_u8_free(input);
    err->kind = TTA_PRIMITIVES_TYPES_ERROR_KIND_INVALID_INPUT;
    primitive_plugin_string_dup(&err->message, "input is empty: send any bytes, e.g. {\"name\": \"Ada\"}");
    err->retryable = false;
    return false;
  }

  tta_primitives_telemetry_tuple2_string_value_t size = {
      .f0 = str("input.bytes"),
      .f1 = {.tag = TTA_PRIMITIVES_TELEMETRY_VALUE_INT, .val.int_ = (int64_t)input->len}};
  tta_primitives_telemetry_attributes_t attrs = {&size, 1};
  primitive_plugin_string_t span_name = str("{{name}}.echo");
  tta_primitives_telemetry_own_span_t span = tta_primitives_telemetry_constructor_span(&span_name, &attrs);
  // The output: the input itself, handed back without a copy, after the `prefix` the host's
  // configuration may give (`wasi:config`: `run --config-value prefix=...`, or the
  // tenant's `[tenants.config]` under `serve`). A missing key is `is_some == false`.
  primitive_plugin_string_t key = str("prefix");
  primitive_plugin_option_string_t prefix = {0};
  wasi_config_store_error_t config_err;
  if (!wasi_config_store_get(&key, &prefix, &config_err)) {
    wasi_config_store_error_free(&config_err);
  } else if (prefix.is_some && prefix.val.len > 0) {
    size_t len = prefix.val.len + input->len;
    uint8_t *out = malloc(len);
    if (out != NULL) {
      memcpy(out, prefix.val.ptr, prefix.val.len);
      memcpy(out + prefix.val.len, input->ptr, input->len);
      primitive_plugin_list_u8_free(input);
      input->ptr = out;
      input->len = len;
    }
  }
  primitive_plugin_option_string_free(&prefix);
  ret->ptr = input->ptr;
  ret->len = input->len;
  tta_primitives_telemetry_span_drop_own(span);

  primitive_plugin_string_t counter = str("echoed_bytes");
  tta_primitives_telemetry_attributes_t none = {NULL, 0};
  tta_primitives_telemetry_counter_add(&counter, (double)ret->len, &none);
  primitive_plugin_string_t message = str("echoed");
  tta_primitives_telemetry_log(TTA_PRIMITIVES_TELEMETRY_LEVEL_INFO, &message, &attrs);
  return true;
}
