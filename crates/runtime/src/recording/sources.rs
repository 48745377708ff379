//! The clocks and random sources of a recorded or replayed call's WASI context: each read
//! goes through the call's tape.

use super::tape::{Clock, Tape};
use rand_core_010::{TryCryptoRng, TryRng};
use std::convert::Infallible;
use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant, SystemTime};
use wasmtime_wasi::{HostMonotonicClock, HostWallClock};

/// What the monotonic clock counts from.
static EPOCH: LazyLock<Instant> = LazyLock::new(Instant::now);

/// `wasi:clocks/wall-clock` through a tape.
pub(crate) struct WallClock(pub(crate) Arc<Tape>);

impl HostWallClock for WallClock {
    fn resolution(&self) -> Duration {
        Duration::from_nanos(1)
    }

    fn now(&self) -> Duration {
        Duration::from_nanos(self.0.clock(Clock::Wall, || {
            let since = SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .unwrap_or_default();
            u64::try_from(since.as_nanos()).unwrap_or(u64::MAX)
        }))
    }
}

/// `wasi:clocks/monotonic-clock` through a tape.
pub(crate) struct MonotonicClock(pub(crate) Arc<Tape>);

impl HostMonotonicClock for MonotonicClock {
    fn resolution(&self) -> u64 {
        1
    }

    fn now(&self) -> u64 {
        self.0.clock(Clock::Monotonic, || {
            u64::try_from(EPOCH.elapsed().as_nanos()).unwrap_or(u64::MAX)
        })
    }
}

/// `wasi:random/random` (`secure`) or `wasi:random/insecure` through a tape; the live
/// bytes are the operating system's CSPRNG's, through the thread-local generator.
pub(crate) struct Random {
    pub(crate) tape: Arc<Tape>,
    pub(crate) secure: bool,
}

impl Random {
    fn fill(&mut self, dst: &mut [u8]) {
        self.tape
            .random(self.secure, dst, |d| rand::RngCore::fill_bytes(&mut rand::rng(), d));
    }
}

impl TryRng for Random {
    type Error = Infallible;

    fn try_next_u32(&mut self) -> Result<u32, Infallible> {
        let mut bytes = [0; 4];
        self.fill(&mut bytes);
        Ok(u32::from_le_bytes(bytes))
    }

    fn try_next_u64(&mut self) -> Result<u64, Infallible> {
        let mut bytes = [0; 8];
        self.fill(&mut bytes);
        Ok(u64::from_le_bytes(bytes))
    }

    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Infallible> {
        self.fill(dst);
        Ok(())
    }
}

impl TryCryptoRng for Random {}
