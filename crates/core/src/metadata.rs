//! What a primitive says about itself, in the host's own type: the three fields of the
//! 0.1.0 contract and what 0.2.0 adds to describe a tool (a title, JSON Schemas, hints),
//! with the contract version the component speaks. Everything past loading reads this,
//! never a version's generated type.

use crate::bindings;

/// The version of `tta:primitives` a component exports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Contract {
    /// `tta:primitives@0.1.0`.
    V0_1_0,
    /// `tta:primitives@0.2.0`.
    V0_2_0,
}

impl Contract {
    /// The version, as the WIT package names it.
    pub fn as_str(self) -> &'static str {
        match self {
            Contract::V0_1_0 => "0.1.0",
            Contract::V0_2_0 => "0.2.0",
        }
    }
}

/// Hints about a primitive's effects (MCP tool annotations); `None` leaves the default.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Hints {
    /// It changes nothing outside its output.
    pub read_only: Option<bool>,
    /// What it changes may be destroyed or overwritten.
    pub destructive: Option<bool>,
    /// Calling it again with the same input changes nothing more.
    pub idempotent: Option<bool>,
    /// It reaches things outside the host.
    pub open_world: Option<bool>,
}

/// A primitive's description of itself.
#[derive(Debug, Clone, PartialEq)]
pub struct Metadata {
    /// The name it is called by.
    pub name: String,
    /// Its version.
    pub version: String,
    /// One line saying what it does.
    pub description: String,
    /// A short title for people.
    pub title: Option<String>,
    /// The JSON Schema of its input, as JSON text (checked to be a JSON object at load).
    pub input_schema: Option<String>,
    /// The JSON Schema of its output, as JSON text (checked likewise).
    pub output_schema: Option<String>,
    /// Hints about its effects.
    pub hints: Hints,
    /// The contract version it speaks.
    pub contract: Contract,
}

impl From<bindings::Metadata> for Metadata {
    fn from(m: bindings::Metadata) -> Self {
        Metadata {
            name: m.name,
            version: m.version,
            description: m.description,
            title: None,
            input_schema: None,
            output_schema: None,
            hints: Hints::default(),
            contract: Contract::V0_1_0,
        }
    }
}

impl From<bindings::v2::Metadata> for Metadata {
    fn from(m: bindings::v2::Metadata) -> Self {
        Metadata {
            name: m.name,
            version: m.version,
            description: m.description,
            title: m.title,
            input_schema: m.input_schema,
            output_schema: m.output_schema,
            hints: Hints {
                read_only: m.hints.read_only,
                destructive: m.hints.destructive,
                idempotent: m.hints.idempotent,
                open_world: m.hints.open_world,
            },
            contract: Contract::V0_2_0,
        }
    }
}
