//! `echo`: returns its input unchanged. The smallest possible primitive, used for benchmarks.

use tta_guest::{Context, Error, Metadata, Primitive};

struct Echo;

impl Primitive for Echo {
    fn describe() -> Metadata {
        Metadata::new("echo", env!("CARGO_PKG_VERSION"), env!("CARGO_PKG_DESCRIPTION"))
    }

    fn execute(_ctx: &Context, input: &[u8]) -> Result<Vec<u8>, Error> {
        Ok(input.to_vec())
    }
}

tta_guest::export!(Echo);
