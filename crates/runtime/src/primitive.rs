//! A loaded primitive: what it said about itself, where it came from, and its compiled,
//! pre-linked form, ready to instantiate once per call.

use crate::cache::Origin;
use crate::sandbox::Guest;
use crate::sandbox::contract::Pre;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tta_core::metadata::Metadata;
use tta_core::schema::{InputSchema, Mismatch};
use tta_telemetry::PrimitiveMetrics;

/// A loaded, validated, ready-to-call primitive.
pub struct Primitive {
    /// What it says about itself.
    pub metadata: Metadata,
    /// The file it came from.
    pub path: PathBuf,
    /// Size of the component in bytes.
    pub size: usize,
    /// SHA-256 of the component, hex.
    pub digest: String,
    /// The source language, from the producers section, if it says.
    pub language: Option<String>,
    /// Time to compile or fetch from the cache.
    pub compile_time: Duration,
    /// Compiled now or taken from the cache.
    pub origin: Origin,
    /// The interfaces it imports.
    pub imports: Vec<String>,
    pub(crate) imports_invoke: bool,
    pub(crate) pre: Pre,
    /// Its input schema, compiled when it was loaded.
    pub(crate) input_check: Option<InputSchema>,
    /// Cached metric handles, so a call never looks its series up by name.
    pub(crate) metrics: Arc<PrimitiveMetrics>,
}

impl Primitive {
    /// What the sandbox runs of it.
    pub(crate) fn guest(&self) -> Guest<'_> {
        Guest {
            pre: &self.pre,
            name: &self.metadata.name,
            version: &self.metadata.version,
            digest: &self.digest,
            path: &self.path,
        }
    }

    /// Checks `input` against the primitive's input schema, if it declares one: what a
    /// tenant with `validate_input` has done before the guest is instantiated.
    pub fn check_input(&self, input: &[u8]) -> Result<(), Mismatch> {
        self.input_check.as_ref().map_or(Ok(()), |schema| schema.check(input))
    }

    /// Whether it imports `tta:primitives/invoke`, so it may call other primitives.
    pub fn invokes(&self) -> bool {
        self.imports_invoke
    }

    /// Its metric handles, to make its series ahead of its first call.
    pub fn metrics(&self) -> &PrimitiveMetrics {
        &self.metrics
    }
}

impl std::fmt::Debug for Primitive {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Primitive")
            .field("name", &self.metadata.name)
            .field("version", &self.metadata.version)
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}
