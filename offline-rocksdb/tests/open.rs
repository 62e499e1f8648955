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

/// Set in the child that opens a store without permission: the store's path.
const NO_PERMISSION_CHILD: &str = "OFFLINE_ROCKSDB_NO_PERMISSION_CHILD";

/// The child: opens the store at the path it is given and prints the error, as a user who
/// may not read or write that directory.
#[test]
#[ignore = "run by a_directory_without_permission_is_reported_as_such as another user"]
fn open_without_permission_child() {
    let Ok(path) = std::env::var(NO_PERMISSION_CHILD) else {
        return;
    };
    match open(Path::new(&path)) {
        Ok(_) => println!("opened"),
        Err(error) => println!("{error:?}\n{error}"),
    }
}

/// A directory the process may not read or write is reported as such. Root may open any
/// directory, so as root the test opens it from a child process running as `nobody`.
#[test]
fn a_directory_without_permission_is_reported_as_such() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    std::fs::create_dir(&store).unwrap();
    std::fs::set_permissions(&store, std::fs::Permissions::from_mode(0o000)).unwrap();
    let output = if std::fs::metadata(dir.path()).unwrap().uid() == 0 {
        let child = std::process::Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "open_without_permission_child",
                "--ignored",
                "--nocapture",
            ])
            .env(NO_PERMISSION_CHILD, &store)
            .output()
            .unwrap_or_else(|e| panic!("running the check as nobody with setpriv: {e}"));
        String::from_utf8_lossy(&child.stdout).into_owned()
    } else {
        let error = open(&store).unwrap_err();
        format!("{error:?}\n{error}")
    };
    std::fs::set_permissions(&store, std::fs::Permissions::from_mode(0o700)).unwrap();
    assert!(output.contains("PermissionDenied"), "{output}");
    assert!(
        output.contains(&format!(
            "no permission to open the offline store at {}",
            store.display()
        )),
        "{output}"
    );
}

#[test]
fn a_path_that_is_a_file_names_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("not-a-directory");
    std::fs::write(&file, b"").unwrap();
    let error = open(&file).unwrap_err();
    assert_names_path(&error, &file);
}
