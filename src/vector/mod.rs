//! Vector search for one collection: exact SIMD scan, plus an HNSW snapshot when it is large.
//!
//! A `VectorIndex` holds `(id, vector)` pairs; ids are u64s that the caller hands out in
//! increasing order (the rag module's chunk ids), which keeps every id list sorted and lets a
//! snapshot answer "do I hold this id" by binary search. The state has three parts, behind one
//! `RwLock` (queries share it; inserts, deletes and the snapshot swap take it briefly):
//!
//! - `tail`: vectors not in a snapshot, contiguous (`Vec<f32>`, n × dim), scanned exactly;
//! - `snapshot`: an immutable instant-distance graph over older vectors (`hnsw`), if any;
//! - `deleted`: ids removed since they entered the snapshot or the tail, filtered at query time
//!   (only for candidates that would enter the top k, so the scan stays a tight loop).
//!
//! Below `hnsw_threshold` live vectors (default 20,000) everything is in the tail: an exact scan
//! of 20k vectors takes ~2 ms and is always right. At or above it the index asks the `Rebuilder`
//! thread for a snapshot; it is built from a copy, off every request path, and swapped in with
//! the rows it covers removed from the tail. A new snapshot is requested when the tail or the
//! deleted set reaches a quarter of the snapshot. Queries never wait for a build.
//!
//! **Architecture Invariant:** the index is derived data. Nothing here is persisted; the owner
//! rebuilds it from the store at startup, so a crash can never leave it disagreeing with the
//! store.

mod hnsw;
mod rebuild;
pub mod simd;

#[cfg(test)]
mod tests;

use std::cmp::{Ordering, Reverse};
use std::collections::{BinaryHeap, HashSet};
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard, RwLockWriteGuard};

pub use hnsw::HnswParams;
pub use rebuild::Rebuilder;

use hnsw::{Row, Snapshot};
use simd::dot_kernel;

/// When an index switches from exact scan to HNSW, and how the graph is built.
#[derive(Debug, Clone, Copy)]
pub struct IndexSettings {
    /// Live vectors from which a snapshot is built (default 20,000).
    pub hnsw_threshold: usize,
    pub hnsw: HnswParams,
}

impl Default for IndexSettings {
    fn default() -> IndexSettings {
        IndexSettings { hnsw_threshold: 20_000, hnsw: HnswParams::default() }
    }
}

/// Vectors not (yet) in a snapshot.
#[derive(Default)]
struct Tail {
    ids: Vec<u64>,
    vectors: Vec<f32>,
}

struct State {
    tail: Tail,
    snapshot: Option<Arc<Snapshot>>,
    deleted: HashSet<u64>,
    /// A rebuild is queued or running: the tail must not be compacted meanwhile (the builder
    /// removes the rows it took by count).
    building: bool,
}

/// Counts for status pages and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexStats {
    /// Vectors that queries can return.
    pub live: usize,
    /// Vectors covered by the HNSW snapshot (0: exact scan only).
    pub indexed: usize,
    pub building: bool,
}

/// The vector index of one collection.
pub struct VectorIndex {
    dim: usize,
    settings: IndexSettings,
    rebuilder: Option<Rebuilder>,
    state: RwLock<State>,
    build_lock: Mutex<()>,
}

impl VectorIndex {
    /// An empty index of `dim`-dimensional vectors. Without a `Rebuilder` it stays exact.
    pub fn new(dim: usize, settings: IndexSettings, rebuilder: Option<Rebuilder>) -> Arc<VectorIndex> {
        let state = State { tail: Tail::default(), snapshot: None, deleted: HashSet::new(), building: false };
        Arc::new(VectorIndex { dim, settings, rebuilder, state: RwLock::new(state), build_lock: Mutex::new(()) })
    }

    pub fn dimension(&self) -> usize {
        self.dim
    }

    /// Adds vectors (`ids.len() * dim` floats). Ids must be new and larger than every id added
    /// before; rows that break this are ignored (the rag module never sends them).
    pub fn insert(self: &Arc<Self>, ids: &[u64], vectors: &[f32]) {
        {
            let mut state = self.write();
            for (row, &id) in ids.iter().enumerate() {
                let Some(vector) = vectors.get(row * self.dim..(row + 1) * self.dim) else { break };
                let newest = state.tail.ids.last().copied().or_else(|| state.snapshot.as_ref()?.ids.last().copied());
                if newest.is_some_and(|newest| id <= newest) {
                    continue;
                }
                state.tail.ids.push(id);
                state.tail.vectors.extend_from_slice(vector);
            }
        }
        self.maybe_rebuild();
    }

    /// Removes ids (unknown ids are ignored).
    pub fn remove(self: &Arc<Self>, ids: &[u64]) {
        {
            let mut state = self.write();
            for &id in ids {
                let present = state.tail.ids.binary_search(&id).is_ok()
                    || state.snapshot.as_ref().is_some_and(|snapshot| snapshot.contains(id));
                if present {
                    state.deleted.insert(id);
                }
            }
            // Exact mode: drop deleted rows once they are an eighth of the tail.
            if state.snapshot.is_none() && !state.building && state.deleted.len() * 8 > state.tail.ids.len() {
                let State { tail, deleted, .. } = &mut *state;
                compact(tail, deleted, self.dim);
                deleted.clear();
            }
        }
        self.maybe_rebuild();
    }

    pub fn stats(&self) -> IndexStats {
        let state = self.read();
        let indexed = state.snapshot.as_ref().map_or(0, |snapshot| snapshot.len());
        IndexStats { live: indexed + state.tail.ids.len() - state.deleted.len(), indexed, building: state.building }
    }

    /// The `k` nearest ids by cosine similarity, best first: the snapshot's graph search plus an
    /// exact scan of the tail.
    pub fn search(&self, query: &[f32], k: usize) -> Vec<(u64, f32)> {
        let state = self.read();
        let mut best = TopK::new(k);
        if let Some(snapshot) = &state.snapshot {
            let mut scratch = instant_distance::Search::default();
            let live =
                snapshot.search(&Row::query(query), &mut scratch).filter(|(id, _)| !state.deleted.contains(id)).take(k);
            for (id, score) in live {
                best.push(id, score);
            }
        }
        scan(&state.tail, query, self.dim, &state.deleted, &mut best);
        best.into_sorted()
    }

    /// The `k` nearest ids by exact scan of everything (the oracle for recall).
    pub fn search_exact(&self, query: &[f32], k: usize) -> Vec<(u64, f32)> {
        let state = self.read();
        let mut best = TopK::new(k);
        if let Some(snapshot) = &state.snapshot {
            let dot = dot_kernel();
            for (row, &id) in snapshot.ids.iter().enumerate() {
                let score = dot(query, snapshot.vector(row, self.dim));
                if best.admits(score) && !state.deleted.contains(&id) {
                    best.push(id, score);
                }
            }
        }
        scan(&state.tail, query, self.dim, &state.deleted, &mut best);
        best.into_sorted()
    }

    /// Builds a snapshot of every live vector now, on the calling thread (and the current rayon
    /// pool), then swaps it in. The `Rebuilder` thread runs this; tests and benchmarks call it
    /// directly. Returns false when there was nothing to index.
    pub fn build_snapshot(&self) -> bool {
        // One build at a time: the swap removes the tail rows the build took by count.
        let _one_build = self.build_lock.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        // 1. Copy what the snapshot will cover; `building` stops tail compaction until the swap.
        let (ids, data, taken) = {
            let mut state = self.write();
            state.building = true;
            let mut ids = Vec::new();
            let mut data = Vec::new();
            if let Some(snapshot) = &state.snapshot {
                for (row, &id) in snapshot.ids.iter().enumerate() {
                    if !state.deleted.contains(&id) {
                        ids.push(id);
                        data.extend_from_slice(snapshot.vector(row, self.dim));
                    }
                }
            }
            for (row, &id) in state.tail.ids.iter().enumerate() {
                if !state.deleted.contains(&id) {
                    ids.push(id);
                    data.extend_from_slice(&state.tail.vectors[row * self.dim..(row + 1) * self.dim]);
                }
            }
            (ids, data, state.tail.ids.len())
        };
        if ids.is_empty() {
            self.write().building = false;
            return false;
        }
        // 2. Build without any lock: queries and inserts go on meanwhile.
        let started = std::time::Instant::now();
        let snapshot = Arc::new(Snapshot::build(ids, data, self.dim, self.settings.hnsw));
        tracing::debug!(vectors = snapshot.len(), elapsed_ms = started.elapsed().as_millis() as u64, "hnsw built");
        // 3. Swap: the tail loses the rows the snapshot took; deletions made during the build
        //    stay filtered if the new snapshot still holds their ids.
        let mut state = self.write();
        state.tail.ids.drain(..taken);
        state.tail.vectors.drain(..taken * self.dim);
        let State { tail, deleted, .. } = &mut *state;
        deleted.retain(|id| snapshot.contains(*id) || tail.ids.binary_search(id).is_ok());
        state.snapshot = Some(snapshot);
        state.building = false;
        true
    }

    /// Asks the rebuilder for a snapshot when the policy in the module docs says so.
    fn maybe_rebuild(self: &Arc<Self>) {
        let Some(rebuilder) = &self.rebuilder else { return };
        {
            let mut state = self.write();
            if state.building {
                return;
            }
            let tail = state.tail.ids.len();
            let wanted = match &state.snapshot {
                None => tail.saturating_sub(state.deleted.len()) >= self.settings.hnsw_threshold,
                Some(snapshot) => tail * 4 >= snapshot.len().max(1) || state.deleted.len() * 4 >= snapshot.len(),
            };
            if !wanted {
                return;
            }
            state.building = true;
        }
        if !rebuilder.request(Arc::downgrade(self)) {
            // Queue full: a later insert or delete asks again.
            self.write().building = false;
        }
    }

    fn read(&self) -> RwLockReadGuard<'_, State> {
        // A panic while holding the lock cannot leave `State` half-updated in a way that breaks
        // searches (every update is a push/drain/insert), so a poisoned lock is used as is.
        self.state.read().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn write(&self) -> RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Removes deleted rows from the tail, keeping order.
fn compact(tail: &mut Tail, deleted: &HashSet<u64>, dim: usize) {
    let mut kept = 0;
    for row in 0..tail.ids.len() {
        let id = tail.ids[row];
        if deleted.contains(&id) {
            continue;
        }
        tail.ids[kept] = id;
        tail.vectors.copy_within(row * dim..(row + 1) * dim, kept * dim);
        kept += 1;
    }
    tail.ids.truncate(kept);
    tail.vectors.truncate(kept * dim);
}

/// Exact scan of the tail into `best`.
fn scan(tail: &Tail, query: &[f32], dim: usize, deleted: &HashSet<u64>, best: &mut TopK) {
    let dot = dot_kernel();
    for (row, vector) in tail.vectors.chunks_exact(dim).enumerate() {
        let score = dot(query, vector);
        if best.admits(score) && !deleted.contains(&tail.ids[row]) {
            best.push(tail.ids[row], score);
        }
    }
}

/// A score with a total order (NaN sorts low), for the heap.
#[derive(Clone, Copy, PartialEq)]
struct Score(f32);

impl Eq for Score {}

impl PartialOrd for Score {
    fn partial_cmp(&self, other: &Score) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Score {
    fn cmp(&self, other: &Score) -> Ordering {
        self.0.total_cmp(&other.0)
    }
}

/// The k best `(score, id)` seen so far: a min-heap whose top is the one to evict.
struct TopK {
    k: usize,
    heap: BinaryHeap<Reverse<(Score, u64)>>,
}

impl TopK {
    fn new(k: usize) -> TopK {
        TopK { k, heap: BinaryHeap::with_capacity(k + 1) }
    }

    /// Whether `score` would enter (cheap: checked before the deleted-set lookup).
    fn admits(&self, score: f32) -> bool {
        self.k > 0 && (self.heap.len() < self.k || self.heap.peek().is_some_and(|Reverse((worst, _))| score > worst.0))
    }

    fn push(&mut self, id: u64, score: f32) {
        if !self.admits(score) {
            return;
        }
        self.heap.push(Reverse((Score(score), id)));
        if self.heap.len() > self.k {
            self.heap.pop();
        }
    }

    /// Best first; ties by smaller id.
    fn into_sorted(self) -> Vec<(u64, f32)> {
        let mut hits: Vec<(u64, f32)> = self.heap.into_iter().map(|Reverse((score, id))| (id, score.0)).collect();
        hits.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        hits
    }
}
