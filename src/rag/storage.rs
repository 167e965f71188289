//! How collections live in the store: keys, records, and loading everything back at startup.
//!
//! Tables (all byte keys, see `store::Table`):
//! - `Collections`: `name` → JSON `CollectionRecord`;
//! - `Chunks`: `name \0 id(u64 big-endian)` → JSON `ChunkRecord` (text, metadata, document key);
//! - `Vectors`: same key → `dim` little-endian f32s.
//!
//! Names never contain NUL (`Rag` rejects them), so `name \0` is a prefix of exactly one
//! collection's keys, whatever else the name holds (`semantic:agent`, dots, Unicode). Big-endian
//! ids make key order id order, which the vector index relies on (ids only grow).

use std::collections::HashMap;

use redb::ReadableTable;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::RagError;
use crate::store::{Store, StoreError, Table};

/// What a collection is, apart from its chunks.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct CollectionRecord {
    pub(super) name: String,
    pub(super) dimension: usize,
    /// Which model made the vectors; a different one would make them incomparable.
    pub(super) embedder: String,
    pub(super) created_at: u64,
}

/// One stored chunk.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct ChunkRecord {
    pub(super) text: String,
    pub(super) metadata: Map<String, Value>,
    /// The document it came from: `id:<document id>` or `auto:<n>` when none was given.
    pub(super) doc: String,
}

pub(super) fn collection_key(name: &str) -> Vec<u8> {
    name.as_bytes().to_vec()
}

/// The prefix of every chunk and vector key of `name`.
pub(super) fn chunk_prefix(name: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(name.len() + 1);
    key.extend_from_slice(name.as_bytes());
    key.push(0);
    key
}

pub(super) fn chunk_key(name: &str, id: u64) -> Vec<u8> {
    let mut key = chunk_prefix(name);
    key.extend_from_slice(&id.to_be_bytes());
    key
}

pub(super) fn encode_vector(vector: &[f32]) -> Vec<u8> {
    vector.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// A collection as the store holds it, ready to fill the in-memory state.
pub(super) struct LoadedCollection {
    pub(super) record: CollectionRecord,
    /// Ascending.
    pub(super) ids: Vec<u64>,
    /// `ids.len() * dim` floats.
    pub(super) vectors: Vec<f32>,
    /// Document key → its chunk ids.
    pub(super) docs: HashMap<String, Vec<u64>>,
}

/// Reads every collection (blocking; startup only).
pub(super) fn load_all(store: &Store) -> Result<Vec<LoadedCollection>, RagError> {
    store
        .read(|txn| {
            let collections = txn.open_table(Table::Collections.definition())?;
            let chunks = txn.open_table(Table::Chunks.definition())?;
            let vectors = txn.open_table(Table::Vectors.definition())?;
            let mut loaded = Vec::new();
            for entry in collections.iter()? {
                let (_, value) = entry?;
                let record: CollectionRecord = serde_json::from_slice(value.value())
                    .map_err(|error| StoreError::Rejected(format!("corrupt collection record: {error}")))?;
                loaded.push(load_one(record, &chunks, &vectors)?);
            }
            Ok(loaded)
        })
        .map_err(RagError::Store)
}

fn load_one(
    record: CollectionRecord,
    chunks: &impl ReadableTable<&'static [u8], &'static [u8]>,
    vectors: &impl ReadableTable<&'static [u8], &'static [u8]>,
) -> Result<LoadedCollection, StoreError> {
    let prefix = chunk_prefix(&record.name);
    let end = {
        let mut end = prefix.clone();
        // `\0` + 1: the first key after every `name \0 ...` key.
        if let Some(last) = end.last_mut() {
            *last = 1;
        }
        end
    };
    let corrupt = |what: &str, key: &[u8]| StoreError::Rejected(format!("corrupt {what} under key {key:?}"));
    let mut ids = Vec::new();
    let mut data = Vec::new();
    for entry in vectors.range::<&[u8]>(prefix.as_slice()..end.as_slice())? {
        let (key, value) = entry?;
        let id = parse_id(key.value(), prefix.len()).ok_or_else(|| corrupt("vector key", key.value()))?;
        let bytes = value.value();
        if bytes.len() != record.dimension * 4 {
            return Err(corrupt("vector", key.value()));
        }
        ids.push(id);
        data.extend(bytes.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])));
    }
    let mut docs: HashMap<String, Vec<u64>> = HashMap::new();
    for entry in chunks.range::<&[u8]>(prefix.as_slice()..end.as_slice())? {
        let (key, value) = entry?;
        let id = parse_id(key.value(), prefix.len()).ok_or_else(|| corrupt("chunk key", key.value()))?;
        let chunk: ChunkRecord = serde_json::from_slice(value.value()).map_err(|_| corrupt("chunk", key.value()))?;
        docs.entry(chunk.doc).or_default().push(id);
    }
    Ok(LoadedCollection { record, ids, vectors: data, docs })
}

fn parse_id(key: &[u8], prefix_len: usize) -> Option<u64> {
    let bytes: [u8; 8] = key.get(prefix_len..)?.try_into().ok()?;
    Some(u64::from_be_bytes(bytes))
}

/// Reads the chunk records of `ids` (blocking: call from `spawn_blocking`). Missing ids (deleted
/// since the search) are skipped.
pub(super) fn read_chunks(store: &Store, name: &str, ids: &[u64]) -> Result<Vec<(u64, ChunkRecord)>, RagError> {
    store
        .read(|txn| {
            let chunks = txn.open_table(Table::Chunks.definition())?;
            let mut found = Vec::with_capacity(ids.len());
            for &id in ids {
                let key = chunk_key(name, id);
                if let Some(value) = chunks.get(key.as_slice())? {
                    let record: ChunkRecord = serde_json::from_slice(value.value())
                        .map_err(|error| StoreError::Rejected(format!("corrupt chunk record: {error}")))?;
                    found.push((id, record));
                }
            }
            Ok(found)
        })
        .map_err(RagError::Store)
}
