//! Where the node reads the wall-clock time.
//!
//! Every deadline the node keeps is computed from [`Clock::now`]: when a failed delivery is
//! tried again, when an undeliverable message becomes a dead letter, when a console session
//! locks for idleness, when the next audit checkpoint is due, when a received referral is
//! purged. The node is given one clock at start-up and every layer reads that one, so a test
//! can move the whole node's sense of time.
//!
//! In production the clock is the system's ([`Clock::system`]). A test builds one on tokio's
//! clock ([`Clock::tokio`]) and runs under `tokio::time::pause`: then `tokio::time::advance`
//! (or tokio's auto-advance while everything sleeps) moves both the node's timers and its
//! dates, together, and an hour of retries takes a millisecond and goes the same way every time.
//!
//! Only wall-clock dates come from here. Durations measured inside one call (how long a
//! request took) use `Instant` directly, because they are never stored or compared across
//! calls.

use time::OffsetDateTime;

/// The node's source of the current date and time. Cheap to copy; every copy reads the same
/// source.
#[derive(Debug, Clone, Copy)]
pub struct Clock(Source);

#[derive(Debug, Clone, Copy)]
enum Source {
    /// The operating system's wall clock.
    System,
    /// `start`, moved on by however far tokio's clock has moved since `anchor`.
    ///
    /// Invariant: tokio's clock is monotonic, so this clock never goes backwards, unlike
    /// the system's, which an NTP step can move either way. That is right for tests, and wrong
    /// for a node in service, whose dates must agree with its peers' after such a step.
    Tokio {
        start: OffsetDateTime,
        anchor: tokio::time::Instant,
    },
}

impl Clock {
    /// The operating system's clock: what a node in service uses.
    pub fn system() -> Self {
        Self(Source::System)
    }

    /// A clock that reads `start` now and then follows tokio's clock. Under
    /// `tokio::time::pause` it stands still until tokio's time is advanced.
    pub fn tokio(start: OffsetDateTime) -> Self {
        Self(Source::Tokio {
            start,
            anchor: tokio::time::Instant::now(),
        })
    }

    /// The current date and time, in UTC.
    pub fn now(&self) -> OffsetDateTime {
        match self.0 {
            Source::System => OffsetDateTime::now_utc(),
            Source::Tokio { start, anchor } => {
                let elapsed = tokio::time::Instant::now().saturating_duration_since(anchor);
                start.saturating_add(
                    time::Duration::try_from(elapsed).unwrap_or(time::Duration::MAX),
                )
            }
        }
    }
}

impl Default for Clock {
    fn default() -> Self {
        Self::system()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test(start_paused = true)]
    async fn a_tokio_clock_moves_only_when_tokio_time_does() {
        let start = OffsetDateTime::from_unix_timestamp(1_800_000_000).expect("a valid date");
        let clock = Clock::tokio(start);
        assert_eq!(clock.now(), start);
        tokio::time::advance(Duration::from_secs(3600)).await;
        assert_eq!(clock.now(), start + time::Duration::hours(1));
        tokio::time::sleep(Duration::from_secs(60)).await;
        assert_eq!(clock.now(), start + time::Duration::minutes(61));
    }

    #[test]
    fn the_system_clock_reads_the_system_time() {
        let before = OffsetDateTime::now_utc();
        let read = Clock::system().now();
        assert!(read >= before);
        assert!(read - before < time::Duration::minutes(1));
    }
}
