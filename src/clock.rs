//! Time as keyward's state files store it: whole seconds since the Unix epoch.
//!
//! Every decision that depends on time (cache freshness, outage hold, throttle windows, record
//! stamps) takes a `now` from its caller, so tests pass any instant; this module only converts.
//! A clock before 1970 reads as 0, never a panic (the login path must not panic).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// `t` in whole seconds since the epoch; 0 for an instant before it.
pub fn unix_secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// The instant `secs` seconds after the epoch (the inverse of `unix_secs`).
pub fn from_unix_secs(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unix_secs_round_trips_and_clamps_before_the_epoch() {
        assert_eq!(unix_secs(from_unix_secs(1_795_438_801)), 1_795_438_801);
        assert_eq!(unix_secs(UNIX_EPOCH + Duration::from_millis(1_999)), 1);
        assert_eq!(unix_secs(UNIX_EPOCH - Duration::from_secs(5)), 0);
    }
}
