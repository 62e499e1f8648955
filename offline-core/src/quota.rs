//! Per-user limits on an offline queue.

use std::fmt;

use crate::{OfflineError, QueueStats, Result, UserKey};

/// The most a user's queue may hold; `None` is no limit.
///
/// ```
/// use offline_core::Quota;
///
/// let quota = Quota::messages(100).with_max_bytes(1 << 20);
/// assert_eq!(quota.max_messages, Some(100));
/// assert_eq!(Quota::UNLIMITED.max_bytes, None);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Quota {
    /// Most messages held at once.
    pub max_messages: Option<u64>,
    /// Most packet bytes held at once.
    pub max_bytes: Option<u64>,
}

impl Quota {
    /// No limit at all.
    pub const UNLIMITED: Self = Self {
        max_messages: None,
        max_bytes: None,
    };

    /// A limit on the number of messages only (MongooseIM's `max_user_offline_messages`).
    pub const fn messages(max: u64) -> Self {
        Self {
            max_messages: Some(max),
            max_bytes: None,
        }
    }

    /// The same quota, also limited to `max` packet bytes.
    #[must_use]
    pub const fn with_max_bytes(mut self, max: u64) -> Self {
        self.max_bytes = Some(max);
        self
    }

    /// The quota rule, shared by every backend: `incoming` may join `stored` only if the sum
    /// stays within both limits. A batch that adds nothing is always admitted.
    pub fn check(&self, user: &UserKey, stored: QueueStats, incoming: QueueStats) -> Result<()> {
        if incoming.messages == 0 {
            return Ok(());
        }
        let over = |max: Option<u64>, held: u64, added: u64| {
            max.is_some_and(|max| held.saturating_add(added) > max)
        };
        if over(self.max_messages, stored.messages, incoming.messages)
            || over(self.max_bytes, stored.bytes, incoming.bytes)
        {
            return Err(OfflineError::QuotaExceeded {
                user: user.clone(),
                quota: *self,
                stored,
                incoming,
            });
        }
        Ok(())
    }
}

impl fmt::Display for Quota {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.max_messages, self.max_bytes) {
            (None, None) => f.write_str("no limit"),
            (Some(messages), None) => write!(f, "{messages} messages"),
            (None, Some(bytes)) => write!(f, "{bytes} bytes"),
            (Some(messages), Some(bytes)) => write!(f, "{messages} messages or {bytes} bytes"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats(messages: u64, bytes: u64) -> QueueStats {
        QueueStats { messages, bytes }
    }

    #[test]
    fn limits_are_inclusive() {
        let user: UserKey = "u@example.com".parse().unwrap();
        let quota = Quota::messages(3).with_max_bytes(30);
        quota.check(&user, stats(2, 20), stats(1, 10)).unwrap();
        let err = quota.check(&user, stats(2, 20), stats(2, 2)).unwrap_err();
        assert!(matches!(
            err,
            OfflineError::QuotaExceeded { stored, incoming, .. }
                if stored == stats(2, 20) && incoming == stats(2, 2)
        ));
        assert!(quota.check(&user, stats(0, 0), stats(1, 31)).is_err());
        assert_eq!(
            err.to_string(),
            "offline queue of u@example.com is full: 2 messages (20 bytes) held + \
             2 messages (2 bytes) incoming exceeds 3 messages or 30 bytes"
        );
    }

    #[test]
    fn empty_batch_is_admitted_even_over_quota() {
        let user: UserKey = "u@example.com".parse().unwrap();
        Quota::messages(1)
            .check(&user, stats(5, 5), stats(0, 0))
            .unwrap();
    }

    #[test]
    fn unlimited_admits_anything() {
        let user: UserKey = "u@example.com".parse().unwrap();
        Quota::UNLIMITED
            .check(&user, stats(u64::MAX, u64::MAX), stats(1, 1))
            .unwrap();
    }
}
