//! `wasi:config/store` 0.2.0-rc.1: a guest reads its tenant's configuration and secrets.
//!
//! The version is the one wasmtime-wasi-config 48 implements and Spin and wasmCloud
//! components import, so a component that reads config there reads it here unchanged. The
//! values are the call's [`GuestConfig`] (its tenant's, with the primitive's overlay on top),
//! resolved before any call: a read is a hash lookup and a copy, it never fails, and a
//! missing key is `none`, not a trap. Secrets read here are scrubbed from the call's signals
//! by the sandbox ([`tta_core::redact`]).

use crate::recording::Tape;
use std::sync::Arc;
use tta_core::bindings::wasi::config::store;
use tta_core::guest_config::GuestConfig;
use wasmtime::component::{HasData, Linker};

/// The part of a call's state `wasi:config` works on.
pub struct ConfigCtx<'a> {
    /// The values of the call's tenant.
    pub config: &'a Arc<GuestConfig>,
    /// The primitive called, whose overlay applies.
    pub primitive: &'a str,
    /// The call's tape, when it is recorded or replayed (a secret is recorded as a marker).
    pub tape: Option<&'a Arc<Tape>>,
}

/// A store whose data offers `wasi:config/store`.
pub trait ConfigView: Send {
    /// The call's configuration and primitive.
    fn config(&mut self) -> ConfigCtx<'_>;
}

struct HasConfig;

impl HasData for HasConfig {
    type Data<'a> = ConfigCtx<'a>;
}

/// Adds `wasi:config/store` to `linker`.
pub fn add_to_linker<T: ConfigView + 'static>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
    store::add_to_linker::<T, HasConfig>(linker, T::config)
}

impl store::Host for ConfigCtx<'_> {
    fn get(&mut self, key: String) -> wasmtime::Result<Result<Option<String>, store::Error>> {
        let live = self.config.get(self.primitive, &key);
        Ok(Ok(match self.tape {
            Some(tape) => tape.config(&key, live, |v| self.config.redactor().is_secret(v)),
            None => live.map(str::to_owned),
        }))
    }

    fn get_all(&mut self) -> wasmtime::Result<Result<Vec<(String, String)>, store::Error>> {
        let live = self.config.all(self.primitive);
        Ok(Ok(match self.tape {
            Some(tape) => tape.config_all(live, |v| self.config.redactor().is_secret(v)),
            None => live,
        }))
    }
}
