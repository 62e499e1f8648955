//! The module's clock, replaceable so tests can move time without sleeping.

use std::fmt::Debug;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// A source of the current time, in microseconds since the Unix epoch.
pub trait Clock: Send + Sync + Debug + 'static {
    /// The current time, µs since the epoch.
    fn now(&self) -> i64;
}

/// The system's wall clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> i64 {
        match SystemTime::now().duration_since(UNIX_EPOCH) {
            Ok(since) => i64::try_from(since.as_micros()).unwrap_or(i64::MAX),
            // A clock set before 1970 reads as the epoch rather than a negative time.
            Err(_) => 0,
        }
    }
}

/// A clock that moves only when told to: for tests.
///
/// ```
/// use offline_module::{Clock, ManualClock};
///
/// let clock = ManualClock::new(1_000_000);
/// clock.advance_secs(2);
/// assert_eq!(clock.now(), 3_000_000);
/// ```
#[derive(Debug, Default)]
pub struct ManualClock(AtomicI64);

impl ManualClock {
    /// A clock reading `now` (µs since the epoch).
    pub fn new(now: i64) -> Self {
        Self(AtomicI64::new(now))
    }

    /// Sets the time.
    pub fn set(&self, now: i64) {
        self.0.store(now, Ordering::SeqCst);
    }

    /// Moves the time forward by `micros`.
    pub fn advance(&self, micros: i64) {
        self.0.fetch_add(micros, Ordering::SeqCst);
    }

    /// Moves the time forward by whole seconds.
    pub fn advance_secs(&self, seconds: i64) {
        self.advance(seconds.saturating_mul(1_000_000));
    }
}

impl Clock for ManualClock {
    fn now(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}
