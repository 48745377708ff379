//! Distinct primitives by the thousand: a hand-written component of the published world
//! whose `describe` names it and whose `execute` returns its input — or breaks the canonical
//! ABI on purpose, for the tests of hostile guests.
//!
//! A Rust guest takes ~30 ms to compile; this one ~1 ms, so a benchmark can load 1 000
//! different components (different bytes, different names, different compiled code) in
//! seconds. It imports nothing, not even WASI.

/// What `execute` does.
#[allow(dead_code, reason = "each user of this file takes the behaviours it needs")]
#[derive(Debug, Clone, Copy)]
pub enum Execute {
    /// Returns `ok(input)`.
    Echo,
    /// Returns `err` whose message is two bytes that are not UTF-8.
    InvalidUtf8Error,
    /// Returns `ok` of a list that lies past the end of its memory.
    OutOfBoundsOutput,
}

/// What else a generated component carries, for the tests of uploads.
#[allow(dead_code, reason = "each user of this file takes the shapes it needs")]
#[derive(Debug, Clone, Copy, Default)]
pub struct Shape {
    /// Functions of dead code added to the module: compile time and size grow with them.
    pub filler_functions: usize,
    /// Loop iterations `describe` spends before answering (~6 fuel each).
    pub describe_spins: u64,
}

/// The component text of primitive `name` (a valid primitive name, at most 64 bytes) whose
/// `execute` does `execute`.
pub fn component_wat(name: &str, execute: Execute) -> String {
    component_wat_shaped(name, execute, Shape::default())
}

/// [`component_wat`] with the extras of `shape`.
pub fn component_wat_shaped(name: &str, execute: Execute, shape: Shape) -> String {
    assert!(name.len() <= 64 && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'));
    // The metadata record at 256: (ptr, len) of the name at 0, the version at 64, the
    // description at 128. `execute` writes its result at 512 (the payload at 516); two bytes
    // that are not UTF-8 wait at 600; `cabi_realloc` bumps from 4096.
    let record: String = [(0u32, name.len() as u32), (64, 5), (128, 16)]
        .iter()
        .flat_map(|(ptr, len)| ptr.to_le_bytes().into_iter().chain(len.to_le_bytes()))
        .map(|b| format!("\\{b:02x}"))
        .collect();
    let body = match execute {
        Execute::Echo => {
            "(i32.store8 (i32.const 512) (i32.const 0))
      (i32.store (i32.const 516) (local.get $input))
      (i32.store (i32.const 520) (local.get $len))"
        }
        Execute::InvalidUtf8Error => {
            "(i32.store8 (i32.const 512) (i32.const 1))
      (i32.store8 (i32.const 516) (i32.const 0))
      (i32.store (i32.const 520) (i32.const 600))
      (i32.store (i32.const 524) (i32.const 2))
      (i32.store8 (i32.const 528) (i32.const 0))"
        }
        Execute::OutOfBoundsOutput => {
            "(i32.store8 (i32.const 512) (i32.const 0))
      (i32.store (i32.const 516) (i32.const 0x7fff0000))
      (i32.store (i32.const 520) (i32.const 0x10000))"
        }
    };
    let mut filler = String::new();
    for i in 0..shape.filler_functions {
        filler.push_str(&format!(
            "    (func $filler{i} (param $x i32) (result i32)\n      (local.get $x)\n"
        ));
        for j in 0..64 {
            filler.push_str(&format!(
                "      (i32.add (i32.const {})) (i32.mul (local.get $x)) (i32.xor (i32.const {j}))\n",
                i * 64 + j
            ));
        }
        filler.push_str("    )\n");
    }
    let spins = shape.describe_spins;
    let describe = format!(
        "(func (export \"describe\") (result i32) (local $i i64)
      (block $done (loop $again
        (br_if $done (i64.ge_u (local.get $i) (i64.const {spins})))
        (local.set $i (i64.add (local.get $i) (i64.const 1)))
        (br $again)))
      (i32.const 256))"
    );
    format!(
        r#"(component
  (core module $m
    (memory (export "memory") 1)
    (global $heap (mut i32) (i32.const 4096))
    (data (i32.const 0) "{name}")
    (data (i32.const 64) "0.1.0")
    (data (i32.const 128) "a generated echo")
    (data (i32.const 256) "{record}")
    (data (i32.const 600) "\ff\fe")
    (func (export "cabi_realloc") (param $old i32) (param $old_size i32) (param $align i32) (param $size i32) (result i32)
      (local $ptr i32) (local $end i32) (local $have i32)
      (local.set $ptr (i32.and (i32.add (global.get $heap) (i32.sub (local.get $align) (i32.const 1)))
                               (i32.sub (i32.const 0) (local.get $align))))
      (local.set $end (i32.add (local.get $ptr) (local.get $size)))
      (local.set $have (i32.shl (memory.size) (i32.const 16)))
      (if (i32.gt_u (local.get $end) (local.get $have))
        (then (if (i32.eq (memory.grow (i32.add (i32.shr_u (i32.sub (local.get $end) (local.get $have)) (i32.const 16))
                                                (i32.const 1)))
                          (i32.const -1))
                (then unreachable))))
      (if (local.get $old) (then (memory.copy (local.get $ptr) (local.get $old) (local.get $old_size))))
      (global.set $heap (local.get $end))
      (local.get $ptr))
    {describe}
{filler}
    (func (export "execute") (param i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i64) (param $input i32) (param $len i32)
      (result i32)
      {body}
      (i32.const 512)))
  (core instance $i (instantiate $m))
  (type $context (record (field "correlation-id" string) (field "traceparent" string) (field "tracestate" string)
    (field "tenant" string) (field "data" (list (tuple string string))) (field "deadline-ms" (option u64))))
  (type $error-kind (enum "invalid-input" "not-found" "unavailable" "timeout" "internal"))
  (type $error (record (field "kind" $error-kind) (field "message" string) (field "retryable" bool)))
  (type $metadata (record (field "name" string) (field "version" string) (field "description" string)))
  (func $describe (result $metadata) (canon lift (core func $i "describe") (memory (core memory $i "memory"))))
  (func $execute (param "ctx" $context) (param "input" (list u8)) (result (result (list u8) (error $error)))
    (canon lift (core func $i "execute") (memory (core memory $i "memory")) (realloc (core func $i "cabi_realloc"))))
  (component $interface
    (type $context (record (field "correlation-id" string) (field "traceparent" string) (field "tracestate" string)
      (field "tenant" string) (field "data" (list (tuple string string))) (field "deadline-ms" (option u64))))
    (import "import-type-context" (type $c (eq $context)))
    (type $error-kind (enum "invalid-input" "not-found" "unavailable" "timeout" "internal"))
    (import "import-type-error-kind" (type $k (eq $error-kind)))
    (type $error (record (field "kind" $k) (field "message" string) (field "retryable" bool)))
    (import "import-type-error" (type $e (eq $error)))
    (type $metadata (record (field "name" string) (field "version" string) (field "description" string)))
    (import "import-type-metadata" (type $md (eq $metadata)))
    (import "import-func-describe" (func $d (result $md)))
    (import "import-func-execute" (func $x (param "ctx" $c) (param "input" (list u8)) (result (result (list u8) (error $e)))))
    (export $ec "context" (type $c))
    (export $ek "error-kind" (type $k))
    (type $exported-error (record (field "kind" $ek) (field "message" string) (field "retryable" bool)))
    (export $ee "error" (type $e) (type (eq $exported-error)))
    (export $em "metadata" (type $md))
    (export "describe" (func $d) (func (result $em)))
    (export "execute" (func $x) (func (param "ctx" $ec) (param "input" (list u8)) (result (result (list u8) (error $ee))))))
  (instance $primitive (instantiate $interface
    (with "import-type-context" (type $context))
    (with "import-type-error-kind" (type $error-kind))
    (with "import-type-error" (type $error))
    (with "import-type-metadata" (type $metadata))
    (with "import-func-describe" (func $describe))
    (with "import-func-execute" (func $execute))))
  (export "tta:primitives/primitive@0.1.0" (instance $primitive)))"#
    )
}

/// The component bytes of primitive `name` whose `execute` does `execute`.
pub fn component(name: &str, execute: Execute) -> Vec<u8> {
    wat::parse_str(component_wat(name, execute)).expect("the generated component is valid text")
}

/// [`component`] with the extras of `shape`.
#[allow(dead_code, reason = "each user of this file takes the shapes it needs")]
pub fn component_shaped(name: &str, execute: Execute, shape: Shape) -> Vec<u8> {
    wat::parse_str(component_wat_shaped(name, execute, shape)).expect("the generated component is valid text")
}
