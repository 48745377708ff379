//! The host side of the WIT contract `tta:primitives@0.1.0`, generated in this one place.
//!
//! Everything else in the host uses these types; nothing else runs `bindgen!`. The host
//! side of each import is a capability module under `imports/`. The
//! `invoke.call` import is async because it runs another guest; the telemetry imports
//! are synchronous and never fail, so a guest cannot trap the host through them.
//!
//! The world bound here is the published `primitive-plugin` plus the optional `wasi:otel`
//! 0.2.0-rc.2 imports (`wit/deps/otel`), so a guest instrumented with an OpenTelemetry SDK
//! for Spin or wasmCloud links unchanged; a guest that does not import them is not affected.
//! Its `wasi:clocks` types are wasmtime-wasi's, which provides those interfaces. It also binds
//! `wasi:config/store` 0.2.0-rc.1 (`wit/deps/config`, the version wasmtime-wasi-config 48
//! implements), through which a guest reads its tenant's configuration and secrets.

wasmtime::component::bindgen!({
    path: ["../../wit/0.1.0", "../../wit/deps/clocks", "../../wit/deps/otel", "../../wit/deps/config"],
    inline: "
        package tta:host;

        world primitive-plugin {
            include tta:primitives/primitive-plugin@0.1.0;
            import wasi:otel/tracing@0.2.0-rc.2;
            import wasi:otel/logs@0.2.0-rc.2;
            import wasi:otel/metrics@0.2.0-rc.2;
            import wasi:config/store@0.2.0-rc.1;
        }
    ",
    world: "tta:host/primitive-plugin",
    imports: {
        "tta:primitives/invoke.call": async | trappable,
        default: trappable,
    },
    exports: { default: async },
    with: {
        "tta:primitives/telemetry.span": crate::bindings::GuestSpan,
        "wasi:clocks": wasmtime_wasi::p2::bindings::clocks,
    },
});

pub use exports::tta::primitives::primitive::{Context, Error as WitError, Metadata};

/// The host's type of a guest's `telemetry.span` resource; a handle's `rep` is an index
/// into the call's spans (see `imports::telemetry`).
pub struct GuestSpan;
pub use tta::primitives::telemetry::{Level, Value};
pub use tta::primitives::types::ErrorKind;

impl PartialEq for Value {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Value::Str(a), Value::Str(b)) => a == b,
            (Value::Int(a), Value::Int(b)) => a == b,
            (Value::Float(a), Value::Float(b)) => a == b,
            (Value::Boolean(a), Value::Boolean(b)) => a == b,
            _ => false,
        }
    }
}

impl Level {
    /// The level named `name` (`trace`, `debug`, `info`, `warn` or `warning`, `error`; any case).
    pub fn parse(name: &str) -> Option<Level> {
        Some(match name.to_ascii_lowercase().as_str() {
            "trace" => Level::Trace,
            "debug" => Level::Debug,
            "info" => Level::Info,
            "warn" | "warning" => Level::Warn,
            "error" => Level::Error,
            _ => return None,
        })
    }
}

/// The host side of `tta:primitives@0.2.0`, which differs from 0.1.0 only in `metadata`:
/// its `telemetry` and `invoke` are the same functions under the new version's names (the
/// host serves both with one implementation, `imports::v2`), and its span resource is the
/// same host type.
#[allow(missing_docs, clippy::all)]
pub mod v2 {
    wasmtime::component::bindgen!({
        path: "../../wit/0.2.0",
        world: "tta:primitives/primitive-plugin@0.2.0",
        imports: {
            "tta:primitives/invoke.call": async | trappable,
            default: trappable,
        },
        exports: { default: async },
        with: {
            "tta:primitives/telemetry.span": crate::bindings::GuestSpan,
        },
    });

    pub use exports::tta::primitives::primitive::{Context, Error, Metadata};
    pub use tta::primitives::types::Hints;
}
