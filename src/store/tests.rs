//! Tests of the store: group commit, durability across reopen, close and drop,
//! failure isolation inside a batch, prefix operations. Opening (schema versions, startup
//! errors) is tested in `open_tests`, the model test is in `model_tests`.

use std::sync::Arc;
use std::time::Duration;

use redb::ReadableTable;

use super::*;

const QUEUE: usize = 64;

fn put(table: Table, key: &[u8], value: &[u8]) -> WriteOp {
    WriteOp::Put { table, key: key.to_vec(), value: value.to_vec() }
}

/// Waits until `n_queued` jobs sit in the store's queue (the writer is held by a test job).
async fn wait_queued(store: &Store, n_queued: usize) {
    let sender = store.jobs.lock().unwrap().clone().unwrap();
    for _ in 0..2000 {
        // Our clone does not count: capacity is per channel.
        if QUEUE - sender.capacity() >= n_queued {
            return;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    panic!("jobs were not queued in time");
}

/// A `Custom` op that blocks the writer until `release` is sent (or 10 s pass). `started`
/// resolves once the writer is inside it, so later jobs queue behind it.
fn hold_writer() -> (WriteOp, tokio::sync::oneshot::Receiver<()>, std::sync::mpsc::SyncSender<()>) {
    let (release, held) = std::sync::mpsc::sync_channel::<()>(1);
    let (started_tx, started) = tokio::sync::oneshot::channel();
    let op = WriteOp::Custom(Box::new(move |_txn| {
        let _ = started_tx.send(());
        let _ = held.recv_timeout(Duration::from_secs(10));
        Ok(())
    }));
    (op, started, release)
}

#[test]
fn store_is_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    fn assert_send<T: Send>() {}
    assert_send_sync::<Store>();
    assert_send::<WriteOp>();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writers_are_group_committed_and_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(dir.path(), QUEUE).unwrap());
    let mut tasks = Vec::new();
    for task_idx in 0..32u32 {
        let store = Arc::clone(&store);
        tasks.push(tokio::spawn(async move {
            for write_idx in 0..1000u32 {
                if write_idx % 32 != task_idx {
                    continue;
                }
                let key = write_idx.to_be_bytes();
                let value = format!("value-{write_idx}");
                store.write(put(Table::History, &key, value.as_bytes())).await.unwrap();
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let stats = store.stats();
    assert_eq!(stats.writes, 1000);
    assert!(stats.commits < 1000, "group commit should batch: {stats:?}");
    store.close().await.unwrap();
    drop(store);

    let store = Store::open(dir.path(), QUEUE).unwrap();
    let all = store.scan_prefix(Table::History, b"", false, usize::MAX).unwrap();
    assert_eq!(all.len(), 1000);
    for (write_idx, (key, value)) in (0..1000u32).zip(&all) {
        assert_eq!(key.as_slice(), write_idx.to_be_bytes());
        assert_eq!(value, format!("value-{write_idx}").as_bytes());
    }
    store.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_jobs_do_not_lose_the_rest_of_their_batch() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(dir.path(), QUEUE).unwrap());
    let (hold, started, release) = hold_writer();
    let held = {
        let store = Arc::clone(&store);
        tokio::spawn(async move { store.write(hold).await })
    };
    started.await.unwrap();
    let commits_before = store.stats().commits;

    // The jobs, queued in this order while the writer is held, form one batch.
    let custom_put = |key: &'static [u8], outcome: Result<(), &'static str>| {
        WriteOp::Custom(Box::new(move |txn| {
            txn.open_table(Table::History.definition())?.insert(key, b"custom".as_slice())?;
            match outcome {
                Ok(()) => Ok(()),
                Err("panic") => panic!("custom op panicked on purpose"),
                Err(reason) => Err(StoreError::Rejected(reason.to_owned())),
            }
        }))
    };
    let jobs: Vec<Vec<WriteOp>> = vec![
        vec![put(Table::History, b"b", b"data")],
        vec![custom_put(b"c", Ok(()))],
        vec![put(Table::History, b"d", b"data")],
        vec![custom_put(b"e", Err("no such sequence"))],
        vec![put(Table::History, b"f", b"data")],
        // Atomic: the put must vanish with the failing closure.
        vec![put(Table::History, b"g", b"data"), custom_put(b"h", Err("rejected"))],
        vec![custom_put(b"i", Err("panic"))],
        vec![put(Table::History, b"j", b"data"), custom_put(b"k", Ok(()))],
        vec![put(Table::History, b"l", b"data")],
    ];
    let n_jobs = jobs.len();
    let mut handles = Vec::new();
    for (job_idx, ops) in jobs.into_iter().enumerate() {
        let writer = Arc::clone(&store);
        handles.push(tokio::spawn(async move { writer.write_all(ops).await }));
        // Keep the queue order equal to the list order.
        wait_queued(&store, job_idx + 1).await;
    }
    release.send(()).unwrap();
    held.await.unwrap().unwrap();

    let mut results = Vec::new();
    for handle in handles {
        results.push(handle.await.unwrap());
    }
    assert_eq!(results.len(), n_jobs);
    let failed: Vec<usize> = (0..n_jobs).filter(|idx| results[*idx].is_err()).collect();
    assert_eq!(failed, vec![3, 5, 6]);
    assert!(matches!(&results[3], Err(StoreError::Rejected(reason)) if reason == "no such sequence"));
    assert!(matches!(&results[5], Err(StoreError::Rejected(_))));
    assert!(matches!(&results[6], Err(StoreError::OpPanicked(message)) if message.contains("on purpose")));
    // One durable commit for the held job, then exactly one for the nine queued jobs.
    assert_eq!(store.stats().commits, commits_before + 2);
    // The held op plus the ops of the six jobs that succeeded (one of them has two).
    assert_eq!(store.stats().writes, 1 + 7);

    let expected: Vec<&[u8]> = vec![b"b", b"c", b"d", b"f", b"j", b"k", b"l"];
    let keys = |store: &Store| -> Vec<Vec<u8>> {
        store.scan_prefix(Table::History, b"", false, usize::MAX).unwrap().into_iter().map(|(key, _)| key).collect()
    };
    assert_eq!(keys(&store), expected);
    store.close().await.unwrap();
    drop(store);

    let store = Store::open(dir.path(), QUEUE).unwrap();
    assert_eq!(keys(&store), expected, "acknowledged writes must be durable");
    store.close().await.unwrap();
}

#[tokio::test]
async fn write_all_is_atomic_and_visible_together() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), QUEUE).unwrap();
    store
        .write_all(vec![
            put(Table::Chunks, b"c1", b"one"),
            put(Table::Vectors, b"c1", b"vec"),
            WriteOp::Delete { table: Table::Chunks, key: b"missing".to_vec() },
        ])
        .await
        .unwrap();
    assert_eq!(store.get(Table::Chunks, b"c1").unwrap(), Some(b"one".to_vec()));
    assert_eq!(store.get(Table::Vectors, b"c1").unwrap(), Some(b"vec".to_vec()));
    // The same key in another table is another entry.
    assert_eq!(store.get(Table::Semantic, b"c1").unwrap(), None);

    let err = store
        .write_all(vec![
            WriteOp::Delete { table: Table::Chunks, key: b"c1".to_vec() },
            put(Table::Chunks, b"c2", b"two"),
            WriteOp::Custom(Box::new(|_txn| Err(StoreError::Rejected("no".to_owned())))),
        ])
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Rejected(_)), "{err:?}");
    assert_eq!(store.get(Table::Chunks, b"c1").unwrap(), Some(b"one".to_vec()));
    assert_eq!(store.get(Table::Chunks, b"c2").unwrap(), None);
    assert_eq!(store.stats().writes, 3);
    store.close().await.unwrap();
}

#[tokio::test]
async fn custom_op_reads_and_writes_in_the_writer_transaction() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), QUEUE).unwrap();
    // "Append with the next sequence number": the closure reads the last key and writes after it.
    for _ in 0..3 {
        store
            .write(WriteOp::Custom(Box::new(|txn| {
                let mut table = txn.open_table(Table::History.definition())?;
                let next = match table.last()? {
                    Some((key, _)) => {
                        let bytes: [u8; 8] =
                            key.value().try_into().map_err(|_| StoreError::Rejected("bad key".to_owned()))?;
                        u64::from_be_bytes(bytes) + 1
                    }
                    None => 0,
                };
                table.insert(next.to_be_bytes().as_slice(), b"turn".as_slice())?;
                Ok(())
            })))
            .await
            .unwrap();
    }
    let keys: Vec<Vec<u8>> = store
        .read(|txn| {
            let table = txn.open_table(Table::History.definition())?;
            let mut keys = Vec::new();
            for entry in table.iter()? {
                keys.push(entry?.0.value().to_vec());
            }
            Ok(keys)
        })
        .unwrap();
    let expected: Vec<Vec<u8>> = (0..3u64).map(|seq| seq.to_be_bytes().to_vec()).collect();
    assert_eq!(keys, expected);
    store.close().await.unwrap();
}

#[tokio::test]
async fn delete_prefix_deletes_exactly_the_prefix() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), QUEUE).unwrap();
    let keys: [&[u8]; 9] = [b"a", b"aa", b"ab", b"abc", b"ab\xff", b"ab\xff\xff", b"ac", b"b", b"\xff\xff"];
    let ops = keys.iter().map(|key| put(Table::Traces, key, b"x")).collect();
    store.write_all(ops).await.unwrap();

    store.write(WriteOp::DeletePrefix { table: Table::Traces, prefix: b"ab".to_vec() }).await.unwrap();
    let remaining = |store: &Store| -> Vec<Vec<u8>> {
        store.scan_prefix(Table::Traces, b"", false, usize::MAX).unwrap().into_iter().map(|(key, _)| key).collect()
    };
    let expected: Vec<&[u8]> = vec![b"a", b"aa", b"ac", b"b", b"\xff\xff"];
    assert_eq!(remaining(&store), expected);

    // A prefix made of 0xFF bytes has no upper bound.
    store.write(WriteOp::DeletePrefix { table: Table::Traces, prefix: b"\xff".to_vec() }).await.unwrap();
    let expected: Vec<&[u8]> = vec![b"a", b"aa", b"ac", b"b"];
    assert_eq!(remaining(&store), expected);

    // The empty prefix deletes the table's contents, and only that table's.
    store.write(put(Table::Metrics, b"m", b"1")).await.unwrap();
    store.write(WriteOp::DeletePrefix { table: Table::Traces, prefix: Vec::new() }).await.unwrap();
    assert!(remaining(&store).is_empty());
    assert_eq!(store.get(Table::Metrics, b"m").unwrap(), Some(b"1".to_vec()));
    store.close().await.unwrap();
}

#[tokio::test]
async fn scan_prefix_orders_reverses_and_limits() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), QUEUE).unwrap();
    let ops = [b"s/1/c", b"s/1/a", b"s/2/a", b"s/1/b", b"t/1/a"]
        .iter()
        .map(|key| put(Table::History, *key, key.as_slice()))
        .collect();
    store.write_all(ops).await.unwrap();

    let keys = |pairs: Vec<(Vec<u8>, Vec<u8>)>| -> Vec<Vec<u8>> {
        pairs
            .into_iter()
            .map(|(key, value)| {
                assert_eq!(key, value);
                key
            })
            .collect()
    };
    let scan = |prefix: &[u8], reverse, limit| keys(store.scan_prefix(Table::History, prefix, reverse, limit).unwrap());
    let forward: Vec<&[u8]> = vec![b"s/1/a", b"s/1/b", b"s/1/c"];
    assert_eq!(scan(b"s/1/", false, 10), forward);
    let backward: Vec<&[u8]> = vec![b"s/1/c", b"s/1/b", b"s/1/a"];
    assert_eq!(scan(b"s/1/", true, 10), backward);
    let last_two: Vec<&[u8]> = vec![b"s/1/c", b"s/1/b"];
    assert_eq!(scan(b"s/1/", true, 2), last_two);
    let first_one: Vec<&[u8]> = vec![b"s/1/a"];
    assert_eq!(scan(b"s/1/", false, 1), first_one);
    assert!(scan(b"s/1/", false, 0).is_empty());
    assert!(scan(b"u", false, 10).is_empty());
    assert_eq!(scan(b"s/", false, usize::MAX).len(), 4);

    let via_async = store.scan_prefix_async(Table::History, b"s/1/".to_vec(), true, 2).await.unwrap();
    assert_eq!(keys(via_async), last_two);
    assert_eq!(store.get_async(Table::History, b"t/1/a".to_vec()).await.unwrap(), Some(b"t/1/a".to_vec()));
    assert_eq!(store.get_async(Table::History, b"t/1".to_vec()).await.unwrap(), None);
    store.close().await.unwrap();
}

#[tokio::test]
async fn write_after_close_is_refused_and_close_is_idempotent() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), QUEUE).unwrap();
    store.check().unwrap();
    store.write(put(Table::Meta, b"k", b"v")).await.unwrap();
    store.close().await.unwrap();
    store.close().await.unwrap();

    let err = store.write(put(Table::Meta, b"k2", b"v")).await.unwrap_err();
    assert!(matches!(err, StoreError::Closed), "{err:?}");
    assert_eq!(err.to_string(), "the store is closed");
    assert!(matches!(store.check(), Err(StoreError::Closed)));
    // Reads keep working on a closed store.
    assert_eq!(store.get(Table::Meta, b"k").unwrap(), Some(b"v".to_vec()));
}

#[tokio::test]
async fn lazy_writes_do_not_wait_for_the_durable_commit_and_are_made_durable() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(dir.path(), QUEUE).unwrap());
    // Alone: answered once visible; the writer then makes it durable on its own.
    store.enqueue_lazy(vec![put(Table::Metrics, b"alone", b"1")]).await.unwrap().wait().await.unwrap();
    assert_eq!(store.get(Table::Metrics, b"alone").unwrap().as_deref(), Some(&b"1"[..]));
    for _ in 0..2000 {
        if store.stats().commits >= 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    assert_eq!(store.stats().commits, 1, "the owed durable commit is made when the queue is empty");

    // In a batch with durable writes: the lazy one shares their transaction and commit.
    let (hold, started, release) = hold_writer();
    let holding = {
        let store = Arc::clone(&store);
        tokio::spawn(async move { store.write(hold).await })
    };
    started.await.unwrap();
    let durable = {
        let store = Arc::clone(&store);
        tokio::spawn(async move { store.write(put(Table::Metrics, b"durable", b"2")).await })
    };
    let lazy = {
        let store = Arc::clone(&store);
        tokio::spawn(async move { store.enqueue_lazy(vec![put(Table::Metrics, b"lazy", b"3")]).await?.wait().await })
    };
    wait_queued(&store, 2).await;
    release.send(()).unwrap();
    holding.await.unwrap().unwrap();
    durable.await.unwrap().unwrap();
    lazy.await.unwrap().unwrap();
    store.close().await.unwrap();
    drop(store);
    let store = Store::open(dir.path(), QUEUE).unwrap();
    for key in [&b"alone"[..], b"durable", b"lazy"] {
        assert!(store.get(Table::Metrics, key).unwrap().is_some(), "{key:?} survived the reopen");
    }
    store.close().await.unwrap();
}

#[tokio::test]
async fn close_drains_queued_writes() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(dir.path(), QUEUE).unwrap());
    let (hold, started, release) = hold_writer();
    let mut handles = vec![{
        let store = Arc::clone(&store);
        tokio::spawn(async move { store.write(hold).await })
    }];
    started.await.unwrap();
    for idx in 0..10u8 {
        let store = Arc::clone(&store);
        handles.push(tokio::spawn(async move { store.write(put(Table::Metrics, &[idx], b"v")).await }));
    }
    wait_queued(&store, 10).await;
    let closing = {
        let store = Arc::clone(&store);
        tokio::spawn(async move { store.close().await })
    };
    release.send(()).unwrap();
    closing.await.unwrap().unwrap();
    for handle in handles {
        handle.await.unwrap().unwrap();
    }
    assert_eq!(store.stats().writes, 11);
    drop(store);
    let store = Store::open(dir.path(), QUEUE).unwrap();
    assert_eq!(store.scan_prefix(Table::Metrics, b"", false, usize::MAX).unwrap().len(), 10);
    store.close().await.unwrap();
}

#[tokio::test]
async fn dropping_the_store_stops_the_writer() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), QUEUE).unwrap();
    store.write(put(Table::Mesh, b"k", b"v")).await.unwrap();
    let alive = Arc::clone(&store.writer_alive);
    drop(store);
    for _ in 0..2000 {
        if !alive.load(std::sync::atomic::Ordering::Acquire) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    assert!(!alive.load(std::sync::atomic::Ordering::Acquire));
    // The thread held the last handle to the database: the file is free again.
    let mut reopened = None;
    for _ in 0..2000 {
        match Store::open(dir.path(), QUEUE) {
            Ok(store) => {
                reopened = Some(store);
                break;
            }
            Err(StoreError::InUse { .. }) => tokio::time::sleep(Duration::from_millis(1)).await,
            Err(err) => panic!("{err}"),
        }
    }
    let store = reopened.expect("the file stays locked after the store was dropped");
    assert_eq!(store.get(Table::Mesh, b"k").unwrap(), Some(b"v".to_vec()));
    store.close().await.unwrap();
}
