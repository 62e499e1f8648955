//! The time the commands judge expiry and age by.

/// Now, in µs since the Unix epoch (the store's unit).
pub(crate) fn now() -> i64 {
    let micros = time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1000;
    i64::try_from(micros).unwrap_or(i64::MAX)
}
