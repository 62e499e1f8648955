//! Where the store lives and how it writes.

use std::path::PathBuf;

/// How the store is opened. [`RocksConfig::new`] gives the defaults for a path.
///
/// ```
/// use offline_rocksdb::{Compression, RocksConfig};
///
/// let config = RocksConfig {
///     sync_writes: false, // faster; a power cut may lose the last writes, a crash does not
///     ..RocksConfig::new("/var/lib/offline")
/// };
/// assert_eq!(config.compression, Compression::Lz4);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RocksConfig {
    /// The database directory; created if missing.
    pub path: PathBuf,
    /// Whether every write waits until the write-ahead log is on disk (`fsync`) before it is
    /// acknowledged. On (the default), an acknowledged message survives a process crash and
    /// a power cut. Off, writes are several times faster and still survive a process crash
    /// (the operating system holds the log), but a power cut or kernel crash may lose the
    /// writes of the last moments.
    pub sync_writes: bool,
    /// Bytes of the block cache for reads (default 64 MiB).
    pub block_cache_bytes: usize,
    /// Bytes of writes held in memory before they are flushed to disk, all column families
    /// together (default 64 MiB). The write-ahead log is capped at 256 MiB, which bounds the
    /// time recovery takes after a crash.
    pub write_buffer_bytes: usize,
    /// Files RocksDB may keep open; `None` keeps all open (the default).
    pub max_open_files: Option<u32>,
    /// How table files are compressed.
    pub compression: Compression,
}

/// Compression of table files.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Compression {
    /// LZ4: fast, and XML packets shrink well under it (the default).
    #[default]
    Lz4,
    /// None.
    None,
}

impl RocksConfig {
    /// The defaults for a store at `path`: synchronous writes, a 64 MiB block cache, 64 MiB
    /// of write buffers, every file open, LZ4.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            sync_writes: true,
            block_cache_bytes: 64 << 20,
            write_buffer_bytes: 64 << 20,
            max_open_files: None,
            compression: Compression::Lz4,
        }
    }
}
