//! The part of `write_messages` that is the same in every backend.

use std::collections::HashSet;

use crate::{NewMessage, QueueStats, Quota, Result, UserKey, WriteReport};

/// A batch checked and trimmed by the rules every backend shares, ready to be written.
///
/// A backend's `write_messages` is, in order: [`PreparedBatch::new`]; remove the user's
/// expired messages; [`skip_held_duplicates`](Self::skip_held_duplicates) with the dedupe
/// keys the queue holds; [`check_quota`](Self::check_quota) against what the queue holds; then
/// insert [`messages`](Self::messages) and return [`report`](Self::report). The last three
/// steps must be atomic with respect to other writers to the same user.
#[derive(Clone, Debug)]
pub struct PreparedBatch {
    messages: Vec<NewMessage>,
    duplicates: u64,
    expired: u64,
}

impl PreparedBatch {
    /// Validates every message (any invalid one fails the whole batch), then drops those
    /// expired at `now` and those repeating a dedupe key earlier in the batch.
    pub fn new(batch: Vec<NewMessage>, now: i64) -> Result<Self> {
        for message in &batch {
            message.validate()?;
        }
        let total = batch.len() as u64;
        let mut live: Vec<NewMessage> = batch.into_iter().filter(|m| !m.is_expired(now)).collect();
        let expired = total - live.len() as u64;
        let mut seen = HashSet::new();
        live.retain(|m| {
            m.dedupe_key
                .as_deref()
                .is_none_or(|key| seen.insert(key.to_owned()))
        });
        let duplicates = total - expired - live.len() as u64;
        Ok(Self {
            messages: live,
            duplicates,
            expired,
        })
    }

    /// The dedupe keys the batch carries, for a backend to look up.
    pub fn dedupe_keys(&self) -> impl Iterator<Item = &str> {
        self.messages.iter().filter_map(|m| m.dedupe_key.as_deref())
    }

    /// Drops the messages whose dedupe key the queue already holds.
    pub fn skip_held_duplicates(&mut self, mut is_held: impl FnMut(&str) -> bool) {
        let before = self.messages.len();
        self.messages
            .retain(|m| m.dedupe_key.as_deref().is_none_or(|key| !is_held(key)));
        self.duplicates += (before - self.messages.len()) as u64;
    }

    /// What the batch adds to the queue.
    pub fn stats(&self) -> QueueStats {
        QueueStats::of(&self.messages)
    }

    /// Checks the batch against `quota` given what the queue holds (expired messages already
    /// removed).
    pub fn check_quota(&self, user: &UserKey, quota: &Quota, held: QueueStats) -> Result<()> {
        quota.check(user, held, self.stats())
    }

    /// The messages to insert, in `seq` order.
    pub fn messages(&self) -> &[NewMessage] {
        &self.messages
    }

    /// Whether nothing is left to insert.
    pub fn is_empty(&self) -> bool {
        self.messages.is_empty()
    }

    /// What writing the batch did, once its messages are inserted.
    pub fn report(&self) -> WriteReport {
        WriteReport {
            stored: self.messages.len() as u64,
            duplicates: self.duplicates,
            expired: self.expired,
        }
    }

    /// The messages to insert and the report, for backends that move the messages into storage.
    pub fn into_parts(self) -> (Vec<NewMessage>, WriteReport) {
        let report = self.report();
        (self.messages, report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::OfflineError;

    fn msg(packet: &str) -> NewMessage {
        NewMessage::new(1, "a@example.com/r", "b@example.com", packet)
    }

    #[test]
    fn one_invalid_message_fails_the_batch() {
        let err = PreparedBatch::new(vec![msg("<ok/>"), msg("")], 0).unwrap_err();
        assert!(matches!(err, OfflineError::InvalidInput { .. }));
    }

    #[test]
    fn drops_expired_and_repeated_keys() {
        let batch = vec![
            msg("1").dedupe_key("k"),
            msg("2").expires_at(5),
            msg("3").dedupe_key("k"),
            msg("4").expires_at(6),
            msg("5"),
        ];
        let mut prepared = PreparedBatch::new(batch, 5).unwrap();
        assert_eq!(prepared.dedupe_keys().collect::<Vec<_>>(), ["k"]);
        prepared.skip_held_duplicates(|key| key == "absent");
        let (messages, report) = prepared.into_parts();
        let packets: Vec<&str> = messages.iter().map(|m| m.packet.as_str()).collect();
        assert_eq!(packets, ["1", "4", "5"]);
        assert_eq!(
            report,
            WriteReport {
                stored: 3,
                duplicates: 1,
                expired: 1
            }
        );
    }

    #[test]
    fn held_duplicates_leave_the_batch_and_the_quota() {
        let user: UserKey = "b@example.com".parse().unwrap();
        let mut prepared =
            PreparedBatch::new(vec![msg("1").dedupe_key("held"), msg("22")], 0).unwrap();
        prepared.skip_held_duplicates(|key| key == "held");
        assert_eq!(
            prepared.stats(),
            QueueStats {
                messages: 1,
                bytes: 2
            }
        );
        prepared
            .check_quota(
                &user,
                &Quota::messages(2),
                QueueStats {
                    messages: 1,
                    bytes: 9,
                },
            )
            .unwrap();
        assert_eq!(prepared.report().duplicates, 1);
    }

    #[test]
    fn the_views_of_a_batch_agree() {
        let cases = [
            (vec![], 0),
            (vec![msg("1").expires_at(1)], 0),
            (vec![msg("1").dedupe_key("k"), msg("2").dedupe_key("k")], 1),
            (vec![msg("1"), msg("2"), msg("3")], 3),
        ];
        for (batch, live) in cases {
            let prepared = PreparedBatch::new(batch, 1).unwrap();
            let seen: Vec<NewMessage> = prepared.messages().to_vec();
            assert_eq!(seen.len(), live);
            assert_eq!(prepared.is_empty(), live == 0);
            assert_eq!(prepared.stats(), QueueStats::of(&seen));
            let report = prepared.report();
            let (messages, parts_report) = prepared.into_parts();
            assert_eq!(
                messages, seen,
                "into_parts gives the messages messages() shows"
            );
            assert_eq!(parts_report, report);
            assert_eq!(report.stored, live as u64);
        }
    }
}
