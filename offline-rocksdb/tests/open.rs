//! Opening errors are clear and name the path.

// Tests fail by panicking.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::path::Path;

use offline_rocksdb::{FORMAT_VERSION, OpenError, RocksBackend, RocksConfig};

fn open(path: &Path) -> Result<RocksBackend, OpenError> {
    RocksBackend::open(RocksConfig::new(path))
}

fn assert_names_path(error: &OpenError, path: &Path) {
    let text = error.to_string();
    assert!(text.contains(&path.display().to_string()), "{text}");
}

#[test]
fn a_store_open_elsewhere_is_locked() {
    let dir = tempfile::tempdir().unwrap();
    let _first = open(dir.path()).unwrap();
    let error = open(dir.path()).unwrap_err();
    assert!(matches!(error, OpenError::Locked { .. }), "{error:?}");
    assert_names_path(&error, dir.path());
    assert!(error.to_string().contains("locked by another process"));
}

#[test]
fn a_store_is_closed_when_dropped() {
    let dir = tempfile::tempdir().unwrap();
    drop(open(dir.path()).unwrap());
    open(dir.path()).unwrap();
}

#[test]
fn another_format_version_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    drop(open(dir.path()).unwrap());
    {
        let families = rocksdb::DB::list_cf(&rocksdb::Options::default(), dir.path()).unwrap();
        let db = rocksdb::DB::open_cf(&rocksdb::Options::default(), dir.path(), &families).unwrap();
        let meta = db.cf_handle("meta").unwrap();
        db.put_cf(meta, b"format", (FORMAT_VERSION + 1).to_be_bytes())
            .unwrap();
    }
    let error = open(dir.path()).unwrap_err();
    assert!(
        matches!(error, OpenError::IncompatibleFormat { found, expected, .. }
            if found == FORMAT_VERSION + 1 && expected == FORMAT_VERSION),
        "{error:?}"
    );
    assert_names_path(&error, dir.path());
}

#[test]
fn another_rocksdb_database_is_not_taken_over() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut options = rocksdb::Options::default();
        options.create_if_missing(true);
        let db = rocksdb::DB::open(&options, dir.path()).unwrap();
        db.put(b"someone else's", b"data").unwrap();
    }
    let error = open(dir.path()).unwrap_err();
    assert!(
        matches!(error, OpenError::NotAnOfflineStore { .. }),
        "{error:?}"
    );
    assert_names_path(&error, dir.path());
}

#[test]
fn a_damaged_store_is_reported_as_corrupted() {
    let dir = tempfile::tempdir().unwrap();
    drop(open(dir.path()).unwrap());
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name.starts_with("MANIFEST-") {
            std::fs::write(
                &path,
                b"this is not a manifest at all, not even close to one",
            )
            .unwrap();
        }
    }
    let error = open(dir.path()).unwrap_err();
    assert!(matches!(error, OpenError::Corrupted { .. }), "{error:?}");
    assert_names_path(&error, dir.path());
}

#[test]
fn a_directory_without_permission_is_reported_as_such() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let dir = tempfile::tempdir().unwrap();
    if std::fs::metadata(dir.path()).unwrap().uid() == 0 {
        eprintln!("skipped: root reads and writes any directory");
        return;
    }
    let store = dir.path().join("store");
    std::fs::create_dir(&store).unwrap();
    std::fs::set_permissions(&store, std::fs::Permissions::from_mode(0o000)).unwrap();
    let error = open(&store).unwrap_err();
    std::fs::set_permissions(&store, std::fs::Permissions::from_mode(0o700)).unwrap();
    assert!(
        matches!(error, OpenError::PermissionDenied { .. }),
        "{error:?}"
    );
    assert_names_path(&error, &store);
}

#[test]
fn a_path_that_is_a_file_names_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("not-a-directory");
    std::fs::write(&file, b"").unwrap();
    let error = open(&file).unwrap_err();
    assert_names_path(&error, &file);
}
