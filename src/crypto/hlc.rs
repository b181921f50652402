//! Hybrid logical clock (Kulkarni, Demirbas et al., "Logical Physical Clocks
//! and Consistent Snapshots in Globally Distributed Databases", 2014): the
//! [`Hlc`] timestamp that orders record versions across bureaus, the
//! [`HlcClock`] that issues and merges them, and the [`WallClock`] source it
//! reads.
//!
//! An [`Hlc`] is a wall-clock time in milliseconds plus a 16-bit counter that
//! breaks ties and carries causality when wall clocks disagree. It has three
//! encodings, all ordered exactly like the value:
//!
//! * [`Hlc::to_i64`]: `wall_ms << 16 | counter`, for database columns;
//! * text (Display / FromStr / serde): `YYYY-MM-DDTHH:MM:SS.mmmZ+cccc`, the
//!   RFC 3339 UTC time with exactly three fractional digits, a `+`, and the
//!   counter as exactly four lower-case hex digits, for example
//!   `2026-11-23T08:49:35.123Z+0003`. Always 29 ASCII characters, so byte
//!   order of the strings is the order of the stamps;
//! * the fields, via [`Hlc::wall_ms`] and [`Hlc::counter`].

use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicI64, Ordering as AtomicOrdering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use chrono::{DateTime, NaiveDateTime, Utc};
use serde::de::{self, Deserialize, Deserializer, Visitor};
use serde::ser::{Serialize, Serializer};

/// Largest wall-clock value an [`Hlc`] holds: 2^47 − 1 ms after the Unix
/// epoch, in the year 6429. Keeps `wall_ms << 16 | counter` inside a
/// non-negative `i64` and the text form's year at four digits.
pub const MAX_WALL_MS: i64 = (1 << 47) - 1;

/// Length of the text form, `YYYY-MM-DDTHH:MM:SS.mmmZ+cccc`.
pub const TEXT_LEN: usize = 29;

/// chrono format of the text form's time part (24 characters).
const TIME_FORMAT: &str = "%Y-%m-%dT%H:%M:%S%.3fZ";

/// A hybrid logical clock timestamp, ordered by `(wall_ms, counter)`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Hlc {
    /// Milliseconds since the Unix epoch (UTC, leap seconds not counted).
    /// Invariant: `0 <= wall_ms <= MAX_WALL_MS` (= 2^47 − 1), so the packed
    /// `i64` is non-negative and the text form's year has four digits.
    /// Declared before `counter` so the derived `Ord` compares it first.
    wall_ms: i64,
    /// Tie-breaker among stamps with the same `wall_ms`.
    counter: u16,
}

/// Why a value is not an [`Hlc`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HlcError {
    /// Wall time before the Unix epoch or after [`MAX_WALL_MS`].
    #[error("HLC wall time {0} ms is outside 0..=2^47-1 ms since the Unix epoch")]
    WallOutOfRange(i64),
    /// A packed `i64` that is negative (no stamp packs to one).
    #[error("packed HLC {0} is negative")]
    NegativePacked(i64),
    /// Text that is not exactly `YYYY-MM-DDTHH:MM:SS.mmmZ+cccc`.
    #[error("HLC {input:?} is not of the form YYYY-MM-DDTHH:MM:SS.mmmZ+cccc (UTC, 3 fractional digits, 4 lower-case hex counter digits): {reason}")]
    Malformed {
        /// The offending text (truncated to 64 characters).
        input: String,
        /// What is wrong with it.
        reason: &'static str,
    },
}

impl Hlc {
    /// The smallest stamp: the Unix epoch, counter 0.
    pub const MIN: Hlc = Hlc {
        wall_ms: 0,
        counter: 0,
    };

    /// The largest stamp: [`MAX_WALL_MS`], counter `u16::MAX`.
    pub const MAX: Hlc = Hlc {
        wall_ms: MAX_WALL_MS,
        counter: u16::MAX,
    };

    /// A stamp from its parts; errors if `wall_ms` is outside
    /// `0..=MAX_WALL_MS`.
    pub const fn new(wall_ms: i64, counter: u16) -> Result<Hlc, HlcError> {
        if wall_ms < 0 || wall_ms > MAX_WALL_MS {
            return Err(HlcError::WallOutOfRange(wall_ms));
        }
        Ok(Hlc { wall_ms, counter })
    }

    /// Milliseconds since the Unix epoch, in `0..=MAX_WALL_MS`.
    pub const fn wall_ms(&self) -> i64 {
        self.wall_ms
    }

    /// The logical counter.
    pub const fn counter(&self) -> u16 {
        self.counter
    }

    /// `wall_ms << 16 | counter`: a non-negative `i64` ordered like the
    /// stamp, for database columns.
    pub const fn to_i64(&self) -> i64 {
        // No overflow: wall_ms <= 2^47 - 1, so the shift stays below 2^63.
        (self.wall_ms << 16) | self.counter as i64
    }

    /// Inverse of [`Hlc::to_i64`]. Every non-negative `i64` is a stamp.
    pub const fn from_i64(packed: i64) -> Result<Hlc, HlcError> {
        if packed < 0 {
            return Err(HlcError::NegativePacked(packed));
        }
        Ok(Hlc {
            // packed >= 0, so packed >> 16 <= 2^47 - 1.
            wall_ms: packed >> 16,
            // Keeps exactly the low 16 bits.
            counter: (packed & 0xffff) as u16,
        })
    }

    /// The wall-clock part as a UTC time.
    pub fn wall_time(&self) -> DateTime<Utc> {
        wall_to_datetime(self.wall_ms)
    }
}

/// UTC time of `ms` milliseconds since the epoch, for `0 <= ms <= MAX_WALL_MS`.
fn wall_to_datetime(ms: i64) -> DateTime<Utc> {
    // chrono represents years up to 262143; MAX_WALL_MS is in 6429, and
    // callers only pass values in 0..=MAX_WALL_MS (the `Hlc::wall_ms`
    // invariant, or a clamped wall clock), so the conversion always succeeds.
    // The fallback keeps this panic-free should that ever change.
    DateTime::<Utc>::from_timestamp_millis(ms).unwrap_or(DateTime::<Utc>::MIN_UTC)
}

impl fmt::Display for Hlc {
    /// `TIME_FORMAT` and the counter, written field by field (versions and audit events format
    /// a stamp each; chrono would parse the format string every time). Years are four digits:
    /// `wall_ms <= MAX_WALL_MS`, in 6429.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use chrono::{Datelike, Timelike};
        let t = self.wall_time();
        write!(
            f,
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z+{:04x}",
            t.year(),
            t.month(),
            t.day(),
            t.hour(),
            t.minute(),
            t.second(),
            t.timestamp_subsec_millis(),
            self.counter
        )
    }
}

impl fmt::Debug for Hlc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Hlc({self})")
    }
}

impl FromStr for Hlc {
    type Err = HlcError;

    fn from_str(s: &str) -> Result<Hlc, HlcError> {
        let malformed = |reason| HlcError::Malformed {
            input: s.chars().take(64).collect(),
            reason,
        };
        if !s.is_ascii() {
            return Err(malformed("non-ASCII character"));
        }
        if s.len() != TEXT_LEN {
            return Err(malformed("wrong length, expected 29 characters"));
        }
        // All ASCII, so every byte offset is a char boundary.
        let (time, counter) = s.split_at(24);
        let counter = counter
            .strip_prefix('+')
            .ok_or_else(|| malformed("missing '+' before the counter"))?;
        if !counter
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        {
            return Err(malformed("counter is not 4 lower-case hex digits"));
        }
        let counter =
            u16::from_str_radix(counter, 16).map_err(|_| malformed("counter is not hex"))?;
        let wall = NaiveDateTime::parse_from_str(time, TIME_FORMAT)
            .map_err(|_| malformed("not an RFC 3339 UTC time with milliseconds"))?
            .and_utc()
            .timestamp_millis();
        let hlc = Hlc::new(wall, counter)?;
        // Only the canonical spelling is accepted (this also refuses leap
        // second 60, which chrono would fold into the previous second).
        if hlc.wall_time().format(TIME_FORMAT).to_string() != time {
            return Err(malformed("not the canonical spelling of its time"));
        }
        Ok(hlc)
    }
}

impl Serialize for Hlc {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Hlc {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct HlcVisitor;

        impl Visitor<'_> for HlcVisitor {
            type Value = Hlc;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an HLC timestamp like \"2026-11-23T08:49:35.123Z+0003\"")
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<Hlc, E> {
                v.parse().map_err(E::custom)
            }
        }

        deserializer.deserialize_str(HlcVisitor)
    }
}

/// A source of wall-clock time in milliseconds since the Unix epoch.
pub trait WallClock: Send + Sync {
    /// The current time in milliseconds since the Unix epoch. May jump
    /// backwards; [`HlcClock`] copes.
    fn now_ms(&self) -> i64;
}

impl<C: WallClock + ?Sized> WallClock for Arc<C> {
    fn now_ms(&self) -> i64 {
        (**self).now_ms()
    }
}

/// The operating system's real-time clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl WallClock for SystemClock {
    fn now_ms(&self) -> i64 {
        Utc::now().timestamp_millis()
    }
}

/// A wall clock that only moves when told to, for tests. Clones share the
/// same time.
#[derive(Debug, Clone, Default)]
pub struct ManualClock(Arc<AtomicI64>);

impl ManualClock {
    /// A clock reading `ms`.
    pub fn new(ms: i64) -> Self {
        ManualClock(Arc::new(AtomicI64::new(ms)))
    }

    /// Sets the time to `ms` (which may be earlier than now).
    pub fn set(&self, ms: i64) {
        self.0.store(ms, AtomicOrdering::SeqCst);
    }

    /// Moves the time by `delta_ms` (negative moves it back), saturating.
    pub fn advance(&self, delta_ms: i64) {
        // fetch_update's closure always returns Some, so it cannot fail; the
        // Result carries only the previous value.
        let _ = self
            .0
            .fetch_update(AtomicOrdering::SeqCst, AtomicOrdering::SeqCst, |ms| {
                Some(ms.saturating_add(delta_ms))
            });
    }
}

impl WallClock for ManualClock {
    fn now_ms(&self) -> i64 {
        self.0.load(AtomicOrdering::SeqCst)
    }
}

/// A remote stamp too far ahead of the local wall clock to accept.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "remote HLC {remote} is {ahead_ms} ms ahead of the local wall clock ({local}), \
     more than the allowed skew of {max_skew_ms} ms",
    local = wall_to_datetime(*local_wall_ms).format(TIME_FORMAT)
)]
pub struct ClockSkewError {
    /// The refused remote stamp.
    pub remote: Hlc,
    /// The local wall clock when it was refused (ms since the epoch).
    pub local_wall_ms: i64,
    /// `remote.wall_ms() - local_wall_ms`, > `max_skew_ms`.
    pub ahead_ms: i64,
    /// The configured bound.
    pub max_skew_ms: i64,
}

/// Issues [`Hlc`] stamps for local events and merges stamps seen from other
/// bureaus. Thread-safe; share it behind an `Arc`.
#[derive(Debug)]
pub struct HlcClock<C: WallClock> {
    /// Source of physical time. Readings before the epoch count as 0 and
    /// readings past [`MAX_WALL_MS`] as `MAX_WALL_MS`.
    clock: C,
    /// How far (ms) a remote stamp's wall time may lead the local wall clock
    /// before [`HlcClock::observe`] refuses it. Invariant: `>= 0`.
    max_skew_ms: i64,
    /// The last stamp issued or merged. Invariant: every stamp returned by
    /// `now`/`observe` is greater than the one before (until `Hlc::MAX`).
    ///
    /// A `std::sync::Mutex`, not an async one: the critical section is a few
    /// integer operations with no `.await` and no I/O, so it is never held
    /// across a suspension point and a blocking lock is both correct and
    /// cheaper. A mutex rather than an `AtomicI64` compare-and-swap because
    /// reading the wall clock and updating the stamp must be one step for
    /// `observe`'s skew check to be consistent with the stamp it issues.
    /// Poisoning is ignored: the guarded value is a `Copy` stamp that is
    /// always valid, whatever a panicking holder was doing.
    last: Mutex<Hlc>,
}

impl<C: WallClock> HlcClock<C> {
    /// A clock reading `clock` that refuses remote stamps more than
    /// `max_skew` ahead of it. Starts at [`Hlc::MIN`]; use
    /// [`HlcClock::with_floor`] to resume above stamps already persisted.
    pub fn new(clock: C, max_skew: Duration) -> Self {
        HlcClock {
            clock,
            // Saturates: a skew beyond i64::MAX ms (292 million years)
            // means "accept anything".
            max_skew_ms: i64::try_from(max_skew.as_millis()).unwrap_or(i64::MAX),
            last: Mutex::new(Hlc::MIN),
        }
    }

    /// Makes every later stamp greater than `floor` (for example the largest
    /// stamp in the database at start-up, so a wall clock that went back
    /// while the server was down cannot reissue old stamps). No skew check.
    pub fn with_floor(self, floor: Hlc) -> Self {
        {
            let mut last = self.lock();
            *last = (*last).max(floor);
        }
        self
    }

    /// Makes every later stamp greater than `floor`, like [`Self::with_floor`] on a running
    /// clock: for a stamp this node's own database holds (another process of the node wrote it),
    /// so no skew check.
    pub fn raise(&self, floor: Hlc) {
        let mut last = self.lock();
        *last = (*last).max(floor);
    }

    /// The largest stamp issued or merged so far.
    pub fn last(&self) -> Hlc {
        *self.lock()
    }

    /// A stamp for a local event (or a message about to be sent).
    ///
    /// Strictly greater than every stamp this clock returned before, even if
    /// the wall clock stepped back, until [`Hlc::MAX`] (year 6429) is
    /// reached, where it saturates.
    pub fn now(&self) -> Hlc {
        let mut last = self.lock();
        let next = advance(*last, self.physical_ms(), None);
        *last = next;
        next
    }

    /// `n` stamps for local events, in increasing order, as `n` calls of [`Self::now`] would
    /// return them, under one lock: a bulk writer does not contend with the other threads
    /// stamping at the same time.
    pub fn now_many(&self, n: usize) -> Vec<Hlc> {
        let mut last = self.lock();
        let physical = self.physical_ms();
        (0..n)
            .map(|_| {
                let next = advance(*last, physical, None);
                *last = next;
                next
            })
            .collect()
    }

    /// Merges a stamp received from another bureau and returns a stamp for
    /// the receive event, greater than both `remote` and every stamp this
    /// clock returned before.
    ///
    /// Refuses (and does not merge) a `remote` whose wall time leads the
    /// local wall clock by more than the configured skew: accepting it would
    /// drag this clock, and every stamp issued after, into the future.
    pub fn observe(&self, remote: Hlc) -> Result<Hlc, ClockSkewError> {
        let mut last = self.lock();
        let physical = self.physical_ms();
        // No overflow: both values are in 0..=MAX_WALL_MS.
        let ahead_ms = remote.wall_ms - physical;
        if ahead_ms > self.max_skew_ms {
            return Err(ClockSkewError {
                remote,
                local_wall_ms: physical,
                ahead_ms,
                max_skew_ms: self.max_skew_ms,
            });
        }
        let next = advance(*last, physical, Some(remote));
        *last = next;
        Ok(next)
    }

    /// The wall clock clamped into `0..=MAX_WALL_MS`.
    fn physical_ms(&self) -> i64 {
        self.clock.now_ms().clamp(0, MAX_WALL_MS)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Hlc> {
        self.last.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// One HLC step (Kulkarni et al., Fig. 5): the new stamp after `last`, given
/// the physical time and, for a receive event, the remote stamp.
///
/// The wall part becomes the maximum of the three wall times. The counter
/// continues (+1) from whichever of `last` and `remote` already had that wall
/// time, taking the larger counter if both did, and restarts at 0 if only the
/// physical clock did. When the counter would pass `u16::MAX` the wall part
/// moves one millisecond ahead with counter 0 instead, which keeps the stamp
/// increasing at the cost of running 1 ms ahead of physical time.
fn advance(last: Hlc, physical_ms: i64, remote: Option<Hlc>) -> Hlc {
    let remote_wall = remote.map_or(i64::MIN, |r| r.wall_ms);
    let wall = last.wall_ms.max(physical_ms).max(remote_wall);
    let last_counter = (last.wall_ms == wall).then_some(last.counter);
    let remote_counter = remote.filter(|r| r.wall_ms == wall).map(|r| r.counter);
    let counter = match last_counter.max(remote_counter) {
        // Option's order puts None below Some, so this is the larger counter
        // among the stamps that already have this wall time.
        Some(c) => c.checked_add(1),
        None => Some(0),
    };
    match counter {
        Some(counter) => Hlc {
            wall_ms: wall,
            counter,
        },
        None if wall < MAX_WALL_MS => Hlc {
            wall_ms: wall + 1,
            counter: 0,
        },
        None => Hlc::MAX,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn hlc(wall_ms: i64, counter: u16) -> Hlc {
        Hlc::new(wall_ms, counter).unwrap()
    }

    // 2026-11-23T08:49:35.123Z
    const T: i64 = 1_795_423_775_123;

    fn clock_at(ms: i64) -> (ManualClock, HlcClock<ManualClock>) {
        let wall = ManualClock::new(ms);
        let clock = HlcClock::new(wall.clone(), Duration::from_secs(60));
        (wall, clock)
    }

    #[test]
    fn text_form() {
        assert_eq!(hlc(T, 3).to_string(), "2026-11-23T08:49:35.123Z+0003");
        assert_eq!(Hlc::MIN.to_string(), "1970-01-01T00:00:00.000Z+0000");
        assert_eq!(hlc(T, 0xbeef).to_string(), "2026-11-23T08:49:35.123Z+beef");
        let max = Hlc::MAX.to_string();
        assert_eq!(max.len(), TEXT_LEN);
        assert!(max.starts_with("6429-"), "{max}");
        assert!(max.ends_with("+ffff"), "{max}");
        assert_eq!(max.parse::<Hlc>().unwrap(), Hlc::MAX);
        assert_eq!(
            format!("{:?}", hlc(T, 3)),
            "Hlc(2026-11-23T08:49:35.123Z+0003)"
        );
    }

    #[test]
    fn text_parsing_is_strict() {
        let good = "2026-11-23T08:49:35.123Z+0003";
        assert_eq!(good.parse::<Hlc>().unwrap(), hlc(T, 3));
        for bad in [
            "2026-11-23T08:49:35.123Z+00003",
            "2026-11-23T08:49:35.123Z+003",
            "2026-11-23T08:49:35.123Z+000A",
            "2026-11-23T08:49:35.123Z-0003",
            "2026-11-23T08:49:35.123+00:00+0003",
            "2026-11-23T08:49:35.12Z+00003",
            "2026-11-23 08:49:35.123Z+0003",
            "2026-11-23t08:49:35.123Z+0003",
            "2026-11-23T08:49:35.123z+0003",
            "2026-11-23T08:49:60.123Z+0003",
            "2026-02-30T08:49:35.123Z+0003",
            "2026-11-23T24:00:00.000Z+0003",
            "2026-11-23T08:49:35,123Z+0003",
            "+026-11-23T08:49:35.123Z+0003",
            "1969-12-31T23:59:59.999Z+0000",
            "2026-11-23T08:49:35.123Z+00é",
            "",
        ] {
            assert!(bad.parse::<Hlc>().is_err(), "{bad:?} parsed");
        }
        let err = "1969-12-31T23:59:59.999Z+0000".parse::<Hlc>().unwrap_err();
        assert_eq!(err, HlcError::WallOutOfRange(-1));
    }

    #[test]
    fn serde_is_the_text_form() {
        let json = serde_json::to_string(&hlc(T, 3)).unwrap();
        assert_eq!(json, "\"2026-11-23T08:49:35.123Z+0003\"");
        assert_eq!(serde_json::from_str::<Hlc>(&json).unwrap(), hlc(T, 3));
        assert!(serde_json::from_str::<Hlc>("123").is_err());
    }

    #[test]
    fn pack_unpack() {
        assert_eq!(hlc(T, 3).to_i64(), (T << 16) | 3);
        assert_eq!(Hlc::from_i64((T << 16) | 3).unwrap(), hlc(T, 3));
        assert_eq!(Hlc::MIN.to_i64(), 0);
        assert_eq!(Hlc::MAX.to_i64(), i64::MAX);
        assert_eq!(Hlc::from_i64(i64::MAX).unwrap(), Hlc::MAX);
        assert_eq!(Hlc::from_i64(-1), Err(HlcError::NegativePacked(-1)));
        assert_eq!(Hlc::new(-1, 0), Err(HlcError::WallOutOfRange(-1)));
        assert_eq!(
            Hlc::new(MAX_WALL_MS + 1, 0),
            Err(HlcError::WallOutOfRange(MAX_WALL_MS + 1))
        );
    }

    #[test]
    fn ordering_is_wall_then_counter() {
        assert!(hlc(T, 5) < hlc(T + 1, 0));
        assert!(hlc(T, 5) > hlc(T, 4));
    }

    #[test]
    fn now_follows_the_wall_clock() {
        let (wall, clock) = clock_at(T);
        assert_eq!(clock.now(), hlc(T, 0));
        assert_eq!(clock.now(), hlc(T, 1));
        wall.advance(5);
        assert_eq!(clock.now(), hlc(T + 5, 0));
        assert_eq!(clock.last(), hlc(T + 5, 0));
    }

    #[test]
    fn monotonic_under_a_backwards_wall_clock() {
        let (wall, clock) = clock_at(T);
        let a = clock.now();
        wall.set(T - 10_000);
        let b = clock.now();
        let c = clock.now();
        assert!(a < b && b < c, "{a} {b} {c}");
        assert_eq!(b, hlc(T, 1));
        assert_eq!(c, hlc(T, 2));
        wall.set(-5);
        assert!(clock.now() > c);
    }

    #[test]
    fn counter_overflow_moves_wall_time() {
        let (_wall, clock) = clock_at(T);
        let clock = clock.with_floor(hlc(T, u16::MAX - 1));
        assert_eq!(clock.now(), hlc(T, u16::MAX));
        assert_eq!(clock.now(), hlc(T + 1, 0));
        assert_eq!(clock.now(), hlc(T + 1, 1));
        // Overflow through a merged remote stamp, too.
        let (_wall, clock) = clock_at(T);
        assert_eq!(clock.observe(hlc(T, u16::MAX)).unwrap(), hlc(T + 1, 0));
    }

    #[test]
    fn saturates_at_max() {
        let (_wall, clock) = clock_at(i64::MAX);
        let clock = clock.with_floor(Hlc::MAX);
        assert_eq!(clock.now(), Hlc::MAX);
    }

    #[test]
    fn observe_merges() {
        let (wall, clock) = clock_at(T);
        // Remote ahead (within skew): take its wall time, continue its counter.
        assert_eq!(clock.observe(hlc(T + 500, 7)).unwrap(), hlc(T + 500, 8));
        // Local events continue from the merged stamp though the wall lags.
        assert_eq!(clock.now(), hlc(T + 500, 9));
        // Remote behind: local stamp wins.
        assert_eq!(clock.observe(hlc(T - 1000, 40)).unwrap(), hlc(T + 500, 10));
        // Same wall time: larger counter + 1.
        assert_eq!(clock.observe(hlc(T + 500, 40)).unwrap(), hlc(T + 500, 41));
        assert_eq!(clock.observe(hlc(T + 500, 3)).unwrap(), hlc(T + 500, 42));
        // Physical clock passes both: counter restarts.
        wall.set(T + 2000);
        assert_eq!(clock.observe(hlc(T + 1000, 9)).unwrap(), hlc(T + 2000, 0));
    }

    #[test]
    fn skew_rejection() {
        let wall = ManualClock::new(T);
        let clock = HlcClock::new(wall, Duration::from_millis(1_000));
        // Exactly at the bound is accepted.
        assert!(clock.observe(hlc(T + 1_000, 0)).is_ok());
        let before = clock.last();
        let err = clock.observe(hlc(T + 1_250, 0)).unwrap_err();
        assert_eq!(err.ahead_ms, 1_250);
        assert_eq!(err.max_skew_ms, 1_000);
        assert_eq!(err.local_wall_ms, T);
        let text = err.to_string();
        assert!(text.contains("1250 ms ahead"), "{text}");
        assert!(text.contains("2026-11-23T08:49:35.123Z"), "{text}");
        assert!(text.contains("1000 ms"), "{text}");
        // A refused stamp is not merged.
        assert_eq!(clock.last(), before);
    }

    #[test]
    fn stamps_in_bulk_are_what_single_stamps_would_be() {
        let single = HlcClock::new(ManualClock::new(T), Duration::ZERO);
        let bulk = HlcClock::new(ManualClock::new(T), Duration::ZERO);
        single.observe(hlc(T, 7)).unwrap();
        bulk.observe(hlc(T, 7)).unwrap();
        let one_by_one: Vec<Hlc> = (0..5).map(|_| single.now()).collect();
        let many = bulk.now_many(5);
        assert_eq!(many, one_by_one);
        assert_eq!(many[0], hlc(T, 9));
        assert!(many.windows(2).all(|w| w[0] < w[1]));
        // The clock goes on after the last stamp handed out.
        assert!(bulk.now() > many[4]);
        assert!(bulk.now_many(0).is_empty());
    }

    #[test]
    fn zero_skew_accepts_only_the_present_and_past() {
        let clock = HlcClock::new(ManualClock::new(T), Duration::ZERO);
        assert!(clock.observe(hlc(T, 9)).is_ok());
        assert!(clock.observe(hlc(T + 1, 0)).is_err());
    }

    #[test]
    fn system_clock_is_sane_and_clock_is_thread_safe() {
        let now = SystemClock.now_ms();
        assert!(now > 1_700_000_000_000, "{now}");
        let clock = Arc::new(HlcClock::new(SystemClock, Duration::from_secs(1)));
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let clock = Arc::clone(&clock);
                std::thread::spawn(move || (0..1000).map(|_| clock.now()).collect::<Vec<_>>())
            })
            .collect();
        let mut all = Vec::new();
        for h in handles {
            let stamps = h.join().unwrap();
            assert!(stamps.windows(2).all(|w| w[0] < w[1]));
            all.extend(stamps);
        }
        let n = all.len();
        all.sort();
        all.dedup();
        assert_eq!(all.len(), n, "duplicate stamps across threads");
    }

    fn arb_hlc() -> impl Strategy<Value = Hlc> {
        prop_oneof![
            (0..=MAX_WALL_MS, any::<u16>()),
            // Stamps close together, to exercise ties on wall time.
            (T..T + 3, 0u16..4),
            (Just(MAX_WALL_MS), any::<u16>()),
        ]
        .prop_map(|(w, c)| hlc(w, c))
    }

    #[derive(Debug, Clone)]
    enum Step {
        SetWall(i64),
        Now,
        Observe(i64, u16),
    }

    fn arb_step() -> impl Strategy<Value = Step> {
        prop_oneof![
            (T - 5_000..T + 5_000).prop_map(Step::SetWall),
            Just(Step::Now),
            (T - 5_000..T + 5_000, any::<u16>()).prop_map(|(w, c)| Step::Observe(w, c)),
        ]
    }

    proptest! {
        #[test]
        fn string_round_trip_and_order(a in arb_hlc(), b in arb_hlc()) {
            let (sa, sb) = (a.to_string(), b.to_string());
            prop_assert_eq!(sa.len(), TEXT_LEN);
            // The hand-written Display is chrono's spelling of TIME_FORMAT.
            let chrono = format!("{}+{:04x}", a.wall_time().format(TIME_FORMAT), a.counter());
            prop_assert_eq!(&sa, &chrono);
            prop_assert_eq!(sa.parse::<Hlc>().unwrap(), a);
            prop_assert_eq!(a.cmp(&b), sa.cmp(&sb));
        }

        #[test]
        fn pack_round_trip_and_order(a in arb_hlc(), b in arb_hlc()) {
            prop_assert!(a.to_i64() >= 0);
            prop_assert_eq!(Hlc::from_i64(a.to_i64()).unwrap(), a);
            prop_assert_eq!(a.cmp(&b), a.to_i64().cmp(&b.to_i64()));
        }

        #[test]
        fn from_i64_accepts_every_non_negative(packed in 0..=i64::MAX) {
            prop_assert_eq!(Hlc::from_i64(packed).unwrap().to_i64(), packed);
        }

        /// Whatever the wall clock does, issued stamps strictly increase and
        /// a merged stamp exceeds the remote one.
        #[test]
        fn stamps_strictly_increase(steps in prop::collection::vec(arb_step(), 1..200)) {
            let wall = ManualClock::new(T);
            let clock = HlcClock::new(wall.clone(), Duration::from_millis(2_000));
            let mut prev = Hlc::MIN;
            let mut issued_any = false;
            for step in steps {
                let stamp = match step {
                    Step::SetWall(ms) => { wall.set(ms); continue; }
                    Step::Now => clock.now(),
                    Step::Observe(w, c) => {
                        let remote = hlc(w, c);
                        match clock.observe(remote) {
                            Ok(s) => { prop_assert!(s > remote); s }
                            Err(e) => {
                                prop_assert!(w - wall.now_ms() > 2_000, "{}", e);
                                continue;
                            }
                        }
                    }
                };
                prop_assert!(!issued_any || stamp > prev, "{} !> {}", stamp, prev);
                prop_assert!(stamp.wall_ms() >= wall.now_ms().min(MAX_WALL_MS));
                prev = stamp;
                issued_any = true;
            }
        }
    }
}
