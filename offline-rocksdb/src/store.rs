//! The store itself, blocking: every method runs on a thread that may block (see
//! [`RocksBackend`](crate::RocksBackend), which calls them through `spawn_blocking`).
//!
//! Every change to a user's queue happens under that user's lock (one of a fixed set of
//! locks, picked by hashing the user), in one `WriteBatch`, so the quota check and the insert
//! are atomic within the process and a pop takes exactly what it returns. Seqs come from one
//! counter, taken under the user's lock, so each user's seqs increase in commit order; every
//! batch that stores messages also merges its highest seq into the persisted high-water mark
//! with a `max` merge operator, so the mark never goes back, whatever order batches commit in.

use std::cell::Cell;
use std::collections::BTreeMap;
use std::hash::{BuildHasher, RandomState};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use offline_core::{
    Domain, NewMessage, OfflineError, PreparedBatch, QueueStats, Quota, Result, StoredMessage,
    UserKey, WriteReport,
};
use parking_lot::{Mutex, MutexGuard};
use rocksdb::{
    BlockBasedOptions, Cache, ColumnFamily, ColumnFamilyDescriptor, DB, DBCompressionType,
    Direction, IteratorMode, MergeOperands, Options, ReadOptions, ReadTier, WriteBatch,
    WriteOptions,
};

use crate::codec::{self, Corrupt, QueueRecord};
use crate::error::{BACKEND, OpenError, backend};
use crate::{Compression, RocksConfig, keys};

/// The on-disk format this build reads and writes.
pub(crate) const FORMAT_VERSION: u64 = 2;
/// Format versions this build opens: format 1 (`users` values without an expiry floor) is
/// upgraded in place, its values read as they are.
const READABLE_FORMATS: std::ops::RangeInclusive<u64> = 1..=FORMAT_VERSION;

const MESSAGES: &str = "messages";
const USERS: &str = "users";
const DEDUPE: &str = "dedupe";
const USER_EXPIRY: &str = "user_expiry";
const EXPIRY: &str = "expiry";
const AGE: &str = "age";
const META: &str = "meta";
const FAMILIES: [&str; 7] = [MESSAGES, USERS, DEDUPE, USER_EXPIRY, EXPIRY, AGE, META];

/// `meta` keys.
const FORMAT_KEY: &[u8] = b"format";
const HIGH_WATER_KEY: &[u8] = b"seq_high_water";

/// Locks users are hashed onto.
const USER_LOCKS: usize = 256;
/// Index entries a purge reads before it removes them.
const PURGE_CHUNK: usize = 1024;

/// A key and its value, as an iterator yields them.
type Entry = (Box<[u8]>, Box<[u8]>);

thread_local! {
    /// Set while a call runs in memory-only mode ([`Store::try_in_memory`]) on this thread.
    static MEMORY_ONLY: Cell<bool> = const { Cell::new(false) };
}

/// Memory-only mode on this thread until dropped (also when `work` panics).
struct MemoryOnly;

impl MemoryOnly {
    fn enter() -> Self {
        MEMORY_ONLY.set(true);
        Self
    }
}

impl Drop for MemoryOnly {
    fn drop(&mut self) {
        MEMORY_ONLY.set(false);
    }
}

/// A call in memory-only mode found the user's lock taken.
#[derive(Debug, thiserror::Error)]
#[error("the user's lock is taken")]
struct WouldBlock;

/// Read options: in memory-only mode, a read that would go to disk fails as `Incomplete`.
fn read_options() -> ReadOptions {
    let mut options = ReadOptions::default();
    if MEMORY_ONLY.get() {
        options.set_read_tier(ReadTier::BlockCache);
    }
    options
}

/// Whether `error` says a memory-only call would have waited.
fn would_block(error: &OfflineError) -> bool {
    let Some(source) = std::error::Error::source(error) else {
        return false;
    };
    source.is::<WouldBlock>()
        || source
            .downcast_ref::<rocksdb::Error>()
            .is_some_and(|e| e.kind() == rocksdb::ErrorKind::Incomplete)
}

/// An open store.
pub(crate) struct Store {
    db: DB,
    path: PathBuf,
    sync_writes: bool,
    locks: Box<[Mutex<()>]>,
    hasher: RandomState,
    /// The next seq to hand out.
    next_seq: AtomicU64,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("path", &self.path)
            .field("sync_writes", &self.sync_writes)
            .finish_non_exhaustive()
    }
}

/// The `max` merge of `u64` values: the seq high-water mark only goes up, in whatever order
/// batches commit. A value that does not decode fails the merge, so RocksDB reports the
/// corruption instead of the mark going back.
fn merge_max(_key: &[u8], existing: Option<&[u8]>, operands: &MergeOperands) -> Option<Vec<u8>> {
    let mut highest = 0;
    for value in existing.into_iter().chain(operands.iter()) {
        highest = highest.max(codec::decode_u64(value, "seq high-water mark").ok()?);
    }
    Some(highest.to_be_bytes().to_vec())
}

/// Checks that an existing directory holds an offline store of this format, before anything
/// is written to it.
fn check_existing(path: &Path, families: &[String]) -> Result<(), OpenError> {
    let has_meta = families.iter().any(|family| family == META);
    let db = DB::open_cf_for_read_only(&Options::default(), path, families, false)
        .map_err(|e| OpenError::from_rocksdb(path, e))?;
    if !has_meta {
        return Err(OpenError::NotAnOfflineStore {
            path: path.to_owned(),
        });
    }
    let format = db
        .cf_handle(META)
        .map(|meta| db.get_pinned_cf(meta, FORMAT_KEY))
        .transpose()
        .map_err(|e| OpenError::from_rocksdb(path, e))?
        .flatten();
    match format.map(|value| codec::decode_u64(&value, "format version")) {
        None => Ok(()),
        Some(Ok(found)) if READABLE_FORMATS.contains(&found) => Ok(()),
        Some(Ok(found)) => Err(OpenError::IncompatibleFormat {
            path: path.to_owned(),
            found,
            expected: FORMAT_VERSION,
        }),
        Some(Err(e)) => Err(OpenError::Corrupted {
            path: path.to_owned(),
            detail: e.to_string(),
        }),
    }
}

impl Store {
    /// Opens (creating if needed) the store `config` names.
    pub(crate) fn open(config: &RocksConfig) -> Result<Self, OpenError> {
        let path = config.path.as_path();
        if let Ok(families) = DB::list_cf(&Options::default(), path) {
            check_existing(path, &families)?;
        }
        let mut options = Options::default();
        options.create_if_missing(true);
        options.create_missing_column_families(true);
        // Memtables of every family together; the write-ahead log is kept short, so that
        // recovery after a crash is quick, and RocksDB's own logs do not pile up.
        options.set_db_write_buffer_size(config.write_buffer_bytes);
        options.set_max_total_wal_size(256 << 20);
        options.set_keep_log_file_num(4);
        // The column families flush together, so that after a crash the write-ahead log never
        // has to be replayed for some families and not others (which RocksDB reports as
        // "SST file contains data beyond the point of corruption").
        options.set_atomic_flush(true);
        if let Some(files) = config.max_open_files {
            options.set_max_open_files(i32::try_from(files).unwrap_or(i32::MAX));
        }
        let cache = Cache::new_lru_cache(config.block_cache_bytes);
        let families = FAMILIES.map(|name| {
            let mut family = Options::default();
            let mut table = BlockBasedOptions::default();
            table.set_block_cache(&cache);
            table.set_bloom_filter(10.0, false);
            family.set_block_based_table_factory(&table);
            family.set_write_buffer_size(config.write_buffer_bytes / 2);
            family.set_compression_type(match config.compression {
                Compression::Lz4 => DBCompressionType::Lz4,
                Compression::None => DBCompressionType::None,
            });
            if name == META {
                family.set_merge_operator_associative("offline_seq_max", merge_max);
            }
            ColumnFamilyDescriptor::new(name, family)
        });
        let db = DB::open_cf_descriptors(&options, path, families)
            .map_err(|e| OpenError::from_rocksdb(path, e))?;
        let store = Self {
            db,
            path: path.to_owned(),
            sync_writes: config.sync_writes,
            locks: (0..USER_LOCKS).map(|_| Mutex::new(())).collect(),
            hasher: RandomState::new(),
            next_seq: AtomicU64::new(1),
        };
        let corrupted = |e: OfflineError| OpenError::Corrupted {
            path: path.to_owned(),
            detail: e.to_string(),
        };
        if store
            .meta_u64(FORMAT_KEY, "format version")
            .map_err(corrupted)?
            != Some(FORMAT_VERSION)
        {
            let mut batch = WriteBatch::default();
            batch.put_cf(store.cf(META), FORMAT_KEY, FORMAT_VERSION.to_be_bytes());
            store
                .db
                .write_opt(batch, &store.write_options())
                .map_err(|e| OpenError::from_rocksdb(path, e))?;
        }
        let high_water = store
            .meta_u64(HIGH_WATER_KEY, "seq high-water mark")
            .map_err(corrupted)?
            .unwrap_or(0);
        store.next_seq.store(high_water + 1, Ordering::SeqCst);
        Ok(store)
    }

    /// The database directory.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    fn meta_u64(&self, key: &[u8], what: &'static str) -> Result<Option<u64>> {
        let value = self
            .db
            .get_pinned_cf_opt(self.cf(META), key, &read_options())
            .map_err(backend)?;
        Ok(value.map(|v| codec::decode_u64(&v, what)).transpose()?)
    }

    fn cf(&self, name: &str) -> &ColumnFamily {
        // Every family is created when the store opens, so the handle exists.
        #[allow(clippy::expect_used)]
        self.db
            .cf_handle(name)
            .expect("column families are created when the store opens")
    }

    fn write_options(&self) -> WriteOptions {
        let mut options = WriteOptions::default();
        options.set_sync(self.sync_writes);
        if MEMORY_ONLY.get() {
            // A write that would wait for a flush fails instead (and writes nothing).
            options.set_no_slowdown(true);
        }
        options
    }

    /// Runs `work` on the calling thread if it can finish without waiting: reads served from
    /// memory (memtables and block cache), writes that neither sync nor stall, and a free
    /// user lock. `None` when it would have waited: nothing was written, and the caller runs
    /// it on a blocking thread. Only for stores that do not sync their writes.
    pub(crate) fn try_in_memory<T>(
        &self,
        work: impl FnOnce(&Store) -> Result<T>,
    ) -> Option<Result<T>> {
        if self.sync_writes {
            return None;
        }
        let result = {
            let _memory_only = MemoryOnly::enter();
            work(self)
        };
        match result {
            Err(error) if would_block(&error) => None,
            other => Some(other),
        }
    }

    fn commit(&self, batch: WriteBatch) -> Result<()> {
        if batch.is_empty() {
            return Ok(());
        }
        self.db
            .write_opt(batch, &self.write_options())
            .map_err(backend)
    }

    fn stripe(&self, user: &UserKey) -> usize {
        // The remainder is below USER_LOCKS, so it fits a usize.
        (self.hasher.hash_one(user) % USER_LOCKS as u64) as usize
    }

    /// The user's write lock; in memory-only mode, only if it is free.
    fn lock(&self, user: &UserKey) -> Result<MutexGuard<'_, ()>> {
        let lock = &self.locks[self.stripe(user)];
        if MEMORY_ONLY.get() {
            lock.try_lock()
                .ok_or_else(|| OfflineError::unavailable(BACKEND, WouldBlock))
        } else {
            Ok(lock.lock())
        }
    }

    /// Iterates `family` over the keys in `[from, until)`, front to back, reading nothing
    /// outside that range.
    fn range(
        &self,
        family: &str,
        from: &[u8],
        until: Option<Vec<u8>>,
    ) -> impl Iterator<Item = Result<Entry>> + '_ {
        let mut options = read_options();
        options.set_iterate_lower_bound(from.to_vec());
        if let Some(until) = until {
            options.set_iterate_upper_bound(until);
        }
        self.db
            .iterator_cf_opt(
                self.cf(family),
                options,
                IteratorMode::From(from, Direction::Forward),
            )
            .map(|entry| entry.map_err(backend))
    }

    /// The user's `users` record; [`QueueRecord::EMPTY`] when the user holds nothing.
    fn queue(&self, user_prefix: &[u8]) -> Result<QueueRecord> {
        match self
            .db
            .get_pinned_cf_opt(self.cf(USERS), user_prefix, &read_options())
            .map_err(backend)?
        {
            Some(value) => Ok(codec::decode_queue(&value)?),
            None => Ok(QueueRecord::EMPTY),
        }
    }

    /// Adds the user's `users` record to `batch`, or its removal when the queue is empty.
    fn put_queue(&self, batch: &mut WriteBatch, user_prefix: &[u8], queue: QueueRecord) {
        if queue.stats.messages == 0 {
            batch.delete_cf(self.cf(USERS), user_prefix);
        } else {
            batch.put_cf(self.cf(USERS), user_prefix, codec::encode_queue(queue));
        }
    }

    /// The seqs of the user's messages expired at `now`, their `user_expiry` entries
    /// removed in `batch`, and the earliest expiry after `now` (`i64::MAX`: none).
    fn lapsed(
        &self,
        batch: &mut WriteBatch,
        user_prefix: &[u8],
        now: i64,
    ) -> Result<(Vec<u64>, i64)> {
        let mut lapsed = Vec::new();
        for entry in self.range(USER_EXPIRY, user_prefix, keys::end_of(user_prefix)) {
            let (key, _) = entry?;
            let (expire, seq) =
                keys::parse_user_expiry(user_prefix, &key).ok_or(Corrupt::new("expiry key"))?;
            if expire > now {
                return Ok((lapsed, expire));
            }
            // Removed with its message too; here also when the message is already gone.
            batch.delete_cf(self.cf(USER_EXPIRY), &key);
            lapsed.push(seq);
        }
        Ok((lapsed, i64::MAX))
    }

    /// Adds a message and its index entries to `batch`.
    fn put_message(
        &self,
        batch: &mut WriteBatch,
        user: &UserKey,
        user_prefix: &[u8],
        seq: u64,
        message: &NewMessage,
    ) -> Result<()> {
        let value = codec::encode_message(message)?;
        batch.put_cf(self.cf(MESSAGES), keys::message(user_prefix, seq), value);
        batch.put_cf(
            self.cf(AGE),
            keys::domain_time(user, message.timestamp, seq),
            [],
        );
        if let Some(expire) = message.expire {
            batch.put_cf(
                self.cf(USER_EXPIRY),
                keys::user_expiry(user_prefix, expire, seq),
                [],
            );
            batch.put_cf(self.cf(EXPIRY), keys::domain_time(user, expire, seq), []);
        }
        if let Some(key) = &message.dedupe_key {
            batch.put_cf(
                self.cf(DEDUPE),
                keys::dedupe(user_prefix, key),
                seq.to_be_bytes(),
            );
        }
        Ok(())
    }

    /// Adds the removal of a message (whose value is `value`, as stored) and, when the value
    /// decodes, of its index entries to `batch`, and counts it out of `stats`. A value that
    /// does not decode is removed all the same: its index entries are left behind, and every
    /// reader of an index checks that the message is still there.
    fn delete_message(
        &self,
        batch: &mut WriteBatch,
        user: &UserKey,
        user_prefix: &[u8],
        seq: u64,
        value: &[u8],
        stats: &mut QueueStats,
    ) {
        batch.delete_cf(self.cf(MESSAGES), keys::message(user_prefix, seq));
        let Ok(message) = codec::decode_message(value) else {
            stats.messages = stats.messages.saturating_sub(1);
            if stats.messages == 0 {
                stats.bytes = 0;
            }
            return;
        };
        stats.remove(&message);
        batch.delete_cf(
            self.cf(AGE),
            keys::domain_time(user, message.timestamp, seq),
        );
        if let Some(expire) = message.expire {
            batch.delete_cf(
                self.cf(USER_EXPIRY),
                keys::user_expiry(user_prefix, expire, seq),
            );
            batch.delete_cf(self.cf(EXPIRY), keys::domain_time(user, expire, seq));
        }
        if let Some(key) = &message.dedupe_key {
            batch.delete_cf(self.cf(DEDUPE), keys::dedupe(user_prefix, key));
        }
    }

    /// The stored value of a user's message, if it is there.
    fn raw_message(&self, user_prefix: &[u8], seq: u64) -> Result<Option<Vec<u8>>> {
        let key = keys::message(user_prefix, seq);
        let value = self
            .db
            .get_pinned_cf_opt(self.cf(MESSAGES), key, &read_options())
            .map_err(backend)?;
        Ok(value.map(|v| v.to_vec()))
    }

    /// Adds the removal of the user's messages with these seqs to `batch`, counting them out
    /// of `stats`; the caller holds the user's lock. Returns how many there were.
    fn remove_seqs(
        &self,
        batch: &mut WriteBatch,
        user: &UserKey,
        seqs: &[u64],
        stats: &mut QueueStats,
    ) -> Result<u64> {
        let prefix = keys::user(user);
        let mut removed = 0;
        for &seq in seqs {
            if let Some(value) = self.raw_message(&prefix, seq)? {
                self.delete_message(batch, user, &prefix, seq, &value, stats);
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// The user's whole queue as stored, in seq order: seqs and values.
    fn raw_queue(&self, user_prefix: &[u8]) -> Result<Vec<(u64, Box<[u8]>)>> {
        self.range(MESSAGES, user_prefix, keys::end_of(user_prefix))
            .map(|entry| {
                let (key, value) = entry?;
                let seq = keys::seq_at_end(&key).ok_or(Corrupt::new("message key"))?;
                Ok((seq, value))
            })
            .collect()
    }

    /// Removes the user's whole queue, in one batch; the caller holds the user's lock.
    /// Returns how many messages it held.
    fn clear_queue(&self, user: &UserKey, queue: &[(u64, Box<[u8]>)]) -> Result<u64> {
        let prefix = keys::user(user);
        let mut batch = WriteBatch::default();
        let mut stats = QueueStats::default();
        for (seq, value) in queue {
            self.delete_message(&mut batch, user, &prefix, *seq, value, &mut stats);
        }
        batch.delete_cf(self.cf(USERS), &prefix);
        self.commit(batch)?;
        Ok(queue.len() as u64)
    }

    /// The seq of the message that holds a dedupe key for the user, if one does.
    fn dedupe_holder(&self, user_prefix: &[u8], key: &str) -> Result<Option<u64>> {
        let entry = self
            .db
            .get_pinned_cf_opt(
                self.cf(DEDUPE),
                keys::dedupe(user_prefix, key),
                &read_options(),
            )
            .map_err(backend)?;
        let Some(entry) = entry else {
            return Ok(None);
        };
        let seq = codec::decode_u64(&entry, "dedupe entry")?;
        // An entry left behind by a message that could not be decoded holds nothing.
        Ok(self.raw_message(user_prefix, seq)?.map(|_| seq))
    }

    pub(crate) fn write(
        &self,
        user: &UserKey,
        messages: Vec<NewMessage>,
        quota: Quota,
        now: i64,
    ) -> Result<WriteReport> {
        let mut prepared = PreparedBatch::new(messages, now)?;
        let prefix = keys::user(user);
        let _user = self.lock(user)?;
        let mut batch = WriteBatch::default();
        let stored = self.queue(&prefix)?;
        let mut queue = stored;
        // The user's expired messages go first (in the same batch), and stay gone even if the
        // write is refused. Before the queue's expiry floor none can have expired.
        let mut lapsed = Vec::new();
        if queue.expire_floor <= now {
            (lapsed, queue.expire_floor) = self.lapsed(&mut batch, &prefix, now)?;
        }
        self.remove_seqs(&mut batch, user, &lapsed, &mut queue.stats)?;
        let mut lookup_error = None;
        prepared.skip_held_duplicates(|key| match self.dedupe_holder(&prefix, key) {
            Ok(holder) => holder.is_some_and(|seq| !lapsed.contains(&seq)),
            Err(error) => {
                lookup_error.get_or_insert(error);
                false
            }
        });
        if let Some(error) = lookup_error {
            return Err(error);
        }
        if let Err(refused) = prepared.check_quota(user, &quota, queue.stats) {
            if queue != stored {
                self.put_queue(&mut batch, &prefix, queue);
            }
            self.commit(batch)?;
            return Err(refused);
        }
        let (messages, report) = prepared.into_parts();
        if !messages.is_empty() {
            let count = messages.len() as u64;
            let first = self.next_seq.fetch_add(count, Ordering::SeqCst);
            for (seq, message) in (first..).zip(&messages) {
                self.put_message(&mut batch, user, &prefix, seq, message)?;
                queue.stats.add(message);
                if let Some(expire) = message.expire {
                    queue.expire_floor = queue.expire_floor.min(expire);
                }
            }
            let last = first + count - 1;
            batch.merge_cf(self.cf(META), HIGH_WATER_KEY, last.to_be_bytes());
        }
        if !batch.is_empty() || queue != stored {
            self.put_queue(&mut batch, &prefix, queue);
        }
        self.commit(batch)?;
        Ok(report)
    }

    /// Takes the user's whole queue, in seq order. A message that does not decode fails the
    /// pop, naming its seq, and nothing is taken: `remove_messages` with that seq (or
    /// `remove_user`) clears it.
    pub(crate) fn pop(&self, user: &UserKey, now: i64) -> Result<Vec<StoredMessage>> {
        let prefix = keys::user(user);
        let _user = self.lock(user)?;
        let queue = self.raw_queue(&prefix)?;
        let mut popped = Vec::with_capacity(queue.len());
        for (seq, value) in &queue {
            let message = codec::decode_message(value)
                .map_err(|e| e.at(format!("message {seq} of {user}")))?;
            if !message.is_expired(now) {
                popped.push(StoredMessage { seq: *seq, message });
            }
        }
        if !queue.is_empty() {
            self.clear_queue(user, &queue)?;
        }
        Ok(popped)
    }

    pub(crate) fn fetch(
        &self,
        user: &UserKey,
        after: Option<u64>,
        limit: Option<usize>,
        now: i64,
    ) -> Result<Vec<StoredMessage>> {
        let prefix = keys::user(user);
        let start = match after {
            Some(u64::MAX) => return Ok(Vec::new()),
            Some(after) => keys::message(&prefix, after + 1),
            None => prefix.clone(),
        };
        let mut fetched = Vec::new();
        for entry in self.range(MESSAGES, &start, keys::end_of(&prefix)) {
            if fetched.len() >= limit.unwrap_or(usize::MAX) {
                break;
            }
            let (key, value) = entry?;
            let seq = keys::seq_at_end(&key).ok_or(Corrupt::new("message key"))?;
            let message = codec::decode_message(&value)
                .map_err(|e| e.at(format!("message {seq} of {user}")))?;
            if !message.is_expired(now) {
                fetched.push(StoredMessage { seq, message });
            }
        }
        Ok(fetched)
    }

    pub(crate) fn remove_messages(&self, user: &UserKey, seqs: &[u64]) -> Result<u64> {
        let mut seqs = seqs.to_vec();
        seqs.sort_unstable();
        seqs.dedup();
        let prefix = keys::user(user);
        let _user = self.lock(user)?;
        let mut batch = WriteBatch::default();
        let mut queue = self.queue(&prefix)?;
        let removed = self.remove_seqs(&mut batch, user, &seqs, &mut queue.stats)?;
        if removed > 0 {
            self.put_queue(&mut batch, &prefix, queue);
        }
        self.commit(batch)?;
        Ok(removed)
    }

    pub(crate) fn count(&self, user: &UserKey) -> Result<QueueStats> {
        Ok(self.queue(&keys::user(user))?.stats)
    }

    pub(crate) fn list_users(
        &self,
        domain: Option<&Domain>,
        after: Option<&UserKey>,
        limit: usize,
    ) -> Result<Vec<UserKey>> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let (floor, until) = match domain {
            Some(domain) => {
                let prefix = keys::domain(domain.as_str());
                let until = keys::end_of(&prefix);
                (prefix, until)
            }
            None => (Vec::new(), None),
        };
        let cursor = after.map(keys::user);
        let from = match &cursor {
            Some(cursor) if *cursor > floor => cursor.clone(),
            _ => floor,
        };
        let mut users = Vec::new();
        for entry in self.range(USERS, &from, until) {
            let (key, _) = entry?;
            if cursor.as_deref() == Some(&key[..]) {
                continue;
            }
            let (user, _) = keys::parse_user(&key).ok_or(Corrupt::new("user key"))?;
            users.push(user);
            if users.len() == limit {
                break;
            }
        }
        Ok(users)
    }

    /// Removes the messages an `expiry` or `age` index lists in `[domain, until)`, chunk by
    /// chunk, each chunk under the locks of its users in one batch, each chunk reading on
    /// from where the last stopped.
    fn purge_indexed(&self, family: &str, domain: &Domain, until: Vec<u8>) -> Result<u64> {
        let mut from = keys::domain(domain.as_str());
        let mut removed = 0;
        loop {
            let mut chunk: BTreeMap<UserKey, Vec<u64>> = BTreeMap::new();
            let mut batch = WriteBatch::default();
            let mut last = None;
            for entry in self
                .range(family, &from, Some(until.clone()))
                .take(PURGE_CHUNK)
            {
                let (key, _) = entry?;
                let (user, seq) = keys::parse_domain_time(domain.as_str(), &key)
                    .ok_or(Corrupt::new("index key"))?;
                chunk.entry(user).or_default().push(seq);
                // Removed with its message below; removed here too, so that an entry whose
                // message is already gone cannot stop the purge.
                batch.delete_cf(self.cf(family), &key);
                last = Some(key);
            }
            let Some(last) = last else {
                return Ok(removed);
            };
            let mut stripes: Vec<usize> = chunk.keys().map(|user| self.stripe(user)).collect();
            stripes.sort_unstable();
            stripes.dedup();
            let _locks: Vec<_> = stripes.iter().map(|&s| self.locks[s].lock()).collect();
            for (user, seqs) in &chunk {
                let prefix = keys::user(user);
                let mut queue = self.queue(&prefix)?;
                let gone = self.remove_seqs(&mut batch, user, seqs, &mut queue.stats)?;
                if gone > 0 {
                    self.put_queue(&mut batch, &prefix, queue);
                }
                removed += gone;
            }
            self.commit(batch)?;
            from = [&last[..], &[0]].concat();
        }
    }

    pub(crate) fn remove_expired(&self, domain: &Domain, now: i64) -> Result<u64> {
        let up_to_now = [keys::domain(domain.as_str()), keys::time(now).to_vec()].concat();
        match keys::end_of(&up_to_now) {
            Some(until) => self.purge_indexed(EXPIRY, domain, until),
            None => Ok(0),
        }
    }

    pub(crate) fn remove_old(&self, domain: &Domain, cutoff: i64) -> Result<u64> {
        let until = [keys::domain(domain.as_str()), keys::time(cutoff).to_vec()].concat();
        self.purge_indexed(AGE, domain, until)
    }

    pub(crate) fn remove_user(&self, user: &UserKey) -> Result<u64> {
        let _user = self.lock(user)?;
        let queue = self.raw_queue(&keys::user(user))?;
        self.clear_queue(user, &queue)
    }

    pub(crate) fn remove_domain(&self, domain: &Domain) -> Result<u64> {
        let prefix = keys::domain(domain.as_str());
        let until = keys::end_of(&prefix);
        let mut from = prefix;
        let mut removed = 0;
        loop {
            let mut users = Vec::new();
            for entry in self.range(USERS, &from, until.clone()).take(PURGE_CHUNK) {
                let (key, _) = entry?;
                users.push(keys::parse_user(&key).ok_or(Corrupt::new("user key"))?.0);
                from = [&key[..], &[0]].concat();
            }
            if users.is_empty() {
                return Ok(removed);
            }
            for user in &users {
                removed += self.remove_user(user)?;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: i64 = 1_700_000_000_000_000;

    fn open(dir: &Path) -> Store {
        Store::open(&RocksConfig {
            sync_writes: false,
            ..RocksConfig::new(dir)
        })
        .unwrap()
    }

    fn user(name: &str) -> UserKey {
        format!("{name}@example.com").parse().unwrap()
    }

    fn message(n: u64) -> NewMessage {
        NewMessage::new(
            T0,
            "romeo@example.net/r",
            "juliet@example.com",
            format!("<m n='{n}'/>"),
        )
        .dedupe_key(format!("k{n}"))
    }

    /// The high-water mark is the largest seq merged, whatever order batches commit in.
    #[test]
    fn the_high_water_mark_only_goes_up() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path());
        for seq in [10u64, 5, 7] {
            let mut batch = WriteBatch::default();
            batch.merge_cf(store.cf(META), HIGH_WATER_KEY, seq.to_be_bytes());
            store.commit(batch).unwrap();
        }
        assert_eq!(store.meta_u64(HIGH_WATER_KEY, "mark").unwrap(), Some(10));
        drop(store);
        let store = open(dir.path());
        assert_eq!(
            store.next_seq.load(Ordering::SeqCst),
            11,
            "numbering goes on after 10"
        );
        let mut batch = WriteBatch::default();
        batch.merge_cf(store.cf(META), HIGH_WATER_KEY, b"not eight bytes");
        store.commit(batch).unwrap();
        assert!(
            store.meta_u64(HIGH_WATER_KEY, "mark").is_err(),
            "a damaged mark is reported, not read as lower"
        );
    }

    /// A write that removes the queue's expired messages moves the floor on to the next
    /// expiry it holds.
    #[test]
    fn the_expiry_floor_moves_on_to_the_next_expiry() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path());
        let juliet = user("juliet");
        let lapsing = |n, at| NewMessage {
            expire: Some(at),
            ..message(n)
        };
        store
            .write(
                &juliet,
                vec![lapsing(1, T0 + 1), lapsing(2, T0 + 2)],
                Quota::UNLIMITED,
                T0,
            )
            .unwrap();
        store
            .write(&juliet, vec![message(3)], Quota::UNLIMITED, T0 + 1)
            .unwrap();
        let record = store.queue(&keys::user(&juliet)).unwrap();
        assert_eq!(record.expire_floor, T0 + 2);
        assert_eq!(record.stats.messages, 2);
    }

    /// A store of format 1 (`users` values without an expiry floor) opens, is marked as the
    /// current format, and its expired messages are still removed before a write.
    #[test]
    fn a_format_1_store_is_upgraded_and_still_drops_expired_messages() {
        let dir = tempfile::tempdir().unwrap();
        let juliet = user("juliet");
        {
            let store = open(dir.path());
            let lapsing = NewMessage {
                expire: Some(T0 + 1),
                ..message(1)
            };
            store
                .write(&juliet, vec![lapsing], Quota::UNLIMITED, T0)
                .unwrap();
            let prefix = keys::user(&juliet);
            let record = store.queue(&prefix).unwrap();
            assert_eq!(record.expire_floor, T0 + 1);
            let mut format_1 = record.stats.messages.to_be_bytes().to_vec();
            format_1.extend_from_slice(&record.stats.bytes.to_be_bytes());
            store.db.put_cf(store.cf(USERS), &prefix, format_1).unwrap();
            store
                .db
                .put_cf(store.cf(META), FORMAT_KEY, 1u64.to_be_bytes())
                .unwrap();
        }
        let store = open(dir.path());
        assert_eq!(
            store.meta_u64(FORMAT_KEY, "format").unwrap(),
            Some(FORMAT_VERSION)
        );
        let one = Quota {
            max_messages: Some(1),
            max_bytes: None,
        };
        store
            .write(&juliet, vec![message(2)], one, T0 + 2)
            .expect("the expired message makes room");
        let held = store.fetch(&juliet, None, None, T0 + 2).unwrap();
        assert_eq!(held.len(), 1);
        assert_eq!(held[0].message.packet, "<m n='2'/>");
    }

    /// A message whose value is damaged fails the pop and fetch, naming its seq, and is
    /// removed by seq, by user and by domain; its dedupe key is free again.
    #[test]
    fn a_damaged_message_is_reported_and_removable() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path());
        let juliet = user("juliet");
        store
            .write(&juliet, vec![message(1), message(2)], Quota::UNLIMITED, T0)
            .unwrap();
        let prefix = keys::user(&juliet);
        let damaged = store.fetch(&juliet, None, None, T0).unwrap()[0].seq;
        store
            .db
            .put_cf(
                store.cf(MESSAGES),
                keys::message(&prefix, damaged),
                b"garbage",
            )
            .unwrap();
        let err = store.pop(&juliet, T0).unwrap_err().to_string();
        assert!(err.contains("rocksdb"), "{err}");
        assert!(store.fetch(&juliet, None, None, T0).is_err());
        assert_eq!(
            store.count(&juliet).unwrap().messages,
            2,
            "the failed pop took nothing"
        );
        assert_eq!(store.remove_messages(&juliet, &[damaged]).unwrap(), 1);
        let left = store.pop(&juliet, T0).unwrap();
        assert_eq!(left.len(), 1, "the sound message is delivered");
        let again = store
            .write(&juliet, vec![message(1)], Quota::UNLIMITED, T0)
            .unwrap();
        assert_eq!(
            again.stored, 1,
            "the damaged message's dedupe key holds nothing"
        );

        let romeo = user("romeo");
        store
            .write(&romeo, vec![message(3)], Quota::UNLIMITED, T0)
            .unwrap();
        let seq = store.fetch(&romeo, None, None, T0).unwrap()[0].seq;
        let key = keys::message(&keys::user(&romeo), seq);
        store
            .db
            .put_cf(store.cf(MESSAGES), key, b"garbage")
            .unwrap();
        let domain: Domain = "example.com".parse().unwrap();
        assert_eq!(
            store.remove_domain(&domain).unwrap(),
            2,
            "juliet's and romeo's"
        );
        assert!(store.list_users(None, None, 10).unwrap().is_empty());
    }

    /// A user listed with no messages left (damage, or a crash of an older version) does not
    /// stop `remove_domain`, which terminates and unlists the user.
    #[test]
    fn remove_domain_ends_on_a_listed_user_without_messages() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path());
        let juliet = user("juliet");
        store
            .write(&juliet, vec![message(1)], Quota::UNLIMITED, T0)
            .unwrap();
        let seq = store.fetch(&juliet, None, None, T0).unwrap()[0].seq;
        let key = keys::message(&keys::user(&juliet), seq);
        store.db.delete_cf(store.cf(MESSAGES), key).unwrap();
        assert_eq!(
            store.count(&juliet).unwrap().messages,
            1,
            "the stats still say 1"
        );
        let domain: Domain = "example.com".parse().unwrap();
        assert_eq!(store.remove_domain(&domain).unwrap(), 0);
        assert!(
            store
                .list_users(Some(&domain), None, 10)
                .unwrap()
                .is_empty()
        );
    }
}
