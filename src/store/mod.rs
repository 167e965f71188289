//! The embedded database: one redb file, read directly, written by a single writer thread.
//!
//! `Store::open` opens `<data_dir>/astromesh.redb`, checks the schema version, creates every
//! table, and starts the writer thread (`astromesh-store-writer`, see `writer`). Callers send
//! `WriteOp`s on a bounded channel and await an acknowledgement that comes only after a durable
//! commit that includes them; the writer commits everything queued at once (group commit), so one
//! fsync (~0.15 ms on the reference machine) is shared by a whole batch. Reads open their own
//! redb read transactions and never go through the writer.
//!
//! **Architecture Invariant:** only the writer thread opens write transactions. `WriteOp::Custom`
//! is how other modules do read-modify-write: the closure runs on the writer, inside its
//! transaction.
//!
//! Not here: what the keys and values of each table mean (the owning modules decide), retention.

mod writer;

#[cfg(test)]
mod model_tests;
#[cfg(test)]
mod open_tests;
#[cfg(test)]
mod tests;

use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use redb::{Database, ReadTransaction, ReadableDatabase, ReadableTable, TableDefinition};
use tokio::sync::{mpsc, oneshot};
use tracing::info;

/// The layout version this binary writes, stored in `meta` under `schema_version` (u32 LE).
pub const SCHEMA_VERSION: u32 = 1;

/// The key under which `meta` stores the schema version.
const SCHEMA_VERSION_KEY: &[u8] = b"schema_version";

/// The database file's name inside the data directory.
const FILE_NAME: &str = "astromesh.redb";

/// The tables of the database. Every table maps byte keys to byte values; the owning module
/// encodes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Table {
    Meta,
    History,
    Traces,
    Metrics,
    Collections,
    Chunks,
    Vectors,
    Semantic,
    Mesh,
    /// The `cache_store` tool's per-agent key/value pairs.
    Cache,
}

impl Table {
    /// Every table, in declaration order; `Store::open` creates them all.
    pub const ALL: [Table; 10] = [
        Table::Meta,
        Table::History,
        Table::Traces,
        Table::Metrics,
        Table::Collections,
        Table::Chunks,
        Table::Vectors,
        Table::Semantic,
        Table::Mesh,
        Table::Cache,
    ];

    /// The table's name inside the redb file.
    pub fn name(self) -> &'static str {
        match self {
            Table::Meta => "meta",
            Table::History => "history",
            Table::Traces => "traces",
            Table::Metrics => "metrics",
            Table::Collections => "collections",
            Table::Chunks => "chunks",
            Table::Vectors => "vectors",
            Table::Semantic => "semantic",
            Table::Mesh => "mesh",
            Table::Cache => "cache",
        }
    }

    /// The redb definition, for `WriteOp::Custom` closures and `Store::read`.
    pub fn definition(self) -> TableDefinition<'static, &'static [u8], &'static [u8]> {
        TableDefinition::new(self.name())
    }
}

/// One change to the database. A `Vec<WriteOp>` sent with `Store::write_all` is one atomic job.
pub enum WriteOp {
    Put {
        table: Table,
        key: Vec<u8>,
        value: Vec<u8>,
    },
    Delete {
        table: Table,
        key: Vec<u8>,
    },
    /// Deletes every key that starts with `prefix`.
    DeletePrefix {
        table: Table,
        prefix: Vec<u8>,
    },
    /// Arbitrary read-modify-write inside the writer's transaction (e.g. "append with next
    /// sequence number"). If it returns `Err` (or panics), none of its job's effects are
    /// committed and the other jobs of the batch are unaffected.
    Custom(CustomOp),
}

/// The closure of `WriteOp::Custom`.
pub type CustomOp = Box<dyn FnOnce(&redb::WriteTransaction) -> Result<(), StoreError> + Send>;

impl std::fmt::Debug for WriteOp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WriteOp::Put { table, key, value } => f
                .debug_struct("Put")
                .field("table", table)
                .field("key_len", &key.len())
                .field("value_len", &value.len())
                .finish(),
            WriteOp::Delete { table, key } => {
                f.debug_struct("Delete").field("table", table).field("key_len", &key.len()).finish()
            }
            WriteOp::DeletePrefix { table, prefix } => {
                f.debug_struct("DeletePrefix").field("table", table).field("prefix_len", &prefix.len()).finish()
            }
            WriteOp::Custom(_) => f.write_str("Custom(..)"),
        }
    }
}

/// Everything that can go wrong in the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot create data directory {}: {source}", path.display())]
    CreateDataDir { path: PathBuf, source: std::io::Error },
    #[error("cannot open database {}: {source}", path.display())]
    OpenFile { path: PathBuf, source: std::io::Error },
    #[error("{} is not an astromesh database ({reason})", path.display())]
    NotADatabase { path: PathBuf, reason: String },
    #[error(
        "database {} is in use by another process (is another astromesh daemon running with \
         this --data-dir?)",
        path.display()
    )]
    InUse { path: PathBuf },
    #[error("cannot open database {}: {source}", path.display())]
    Open { path: PathBuf, source: redb::DatabaseError },
    #[error(
        "database {} was written by a newer astromesh (schema {found}, this binary supports \
         {supported}); upgrade astromesh or use another --data-dir",
        path.display()
    )]
    NewerSchema { path: PathBuf, found: u32, supported: u32 },
    #[error("database {} has a malformed schema version ({len} bytes, expected 4)", path.display())]
    BadSchemaVersion { path: PathBuf, len: usize },
    #[error("cannot start the store writer thread: {0}")]
    SpawnWriter(std::io::Error),
    #[error("cannot begin a transaction: {0}")]
    Transaction(#[from] redb::TransactionError),
    #[error("cannot open a table: {0}")]
    Table(#[from] redb::TableError),
    #[error("storage error: {0}")]
    Storage(#[from] redb::StorageError),
    #[error("cannot commit: {0}")]
    Commit(#[from] redb::CommitError),
    /// The batch a write belonged to could not be made durable; the full error is logged once.
    #[error("the write could not be committed: {reason}")]
    BatchFailed { reason: String },
    /// A `WriteOp::Custom` closure refused the write (domain errors of the calling module).
    #[error("write rejected: {0}")]
    Rejected(String),
    #[error("a custom write operation panicked: {0}")]
    OpPanicked(String),
    #[error("the store writer thread has stopped")]
    WriterStopped,
    #[error("a blocking store task failed: {0}")]
    BlockingTask(#[from] tokio::task::JoinError),
    #[error("the store is closed")]
    Closed,
}

/// A `(key, value)` pair returned by scans.
pub type KeyValue = (Vec<u8>, Vec<u8>);

/// Counters since `Store::open`.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct StoreStats {
    /// Operations acknowledged: durably written, or (lazy writes) committed and visible.
    pub writes: u64,
    /// Durable commits made.
    pub commits: u64,
}

/// The pending answer of a queued write (`Store::enqueue_lazy`).
pub struct Acknowledgement(oneshot::Receiver<Result<(), StoreError>>);

impl Acknowledgement {
    /// Waits until the write is committed (or has failed).
    pub async fn wait(self) -> Result<(), StoreError> {
        self.0.await.map_err(|_| StoreError::WriterStopped)?
    }
}

/// Shared between the `Store` and its writer thread.
#[derive(Debug, Default)]
struct Counters {
    writes: AtomicU64,
    commits: AtomicU64,
}

/// The database handle. Share it with `Arc<Store>`; every method takes `&self`.
pub struct Store {
    path: PathBuf,
    db: Arc<Database>,
    /// `None` once closed. A `std` mutex: held only to clone or take the sender, never across
    /// an await.
    jobs: Mutex<Option<mpsc::Sender<writer::Job>>>,
    /// Taken by the first `close`; a tokio mutex so that a concurrent `close` waits for the join.
    writer: tokio::sync::Mutex<Option<std::thread::JoinHandle<()>>>,
    writer_alive: Arc<AtomicBool>,
    counters: Arc<Counters>,
}

impl Store {
    /// Creates `data_dir` if needed and opens/creates `<data_dir>/astromesh.redb`. Blocking
    /// (call at startup). `queue` is the capacity of the bounded write queue (at least 1).
    pub fn open(data_dir: &Path, queue: usize) -> Result<Store, StoreError> {
        std::fs::create_dir_all(data_dir)
            .map_err(|source| StoreError::CreateDataDir { path: data_dir.to_owned(), source })?;
        let path = data_dir.join(FILE_NAME);
        let db = Database::create(&path).map_err(|err| map_open_error(&path, err))?;
        prepare_schema(&db, &path)?;

        let db = Arc::new(db);
        let (jobs, receiver) = mpsc::channel(queue.max(1));
        let counters = Arc::new(Counters::default());
        let writer_alive = Arc::new(AtomicBool::new(true));
        let handle = {
            let db = Arc::clone(&db);
            let counters = Arc::clone(&counters);
            let alive = Arc::clone(&writer_alive);
            std::thread::Builder::new()
                .name("astromesh-store-writer".to_owned())
                .spawn(move || writer::run(&db, receiver, &counters, &alive))
                .map_err(StoreError::SpawnWriter)?
        };
        info!(path = %path.display(), "store opened");
        Ok(Store {
            path,
            db,
            jobs: Mutex::new(Some(jobs)),
            writer: tokio::sync::Mutex::new(Some(handle)),
            writer_alive,
            counters,
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Sends one op and awaits the acknowledgement, which comes only after a durable commit
    /// that includes it.
    pub async fn write(&self, op: WriteOp) -> Result<(), StoreError> {
        self.write_all(vec![op]).await
    }

    /// Several ops committed atomically together (same transaction), one ack.
    pub async fn write_all(&self, ops: Vec<WriteOp>) -> Result<(), StoreError> {
        self.submit(ops, true).await
    }

    /// Queues a lazy write (its ops applied atomically together) and returns once it is in the
    /// writer's queue, with its pending acknowledgement. The write is acknowledged as soon as it
    /// is committed and visible to readers, without waiting for an fsync of its own: it becomes
    /// durable with the next durable commit, which the writer makes within 50 ms (and at close).
    /// For data whose loss in a crash in that window is acceptable (traces). Queued writes are applied even if the
    /// caller goes away, and `close` drains them.
    pub async fn enqueue_lazy(&self, ops: Vec<WriteOp>) -> Result<Acknowledgement, StoreError> {
        let answer = self.enqueue(ops, false).await?;
        Ok(Acknowledgement(answer))
    }

    async fn submit(&self, ops: Vec<WriteOp>, durable: bool) -> Result<(), StoreError> {
        let answer = self.enqueue(ops, durable).await?;
        // The writer drops the reply only if it dies mid-batch.
        answer.await.map_err(|_| StoreError::WriterStopped)?
    }

    async fn enqueue(
        &self,
        ops: Vec<WriteOp>,
        durable: bool,
    ) -> Result<oneshot::Receiver<Result<(), StoreError>>, StoreError> {
        let sender = self.jobs.lock().map_err(|_| StoreError::WriterStopped)?.clone().ok_or(StoreError::Closed)?;
        let (reply, answer) = oneshot::channel();
        // A full queue makes the caller wait here: that is the backpressure.
        if sender.send(writer::Job { ops, reply, durable }).await.is_err() {
            // The receiver is gone although we had not closed: the writer thread died.
            return Err(StoreError::WriterStopped);
        }
        Ok(answer)
    }

    /// Point read (blocking, cheap: a read transaction).
    pub fn get(&self, table: Table, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        get_in(&self.db, table, key)
    }

    /// All (key, value) pairs whose key starts with `prefix`, in key order; at most `limit` of
    /// them; `reverse` iterates from the end (the largest keys first).
    pub fn scan_prefix(
        &self,
        table: Table,
        prefix: &[u8],
        reverse: bool,
        limit: usize,
    ) -> Result<Vec<KeyValue>, StoreError> {
        scan_prefix_in(&self.db, table, prefix, reverse, limit)
    }

    /// Gives access to a redb read transaction for more complex reads (blocking).
    pub fn read<T>(&self, f: impl FnOnce(&ReadTransaction) -> Result<T, StoreError>) -> Result<T, StoreError> {
        let txn = self.db.begin_read()?;
        f(&txn)
    }

    /// `get` on the blocking pool, for request paths.
    pub async fn get_async(&self, table: Table, key: Vec<u8>) -> Result<Option<Vec<u8>>, StoreError> {
        let db = Arc::clone(&self.db);
        tokio::task::spawn_blocking(move || get_in(&db, table, &key)).await?
    }

    /// `scan_prefix` on the blocking pool, for request paths.
    pub async fn scan_prefix_async(
        &self,
        table: Table,
        prefix: Vec<u8>,
        reverse: bool,
        limit: usize,
    ) -> Result<Vec<KeyValue>, StoreError> {
        let db = Arc::clone(&self.db);
        tokio::task::spawn_blocking(move || scan_prefix_in(&db, table, &prefix, reverse, limit)).await?
    }

    /// Writes acknowledged and durable commits made since `open`.
    pub fn stats(&self) -> StoreStats {
        StoreStats {
            writes: self.counters.writes.load(Ordering::Relaxed),
            commits: self.counters.commits.load(Ordering::Relaxed),
        }
    }

    /// Health check for `/v1/system/doctor`: a read transaction succeeds and the writer thread
    /// is alive. A closed store fails with `Closed`.
    pub fn check(&self) -> Result<(), StoreError> {
        let open = self.jobs.lock().map_err(|_| StoreError::WriterStopped)?.is_some();
        if !open {
            return Err(StoreError::Closed);
        }
        if !self.writer_alive.load(Ordering::Acquire) {
            return Err(StoreError::WriterStopped);
        }
        let txn = self.db.begin_read()?;
        txn.open_table(Table::Meta.definition())?;
        Ok(())
    }

    /// Stops accepting writes, lets the writer drain what is queued (each batch ends with a
    /// durable commit, so the last one is the final commit) and joins the thread. Idempotent.
    /// After close, `write` returns `StoreError::Closed`; reads keep working, and the file stays
    /// open (and locked against other processes) until the `Store` is dropped.
    pub async fn close(&self) -> Result<(), StoreError> {
        let mut writer = self.writer.lock().await;
        // Dropping our sender closes the channel once in-flight `write` calls have sent.
        drop(self.jobs.lock().map_err(|_| StoreError::WriterStopped)?.take());
        let Some(handle) = writer.take() else {
            return Ok(());
        };
        let joined = tokio::task::spawn_blocking(move || handle.join()).await?;
        if joined.is_err() {
            return Err(StoreError::WriterStopped);
        }
        info!(path = %self.path.display(), "store closed");
        Ok(())
    }
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("path", &self.path).field("stats", &self.stats()).finish_non_exhaustive()
    }
}

/// Turns redb's open errors into messages an operator can act on.
fn map_open_error(path: &Path, err: redb::DatabaseError) -> StoreError {
    let path = path.to_owned();
    match err {
        redb::DatabaseError::DatabaseAlreadyOpen => StoreError::InUse { path },
        redb::DatabaseError::Storage(redb::StorageError::Corrupted(reason)) => {
            StoreError::NotADatabase { path, reason }
        }
        redb::DatabaseError::UpgradeRequired(version) => {
            StoreError::NotADatabase { path, reason: format!("unsupported redb file format version {version}") }
        }
        redb::DatabaseError::Storage(redb::StorageError::Io(source)) => {
            match source.kind() {
                // redb reports a wrong magic number as `InvalidData`.
                std::io::ErrorKind::InvalidData => StoreError::NotADatabase { path, reason: source.to_string() },
                // A file shorter than redb's header: not something redb wrote.
                std::io::ErrorKind::UnexpectedEof => {
                    StoreError::NotADatabase { path, reason: format!("file too short: {source}") }
                }
                _ => StoreError::OpenFile { path, source },
            }
        }
        source => StoreError::Open { path, source },
    }
}

/// Checks or writes the schema version and creates every table, in one durable transaction.
fn prepare_schema(db: &Database, path: &Path) -> Result<(), StoreError> {
    let txn = db.begin_write()?;
    {
        let mut meta = txn.open_table(Table::Meta.definition())?;
        let found = meta.get(SCHEMA_VERSION_KEY)?.map(|guard| guard.value().to_vec());
        match found {
            Some(bytes) => {
                let bytes: [u8; 4] = bytes
                    .as_slice()
                    .try_into()
                    .map_err(|_| StoreError::BadSchemaVersion { path: path.to_owned(), len: bytes.len() })?;
                let found = u32::from_le_bytes(bytes);
                if found > SCHEMA_VERSION {
                    return Err(StoreError::NewerSchema { path: path.to_owned(), found, supported: SCHEMA_VERSION });
                }
            }
            None => {
                meta.insert(SCHEMA_VERSION_KEY, SCHEMA_VERSION.to_le_bytes().as_slice())?;
            }
        }
    }
    for table in Table::ALL {
        txn.open_table(table.definition())?;
    }
    txn.commit()?;
    Ok(())
}

/// The smallest key greater than every key starting with `prefix`; `None` when there is none
/// (empty prefix, or all bytes 0xFF).
fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < u8::MAX {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

/// The key range covering exactly the keys that start with `prefix`.
fn prefix_range<'p>(prefix: &'p [u8], end: Option<&'p [u8]>) -> (Bound<&'p [u8]>, Bound<&'p [u8]>) {
    let upper = match end {
        Some(end) => Bound::Excluded(end),
        None => Bound::Unbounded,
    };
    (Bound::Included(prefix), upper)
}

fn get_in(db: &Database, table: Table, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
    let txn = db.begin_read()?;
    let table = txn.open_table(table.definition())?;
    let value = table.get(key)?.map(|guard| guard.value().to_vec());
    Ok(value)
}

fn scan_prefix_in(
    db: &Database,
    table: Table,
    prefix: &[u8],
    reverse: bool,
    limit: usize,
) -> Result<Vec<KeyValue>, StoreError> {
    let txn = db.begin_read()?;
    let table = txn.open_table(table.definition())?;
    let end = prefix_end(prefix);
    let range = table.range::<&[u8]>(prefix_range(prefix, end.as_deref()))?;
    let mut pairs = Vec::new();
    let mut push = |entry: Result<_, redb::StorageError>| -> Result<(), StoreError> {
        let (key, value): (redb::AccessGuard<&[u8]>, redb::AccessGuard<&[u8]>) = entry?;
        pairs.push((key.value().to_vec(), value.value().to_vec()));
        Ok(())
    };
    if reverse {
        for entry in range.rev().take(limit) {
            push(entry)?;
        }
    } else {
        for entry in range.take(limit) {
            push(entry)?;
        }
    }
    Ok(pairs)
}
