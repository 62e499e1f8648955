//! The store's algorithm, written once for every dialect.
//!
//! Every change to a user's queue happens in a transaction that first locks the user's row
//! in `offline_store_queue` (creating it for a write). The row carries the next seq and what
//! the queue holds, and every transaction that changes the queue updates it: so writers to
//! one user are serialised on every node sharing the database (on a Galera cluster two
//! nodes updating the row conflict at certification and the loser is retried), the quota is
//! checked against exact counts, seqs are taken in order and become visible in order, and a
//! pop cannot miss a message written concurrently.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use offline_core::{
    Domain, NewMessage, OfflineError, PreparedBatch, QueueStats, Quota, Result, StoredMessage,
    UserKey, WriteReport,
};
use sha2::{Digest as _, Sha256};

use crate::dialect::{Dialect, StatementLimits};
use crate::error::{BACKEND, Class, Failure, classify};
use crate::query::{Query, Session, Value};
use crate::rows::{
    Digest, Instant, MessageRow, NamedQueueRow, QueueRow, Seq, Size, UserRow, UserSize, Username,
};
use crate::sql;

/// Users handled per transaction by the purges and `remove_domain`.
const USERS_PER_CHUNK: usize = 256;

/// One attempt at an operation: takes a pooled connection and gives it back with the result.
type Attempt<'a, P, R> = Pin<Box<dyn Future<Output = (P, Result<R, Failure>)> + Send + 'a>>;

/// The store on one dialect's pool.
pub(crate) struct SqlStore<D: Dialect> {
    pool: D::Pool,
    limits: StatementLimits,
    conflict_retries: u32,
    /// How many lost connections a call may replace before it gives up: after a database
    /// restart every pooled connection is dead.
    lost_retries: u32,
    /// The turn of write transactions, where the database takes one writer at a time
    /// ([`Dialect::ONE_WRITER`]).
    writers: Option<tokio::sync::Mutex<()>>,
}

impl<D: Dialect> fmt::Debug for SqlStore<D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqlStore")
            .field("dialect", &D::NAME)
            .field("limits", &self.limits)
            .field("conflict_retries", &self.conflict_retries)
            .finish_non_exhaustive()
    }
}

impl<D: Dialect> SqlStore<D> {
    /// A store on `pool`.
    pub(crate) fn new(
        pool: D::Pool,
        limits: StatementLimits,
        conflict_retries: u32,
        pool_size: usize,
    ) -> Self {
        Self {
            pool,
            limits,
            conflict_retries,
            lost_retries: u32::try_from(pool_size)
                .unwrap_or(u32::MAX)
                .saturating_add(1),
            writers: D::ONE_WRITER.then(tokio::sync::Mutex::default),
        }
    }

    /// Runs `attempt` on a pooled connection until it succeeds, retrying conflicts from the
    /// start and replacing lost connections when nothing could have changed.
    async fn run<'a, R: Send>(
        &'a self,
        mut attempt: impl FnMut(D::Pooled) -> Attempt<'a, D::Pooled, R> + Send,
    ) -> Result<R> {
        let mut conflicts = 0;
        let mut lost = 0;
        loop {
            let conn = D::checkout(&self.pool)
                .await
                .map_err(|e| OfflineError::unavailable(BACKEND, e))?;
            let (conn, result) = attempt(conn).await;
            let (error, started) = match result {
                Ok(value) => return Ok(value),
                Err(Failure::Refused(error)) => return Err(error),
                Err(Failure::Db { error, started }) => (error, started),
            };
            match classify(&error) {
                Class::Conflict if conflicts < self.conflict_retries => {
                    conflicts += 1;
                    drop(conn);
                    tracing::debug!(dialect = D::NAME, attempt = conflicts, %error, "retrying");
                    tokio::time::sleep(backoff(conflicts)).await;
                }
                Class::Conflict => {
                    return Err(OfflineError::unavailable(
                        BACKEND,
                        format!(
                            "gave up after {} attempts lost to concurrent transactions: {error}",
                            conflicts + 1
                        ),
                    ));
                }
                Class::Lost => {
                    D::discard(conn);
                    if started || lost >= self.lost_retries {
                        return Err(OfflineError::unavailable(BACKEND, error));
                    }
                    lost += 1;
                    tracing::debug!(dialect = D::NAME, %error, "replacing a lost connection");
                }
                Class::TooLarge => {
                    D::discard(conn);
                    return Err(OfflineError::InvalidInput {
                        reason: "the statement is larger than the database accepts \
                                 (MariaDB's max_allowed_packet)"
                            .into(),
                        source: Some(error.into()),
                    });
                }
                Class::Refused => {
                    return Err(OfflineError::InvalidInput {
                        reason: "the database refused a value".into(),
                        source: Some(error.into()),
                    });
                }
                Class::Other => return Err(OfflineError::backend(BACKEND, error)),
            }
        }
    }

    pub(crate) async fn write_messages(
        &self,
        user: &UserKey,
        messages: Vec<NewMessage>,
        quota: Quota,
        now: i64,
    ) -> Result<WriteReport> {
        let batch = PreparedBatch::new(messages, now)?;
        let (batch, quota) = (&batch, &quota);
        let limits = self.limits;
        self.run(move |mut conn| {
            Box::pin(async move {
                // One message without a dedupe key is one statement where the dialect can: a
                // transaction of its own, one round trip.
                match write_one::<D>(&mut *conn, user, batch, quota, now).await {
                    Ok(Some(seq)) => {
                        tracing::trace!(%user, seq, "written in one statement");
                        return (conn, Ok(batch.report()));
                    }
                    Ok(None) => {}
                    Err(failure) => return (conn, Err(failure)),
                }
                let result = transaction(&self.writers, &mut *conn, async |conn: &mut D::Conn| {
                    write::<D>(conn, user, batch.clone(), quota, now, limits).await
                })
                .await;
                (
                    conn,
                    result.and_then(|outcome| outcome.map_err(Failure::Refused)),
                )
            })
        })
        .await
    }

    pub(crate) async fn pop_messages(
        &self,
        user: &UserKey,
        now: i64,
    ) -> Result<Vec<StoredMessage>> {
        let rows = self
            .run(move |mut conn| {
                Box::pin(async move {
                    let result = match D::POP_ONE {
                        // One statement is a transaction of its own: one round trip.
                        Some(sql) => {
                            let query = D::query(
                                sql,
                                [Value::Text(user.server()), Value::Text(user.user())],
                            );
                            conn.load(&query).await.map_err(Failure::from)
                        }
                        None => {
                            transaction(&self.writers, &mut *conn, async |conn: &mut D::Conn| {
                                pop::<D>(conn, user).await
                            })
                            .await
                        }
                    };
                    (conn, result)
                })
            })
            .await?;
        let mut messages = rows
            .into_iter()
            .filter(|row| !row.is_expired(now))
            .map(MessageRow::into_stored)
            .collect::<Result<Vec<_>>>()?;
        messages.sort_by_key(|m| m.seq);
        Ok(messages)
    }

    pub(crate) async fn fetch_messages(
        &self,
        user: &UserKey,
        after: Option<u64>,
        limit: Option<usize>,
        now: i64,
    ) -> Result<Vec<StoredMessage>> {
        let Ok(after) = i64::try_from(after.unwrap_or(0)) else {
            return Ok(Vec::new()); // no seq is that large
        };
        let limit = limit.map_or(i64::MAX, |l| i64::try_from(l).unwrap_or(i64::MAX));
        let statement = sql::fetch() + D::FETCH_LOCK;
        let statement = statement.as_str();
        let rows: Vec<MessageRow> = self
            .run(move |mut conn| {
                Box::pin(async move {
                    let query = D::query(
                        statement,
                        [
                            Value::Text(user.server()),
                            Value::Text(user.user()),
                            Value::Int(after),
                            Value::Int(now),
                            Value::Int(limit),
                        ],
                    );
                    let result = conn.load(&query).await.map_err(Failure::before_start);
                    (conn, result)
                })
            })
            .await?;
        rows.into_iter().map(MessageRow::into_stored).collect()
    }

    pub(crate) async fn remove_messages(&self, user: &UserKey, seqs: &[u64]) -> Result<u64> {
        let seqs: Vec<i64> = seqs
            .iter()
            .filter_map(|seq| i64::try_from(*seq).ok())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        if seqs.is_empty() {
            return Ok(0);
        }
        let (seqs, rows) = (&seqs, self.limits.rows);
        self.run(move |mut conn| {
            Box::pin(async move {
                let result = transaction(&self.writers, &mut *conn, async |conn: &mut D::Conn| {
                    remove_seqs::<D>(conn, user, seqs, rows).await
                })
                .await;
                (conn, result)
            })
        })
        .await
    }

    pub(crate) async fn count_messages(&self, user: &UserKey) -> Result<QueueStats> {
        let rows: Vec<QueueRow> = self
            .run(move |mut conn| {
                Box::pin(async move {
                    let query = D::query(
                        sql::READ_QUEUE,
                        [Value::Text(user.server()), Value::Text(user.user())],
                    );
                    let result = conn.load(&query).await.map_err(Failure::before_start);
                    (conn, result)
                })
            })
            .await?;
        rows.first().map_or(Ok(QueueStats::default()), held)
    }

    pub(crate) async fn list_users(
        &self,
        domain: Option<&Domain>,
        after: Option<&UserKey>,
        limit: usize,
    ) -> Result<Vec<UserKey>> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let query = match domain {
            Some(domain) => {
                let start = match after {
                    Some(after) if after.server() > domain.as_str() => return Ok(Vec::new()),
                    Some(after) if after.server() == domain.as_str() => after.user(),
                    _ => "",
                };
                D::query(
                    D::USERS_OF_SERVER,
                    [
                        Value::Text(domain.as_str()),
                        Value::Text(start),
                        Value::Int(limit),
                    ],
                )
            }
            None => {
                let (server, user) = after.map_or(("", ""), |a| (a.server(), a.user()));
                D::users_from(server, user, limit)
            }
        };
        let query = &query;
        let rows: Vec<UserRow> = self
            .run(move |mut conn| {
                Box::pin(async move {
                    let result = conn.load(query).await.map_err(Failure::before_start);
                    (conn, result)
                })
            })
            .await?;
        Ok(rows
            .into_iter()
            .map(|row| UserKey::from_normalized(row.server, row.username))
            .collect())
    }

    pub(crate) async fn remove_expired_messages(&self, domain: &Domain, now: i64) -> Result<u64> {
        self.purge(domain, Purge::Expired(now)).await
    }

    pub(crate) async fn remove_old_messages(&self, domain: &Domain, cutoff: i64) -> Result<u64> {
        self.purge(domain, Purge::Older(cutoff)).await
    }

    /// Removes one server's expired or old messages, a chunk of users per transaction,
    /// finding them through the expiry or age index.
    async fn purge(&self, domain: &Domain, purge: Purge) -> Result<u64> {
        let mut removed = 0;
        loop {
            let (candidates, bound) = match purge {
                Purge::Expired(now) => (sql::EXPIRED_USERS, now),
                Purge::Older(cutoff) => (sql::OLD_USERS, cutoff),
            };
            let query = D::query(
                candidates,
                [
                    Value::Text(domain.as_str()),
                    Value::Int(bound),
                    Value::Int(i64::try_from(USERS_PER_CHUNK).unwrap_or(i64::MAX)),
                ],
            );
            let users: BTreeSet<String> = self
                .load_rows::<Username>(&query)
                .await?
                .into_iter()
                .map(|row| row.username)
                .collect();
            if users.is_empty() {
                return Ok(removed);
            }
            let users: Vec<String> = users.into_iter().collect();
            let users = &users;
            removed += self
                .run(move |mut conn| {
                    Box::pin(async move {
                        let result =
                            transaction(&self.writers, &mut *conn, async |conn: &mut D::Conn| {
                                purge_users::<D>(conn, domain, users, purge).await
                            })
                            .await;
                        (conn, result)
                    })
                })
                .await?;
        }
    }

    pub(crate) async fn remove_user(&self, user: &UserKey) -> Result<u64> {
        self.run(move |mut conn| {
            Box::pin(async move {
                let result = transaction(&self.writers, &mut *conn, async |conn: &mut D::Conn| {
                    remove_user::<D>(conn, user).await
                })
                .await;
                (conn, result)
            })
        })
        .await
    }

    /// Empties every queue of the server, a chunk of users per transaction, in user order.
    pub(crate) async fn remove_domain(&self, domain: &Domain) -> Result<u64> {
        let mut removed = 0;
        let mut after = String::new();
        loop {
            let query = D::query(
                D::USERS_OF_SERVER,
                [
                    Value::Text(domain.as_str()),
                    Value::Text(&after),
                    Value::Int(i64::try_from(USERS_PER_CHUNK).unwrap_or(i64::MAX)),
                ],
            );
            let users: Vec<String> = self
                .load_rows::<UserRow>(&query)
                .await?
                .into_iter()
                .map(|row| row.username)
                .collect();
            let Some(last) = users.last().cloned() else {
                return Ok(removed);
            };
            let users = &users;
            removed += self
                .run(move |mut conn| {
                    Box::pin(async move {
                        let result =
                            transaction(&self.writers, &mut *conn, async |conn: &mut D::Conn| {
                                empty_queues::<D>(conn, domain, users).await
                            })
                            .await;
                        (conn, result)
                    })
                })
                .await?;
            after = last;
        }
    }

    /// Runs a read-only statement.
    async fn load_rows<R: crate::query::Row>(&self, query: &Query<'_>) -> Result<Vec<R>> {
        self.run(move |mut conn| {
            Box::pin(async move {
                let result = conn.load(query).await.map_err(Failure::before_start);
                (conn, result)
            })
        })
        .await
    }
}

/// Which messages a purge removes.
#[derive(Clone, Copy, Debug)]
enum Purge {
    /// Expired at this instant.
    Expired(i64),
    /// Stamped before this cutoff.
    Older(i64),
}

/// A random pause before the `attempt`th retry (from 1): between a quarter of a ceiling and
/// the ceiling, which is 4 ms doubled per attempt up to 256 ms, so that conflicting
/// transactions stop meeting.
fn backoff(attempt: u32) -> Duration {
    let ceiling = 2u64 << attempt.min(7);
    Duration::from_micros(fastrand::u64(ceiling * 250..=ceiling * 1000))
}

/// Runs `body` in a transaction, after its turn among `writers` when there is such a turn:
/// committed if it succeeds, rolled back if it fails. A transaction left open (the call was
/// cancelled, or the rollback failed) makes the pool drop the connection.
async fn transaction<C: Session, R>(
    writers: &Option<tokio::sync::Mutex<()>>,
    conn: &mut C,
    body: impl AsyncFnOnce(&mut C) -> Result<R, Failure>,
) -> Result<R, Failure> {
    let _turn = match writers {
        Some(writers) => Some(writers.lock().await),
        None => None,
    };
    conn.begin().await.map_err(Failure::before_start)?;
    match body(conn).await {
        Ok(value) => {
            conn.commit().await?;
            Ok(value)
        }
        Err(failure) => {
            if let Err(error) = conn.rollback().await {
                tracing::debug!(%error, "rollback failed; the connection will be dropped");
            }
            Err(failure)
        }
    }
}

/// What a queue row says the queue holds.
fn held(row: &QueueRow) -> Result<QueueStats> {
    match (u64::try_from(row.messages), u64::try_from(row.bytes)) {
        (Ok(messages), Ok(bytes)) => Ok(QueueStats { messages, bytes }),
        _ => Err(OfflineError::backend(
            BACKEND,
            format!(
                "a queue row holds {} messages of {} bytes",
                row.messages, row.bytes
            ),
        )),
    }
}

fn int(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// Locks (creating it if needed) the user's queue row.
async fn lock_or_create<D: Dialect>(
    conn: &mut D::Conn,
    user: &UserKey,
) -> Result<QueueRow, Failure> {
    let query = D::query(
        D::LOCK_OR_CREATE_QUEUE,
        [Value::Text(user.server()), Value::Text(user.user())],
    );
    let rows: Vec<QueueRow> = conn.load(&query).await?;
    rows.first().copied().ok_or_else(|| {
        Failure::Refused(OfflineError::backend(
            BACKEND,
            "locking a queue row returned no row",
        ))
    })
}

/// Locks the user's queue row, if there is one.
async fn lock<D: Dialect>(conn: &mut D::Conn, user: &UserKey) -> Result<Option<QueueRow>, Failure> {
    let query = D::query(
        D::LOCK_QUEUE,
        [Value::Text(user.server()), Value::Text(user.user())],
    );
    let rows: Vec<QueueRow> = conn.load(&query).await?;
    Ok(rows.first().copied())
}

/// Sets the user's queue row.
async fn update_queue<D: Dialect>(
    conn: &mut D::Conn,
    user: &UserKey,
    next_seq: i64,
    stats: QueueStats,
    expire_floor: Option<i64>,
) -> Result<(), Failure> {
    conn.execute(&update_queue_query::<D>(
        user,
        next_seq,
        stats,
        expire_floor,
    ))
    .await?;
    Ok(())
}

/// The statement that sets what the user's queue row carries.
fn update_queue_query<D: Dialect>(
    user: &UserKey,
    next_seq: i64,
    stats: QueueStats,
    expire_floor: Option<i64>,
) -> Query<'_> {
    D::query(
        sql::UPDATE_QUEUE,
        [
            Value::Int(next_seq),
            Value::Int(int(stats.messages)),
            Value::Int(int(stats.bytes)),
            Value::OptInt(expire_floor),
            Value::Text(user.server()),
            Value::Text(user.user()),
        ],
    )
}

fn digest(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

/// The write transaction's body. `Ok(Err(_))` is a refusal to commit anyway (the quota was
/// exceeded after expired messages were removed: their removal stands).
async fn write<D: Dialect>(
    conn: &mut D::Conn,
    user: &UserKey,
    mut batch: PreparedBatch,
    quota: &Quota,
    now: i64,
    limits: StatementLimits,
) -> Result<Result<WriteReport>, Failure> {
    let queue = lock_or_create::<D>(conn, user).await?;
    let mut stats = held(&queue)?;
    let mut expire_floor = queue.expire_floor;
    let mut changed = false;

    if expire_floor.is_some_and(|floor| floor <= now) {
        let query = D::query(
            sql::DELETE_EXPIRED_OF_USER,
            [
                Value::Text(user.server()),
                Value::Text(user.user()),
                Value::Int(now),
            ],
        );
        let removed: Vec<Size> = conn.load(&query).await?;
        stats = subtract(stats, removed.iter().map(|r| r.packet_bytes))?;
        let query = D::query(
            sql::EARLIEST_EXPIRY,
            [Value::Text(user.server()), Value::Text(user.user())],
        );
        let earliest: Vec<Instant> = conn.load(&query).await?;
        expire_floor = earliest.first().and_then(|row| row.at);
        changed = true;
    }

    let keys: Vec<[u8; 32]> = batch.dedupe_keys().map(digest).collect();
    if !keys.is_empty() {
        let mut found = HashSet::new();
        for chunk in keys.chunks(limits.rows) {
            let mut query = D::query(
                sql::HELD_DIGESTS,
                [Value::Text(user.server()), Value::Text(user.user())],
            );
            query.list(chunk.iter().map(|d| Value::OptBytes(Some(d.as_slice()))));
            let held: Vec<Digest> = conn.load(&query).await?;
            found.extend(held.into_iter().map(|row| row.dedupe_digest));
        }
        if !found.is_empty() {
            batch.skip_held_duplicates(|key| found.contains(digest(key).as_slice()));
        }
    }

    if let Err(refused) = batch.check_quota(user, quota, stats) {
        if !changed {
            return Err(Failure::Refused(refused));
        }
        update_queue::<D>(conn, user, queue.next_seq, stats, expire_floor).await?;
        return Ok(Err(refused));
    }

    if batch.is_empty() {
        if changed {
            update_queue::<D>(conn, user, queue.next_seq, stats, expire_floor).await?;
        }
        return Ok(Ok(batch.report()));
    }
    let added = i64::try_from(batch.messages().len()).unwrap_or(i64::MAX);
    let next_seq = queue.next_seq.checked_add(added).ok_or_else(|| {
        Failure::Refused(OfflineError::backend(BACKEND, "the user's seqs ran out"))
    })?;
    stats.messages += batch.stats().messages;
    stats.bytes += batch.stats().bytes;
    expire_floor = batch
        .messages()
        .iter()
        .filter_map(|m| m.expire)
        .chain(expire_floor)
        .min();
    let update = update_queue_query::<D>(user, next_seq, stats, expire_floor);
    insert::<D>(conn, user, batch.messages(), queue.next_seq, limits, update).await?;
    Ok(Ok(batch.report()))
}

/// Writes a batch of one message without a dedupe key in one statement, where the dialect
/// can ([`Dialect::WRITE_ONE`]); `None` when the general path must run: the statement does
/// not apply, or it found something held expired or the quota full.
async fn write_one<D: Dialect>(
    conn: &mut D::Conn,
    user: &UserKey,
    batch: &PreparedBatch,
    quota: &Quota,
    now: i64,
) -> Result<Option<i64>, Failure> {
    let (Some(sql), [message]) = (D::WRITE_ONE, batch.messages()) else {
        return Ok(None);
    };
    let size = int(message.size());
    let limit = |limit: Option<u64>| limit.map(|l| i64::try_from(l).unwrap_or(i64::MAX));
    if message.dedupe_key.is_some()
        || quota.max_messages == Some(0)
        || quota.max_bytes.is_some_and(|max| message.size() > max)
    {
        return Ok(None);
    }
    let query = D::query(
        sql,
        [
            Value::Text(user.server()),
            Value::Text(user.user()),
            Value::Int(size),
            Value::OptInt(message.expire),
            Value::Int(now),
            Value::OptInt(limit(quota.max_messages)),
            Value::OptInt(limit(quota.max_bytes)),
            Value::Int(message.timestamp),
            Value::OptInt(message.expire),
            Value::Text(&message.from),
            Value::Text(&message.to),
            Value::Text(&message.packet),
            Value::Int(size),
            Value::OptBytes(message.permanent_fields.as_deref()),
        ],
    );
    let rows: Vec<Seq> = conn.load(&query).await?;
    Ok(rows.first().map(|row| row.seq))
}

/// Inserts messages with seqs from `next_seq`, in as few statements as the limits allow,
/// then runs `then` (the queue row's update): in the last insert's statement where the
/// dialect chains writes, else on its own.
async fn insert<'a, D: Dialect>(
    conn: &mut D::Conn,
    user: &'a UserKey,
    messages: &'a [NewMessage],
    mut next_seq: i64,
    limits: StatementLimits,
    then: Query<'a>,
) -> Result<(), Failure> {
    let digests: Vec<Option<[u8; 32]>> = messages
        .iter()
        .map(|m| m.dedupe_key.as_deref().map(digest))
        .collect();
    let mut start = 0;
    while start < messages.len() {
        let mut end = start;
        let mut bytes = 0;
        while end < messages.len() && end - start < limits.rows {
            let size = row_bytes(&messages[end]);
            if end > start && bytes + size > limits.bytes {
                break;
            }
            if size > limits.bytes {
                return Err(Failure::Refused(OfflineError::invalid_input(format!(
                    "a message of {size} bytes is larger than the database accepts in one \
                     statement ({} bytes)",
                    limits.bytes
                ))));
            }
            bytes += size;
            end += 1;
        }
        let mut query = D::query(sql::INSERT_MESSAGES, []);
        for (i, message) in messages[start..end].iter().enumerate() {
            if i > 0 {
                query.push(", ");
            }
            let seq = next_seq;
            next_seq = next_seq.checked_add(1).ok_or_else(|| {
                Failure::Refused(OfflineError::backend(BACKEND, "the user's seqs ran out"))
            })?;
            query.row([
                Value::Text(user.server()),
                Value::Text(user.user()),
                Value::Int(seq),
                Value::Int(message.timestamp),
                Value::OptInt(message.expire),
                Value::Text(&message.from),
                Value::Text(&message.to),
                Value::Text(&message.packet),
                Value::Int(int(message.size())),
                Value::OptText(message.dedupe_key.as_deref()),
                Value::OptBytes(digests[start + i].as_ref().map(|d| d.as_slice())),
                Value::OptBytes(message.permanent_fields.as_deref()),
            ]);
        }
        start = end;
        if start == messages.len() && D::CHAINS_WRITES {
            return conn
                .execute(&D::chain(query, then))
                .await
                .map(|_| ())
                .map_err(Into::into);
        }
        conn.execute(&query).await?;
    }
    conn.execute(&then).await?;
    Ok(())
}

/// What a message weighs in a statement: its values and some room for the SQL around them.
fn row_bytes(message: &NewMessage) -> usize {
    const OVERHEAD: usize = 256;
    message.packet.len()
        + message.from.len()
        + message.to.len()
        + message.dedupe_key.as_ref().map_or(0, |k| k.len() + 32)
        + message.permanent_fields.as_ref().map_or(0, Vec::len)
        + OVERHEAD
}

/// `stats` less the removed messages of these sizes.
fn subtract(stats: QueueStats, sizes: impl Iterator<Item = i64>) -> Result<QueueStats, Failure> {
    let mut left = stats;
    for size in sizes {
        let size = u64::try_from(size).unwrap_or(0);
        left.messages = left.messages.checked_sub(1).ok_or_else(miscounted)?;
        left.bytes = left.bytes.checked_sub(size).ok_or_else(miscounted)?;
    }
    Ok(left)
}

fn miscounted() -> Failure {
    Failure::Refused(OfflineError::backend(
        BACKEND,
        "a queue row counts fewer messages or bytes than its queue holds",
    ))
}

/// The pop transaction's body: every message of the user, removed.
async fn pop<D: Dialect>(conn: &mut D::Conn, user: &UserKey) -> Result<Vec<MessageRow>, Failure> {
    let Some(queue) = lock::<D>(conn, user).await? else {
        return Ok(Vec::new());
    };
    let query = D::query(
        &sql::pop(),
        [Value::Text(user.server()), Value::Text(user.user())],
    );
    let rows: Vec<MessageRow> = conn.load(&query).await?;
    if !rows.is_empty() || queue.messages != 0 {
        update_queue::<D>(conn, user, queue.next_seq, QueueStats::default(), None).await?;
    }
    Ok(rows)
}

/// Removes some of the user's messages by seq.
async fn remove_seqs<D: Dialect>(
    conn: &mut D::Conn,
    user: &UserKey,
    seqs: &[i64],
    per_statement: usize,
) -> Result<u64, Failure> {
    let Some(queue) = lock::<D>(conn, user).await? else {
        return Ok(0);
    };
    let mut removed = Vec::new();
    for chunk in seqs.chunks(per_statement) {
        let mut query = D::query(
            sql::DELETE_SEQS,
            [Value::Text(user.server()), Value::Text(user.user())],
        );
        query.list(chunk.iter().map(|seq| Value::Int(*seq)));
        query.push(sql::RETURNING_SIZE);
        let sizes: Vec<Size> = conn.load(&query).await?;
        removed.extend(sizes.into_iter().map(|s| s.packet_bytes));
    }
    if !removed.is_empty() {
        let stats = subtract(held(&queue)?, removed.iter().copied())?;
        update_queue::<D>(conn, user, queue.next_seq, stats, queue.expire_floor).await?;
    }
    Ok(removed.len() as u64)
}

/// Removes the user's whole queue.
async fn remove_user<D: Dialect>(conn: &mut D::Conn, user: &UserKey) -> Result<u64, Failure> {
    let Some(queue) = lock::<D>(conn, user).await? else {
        return Ok(0);
    };
    let query = D::query(
        sql::DELETE_USER,
        [Value::Text(user.server()), Value::Text(user.user())],
    );
    let removed = conn.execute(&query).await?;
    if removed > 0 || queue.messages != 0 {
        update_queue::<D>(conn, user, queue.next_seq, QueueStats::default(), None).await?;
    }
    Ok(removed as u64)
}

/// Locks the queue rows of some of one server's users, in user order.
async fn lock_users<D: Dialect>(
    conn: &mut D::Conn,
    domain: &Domain,
    users: &[String],
) -> Result<Vec<NamedQueueRow>, Failure> {
    let mut query = D::query(sql::LOCK_QUEUES, [Value::Text(domain.as_str())]);
    query.list(users.iter().map(|u| Value::Text(u)));
    query.push(" ORDER BY username");
    query.push(D::FOR_UPDATE);
    Ok(conn.load(&query).await?)
}

/// The purge transaction's body for one chunk of users.
async fn purge_users<D: Dialect>(
    conn: &mut D::Conn,
    domain: &Domain,
    users: &[String],
    purge: Purge,
) -> Result<u64, Failure> {
    let locked = lock_users::<D>(conn, domain, users).await?;
    let (delete, bound) = match purge {
        Purge::Expired(now) => (sql::DELETE_EXPIRED_OF_USERS, now),
        Purge::Older(cutoff) => (sql::DELETE_OLD_OF_USERS, cutoff),
    };
    let mut query = D::query(delete, [Value::Text(domain.as_str()), Value::Int(bound)]);
    query.list(users.iter().map(|u| Value::Text(u)));
    query.push(sql::RETURNING_USER_SIZE);
    let removed: Vec<UserSize> = conn.load(&query).await?;
    if removed.is_empty() {
        return Ok(0);
    }
    let mut per_user: BTreeMap<&str, Vec<i64>> = BTreeMap::new();
    for row in &removed {
        per_user
            .entry(row.username.as_str())
            .or_default()
            .push(row.packet_bytes);
    }
    let mut counts = Vec::new();
    for row in &locked {
        if let Some(sizes) = per_user.get(row.username.as_str()) {
            let stats = QueueStats {
                messages: u64::try_from(row.messages).unwrap_or(0),
                bytes: u64::try_from(row.bytes).unwrap_or(0),
            };
            counts.push((
                row.username.as_str(),
                subtract(stats, sizes.iter().copied())?,
            ));
        }
    }
    if !counts.is_empty() {
        set_counts::<D>(conn, domain, &counts).await?;
    }
    Ok(removed.len() as u64)
}

/// Sets the counts of several of one server's queues in one statement.
async fn set_counts<D: Dialect>(
    conn: &mut D::Conn,
    domain: &Domain,
    counts: &[(&str, QueueStats)],
) -> Result<(), Failure> {
    let mut query = D::query(
        "UPDATE offline_store_queue SET messages = CASE username",
        [],
    );
    for (user, stats) in counts {
        query.push(" WHEN ").param(Value::Text(user));
        query.push(" THEN ").param(Value::Int(int(stats.messages)));
    }
    query.push(" END, bytes = CASE username");
    for (user, stats) in counts {
        query.push(" WHEN ").param(Value::Text(user));
        query.push(" THEN ").param(Value::Int(int(stats.bytes)));
    }
    query
        .push(" END WHERE server = ")
        .param(Value::Text(domain.as_str()));
    query.push(" AND username IN ");
    query.list(counts.iter().map(|(user, _)| Value::Text(user)));
    conn.execute(&query).await?;
    Ok(())
}

/// The `remove_domain` transaction's body for one chunk of users.
async fn empty_queues<D: Dialect>(
    conn: &mut D::Conn,
    domain: &Domain,
    users: &[String],
) -> Result<u64, Failure> {
    lock_users::<D>(conn, domain, users).await?;
    let mut query = D::query(sql::DELETE_USERS, [Value::Text(domain.as_str())]);
    query.list(users.iter().map(|u| Value::Text(u)));
    let removed = conn.execute(&query).await?;
    let mut query = D::query(sql::EMPTY_QUEUES, [Value::Text(domain.as_str())]);
    query.list(users.iter().map(|u| Value::Text(u)));
    conn.execute(&query).await?;
    Ok(removed as u64)
}
