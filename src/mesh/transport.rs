//! Mesh messages over HTTP: one pooled async client, the shared secret, and the fault hook.
//!
//! Every request carries `Authorization: Bearer <ASTROMESH_MESH_SECRET>` when a secret is set.
//! The fault-injection hook is a set of blocked peer addresses: a request to one fails at once,
//! as if the network were cut. Tests partition a cluster by blocking each side's addresses on
//! the other side, and heal it by clearing the sets; nothing else ever fills it.
//! Not here: what the messages mean (`mesh`), HTTP serving (`api::mesh`).

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::config::Secret;

/// The header that marks a request forwarded by a node (its value: that node's id); a node
/// never forwards such a request again, so runs cannot loop.
pub const FORWARDED_HEADER: &str = "x-astromesh-forwarded-by";

#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error("peer {0} is unreachable (blocked by the fault hook)")]
    Blocked(String),
    #[error("request to {address} failed: {source}")]
    Send {
        address: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("peer {address} answered {status}")]
    Status { address: String, status: u16 },
    #[error("peer {address} sent an invalid body: {message}")]
    Decode { address: String, message: String },
    #[error("cannot build the HTTP client: {0}")]
    Client(String),
}

/// An answer relayed as is (a forwarded run).
#[derive(Debug)]
pub struct Relayed {
    pub status: u16,
    pub content_type: Option<String>,
    pub body: Bytes,
}

#[derive(Clone)]
pub struct Transport {
    client: reqwest::Client,
    secret: Option<Secret>,
    blocked: Arc<Mutex<HashSet<String>>>,
    timeout: Duration,
}

impl Transport {
    pub fn new(secret: Option<Secret>, timeout: Duration) -> Result<Transport, TransportError> {
        // Plain HTTP between nodes; TLS would go through rustls on ring like the MCP client.
        let client =
            crate::net::client(|builder| builder.connect_timeout(timeout).pool_idle_timeout(Duration::from_secs(30)))
                .map_err(TransportError::Client)?;
        Ok(Transport { client, secret, blocked: Arc::new(Mutex::new(HashSet::new())), timeout })
    }

    /// Fault hook: requests to these addresses fail until `heal`.
    pub fn block(&self, addresses: &[String]) {
        self.blocked.lock().expect("blocked set lock").extend(addresses.iter().cloned());
    }

    pub fn heal(&self) {
        self.blocked.lock().expect("blocked set lock").clear();
    }

    pub fn is_blocked(&self, address: &str) -> bool {
        self.blocked.lock().expect("blocked set lock").contains(address)
    }

    pub fn secret(&self) -> Option<&Secret> {
        self.secret.as_ref()
    }

    /// POSTs a mesh message and decodes the JSON answer; any non-2xx status is an error.
    pub async fn call<Req: Serialize, Resp: DeserializeOwned>(
        &self,
        address: &str,
        path: &str,
        body: &Req,
    ) -> Result<Resp, TransportError> {
        if self.is_blocked(address) {
            return Err(TransportError::Blocked(address.to_string()));
        }
        let body = serde_json::to_vec(body)
            .map_err(|error| TransportError::Decode { address: address.to_string(), message: error.to_string() })?;
        let mut request = self
            .client
            .post(format!("http://{address}{path}"))
            .timeout(self.timeout)
            .header("content-type", "application/json")
            .body(body);
        if let Some(secret) = &self.secret {
            request = request.bearer_auth(secret.expose());
        }
        let send = |source| TransportError::Send { address: address.to_string(), source };
        let response = request.send().await.map_err(send)?;
        let status = response.status().as_u16();
        if !(200..300).contains(&status) {
            return Err(TransportError::Status { address: address.to_string(), status });
        }
        let bytes = response.bytes().await.map_err(send)?;
        serde_json::from_slice(&bytes)
            .map_err(|error| TransportError::Decode { address: address.to_string(), message: error.to_string() })
    }

    /// Sends a client's request on to a peer and returns its answer, whatever the status. No
    /// timeout of our own: the peer's run deadline bounds it, as it would locally.
    pub async fn relay(
        &self,
        address: &str,
        method: &str,
        path_and_query: &str,
        headers: &[(String, String)],
        body: Bytes,
    ) -> Result<Relayed, TransportError> {
        if self.is_blocked(address) {
            return Err(TransportError::Blocked(address.to_string()));
        }
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap_or(reqwest::Method::GET);
        let mut request = self.client.request(method, format!("http://{address}{path_and_query}")).body(body);
        for (name, value) in headers {
            request = request.header(name, value);
        }
        let send = |source| TransportError::Send { address: address.to_string(), source };
        let response = request.send().await.map_err(send)?;
        let status = response.status().as_u16();
        let content_type =
            response.headers().get("content-type").and_then(|value| value.to_str().ok()).map(str::to_string);
        let body = response.bytes().await.map_err(send)?;
        Ok(Relayed { status, content_type, body })
    }
}
