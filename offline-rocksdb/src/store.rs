//! The store itself, blocking: every method runs on a thread that may block (see
//! [`RocksBackend`](crate::RocksBackend), which calls them through `spawn_blocking`).
//!
//! Every change to a user's queue happens under that user's lock (one of a fixed set of
//! locks, picked by hashing the user), in one `WriteBatch`, so the quota check and the insert
//! are atomic within the process and a pop takes exactly what it returns. Seqs come from one
//! counter, taken under the user's lock, so each user's seqs increase in commit order; every
//! batch that stores messages also merges its highest seq into the persisted high-water mark
//! with a `max` merge operator, so the mark never goes back, whatever order batches commit in.

use std::collections::BTreeMap;
use std::hash::{BuildHasher, RandomState};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use offline_core::{
    Domain, NewMessage, PreparedBatch, QueueStats, Quota, Result, StoredMessage, UserKey,
    WriteReport,
};
use parking_lot::{Mutex, MutexGuard};
use rocksdb::{
    BlockBasedOptions, Cache, ColumnFamily, ColumnFamilyDescriptor, DB, DBCompressionType,
    Direction, IteratorMode, MergeOperands, Options, ReadOptions, WriteBatch, WriteOptions,
};

use crate::codec::{self, Corrupt};
use crate::error::{OpenError, backend};
use crate::{Compression, RocksConfig, keys};

/// The on-disk format this build reads and writes.
pub(crate) const FORMAT_VERSION: u64 = 1;

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

/// The `max` merge of `u64` values: the seq high-water mark only goes up.
fn merge_max(_key: &[u8], existing: Option<&[u8]>, operands: &MergeOperands) -> Option<Vec<u8>> {
    let read = |value: &[u8]| codec::decode_u64(value, "seq high-water mark").ok();
    let highest = existing
        .into_iter()
        .chain(operands.iter())
        .filter_map(read)
        .max()?;
    Some(highest.to_be_bytes().to_vec())
}

impl Store {
    /// Opens (creating if needed) the store `config` names.
    pub(crate) fn open(config: &RocksConfig) -> Result<Self, OpenError> {
        let path = config.path.as_path();
        let mut options = Options::default();
        // A new store gets its column families; an existing one must have them all already.
        let exists = DB::list_cf(&options, path).is_ok();
        options.create_if_missing(true);
        options.create_missing_column_families(!exists);
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
            family.set_write_buffer_size(config.write_buffer_bytes);
            family.set_compression_type(match config.compression {
                Compression::Lz4 => DBCompressionType::Lz4,
                Compression::None => DBCompressionType::None,
            });
            if name == META {
                family.set_merge_operator_associative("offline_seq_max", merge_max);
            }
            ColumnFamilyDescriptor::new(name, family)
        });
        let db = DB::open_cf_descriptors(&options, path, families).map_err(|e| {
            let foreign = e.kind() == rocksdb::ErrorKind::InvalidArgument
                && e.to_string().contains("Column famil");
            match foreign {
                true => OpenError::NotAnOfflineStore {
                    path: path.to_owned(),
                },
                false => OpenError::from_rocksdb(path, e),
            }
        })?;
        let store = Self {
            db,
            path: path.to_owned(),
            sync_writes: config.sync_writes,
            locks: (0..USER_LOCKS).map(|_| Mutex::new(())).collect(),
            hasher: RandomState::new(),
            next_seq: AtomicU64::new(1),
        };
        store.check_format()?;
        let high_water = store
            .meta_u64(HIGH_WATER_KEY, "seq high-water mark")
            .map_err(|e| OpenError::Corrupted {
                path: path.to_owned(),
                detail: e.to_string(),
            })?
            .unwrap_or(0);
        store.next_seq.store(high_water + 1, Ordering::SeqCst);
        Ok(store)
    }

    /// The database directory.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Writes the format version into a new store, or checks an existing one's.
    fn check_format(&self) -> Result<(), OpenError> {
        let corrupted = |detail: String| OpenError::Corrupted {
            path: self.path.clone(),
            detail,
        };
        match self
            .meta_u64(FORMAT_KEY, "format version")
            .map_err(|e| corrupted(e.to_string()))?
        {
            Some(FORMAT_VERSION) => Ok(()),
            Some(found) => Err(OpenError::IncompatibleFormat {
                path: self.path.clone(),
                found,
                expected: FORMAT_VERSION,
            }),
            None => {
                let mut batch = WriteBatch::default();
                batch.put_cf(self.cf(META), FORMAT_KEY, FORMAT_VERSION.to_be_bytes());
                self.db
                    .write_opt(batch, &self.write_options())
                    .map_err(|e| OpenError::from_rocksdb(&self.path, e))
            }
        }
    }

    fn meta_u64(&self, key: &[u8], what: &'static str) -> Result<Option<u64>> {
        let value = self.db.get_pinned_cf(self.cf(META), key).map_err(backend)?;
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
        options
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

    fn lock(&self, user: &UserKey) -> MutexGuard<'_, ()> {
        self.locks[self.stripe(user)].lock()
    }

    /// Iterates `family` over the keys in `[from, until)`, front to back, reading nothing
    /// outside that range.
    fn range(
        &self,
        family: &str,
        from: &[u8],
        until: Option<Vec<u8>>,
    ) -> impl Iterator<Item = Result<Entry>> + '_ {
        let mut options = ReadOptions::default();
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

    fn stats(&self, user_prefix: &[u8]) -> Result<QueueStats> {
        match self
            .db
            .get_pinned_cf(self.cf(USERS), user_prefix)
            .map_err(backend)?
        {
            Some(value) => Ok(codec::decode_stats(&value)?),
            None => Ok(QueueStats::default()),
        }
    }

    fn put_stats(&self, batch: &mut WriteBatch, user_prefix: &[u8], stats: QueueStats) {
        if stats.messages == 0 {
            batch.delete_cf(self.cf(USERS), user_prefix);
        } else {
            batch.put_cf(self.cf(USERS), user_prefix, codec::encode_stats(stats));
        }
    }

    /// Adds a message and its index entries to `batch`.
    fn put_message(
        &self,
        batch: &mut WriteBatch,
        user: &UserKey,
        user_prefix: &[u8],
        seq: u64,
        message: &NewMessage,
    ) {
        batch.put_cf(
            self.cf(MESSAGES),
            keys::message(user_prefix, seq),
            codec::encode_message(message),
        );
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
    }

    /// Adds the removal of a message and its index entries to `batch`.
    fn delete_message(
        &self,
        batch: &mut WriteBatch,
        user: &UserKey,
        user_prefix: &[u8],
        seq: u64,
        message: &NewMessage,
    ) {
        batch.delete_cf(self.cf(MESSAGES), keys::message(user_prefix, seq));
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

    fn message(&self, user_prefix: &[u8], seq: u64) -> Result<Option<NewMessage>> {
        let key = keys::message(user_prefix, seq);
        match self
            .db
            .get_pinned_cf(self.cf(MESSAGES), key)
            .map_err(backend)?
        {
            Some(value) => Ok(Some(codec::decode_message(&value)?)),
            None => Ok(None),
        }
    }

    /// Removes the messages with these seqs from the user's queue, in one batch; the caller
    /// holds the user's lock. Returns how many there were.
    fn remove_seqs(&self, batch: &mut WriteBatch, user: &UserKey, seqs: &[u64]) -> Result<u64> {
        let prefix = keys::user(user);
        let mut stats = self.stats(&prefix)?;
        let mut removed = 0;
        for &seq in seqs {
            if let Some(message) = self.message(&prefix, seq)? {
                self.delete_message(batch, user, &prefix, seq, &message);
                stats.remove(&message);
                removed += 1;
            }
        }
        if removed > 0 {
            self.put_stats(batch, &prefix, stats);
        }
        Ok(removed)
    }

    /// The user's whole queue, in seq order.
    fn queue(&self, user_prefix: &[u8]) -> Result<Vec<StoredMessage>> {
        self.range(MESSAGES, user_prefix, keys::end_of(user_prefix))
            .map(|entry| {
                let (key, value) = entry?;
                let seq = keys::seq_at_end(&key).ok_or(Corrupt::new("message key"))?;
                let message = codec::decode_message(&value)?;
                Ok(StoredMessage { seq, message })
            })
            .collect()
    }

    /// Takes the user's whole queue out, in one batch; the caller holds the user's lock.
    fn take_queue(&self, user: &UserKey) -> Result<Vec<StoredMessage>> {
        let prefix = keys::user(user);
        let queue = self.queue(&prefix)?;
        let mut batch = WriteBatch::default();
        for stored in &queue {
            self.delete_message(&mut batch, user, &prefix, stored.seq, &stored.message);
        }
        if !queue.is_empty() {
            batch.delete_cf(self.cf(USERS), &prefix);
        }
        self.commit(batch)?;
        Ok(queue)
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
        let _user = self.lock(user);
        // The user's expired messages go first, and stay gone even if the write is refused.
        let lapsed: Vec<u64> = self
            .range(
                USER_EXPIRY,
                &prefix,
                keys::end_of(&[prefix.as_slice(), &keys::time(now)].concat()),
            )
            .map(|entry| {
                let (key, _) = entry?;
                Ok(keys::seq_at_end(&key).ok_or(Corrupt::new("expiry key"))?)
            })
            .collect::<Result<_>>()?;
        if !lapsed.is_empty() {
            let mut batch = WriteBatch::default();
            self.remove_seqs(&mut batch, user, &lapsed)?;
            self.commit(batch)?;
        }
        let mut lookup_error = None;
        prepared.skip_held_duplicates(|key| {
            let held = self
                .db
                .get_pinned_cf(self.cf(DEDUPE), keys::dedupe(&prefix, key));
            match held {
                Ok(held) => held.is_some(),
                Err(error) => {
                    lookup_error.get_or_insert(error);
                    false
                }
            }
        });
        if let Some(error) = lookup_error {
            return Err(backend(error));
        }
        let mut stats = self.stats(&prefix)?;
        prepared.check_quota(user, &quota, stats)?;
        let (messages, report) = prepared.into_parts();
        if messages.is_empty() {
            return Ok(report);
        }
        let count = messages.len() as u64;
        let first = self.next_seq.fetch_add(count, Ordering::SeqCst);
        let mut batch = WriteBatch::default();
        for (seq, message) in (first..).zip(&messages) {
            self.put_message(&mut batch, user, &prefix, seq, message);
            stats.add(message);
        }
        self.put_stats(&mut batch, &prefix, stats);
        let last = first + count - 1;
        batch.merge_cf(self.cf(META), HIGH_WATER_KEY, last.to_be_bytes());
        self.commit(batch)?;
        Ok(report)
    }

    pub(crate) fn pop(&self, user: &UserKey, now: i64) -> Result<Vec<StoredMessage>> {
        let queue = {
            let _user = self.lock(user);
            self.take_queue(user)?
        };
        Ok(queue
            .into_iter()
            .filter(|stored| !stored.message.is_expired(now))
            .collect())
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
            let message = codec::decode_message(&value)?;
            if !message.is_expired(now) {
                let seq = keys::seq_at_end(&key).ok_or(Corrupt::new("message key"))?;
                fetched.push(StoredMessage { seq, message });
            }
        }
        Ok(fetched)
    }

    pub(crate) fn remove_messages(&self, user: &UserKey, seqs: &[u64]) -> Result<u64> {
        let mut seqs = seqs.to_vec();
        seqs.sort_unstable();
        seqs.dedup();
        let _user = self.lock(user);
        let mut batch = WriteBatch::default();
        let removed = self.remove_seqs(&mut batch, user, &seqs)?;
        self.commit(batch)?;
        Ok(removed)
    }

    pub(crate) fn count(&self, user: &UserKey) -> Result<QueueStats> {
        self.stats(&keys::user(user))
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
    /// chunk: each chunk under the locks of its users, in one batch.
    fn purge_indexed(&self, family: &str, domain: &Domain, until: Vec<u8>) -> Result<u64> {
        let prefix = keys::domain(domain.as_str());
        let mut removed = 0;
        loop {
            let mut chunk: BTreeMap<UserKey, Vec<u64>> = BTreeMap::new();
            let mut batch = WriteBatch::default();
            for entry in self
                .range(family, &prefix, Some(until.clone()))
                .take(PURGE_CHUNK)
            {
                let (key, _) = entry?;
                let (user, seq) = keys::parse_domain_time(domain.as_str(), &key)
                    .ok_or(Corrupt::new("index key"))?;
                chunk.entry(user).or_default().push(seq);
                // Removed with its message below; removed here too, so that an entry whose
                // message is already gone cannot stop the purge.
                batch.delete_cf(self.cf(family), key);
            }
            if chunk.is_empty() {
                return Ok(removed);
            }
            let mut stripes: Vec<usize> = chunk.keys().map(|user| self.stripe(user)).collect();
            stripes.sort_unstable();
            stripes.dedup();
            let _locks: Vec<_> = stripes.iter().map(|&s| self.locks[s].lock()).collect();
            for (user, seqs) in &chunk {
                removed += self.remove_seqs(&mut batch, user, seqs)?;
            }
            self.commit(batch)?;
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
        let _user = self.lock(user);
        Ok(self.take_queue(user)?.len() as u64)
    }

    pub(crate) fn remove_domain(&self, domain: &Domain) -> Result<u64> {
        let prefix = keys::domain(domain.as_str());
        let mut removed = 0;
        loop {
            let users: Vec<UserKey> = self
                .range(USERS, &prefix, keys::end_of(&prefix))
                .take(PURGE_CHUNK)
                .map(|entry| {
                    let (key, _) = entry?;
                    Ok(keys::parse_user(&key).ok_or(Corrupt::new("user key"))?.0)
                })
                .collect::<Result<_>>()?;
            if users.is_empty() {
                return Ok(removed);
            }
            for user in &users {
                removed += self.remove_user(user)?;
            }
        }
    }
}
