//! Conversation memory: the turns of each (agent, session), kept in the store.
//!
//! Keys are scoped by agent *and* session (the Python version keyed by session alone, so two
//! agents sharing a session id shared history). Layout in `Table::History`:
//! `t|agent\0session\0<seq u64 BE>` → turn JSON; `m|agent\0session` → `{updated}` (for `ttl`);
//! `s|agent\0session` → `{summary, upto}` (the `summary` strategy). A run's two turns are appended
//! in one write, so history never holds half a run. Not here: deciding what to summarise or
//! calling a model (the runtime does that); window shaping lives in `window`.

mod window;

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

pub use window::{shape, Window};

use crate::store::{Store, StoreError, Table, WriteOp};

#[derive(Debug, thiserror::Error)]
pub enum MemoryError {
    #[error("memory store: {0}")]
    Store(#[from] StoreError),
    #[error("stored turn is not valid JSON: {0}")]
    Corrupt(#[from] serde_json::Error),
}

/// One message of a conversation as stored.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Turn {
    pub role: String,
    pub content: String,
    /// RFC 3339, UTC.
    pub timestamp: String,
    pub token_count: u32,
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub metadata: Map<String, Value>,
}

impl Turn {
    pub fn new(role: &str, content: &str) -> Turn {
        Turn {
            role: role.to_string(),
            content: content.to_string(),
            timestamp: now_rfc3339(),
            token_count: estimate_tokens(content),
            metadata: Map::new(),
        }
    }
}

/// A cheap token estimate (about four characters a token) for budgets and usage hints.
pub fn estimate_tokens(text: &str) -> u32 {
    u32::try_from(text.chars().count().div_ceil(4)).unwrap_or(u32::MAX)
}

pub fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// The stored summary of a session's older turns.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Summary {
    pub summary: String,
    /// Turns with a sequence number below this are covered by the summary.
    pub upto: u64,
}

/// A session's history as loaded: every live turn with its sequence number, and the summary.
#[derive(Debug, Clone, Default)]
pub struct History {
    pub turns: Vec<(u64, Turn)>,
    pub summary: Option<Summary>,
}

fn scope(agent: &str, session: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(agent.len() + session.len() + 1);
    key.extend_from_slice(agent.as_bytes());
    key.push(0);
    key.extend_from_slice(session.as_bytes());
    key
}

fn prefixed(tag: &[u8], agent: &str, session: &str) -> Vec<u8> {
    let mut key = tag.to_vec();
    key.extend_from_slice(&scope(agent, session));
    key
}

fn turns_prefix(agent: &str, session: &str) -> Vec<u8> {
    let mut key = prefixed(b"t|", agent, session);
    key.push(0);
    key
}

fn epoch_seconds() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|elapsed| elapsed.as_secs_f64()).unwrap_or_default()
}

/// Append locks by turns prefix, held weakly: a session's lock lives while someone holds it.
type SessionLocks = std::collections::HashMap<Vec<u8>, std::sync::Weak<tokio::sync::Mutex<()>>>;

/// Conversation history on the store.
#[derive(Clone)]
pub struct Conversations {
    store: Arc<Store>,
    /// Per-session append locks (see `append`), by turns prefix. A `std` mutex: held only to
    /// look a lock up, never across an await.
    locks: Arc<std::sync::Mutex<SessionLocks>>,
}

impl Conversations {
    pub fn new(store: Arc<Store>) -> Conversations {
        Conversations { store, locks: Arc::default() }
    }

    /// Every live turn of the session; an expired session (`ttl`) reads as empty.
    pub async fn load(&self, agent: &str, session: &str, ttl: Option<Duration>) -> Result<History, MemoryError> {
        if let Some(ttl) = ttl {
            let meta = self.store.get_async(Table::History, prefixed(b"m|", agent, session)).await?;
            let updated = meta
                .and_then(|bytes| serde_json::from_slice::<Value>(&bytes).ok())
                .and_then(|meta| meta.get("updated").and_then(Value::as_f64));
            if updated.is_some_and(|updated| epoch_seconds() - updated > ttl.as_secs_f64()) {
                self.clear(agent, session).await?;
                return Ok(History::default());
            }
        }
        let prefix = turns_prefix(agent, session);
        let rows = self.store.scan_prefix_async(Table::History, prefix.clone(), false, usize::MAX).await?;
        let mut turns = Vec::with_capacity(rows.len());
        for (key, value) in rows {
            let seq_bytes: [u8; 8] = key[prefix.len()..].try_into().unwrap_or_default();
            turns.push((u64::from_be_bytes(seq_bytes), serde_json::from_slice(&value)?));
        }
        let summary = match self.store.get_async(Table::History, prefixed(b"s|", agent, session)).await? {
            Some(bytes) => Some(serde_json::from_slice(&bytes)?),
            None => None,
        };
        Ok(History { turns, summary })
    }

    /// Appends turns after the last stored one, in one durable write.
    ///
    /// The session's appends are serialised by its lock, so reading the last sequence number and
    /// writing after it cannot interleave with another run of the same session. The write is
    /// plain puts, which the store's writer batches with other runs' into one transaction (a
    /// closure computing the number inside the writer would cost a commit of its own per run).
    pub async fn append(&self, agent: &str, session: &str, turns: Vec<Turn>) -> Result<(), MemoryError> {
        let prefix = turns_prefix(agent, session);
        let mut encoded = Vec::with_capacity(turns.len());
        for turn in &turns {
            encoded.push(serde_json::to_vec(turn)?);
        }
        let meta_key = prefixed(b"m|", agent, session);
        let meta = serde_json::to_vec(&serde_json::json!({ "updated": epoch_seconds() }))?;
        let lock = self.session_lock(&prefix);
        let _one_append_at_a_time = lock.lock().await;
        let last = self.store.scan_prefix_async(Table::History, prefix.clone(), true, 1).await?;
        let next = last
            .first()
            .and_then(|(key, _)| key.get(prefix.len()..)?.try_into().ok())
            .map_or(0, |bytes: [u8; 8]| u64::from_be_bytes(bytes) + 1);
        let mut ops = Vec::with_capacity(encoded.len() + 1);
        for (offset, value) in (0u64..).zip(encoded) {
            let mut key = prefix.clone();
            key.extend_from_slice(&(next + offset).to_be_bytes());
            ops.push(WriteOp::Put { table: Table::History, key, value });
        }
        ops.push(WriteOp::Put { table: Table::History, key: meta_key, value: meta });
        self.store.write_all(ops).await?;
        Ok(())
    }

    /// The append lock of one session. Locks are shared while someone holds them and dropped
    /// after: the map keeps weak handles and sheds the dead ones as it grows.
    fn session_lock(&self, prefix: &[u8]) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.locks.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(lock) = locks.get(prefix).and_then(std::sync::Weak::upgrade) {
            return lock;
        }
        if locks.len() >= 1024 {
            locks.retain(|_, lock| lock.strong_count() > 0);
        }
        let lock = Arc::new(tokio::sync::Mutex::new(()));
        locks.insert(prefix.to_vec(), Arc::downgrade(&lock));
        lock
    }

    pub async fn save_summary(&self, agent: &str, session: &str, summary: &Summary) -> Result<(), MemoryError> {
        let value = serde_json::to_vec(summary)?;
        self.store.write(WriteOp::Put { table: Table::History, key: prefixed(b"s|", agent, session), value }).await?;
        Ok(())
    }

    /// Deletes the session's turns, summary and metadata.
    pub async fn clear(&self, agent: &str, session: &str) -> Result<(), MemoryError> {
        self.store
            .write_all(vec![
                WriteOp::DeletePrefix { table: Table::History, prefix: turns_prefix(agent, session) },
                WriteOp::Delete { table: Table::History, key: prefixed(b"s|", agent, session) },
                WriteOp::Delete { table: Table::History, key: prefixed(b"m|", agent, session) },
            ])
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn concurrent_appends_to_one_session_keep_every_turn_in_pairs() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(dir.path(), 64).unwrap());
        let conversations = Conversations::new(Arc::clone(&store));
        let appends: Vec<_> = (0..16)
            .map(|run| {
                let conversations = conversations.clone();
                tokio::spawn(async move {
                    let turns = vec![Turn::new("user", &format!("q{run}")), Turn::new("assistant", &format!("a{run}"))];
                    conversations.append("agent", "sess", turns).await
                })
            })
            .collect();
        for append in appends {
            append.await.unwrap().unwrap();
        }
        let history = conversations.load("agent", "sess", None).await.unwrap();
        let seqs: Vec<u64> = history.turns.iter().map(|(seq, _)| *seq).collect();
        assert_eq!(seqs, (0..32).collect::<Vec<u64>>(), "no append overwrote another");
        for pair in history.turns.chunks(2) {
            let question = pair[0].1.content.trim_start_matches('q');
            assert_eq!(pair[1].1.content.trim_start_matches('a'), question, "a run's two turns stay together");
        }
        assert!(conversations.locks.lock().unwrap().values().all(|lock| lock.strong_count() == 0));
        store.close().await.unwrap();
    }
}
