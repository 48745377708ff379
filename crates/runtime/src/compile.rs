//! Turning bytes into a primitive: checking the bytes, compiling (through the cache),
//! checking the world, asking the primitive to describe itself.
//!
//! Each check runs before the next so the error names the first real problem: a missing
//! file, not wasm, a core module, an invalid component, a component of another world.

use crate::cache::{ArtifactCache, Origin};
use crate::primitive::Primitive;
use crate::sandbox::contract::Pre;
use crate::sandbox::{self, CallEnv, CallState, DescribeFailure};
use sha2::{Digest, Sha256};
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;
use tta_core::config::Limits;
use tta_core::error::LoadError;
use tta_core::metadata::Metadata;
use tta_core::schema::{self, InputSchema};
use tta_telemetry::Metrics;
use wasmtime::component::types::ComponentItem;
use wasmtime::component::{Component, Linker};
use wasmtime::wasmparser::{KnownCustom, Parser, Payload};

/// The interfaces of our own package a primitive may import.
const TTA_IMPORTS: [&str; 6] = [
    "tta:primitives/telemetry@0.1.0",
    "tta:primitives/invoke@0.1.0",
    "tta:primitives/types@0.1.0",
    "tta:primitives/telemetry@0.2.0",
    "tta:primitives/invoke@0.2.0",
    "tta:primitives/types@0.2.0",
];

/// The imports through which a primitive calls others, one per contract version.
const INVOKE_IMPORTS: [&str; 2] = ["tta:primitives/invoke@0.1.0", "tta:primitives/invoke@0.2.0"];

/// The `wasi:otel` interfaces a primitive may import: the version this host implements.
const WASI_OTEL_IMPORTS: [&str; 4] = [
    "wasi:otel/types@0.2.0-rc.2",
    "wasi:otel/tracing@0.2.0-rc.2",
    "wasi:otel/logs@0.2.0-rc.2",
    "wasi:otel/metrics@0.2.0-rc.2",
];

/// The `wasi:config` interface a primitive may import: the version wasmtime-wasi-config 48
/// implements. An older draft (e.g. `0.2.0-draft`) is refused here, by name, not at link.
const WASI_CONFIG_IMPORTS: [&str; 1] = ["wasi:config/store@0.2.0-rc.1"];

/// The interface a primitive must export, in the oldest version the host loads (0.2.0's,
/// `tta:primitives/primitive@0.2.0`, is the other).
pub const PRIMITIVE_EXPORT: &str = "tta:primitives/primitive@0.1.0";

/// What compiling a component needs from its host.
pub struct Compiler<'a> {
    /// The environment `describe()` runs in.
    pub env: &'a Arc<CallEnv>,
    /// The linker the component is pre-linked with.
    pub linker: &'a Linker<CallState>,
    /// Where compiled artifacts are kept, if anywhere.
    pub cache: Option<&'a Arc<ArtifactCache>>,
    /// Where the primitive's call series are made.
    pub metrics: &'a Metrics,
    /// The host's limits, which `describe()` runs under unless the tenant's are given.
    pub limits: &'a Limits,
}

impl Compiler<'_> {
    /// Loads and validates the component at `path`.
    pub async fn load(&self, path: &Path) -> Result<Primitive, LoadError> {
        self.from_bytes(path, read(path)?, None).await
    }

    /// Validates and compiles `bytes` as the component at `path` (which need not exist yet: an
    /// upload is validated before it is written). `upload` holds the limits of the tenant
    /// whose upload this is: its `describe()` runs under them, and its metrics are its own.
    pub async fn from_bytes(
        &self,
        path: &Path,
        bytes: Vec<u8>,
        upload: Option<&Limits>,
    ) -> Result<Primitive, LoadError> {
        check_header(path, &bytes)?;

        let started = Instant::now();
        let engine = self.env.engine.clone();
        let cache = self.cache.cloned();
        let (bytes, compiled) = tokio::task::spawn_blocking(move || {
            let compiled = match &cache {
                Some(cache) => cache.load_or_compile(&engine, &bytes),
                None => Component::new(&engine, &bytes).map(|c| (c, Origin::Compiled)),
            };
            (bytes, compiled)
        })
        .await
        .map_err(|e| LoadError::Invalid {
            path: path.to_owned(),
            reason: format!("compilation panicked: {e}"),
        })?;
        let (component, origin) = compiled.map_err(|e| LoadError::Invalid {
            path: path.to_owned(),
            reason: format!("{e:#}"),
        })?;
        let compile_time = started.elapsed();

        let imports = check_imports(&self.env.engine, path, &component)?;
        let pre = self
            .linker
            .instantiate_pre(&component)
            .map_err(|e| LoadError::WrongWorld {
                path: path.to_owned(),
                reason: format!("{e:#}"),
            })?;
        let pre = Pre::new(pre).map_err(|e| LoadError::WrongWorld {
            path: path.to_owned(),
            reason: format!(
                "{e:#}; it exports [{}], and must export `{PRIMITIVE_EXPORT}` (or `@0.2.0`) with `describe` and `execute`",
                export_names(&self.env.engine, &component).join(", ")
            ),
        })?;

        let limits = upload.unwrap_or(self.limits);
        let metadata = sandbox::describe(self.env, &pre, limits)
            .await
            .map_err(|failure| match failure {
                DescribeFailure::Types(reason) => LoadError::WrongWorld {
                    path: path.to_owned(),
                    reason: format!(
                        "its exports do not have the types of `tta:primitives/primitive@{}`: {reason}",
                        pre.contract().as_str()
                    ),
                },
                DescribeFailure::Call(e) => LoadError::Describe {
                    path: path.to_owned(),
                    reason: e.to_string(),
                },
            })?;
        let input_check = check_metadata(path, &metadata)?;

        Ok(Primitive {
            input_check,
            metrics: match upload {
                Some(_) => self.metrics.owned_primitive(&metadata.name),
                None => self.metrics.primitive(&metadata.name),
            },
            metadata,
            path: path.to_owned(),
            size: bytes.len(),
            digest: hex::encode(Sha256::digest(&bytes)),
            language: source_language(&bytes),
            compile_time,
            origin,
            imports_invoke: imports.iter().any(|i| INVOKE_IMPORTS.contains(&i.as_str())),
            imports,
            pre,
        })
    }
}

/// The bytes of the component file at `path`.
pub fn read(path: &Path) -> Result<Vec<u8>, LoadError> {
    std::fs::read(path).map_err(|source| match source.kind() {
        std::io::ErrorKind::NotFound => LoadError::NotFound { path: path.to_owned() },
        _ => LoadError::Io {
            path: path.to_owned(),
            source,
        },
    })
}

fn check_header(path: &Path, bytes: &[u8]) -> Result<(), LoadError> {
    const MAGIC: &[u8; 4] = b"\0asm";
    if bytes.len() < 8 {
        if bytes.starts_with(MAGIC) || (!bytes.is_empty() && MAGIC.starts_with(bytes)) {
            return Err(LoadError::Truncated {
                path: path.to_owned(),
                len: bytes.len(),
            });
        }
        return Err(LoadError::NotWasm { path: path.to_owned() });
    }
    if !bytes.starts_with(MAGIC) {
        return Err(LoadError::NotWasm { path: path.to_owned() });
    }
    if Parser::is_core_wasm(bytes) {
        return Err(LoadError::CoreModule { path: path.to_owned() });
    }
    if !Parser::is_component(bytes) {
        return Err(LoadError::Invalid {
            path: path.to_owned(),
            reason: format!(
                "unsupported WebAssembly version/layer {:02x?}; expected a component (0d 00 01 00)",
                &bytes[4..8]
            ),
        });
    }
    Ok(())
}

/// Refuses imports this host does not provide, naming each one.
fn check_imports(engine: &wasmtime::Engine, path: &Path, component: &Component) -> Result<Vec<String>, LoadError> {
    let ty = component.component_type();
    let names: Vec<String> = ty.imports(engine).map(|(name, _)| name.to_owned()).collect();
    let unknown: Vec<&String> = names
        .iter()
        .filter(|name| {
            !TTA_IMPORTS.contains(&name.as_str())
                && !WASI_OTEL_IMPORTS.contains(&name.as_str())
                && !WASI_CONFIG_IMPORTS.contains(&name.as_str())
                && !is_wasi_p2(name)
        })
        .collect();
    if !unknown.is_empty() {
        let list: Vec<String> = unknown.iter().map(|n| format!("`{n}`")).collect();
        return Err(LoadError::WrongWorld {
            path: path.to_owned(),
            reason: format!(
                "it imports {}, which this host does not provide; a primitive may import only \
                 tta:primitives/{{telemetry,invoke}}@0.1.0 (or @0.2.0), WASI 0.2 (wasi:cli, wasi:clocks, wasi:random, ...) \
                 wasi:otel/{{tracing,logs,metrics}}@0.2.0-rc.2 and wasi:config/store@0.2.0-rc.1",
                list.join(", ")
            ),
        });
    }
    Ok(names)
}

/// A WASI 0.2 interface (`wasi:otel` and `wasi:config` are matched by exact version, above).
fn is_wasi_p2(name: &str) -> bool {
    name.starts_with("wasi:")
        && !name.starts_with("wasi:otel/")
        && !name.starts_with("wasi:config/")
        && name.contains("@0.2.")
}

fn export_names(engine: &wasmtime::Engine, component: &Component) -> Vec<String> {
    component
        .component_type()
        .exports(engine)
        .map(|(name, item)| match item.ty {
            ComponentItem::ComponentFunc(_) => format!("func {name}"),
            _ => name.to_owned(),
        })
        .collect()
}

/// Checks what a primitive said about itself; its input schema, compiled.
fn check_metadata(path: &Path, metadata: &Metadata) -> Result<Option<InputSchema>, LoadError> {
    let name = &metadata.name;
    let valid = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '_' | '.'))
        && name.chars().next().is_some_and(|c| c.is_ascii_alphanumeric());
    if !valid {
        return Err(LoadError::Describe {
            path: path.to_owned(),
            reason: format!(
                "name {name:?} is not usable: use 1 to 64 characters of a-z, 0-9, '-', '_', '.', starting with a letter or digit"
            ),
        });
    }
    let describe = |reason: String| LoadError::Describe {
        path: path.to_owned(),
        reason,
    };
    if metadata.title.as_ref().is_some_and(|t| t.chars().count() > MAX_TITLE) {
        return Err(describe(format!(
            "its title is over {MAX_TITLE} characters; keep it short"
        )));
    }
    let mut input_check = None;
    for (field, schema) in [
        ("input-schema", &metadata.input_schema),
        ("output-schema", &metadata.output_schema),
    ] {
        let Some(schema) = schema else { continue };
        if schema.len() > MAX_SCHEMA_BYTES {
            return Err(describe(format!(
                "its {field} is {} bytes, over {MAX_SCHEMA_BYTES}",
                schema.len()
            )));
        }
        let parsed: serde_json::Value = serde_json::from_str(schema).map_err(|e| {
            describe(format!(
                "its {field} is not JSON ({e}); return a JSON Schema as JSON text"
            ))
        })?;
        if !parsed.is_object() {
            return Err(describe(format!("its {field} is not a JSON Schema object")));
        }
        let compiled = InputSchema::compile(&parsed)
            .map_err(|e| describe(format!("its {field} is not a usable JSON Schema: {e}")))?;
        if field == "input-schema" {
            if !schema::describes_object(&parsed) {
                return Err(describe(
                    "its input-schema must have `\"type\": \"object\"` at the root: tool arguments are always a JSON object"
                        .to_owned(),
                ));
            }
            input_check = Some(compiled);
        }
    }
    Ok(input_check)
}

/// The longest `title` a primitive may give itself, in characters.
const MAX_TITLE: usize = 128;
/// The largest JSON Schema a primitive may describe its input or output with.
const MAX_SCHEMA_BYTES: usize = 64 << 10;

/// The source language named in the component's producers sections, e.g. `Rust`.
///
/// A component bundles several modules (a Rust guest links wasi-libc, written in C; a C
/// guest carries the WASI preview1 adapter, written in Rust), so the adapter's modules are
/// left out (they export the preview1 API), a language other than C wins when several are
/// named, and C (`C11`, `C17`, ...) is the answer only when alone.
pub fn source_language(bytes: &[u8]) -> Option<String> {
    /// What one module or component (and what it nests) says about itself.
    #[derive(Default)]
    struct Frame {
        languages: Vec<String>,
        processed_by: Vec<String>,
        is_adapter: bool,
    }
    let mut stack: Vec<Frame> = Vec::new();
    let mut whole = Frame::default();
    for payload in Parser::new(0).parse_all(bytes) {
        let Ok(payload) = payload else { break };
        match payload {
            Payload::Version { .. } => stack.push(Frame::default()),
            Payload::End(_) => {
                let Some(done) = stack.pop() else { continue };
                if !done.is_adapter {
                    let parent = stack.last_mut().unwrap_or(&mut whole);
                    parent.languages.extend(done.languages);
                    parent.processed_by.extend(done.processed_by);
                }
            }
            Payload::ExportSection(exports) => {
                let adapter = exports.into_iter().flatten().any(|e| e.name == "fd_write");
                if let Some(frame) = stack.last_mut() {
                    frame.is_adapter |= adapter;
                }
            }
            Payload::CustomSection(section) => {
                let Some(frame) = stack.last_mut() else { continue };
                match section.as_known() {
                    KnownCustom::Producers(reader) => {
                        for field in reader.into_iter().flatten() {
                            for value in field.values.into_iter().flatten() {
                                match field.name {
                                    "language" if !value.name.is_empty() => frame.languages.push(value.name.to_owned()),
                                    "processed-by" => frame.processed_by.push(value.name.to_ascii_lowercase()),
                                    _ => {}
                                }
                            }
                        }
                    }
                    // componentize-py names no language, but its modules are named after CPython.
                    KnownCustom::Name(names) => {
                        let cpython = names.into_iter().flatten().any(|name| {
                            matches!(name, wasmtime::wasmparser::Name::Module { name, .. }
                                if name.starts_with("libpython") || name.starts_with("componentize_py"))
                        });
                        if cpython {
                            frame.processed_by.push("componentize-py".to_owned());
                        }
                    }
                    _ => {}
                }
            }
            _ => {}
        }
    }
    let used = |tool: &str| whole.processed_by.iter().any(|t| t.contains(tool));
    let interpreter = if used("componentize-py") {
        Some("Python")
    } else if used("componentize-js") || used("componentizejs") {
        Some("JavaScript")
    } else {
        None
    };
    let is_c = |l: &str| l == "C" || (l.starts_with('C') && l.len() > 1 && l[1..].chars().all(|c| c.is_ascii_digit()));
    // rustc names no language of its own; the C a Rust module names is wasi-libc's.
    interpreter
        .map(str::to_owned)
        .or_else(|| whole.languages.iter().find(|l| !is_c(l)).cloned())
        .or_else(|| used("rustc").then(|| "Rust".to_owned()))
        .or_else(|| {
            whole
                .languages
                .first()
                .map(|l| if is_c(l) { "C".to_owned() } else { l.clone() })
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use tta_core::metadata::{Contract, Hints};

    fn with_input(schema: &str) -> Metadata {
        Metadata {
            name: "p".into(),
            version: "1".into(),
            description: String::new(),
            title: None,
            input_schema: Some(schema.to_owned()),
            output_schema: None,
            hints: Hints::default(),
            contract: Contract::V0_2_0,
        }
    }

    fn refusal(schema: &str) -> String {
        match check_metadata(Path::new("p.wasm"), &with_input(schema)) {
            Err(LoadError::Describe { reason, .. }) => reason,
            other => panic!("{schema}: {other:?}"),
        }
    }

    #[test]
    fn an_input_schema_is_an_object_schema_that_compiles_and_fetches_nothing() {
        let good = check_metadata(
            Path::new("p.wasm"),
            &with_input(r#"{"type":"object","required":["a"]}"#),
        );
        let compiled = good.expect("loads").expect("an input check");
        assert!(compiled.check(b"{}").is_err());
        assert!(refusal("{").contains("not JSON"));
        assert!(refusal("[]").contains("not a JSON Schema object"));
        assert!(refusal(r#"{"type":"string"}"#).contains("at the root"));
        assert!(refusal(r#"{"type":"object","properties":{"a":{"type":5}}}"#).contains("not a usable JSON Schema"));
        assert!(refusal(r#"{"type":"object","$ref":"http://127.0.0.1:1/s"}"#).contains("fetches no schema"));
    }
}
