//! Tests of `Store::open`: the schema version (written, checked, refused when newer) and the
//! startup errors an operator sees (garbage file, uncreatable data dir, file in use).

use super::*;

const QUEUE: usize = 64;

fn put(table: Table, key: &[u8], value: &[u8]) -> WriteOp {
    WriteOp::Put { table, key: key.to_vec(), value: value.to_vec() }
}

#[tokio::test]
async fn schema_version_is_written_and_checked() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), QUEUE).unwrap();
    assert_eq!(store.path(), dir.path().join("astromesh.redb"));
    let version = store.get(Table::Meta, SCHEMA_VERSION_KEY).unwrap();
    assert_eq!(version, Some(SCHEMA_VERSION.to_le_bytes().to_vec()));
    store.write(put(Table::Mesh, b"node", b"a")).await.unwrap();
    store.close().await.unwrap();
    drop(store);

    // Reopening an up-to-date file works and keeps the data.
    let store = Store::open(dir.path(), QUEUE).unwrap();
    assert_eq!(store.get(Table::Mesh, b"node").unwrap(), Some(b"a".to_vec()));
    // A newer astromesh bumps the version.
    let newer = SCHEMA_VERSION + 1;
    store.write(put(Table::Meta, SCHEMA_VERSION_KEY, &newer.to_le_bytes())).await.unwrap();
    store.close().await.unwrap();
    drop(store);

    let err = Store::open(dir.path(), QUEUE).unwrap_err();
    assert!(
        matches!(err, StoreError::NewerSchema { found, supported, .. }
            if found == newer && supported == SCHEMA_VERSION),
        "{err:?}"
    );
    let message = err.to_string();
    let path = dir.path().join("astromesh.redb");
    assert_eq!(
        message,
        format!(
            "database {} was written by a newer astromesh (schema {newer}, this binary supports \
             {SCHEMA_VERSION}); upgrade astromesh or use another --data-dir",
            path.display()
        )
    );
}

#[tokio::test]
async fn missing_schema_version_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("astromesh.redb");
    {
        let db = redb::Database::create(&path).unwrap();
        let txn = db.begin_write().unwrap();
        txn.open_table(Table::History.definition()).unwrap().insert(b"k".as_slice(), b"v".as_slice()).unwrap();
        txn.commit().unwrap();
    }
    let store = Store::open(dir.path(), QUEUE).unwrap();
    let version = store.get(Table::Meta, SCHEMA_VERSION_KEY).unwrap();
    assert_eq!(version, Some(SCHEMA_VERSION.to_le_bytes().to_vec()));
    assert_eq!(store.get(Table::History, b"k").unwrap(), Some(b"v".to_vec()));
    store.close().await.unwrap();
}

#[test]
fn garbage_file_is_not_a_database() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("astromesh.redb");
    for garbage in [
        b"hello, this is not a database\n".to_vec(),
        b"some text garbage, long enough to cover any header. ".repeat(200),
    ] {
        std::fs::write(&path, &garbage).unwrap();
        let err = Store::open(dir.path(), QUEUE).unwrap_err();
        assert!(matches!(err, StoreError::NotADatabase { .. }), "{err:?}");
        let message = err.to_string();
        assert!(message.starts_with(&format!("{} is not an astromesh database (", path.display())), "{message}");
    }
}

#[test]
fn uncreatable_data_dir_is_named_in_the_error() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("file");
    std::fs::write(&file, b"a regular file").unwrap();
    let data_dir = file.join("sub");
    let err = Store::open(&data_dir, QUEUE).unwrap_err();
    assert!(matches!(err, StoreError::CreateDataDir { .. }), "{err:?}");
    let message = err.to_string();
    assert!(message.starts_with(&format!("cannot create data directory {}: ", data_dir.display())), "{message}");
}

#[tokio::test]
async fn database_in_use_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), QUEUE).unwrap();
    let err = Store::open(dir.path(), QUEUE).unwrap_err();
    assert!(matches!(err, StoreError::InUse { .. }), "{err:?}");
    assert!(err.to_string().contains("is in use"), "{err}");
    store.close().await.unwrap();
    drop(store);
    // Once closed and dropped, the file can be opened again.
    Store::open(dir.path(), QUEUE).unwrap().close().await.unwrap();
}
