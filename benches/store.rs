//! Store write throughput: sequential writes (one fsync each) against concurrent writers
//! (group commit shares the fsync), and concurrent `Custom` ops (each also pays a non-durable
//! commit, for failure isolation). Prints figures; not pass/fail.
//!
//! Run with `cargo bench --bench store`. Each scenario uses its own temporary data dir.

use std::sync::Arc;
use std::time::{Duration, Instant};

use astromesh::store::{Store, Table, WriteOp};

/// Writes per scenario.
const N_WRITES: u32 = 10_000;
/// Concurrent writer tasks in the second scenario.
const N_TASKS: u32 = 32;
/// Write queue capacity, as a daemon would configure it.
const QUEUE: usize = 1024;
/// A value of about the size of a conversation turn.
const VALUE_LEN: usize = 256;

/// How each write is sent.
#[derive(Clone, Copy)]
enum OpKind {
    Put,
    /// The same put inside a `Custom` closure: each one costs an extra non-durable commit.
    Custom,
}

fn op(kind: OpKind, write_idx: u32) -> WriteOp {
    match kind {
        OpKind::Put => {
            WriteOp::Put { table: Table::History, key: write_idx.to_be_bytes().to_vec(), value: vec![b'x'; VALUE_LEN] }
        }
        OpKind::Custom => WriteOp::Custom(Box::new(move |txn| {
            let mut table = txn.open_table(Table::History.definition())?;
            table.insert(write_idx.to_be_bytes().as_slice(), [b'x'; VALUE_LEN].as_slice())?;
            Ok(())
        })),
    }
}

struct Figures {
    elapsed: Duration,
    writes: u64,
    commits: u64,
}

impl Figures {
    fn print(&self, label: &str) {
        let seconds = self.elapsed.as_secs_f64();
        let per_commit = self.writes as f64 / self.commits.max(1) as f64;
        let per_second = self.writes as f64 / seconds;
        println!(
            "store: {label}, {} writes, {} commits ({per_commit:.1} writes/commit), \
             {per_second:.0} writes/s ({:.2} s)",
            self.writes, self.commits, seconds
        );
    }
}

async fn sequential(kind: OpKind, n_writes: u32) -> anyhow::Result<Figures> {
    let dir = tempfile::tempdir()?;
    let store = Store::open(dir.path(), QUEUE)?;
    let started = Instant::now();
    for write_idx in 0..n_writes {
        store.write(op(kind, write_idx)).await?;
    }
    let elapsed = started.elapsed();
    let stats = store.stats();
    store.close().await?;
    Ok(Figures { elapsed, writes: stats.writes, commits: stats.commits })
}

async fn concurrent(kind: OpKind, n_tasks: u32, n_writes: u32) -> anyhow::Result<Figures> {
    let dir = tempfile::tempdir()?;
    let store = Arc::new(Store::open(dir.path(), QUEUE)?);
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(n_tasks as usize);
    for task_idx in 0..n_tasks {
        let store = Arc::clone(&store);
        tasks.push(tokio::spawn(async move {
            let mut write_idx = task_idx;
            while write_idx < n_writes {
                store.write(op(kind, write_idx)).await?;
                write_idx += n_tasks;
            }
            anyhow::Ok(())
        }));
    }
    for task in tasks {
        task.await??;
    }
    let elapsed = started.elapsed();
    let stats = store.stats();
    store.close().await?;
    Ok(Figures { elapsed, writes: stats.writes, commits: stats.commits })
}

fn main() -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async {
        sequential(OpKind::Put, N_WRITES).await?.print("1 task");
        concurrent(OpKind::Put, N_TASKS, N_WRITES).await?.print(&format!("{N_TASKS} tasks"));
        concurrent(OpKind::Custom, N_TASKS, N_WRITES).await?.print(&format!("{N_TASKS} tasks, custom ops"));
        anyhow::Ok(())
    })
}
