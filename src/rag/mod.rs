//! RAG collections: chunk documents, embed the chunks, store them, and search them.
//!
//! A collection is created by its first ingest. `Rag` keeps, per collection, a vector index
//! (`vector::VectorIndex`) and the bookkeeping that ingest needs (next chunk id, which chunks each
//! document id owns); the store (`storage`) holds the truth, and `Rag::new` rebuilds all of it
//! from the store at startup. An ingest is validated and chunked, all its chunks are embedded,
//! and then chunks + vectors (+ the collection record, + deletions of replaced chunks) go to the
//! store in **one** `write_all`: one durable commit, or nothing. Only after the acknowledgement is
//! the in-memory index updated, so a query never sees a chunk that is not durable.
//!
//! Ingests into one collection are serialised by its `tokio` mutex (held across the store write,
//! not across embedding); queries never take it.
//!
//! Names: any non-empty string of at most 256 bytes without NUL, so callers can use internal
//! collections such as `semantic:<agent>`. The HTTP layer restricts user-created names further.
//!
//! Not here: HTTP shapes (`api::rag`), the agent's `knowledge` and semantic memory (`runtime`).

pub mod chunk;
mod storage;

#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};

use serde_json::{Map, Value};

pub use chunk::{ChunkOptions, ChunkStrategy};

use crate::embed::{EmbedError, Embedder, TextEmbedder};
use crate::store::{Store, StoreError, Table, WriteOp};
use crate::vector::{IndexSettings, Rebuilder, VectorIndex};
use storage::{ChunkRecord, CollectionRecord};

/// Which embedder each collection uses: `spec.rag.collections.<name>.embedder`, else the
/// default (`spec.rag.embedder`, the local model unless configured).
#[derive(Debug, Clone)]
pub struct Embedders {
    pub default: TextEmbedder,
    pub collections: HashMap<String, TextEmbedder>,
}

impl Embedders {
    fn for_collection(&self, name: &str) -> &TextEmbedder {
        self.collections.get(name).unwrap_or(&self.default)
    }
}

impl From<Arc<Embedder>> for Embedders {
    /// Every collection on the local model.
    fn from(local: Arc<Embedder>) -> Embedders {
        Embedders { default: TextEmbedder::Local(local), collections: HashMap::new() }
    }
}

/// Longest collection name, in bytes.
pub const MAX_NAME_BYTES: usize = 256;

/// Limits and index settings, from runtime.yaml (`spec.rag`).
#[derive(Debug, Clone, Copy)]
pub struct RagSettings {
    pub index: IndexSettings,
    /// Most chunks one ingest may create (embedding 10,000 chunks takes about a minute).
    pub max_ingest_chunks: usize,
    /// Cores an HNSW build may use (its own rayon pool).
    pub index_build_threads: usize,
}

impl Default for RagSettings {
    fn default() -> RagSettings {
        RagSettings { index: IndexSettings::default(), max_ingest_chunks: 10_000, index_build_threads: 1 }
    }
}

/// A document to ingest. With an `id`, re-ingesting the same id replaces its chunks.
#[derive(Debug, Clone, Default)]
pub struct Document {
    pub id: Option<String>,
    pub text: String,
    pub metadata: Map<String, Value>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct IngestReport {
    pub documents_ingested: usize,
    pub chunks_created: usize,
}

/// One search result: chunk text, cosine similarity, metadata (the document's metadata plus
/// `chunk_index`, and `id` when the document had one).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Hit {
    pub text: String,
    pub score: f32,
    pub metadata: Map<String, Value>,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct CollectionInfo {
    pub name: String,
    /// The embedder its vectors come from (`local:all-MiniLM-L6-v2`, `ollama:<model>`, ...).
    pub embedder: String,
    pub documents: usize,
    pub chunks: usize,
    /// Chunks covered by the HNSW snapshot; 0 while the collection is searched exactly.
    pub indexed: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum RagError {
    #[error("Collection '{0}' not found")]
    UnknownCollection(String),
    #[error("invalid collection name {0:?}: must be 1 to {MAX_NAME_BYTES} bytes without NUL")]
    InvalidName(String),
    #[error("at least one document is required")]
    NoDocuments,
    /// `field` of `documents[index]` is unusable.
    #[error("documents[{index}].{field}: {message}")]
    InvalidDocument { index: usize, field: &'static str, message: String },
    #[error("chunk_size must be at least 1")]
    InvalidChunkSize,
    #[error("chunk_overlap ({overlap}) must be smaller than chunk_size ({size})")]
    OverlapTooLarge { overlap: usize, size: usize },
    #[error("the documents make {chunks} chunks; at most {limit} are allowed per ingest")]
    TooManyChunks { chunks: usize, limit: usize },
    #[error(
        "collection '{name}' was made with embedder {found}, but {expected} is configured for it now; \
         delete the collection and ingest again, or configure {found} for it"
    )]
    EmbedderMismatch { name: String, found: String, expected: String },
    #[error(transparent)]
    Embed(#[from] EmbedError),
    #[error("RAG storage: {0}")]
    Store(#[from] StoreError),
    #[error("cannot start the index builder thread: {0}")]
    Spawn(std::io::Error),
    #[error("a blocking RAG task failed: {0}")]
    Blocking(#[from] tokio::task::JoinError),
}

/// What ingest needs under the collection's lock.
struct Bookkeeping {
    next_id: u64,
    next_auto_doc: u64,
    /// Document key (`id:<id>` or `auto:<n>`) → its chunk ids.
    docs: HashMap<String, Vec<u64>>,
    /// The collection record is in the store (false until the first ingest commits).
    persisted: bool,
    /// Deleted by `delete_collection`: an ingest holding a stale handle starts over.
    deleted: bool,
}

struct Collection {
    name: String,
    /// The embedder id its vectors come from, and their dimension.
    embedder: String,
    dimension: usize,
    index: Arc<VectorIndex>,
    book: tokio::sync::Mutex<Bookkeeping>,
    /// Mirrors of the bookkeeping for lock-free listing.
    documents: AtomicUsize,
    chunks: AtomicUsize,
}

impl Collection {
    fn is_visible(&self) -> bool {
        self.chunks.load(Ordering::Acquire) > 0 || self.documents.load(Ordering::Acquire) > 0
    }
}

/// All collections of the daemon. Share it with `Arc<Rag>`.
pub struct Rag {
    store: Arc<Store>,
    embedders: Embedders,
    settings: RagSettings,
    rebuilder: Rebuilder,
    /// A `std` lock: held only to look up or insert a handle, never across an await.
    collections: RwLock<BTreeMap<String, Arc<Collection>>>,
}

impl Rag {
    /// Loads every collection from the store and indexes its vectors (blocking: call at
    /// startup). Collections above the HNSW threshold get their graph built in the background.
    pub fn new(store: Arc<Store>, embedders: impl Into<Embedders>, settings: RagSettings) -> Result<Rag, RagError> {
        let rebuilder = Rebuilder::start(64, settings.index_build_threads).map_err(RagError::Spawn)?;
        let embedders = embedders.into();
        let rag = Rag { store, embedders, settings, rebuilder, collections: RwLock::new(BTreeMap::new()) };
        for loaded in storage::load_all(&rag.store)? {
            let record = &loaded.record;
            let configured = rag.embedders.for_collection(&record.name).id();
            if record.embedder != configured {
                tracing::warn!(collection = %record.name, made_with = %record.embedder, %configured,
                    "collection was made by another embedder than the one configured for it; \
                     ingest and query will refuse it until the configuration matches");
            }
            let collection = rag.new_collection(&record.name, record.dimension, &record.embedder);
            collection.index.insert(&loaded.ids, &loaded.vectors);
            let next_auto_doc = loaded
                .docs
                .keys()
                .filter_map(|key| key.strip_prefix("auto:")?.parse::<u64>().ok())
                .max()
                .map_or(0, |last| last + 1);
            collection.documents.store(loaded.docs.len(), Ordering::Release);
            collection.chunks.store(loaded.ids.len(), Ordering::Release);
            let book = Bookkeeping {
                next_id: loaded.ids.last().map_or(0, |last| last + 1),
                next_auto_doc,
                docs: loaded.docs,
                persisted: true,
                deleted: false,
            };
            *collection.book.try_lock().expect("a new collection's lock is free") = book;
            rag.write_collections().insert(loaded.record.name.clone(), collection);
        }
        tracing::info!(collections = rag.read_collections().len(), "rag collections loaded");
        Ok(rag)
    }

    /// Chunks, embeds and stores `documents` in `collection` (created if needed), atomically.
    pub async fn ingest(
        &self,
        collection: &str,
        documents: Vec<Document>,
        options: &ChunkOptions,
    ) -> Result<IngestReport, RagError> {
        validate_name(collection)?;
        let prepared = self.prepare(documents, options)?;
        let embedder = self.embedders.for_collection(collection);
        let embedder_id = embedder.id();
        if let Some(existing) = self.existing(collection) {
            check_embedder(&existing, &embedder_id, None)?;
        }
        let texts: Vec<String> =
            prepared.iter().flat_map(|doc| doc.chunks.iter().map(|chunk| chunk.text.clone())).collect();
        let vectors = embedder.embed(texts).await?;
        let dimension = vectors.first().map_or(0, Vec::len);
        let chunks_created = vectors.len();
        let documents_ingested = prepared.len();
        // A handle deleted while we embedded is replaced by a fresh one (at most once more).
        for _ in 0..2 {
            let handle = self.get_or_create(collection, dimension, &embedder_id);
            let mut book = handle.book.lock().await;
            if book.deleted {
                continue;
            }
            check_embedder(&handle, &embedder_id, Some(dimension))?;
            self.commit(&handle, &mut book, &prepared, &vectors).await?;
            return Ok(IngestReport { documents_ingested, chunks_created });
        }
        Err(RagError::UnknownCollection(collection.to_string()))
    }

    /// The `top_k` chunks most similar to `query` with a score of at least `score_threshold`,
    /// best first.
    pub async fn query(
        &self,
        collection: &str,
        query: &str,
        top_k: usize,
        score_threshold: f32,
    ) -> Result<Vec<Hit>, RagError> {
        let handle = self.visible(collection)?;
        let embedder = self.embedders.for_collection(collection);
        check_embedder(&handle, &embedder.id(), None)?;
        let vector = embedder.embed(vec![query.to_string()]).await?.pop().unwrap_or_default();
        check_embedder(&handle, &embedder.id(), Some(vector.len()))?;
        let index = Arc::clone(&handle.index);
        let store = Arc::clone(&self.store);
        let name = handle.name.clone();
        // Graph search, tail scan and the chunk reads block for up to a few ms: off the runtime.
        let found = tokio::task::spawn_blocking(move || {
            let best: Vec<(u64, f32)> =
                index.search(&vector, top_k).into_iter().filter(|(_, score)| *score >= score_threshold).collect();
            let ids: Vec<u64> = best.iter().map(|(id, _)| *id).collect();
            let records: HashMap<u64, ChunkRecord> = storage::read_chunks(&store, &name, &ids)?.into_iter().collect();
            Ok::<_, RagError>((best, records))
        })
        .await??;
        let (best, mut records) = found;
        Ok(best
            .into_iter()
            .filter_map(|(id, score)| {
                let record = records.remove(&id)?;
                Some(Hit { text: record.text, score, metadata: record.metadata })
            })
            .collect())
    }

    /// Every collection with its counts, by name.
    pub fn collections(&self) -> Vec<CollectionInfo> {
        self.read_collections()
            .values()
            .filter(|collection| collection.is_visible())
            .map(|collection| CollectionInfo {
                name: collection.name.clone(),
                embedder: collection.embedder.clone(),
                documents: collection.documents.load(Ordering::Acquire),
                chunks: collection.chunks.load(Ordering::Acquire),
                indexed: collection.index.stats().indexed,
            })
            .collect()
    }

    /// Whether `name` exists (has been ingested into and not deleted).
    pub fn contains(&self, name: &str) -> bool {
        self.visible(name).is_ok()
    }

    /// Deletes a collection with its chunks and vectors (one commit). False if unknown.
    pub async fn delete_collection(&self, name: &str) -> Result<bool, RagError> {
        let Ok(handle) = self.visible(name) else { return Ok(false) };
        let mut book = handle.book.lock().await;
        if book.deleted || !book.persisted {
            return Ok(false);
        }
        let prefix = storage::chunk_prefix(name);
        self.store
            .write_all(vec![
                WriteOp::Delete { table: Table::Collections, key: storage::collection_key(name) },
                WriteOp::DeletePrefix { table: Table::Chunks, prefix: prefix.clone() },
                WriteOp::DeletePrefix { table: Table::Vectors, prefix },
            ])
            .await?;
        book.deleted = true;
        let mut collections = self.write_collections();
        if collections.get(name).is_some_and(|current| Arc::ptr_eq(current, &handle)) {
            collections.remove(name);
        }
        Ok(true)
    }

    /// Validates the documents and chunks them (no I/O).
    fn prepare(&self, documents: Vec<Document>, options: &ChunkOptions) -> Result<Vec<Prepared>, RagError> {
        if options.chunk_size == 0 {
            return Err(RagError::InvalidChunkSize);
        }
        if options.chunk_overlap >= options.chunk_size {
            return Err(RagError::OverlapTooLarge { overlap: options.chunk_overlap, size: options.chunk_size });
        }
        if documents.is_empty() {
            return Err(RagError::NoDocuments);
        }
        let mut seen_ids = HashSet::new();
        let mut prepared = Vec::with_capacity(documents.len());
        let mut n_chunks = 0;
        for (index, document) in documents.into_iter().enumerate() {
            let invalid =
                |field, message: &str| RagError::InvalidDocument { index, field, message: message.to_string() };
            if document.text.trim().is_empty() {
                return Err(invalid("text", "must not be empty"));
            }
            if let Some(id) = &document.id {
                if id.is_empty() {
                    return Err(invalid("id", "must not be empty"));
                }
                if !seen_ids.insert(id.clone()) {
                    return Err(invalid("id", "appears twice in this request"));
                }
            }
            let mut chunks = Vec::new();
            for (chunk_index, range) in chunk::split(&document.text, options).into_iter().enumerate() {
                let mut metadata = document.metadata.clone();
                metadata.insert("chunk_index".to_string(), Value::from(chunk_index));
                if let Some(id) = &document.id {
                    metadata.insert("id".to_string(), Value::from(id.as_str()));
                }
                chunks.push(PreparedChunk { text: document.text[range].to_string(), metadata });
            }
            n_chunks += chunks.len();
            if n_chunks > self.settings.max_ingest_chunks {
                return Err(RagError::TooManyChunks { chunks: n_chunks, limit: self.settings.max_ingest_chunks });
            }
            prepared.push(Prepared { id: document.id, chunks });
        }
        Ok(prepared)
    }

    /// Writes one ingest in one commit, then updates the in-memory state.
    async fn commit(
        &self,
        handle: &Collection,
        book: &mut Bookkeeping,
        prepared: &[Prepared],
        vectors: &[Vec<f32>],
    ) -> Result<(), RagError> {
        let name = handle.name.as_str();
        let mut ops = Vec::with_capacity(vectors.len() * 2 + 1);
        if !book.persisted {
            let record = CollectionRecord {
                name: name.to_string(),
                dimension: handle.dimension,
                embedder: handle.embedder.clone(),
                created_at: std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |elapsed| elapsed.as_secs()),
            };
            let value = serde_json::to_vec(&record).map_err(|error| StoreError::Rejected(error.to_string()))?;
            ops.push(WriteOp::Put { table: Table::Collections, key: storage::collection_key(name), value });
        }
        let mut next_id = book.next_id;
        let mut next_auto_doc = book.next_auto_doc;
        let mut replaced: Vec<u64> = Vec::new();
        let mut new_docs: Vec<(String, Vec<u64>)> = Vec::with_capacity(prepared.len());
        let mut new_ids = Vec::with_capacity(vectors.len());
        let mut flat = Vec::with_capacity(vectors.len() * handle.dimension);
        let mut vectors = vectors.iter();
        for document in prepared {
            let doc_key = match &document.id {
                Some(id) => format!("id:{id}"),
                None => {
                    next_auto_doc += 1;
                    format!("auto:{}", next_auto_doc - 1)
                }
            };
            if let Some(old_ids) = book.docs.get(&doc_key) {
                for &old in old_ids {
                    ops.push(WriteOp::Delete { table: Table::Chunks, key: storage::chunk_key(name, old) });
                    ops.push(WriteOp::Delete { table: Table::Vectors, key: storage::chunk_key(name, old) });
                }
                replaced.extend_from_slice(old_ids);
            }
            let mut doc_ids = Vec::with_capacity(document.chunks.len());
            for chunk in &document.chunks {
                let vector = vectors.next().map(Vec::as_slice).unwrap_or_default();
                let record =
                    ChunkRecord { text: chunk.text.clone(), metadata: chunk.metadata.clone(), doc: doc_key.clone() };
                let value = serde_json::to_vec(&record).map_err(|error| StoreError::Rejected(error.to_string()))?;
                ops.push(WriteOp::Put { table: Table::Chunks, key: storage::chunk_key(name, next_id), value });
                ops.push(WriteOp::Put {
                    table: Table::Vectors,
                    key: storage::chunk_key(name, next_id),
                    value: storage::encode_vector(vector),
                });
                flat.extend_from_slice(vector);
                doc_ids.push(next_id);
                new_ids.push(next_id);
                next_id += 1;
            }
            new_docs.push((doc_key, doc_ids));
        }
        self.store.write_all(ops).await?;
        // Durable: now make it searchable.
        handle.index.remove(&replaced);
        handle.index.insert(&new_ids, &flat);
        book.persisted = true;
        book.next_id = next_id;
        book.next_auto_doc = next_auto_doc;
        book.docs.extend(new_docs);
        handle.documents.store(book.docs.len(), Ordering::Release);
        let chunks = book.docs.values().map(Vec::len).sum();
        handle.chunks.store(chunks, Ordering::Release);
        Ok(())
    }

    fn visible(&self, name: &str) -> Result<Arc<Collection>, RagError> {
        self.read_collections()
            .get(name)
            .filter(|collection| collection.is_visible())
            .cloned()
            .ok_or_else(|| RagError::UnknownCollection(name.to_string()))
    }

    /// The collection's handle if it exists (even if empty), without creating it.
    fn existing(&self, name: &str) -> Option<Arc<Collection>> {
        self.read_collections().get(name).cloned()
    }

    fn get_or_create(&self, name: &str, dimension: usize, embedder: &str) -> Arc<Collection> {
        if let Some(existing) = self.read_collections().get(name) {
            return Arc::clone(existing);
        }
        let mut collections = self.write_collections();
        Arc::clone(
            collections.entry(name.to_string()).or_insert_with(|| self.new_collection(name, dimension, embedder)),
        )
    }

    fn new_collection(&self, name: &str, dimension: usize, embedder: &str) -> Arc<Collection> {
        let index = VectorIndex::new(dimension, self.settings.index, Some(self.rebuilder.clone()));
        let book = Bookkeeping { next_id: 0, next_auto_doc: 0, docs: HashMap::new(), persisted: false, deleted: false };
        Arc::new(Collection {
            name: name.to_string(),
            embedder: embedder.to_string(),
            dimension,
            index,
            book: tokio::sync::Mutex::new(book),
            documents: AtomicUsize::new(0),
            chunks: AtomicUsize::new(0),
        })
    }

    fn read_collections(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<String, Arc<Collection>>> {
        // The map is only ever inserted into or removed from whole: usable after a panic.
        self.collections.read().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn write_collections(&self) -> std::sync::RwLockWriteGuard<'_, BTreeMap<String, Arc<Collection>>> {
        self.collections.write().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// A validated document, chunked.
struct Prepared {
    id: Option<String>,
    chunks: Vec<PreparedChunk>,
}

struct PreparedChunk {
    text: String,
    metadata: Map<String, Value>,
}

/// Refuses to mix vectors of different embedders (or dimensions) in one collection.
fn check_embedder(collection: &Collection, embedder: &str, dimension: Option<usize>) -> Result<(), RagError> {
    let mismatch =
        |found: String, expected: String| RagError::EmbedderMismatch { name: collection.name.clone(), found, expected };
    if collection.embedder != embedder {
        return Err(mismatch(collection.embedder.clone(), embedder.to_string()));
    }
    match dimension {
        Some(dimension) if dimension != collection.dimension => Err(mismatch(
            format!("{} ({} dimensions)", collection.embedder, collection.dimension),
            format!("{embedder} ({dimension} dimensions)"),
        )),
        _ => Ok(()),
    }
}

fn validate_name(name: &str) -> Result<(), RagError> {
    if name.is_empty() || name.len() > MAX_NAME_BYTES || name.contains('\0') {
        return Err(RagError::InvalidName(name.to_string()));
    }
    Ok(())
}
