//! The model router: one per agent and role; orders candidates, falls back, breaks circuits.
//!
//! `complete` ranks the candidates by the role's strategy, then tries them in turn until one
//! answers or the run's deadline passes. Each call awaits the adapter on the caller's task
//! (no thread per call); a panicking adapter fails its candidate only. A candidate that fails
//! `failure_threshold` times in a row is skipped for `recovery_timeout`; after that exactly one
//! call is let through (half-open): success closes the circuit, failure opens it again. Health
//! lives in a `std::sync::Mutex` that is only held for a few field updates, never across an
//! `.await`. Timers use `tokio::time::Instant`, so tests can pause time. Not here: the wire
//! formats (the adapters) or prices (`pricing`). Deliberately absent: background health checks
//! (health is learned from real calls, as in the reference; `probe` answers the doctor on
//! demand).

use std::cmp::Ordering;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicUsize, Ordering as AtomicOrdering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use futures_util::FutureExt;
use tokio::sync::mpsc::Sender;
use tokio::time::Instant;

use super::local::LocalModels;
use super::{
    build_model, build_model_with, pricing, Capabilities, ChatModel, ChatRequest, ChatResponse, ProviderError,
    TokenSink,
};
use crate::config::model::{ModelCandidate, RoleConfig, RoutingStrategy};
use crate::config::ProvidersConfig;

/// Circuit-breaker and fallback settings, from providers.yaml `routing`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerSettings {
    /// Consecutive failures that open a candidate's circuit.
    pub failure_threshold: u32,
    /// How long an open circuit stays open before one probe call is allowed.
    pub recovery_timeout: Duration,
    /// `false`: only the first candidate in strategy order is ever tried.
    pub fallback_enabled: bool,
}

impl BreakerSettings {
    pub fn from_config(providers: &ProvidersConfig) -> BreakerSettings {
        BreakerSettings {
            failure_threshold: providers.failure_threshold.max(1),
            recovery_timeout: providers.recovery_timeout,
            fallback_enabled: providers.fallback_enabled,
        }
    }
}

impl Default for BreakerSettings {
    fn default() -> Self {
        BreakerSettings::from_config(&ProvidersConfig::default())
    }
}

/// What `/v1/system/status` reports for a candidate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProviderState {
    /// The circuit is closed and the last call succeeded.
    Healthy,
    /// Not called yet, failing below the threshold, or half-open.
    Degraded,
    /// The circuit is open, or the candidate cannot be built at all.
    Unavailable,
}

impl ProviderState {
    pub fn as_str(self) -> &'static str {
        match self {
            ProviderState::Healthy => "healthy",
            ProviderState::Degraded => "degraded",
            ProviderState::Unavailable => "unavailable",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct CandidateHealth {
    pub label: String,
    pub provider: String,
    pub model: String,
    pub endpoint: String,
    pub state: ProviderState,
    /// EMA of observed latency (0.8 old + 0.2 new); `None` before the first success.
    pub avg_latency_ms: Option<f64>,
    pub consecutive_failures: u32,
    pub circuit_open: bool,
    /// Why the state is not healthy: "unprobed", "half-open", or the last error.
    pub detail: Option<String>,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RouterError {
    #[error("All providers unavailable: {}", render_failures(failures))]
    AllProvidersDown { failures: Vec<(String, String)> },
    #[error("no model candidates are configured")]
    NoCandidates,
    #[error("the run's deadline passed before a model answered")]
    DeadlineExceeded,
    /// Tokens already reached the client, so falling back would splice two answers together.
    #[error("{candidate} failed after streaming part of its answer: {reason}")]
    StreamFailed { candidate: String, reason: String },
}

fn render_failures(failures: &[(String, String)]) -> String {
    failures.iter().map(|(candidate, reason)| format!("{candidate}: {reason}")).collect::<Vec<_>>().join("; ")
}

struct Slot {
    candidate: ModelCandidate,
    /// `provider/model`.
    name: String,
    /// `Err(reason)`: the adapter could not be built; the candidate always fails with it.
    model: Result<Arc<dyn ChatModel>, String>,
    capabilities: Capabilities,
    /// Input + output price of 1K tokens each, for `cost_optimized`.
    price: Option<f64>,
}

#[derive(Debug, Default)]
struct Health {
    consecutive_failures: u32,
    successes: u64,
    avg_latency_ms: Option<f64>,
    open_until: Option<Instant>,
    /// A half-open probe call is in flight; others skip the candidate until it ends.
    probing: bool,
    last_error: Option<String>,
}

/// The adapter applies the deadline itself (as its request timeout) and reports which limit
/// it hit; this grace lets its clean timeout error win the race against ours.
const DEADLINE_GRACE: Duration = Duration::from_millis(250);

pub struct ModelRouter {
    strategy: RoutingStrategy,
    slots: Vec<Slot>,
    health: Mutex<Vec<Health>>,
    settings: BreakerSettings,
    turn: AtomicUsize,
}

enum Admission {
    Call { probe: bool },
    Skip(String),
}

enum Attempt {
    Answered(ChatResponse),
    Failed { error: ProviderError, emitted: bool },
    Panicked(String),
    DeadlinePassed,
}

/// Ends a half-open probe that was cancelled (the caller dropped the future) so the candidate
/// is not stuck "probing" forever.
struct ProbeGuard<'a> {
    router: &'a ModelRouter,
    idx: usize,
    armed: bool,
}

impl Drop for ProbeGuard<'_> {
    fn drop(&mut self) {
        if self.armed {
            self.router.lock_health()[self.idx].probing = false;
        }
    }
}

impl ModelRouter {
    /// Builds the adapters. Candidates that fail to build are kept, always failing with their
    /// reason, so they show up in health and in error messages. Local models get a registry of
    /// their own; the runtime shares one through `with_local_models`.
    pub fn new(role: &RoleConfig, breaker: BreakerSettings) -> ModelRouter {
        ModelRouter::with_local_models(role, breaker, &LocalModels::new(std::path::PathBuf::new()))
    }

    /// `new`, with local models taken from (and shared through) `local`.
    pub fn with_local_models(role: &RoleConfig, breaker: BreakerSettings, local: &LocalModels) -> ModelRouter {
        let slots = role
            .candidates
            .iter()
            .map(|candidate| {
                let model = build_model_with(candidate, local).map_err(|error| {
                    tracing::warn!(label = %candidate.label, model = %candidate.model, %error, "model candidate unusable");
                    error.to_string()
                });
                Slot::new(candidate.clone(), model)
            })
            .collect();
        ModelRouter::from_slots(role.strategy, slots, breaker)
    }

    /// A router over adapters built elsewhere (a one-off BYOK provider, a benchmark's fake).
    pub fn with_models(
        strategy: RoutingStrategy,
        models: Vec<(ModelCandidate, Arc<dyn ChatModel>)>,
        breaker: BreakerSettings,
    ) -> ModelRouter {
        let slots = models.into_iter().map(|(candidate, model)| Slot::new(candidate, Ok(model))).collect();
        ModelRouter::from_slots(strategy, slots, breaker)
    }

    fn from_slots(strategy: RoutingStrategy, slots: Vec<Slot>, settings: BreakerSettings) -> ModelRouter {
        let health = slots.iter().map(|_| Health::default()).collect();
        ModelRouter { strategy, slots, health: Mutex::new(health), settings, turn: AtomicUsize::new(0) }
    }

    pub fn strategy(&self) -> RoutingStrategy {
        self.strategy
    }

    pub fn candidates(&self) -> impl Iterator<Item = &ModelCandidate> {
        self.slots.iter().map(|slot| &slot.candidate)
    }

    fn lock_health(&self) -> MutexGuard<'_, Vec<Health>> {
        // A panic while holding this lock leaves plain counters behind; they are still usable.
        self.health.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Tries candidates in strategy order within the deadline. With `tokens`, the call streams
    /// and each text delta is sent on it (a closed receiver just stops the forwarding).
    pub async fn complete(
        &self,
        request: ChatRequest,
        deadline: Instant,
        tokens: Option<Sender<String>>,
    ) -> Result<ChatResponse, RouterError> {
        if self.slots.is_empty() {
            return Err(RouterError::NoCandidates);
        }
        let (order, mut failures) = self.order(&request);
        for idx in order {
            let slot = &self.slots[idx];
            let model = match &slot.model {
                Ok(model) => model,
                Err(reason) => {
                    failures.push((slot.name.clone(), reason.clone()));
                    continue;
                }
            };
            let now = Instant::now();
            if now >= deadline {
                return Err(RouterError::DeadlineExceeded);
            }
            let probe = match self.admit(idx, now) {
                Admission::Call { probe } => probe,
                Admission::Skip(reason) => {
                    tracing::debug!(candidate = %slot.name, %reason, "skipping model candidate");
                    failures.push((slot.name.clone(), reason));
                    continue;
                }
            };
            let mut guard = ProbeGuard { router: self, idx, armed: probe };
            let remaining = deadline - now;
            let outcome = attempt(model.as_ref(), &request, remaining, deadline, tokens.clone()).await;
            guard.armed = false;
            let (reason, emitted) = match outcome {
                Attempt::Answered(response) => {
                    self.record_success(idx, response.latency);
                    return Ok(response);
                }
                Attempt::DeadlinePassed => {
                    self.lock_health()[idx].probing = false;
                    return Err(RouterError::DeadlineExceeded);
                }
                // A timeout set by the run's deadline rather than the candidate's own limit is
                // not the candidate's fault: it does not count against its circuit.
                Attempt::Failed { error, .. } if caused_by_deadline(&error, &slot.candidate) => {
                    self.lock_health()[idx].probing = false;
                    return Err(RouterError::DeadlineExceeded);
                }
                // A full local queue refused the call before anything ran: fall back, but do
                // not count it against the candidate's circuit.
                Attempt::Failed { error: error @ ProviderError::Busy(_), .. } => {
                    self.lock_health()[idx].probing = false;
                    failures.push((slot.name.clone(), error.to_string()));
                    continue;
                }
                Attempt::Failed { error, emitted } => (error.to_string(), emitted),
                Attempt::Panicked(reason) => (reason, false),
            };
            self.record_failure(idx, &reason);
            tracing::warn!(candidate = %slot.name, label = %slot.candidate.label, %reason, "model candidate failed");
            if emitted {
                return Err(RouterError::StreamFailed { candidate: slot.name.clone(), reason });
            }
            failures.push((slot.name.clone(), reason));
        }
        Err(RouterError::AllProvidersDown { failures })
    }

    /// Candidate indices in the order to try them, and the candidates filtered out (with why).
    fn order(&self, request: &ChatRequest) -> (Vec<usize>, Vec<(String, String)>) {
        let mut order: Vec<usize> = (0..self.slots.len()).collect();
        let mut ineligible = Vec::new();
        match self.strategy {
            RoutingStrategy::QualityFirst => {}
            RoutingStrategy::CostOptimized => {
                order.sort_by(|&a, &b| match (self.slots[a].price, self.slots[b].price) {
                    (Some(a), Some(b)) => a.total_cmp(&b),
                    (Some(_), None) => Ordering::Less,
                    (None, Some(_)) => Ordering::Greater,
                    (None, None) => Ordering::Equal,
                })
            }
            RoutingStrategy::LatencyOptimized => {
                let health = self.lock_health();
                order.sort_by(|&a, &b| {
                    match (health[a].avg_latency_ms, health[b].avg_latency_ms) {
                        (Some(a), Some(b)) => a.total_cmp(&b),
                        (None, Some(_)) => Ordering::Less, // untried first
                        (Some(_), None) => Ordering::Greater,
                        (None, None) => Ordering::Equal,
                    }
                });
            }
            RoutingStrategy::RoundRobin => {
                let turn = self.turn.fetch_add(1, AtomicOrdering::Relaxed) % order.len();
                order.rotate_left(turn);
            }
            RoutingStrategy::CapabilityMatch => {
                let needs_tools = !request.tools.is_empty();
                let needs_vision = request.needs_vision();
                order.retain(|&idx| {
                    let slot = &self.slots[idx];
                    let missing =
                        match (needs_tools && !slot.capabilities.tools, needs_vision && !slot.capabilities.vision) {
                            (true, true) => "does not support tools or vision",
                            (true, false) => "does not support tools",
                            (false, true) => "does not support vision",
                            (false, false) => return true,
                        };
                    ineligible.push((slot.name.clone(), missing.to_string()));
                    false
                });
            }
        }
        if !self.settings.fallback_enabled {
            order.truncate(1);
        }
        (order, ineligible)
    }

    fn admit(&self, idx: usize, now: Instant) -> Admission {
        let mut health = self.lock_health();
        let record = &mut health[idx];
        match record.open_until {
            None => Admission::Call { probe: false },
            Some(until) if now < until => Admission::Skip(format!(
                "circuit open after {} consecutive failures, retrying in {:.1}s (last error: {})",
                record.consecutive_failures,
                (until - now).as_secs_f64(),
                record.last_error.as_deref().unwrap_or("unknown"),
            )),
            Some(_) if record.probing => Admission::Skip("circuit half-open, a probe call is in flight".to_string()),
            Some(_) => {
                record.probing = true;
                Admission::Call { probe: true }
            }
        }
    }

    fn record_success(&self, idx: usize, latency: Duration) {
        let latency_ms = latency.as_secs_f64() * 1000.0;
        let mut health = self.lock_health();
        let record = &mut health[idx];
        record.consecutive_failures = 0;
        record.open_until = None;
        record.probing = false;
        record.last_error = None;
        record.successes += 1;
        record.avg_latency_ms = Some(match record.avg_latency_ms {
            None => latency_ms,
            Some(old) => 0.8 * old + 0.2 * latency_ms,
        });
    }

    fn record_failure(&self, idx: usize, reason: &str) {
        let now = Instant::now();
        let mut health = self.lock_health();
        let record = &mut health[idx];
        record.consecutive_failures = record.consecutive_failures.saturating_add(1);
        record.last_error = Some(reason.to_string());
        // A failed half-open probe re-opens at once; otherwise the threshold decides.
        if record.probing || record.consecutive_failures >= self.settings.failure_threshold {
            record.open_until = Some(now + self.settings.recovery_timeout);
        }
        record.probing = false;
    }

    /// Every candidate's state, in declaration order.
    pub fn health(&self) -> Vec<CandidateHealth> {
        let now = Instant::now();
        let health = self.lock_health();
        self.slots
            .iter()
            .zip(health.iter())
            .map(|(slot, record)| {
                let circuit_open = record.open_until.is_some_and(|until| now < until);
                let (state, detail) = match &slot.model {
                    Err(reason) => (ProviderState::Unavailable, Some(reason.clone())),
                    Ok(_) if circuit_open => (ProviderState::Unavailable, record.last_error.clone()),
                    Ok(_) if record.open_until.is_some() => (ProviderState::Degraded, Some("half-open".to_string())),
                    Ok(_) if record.consecutive_failures > 0 => (ProviderState::Degraded, record.last_error.clone()),
                    Ok(_) if record.successes == 0 => (ProviderState::Degraded, Some("unprobed".to_string())),
                    Ok(_) => (ProviderState::Healthy, None),
                };
                CandidateHealth {
                    label: slot.candidate.label.clone(),
                    provider: slot.candidate.provider.clone(),
                    model: slot.candidate.model.clone(),
                    endpoint: slot.candidate.endpoint.clone(),
                    state,
                    avg_latency_ms: record.avg_latency_ms,
                    consecutive_failures: record.consecutive_failures,
                    circuit_open,
                    detail,
                }
            })
            .collect()
    }
}

impl Slot {
    fn new(candidate: ModelCandidate, model: Result<Arc<dyn ChatModel>, String>) -> Slot {
        let capabilities = match &model {
            Ok(model) => model.capabilities(),
            Err(_) => Capabilities { tools: false, vision: false },
        };
        let price = pricing::price_per_1k(&candidate).map(|(input, output)| input + output);
        let name = format!("{}/{}", candidate.provider, candidate.model);
        Slot { candidate, name, model, capabilities, price }
    }
}

/// Whether a timeout came from the run's remaining time rather than the candidate's own limits
/// (the adapter applies the smaller of the two, and reports the one it applied).
fn caused_by_deadline(error: &ProviderError, candidate: &ModelCandidate) -> bool {
    match error {
        ProviderError::Timeout { timeout, .. } => *timeout < candidate.timeout,
        ProviderError::ConnectTimeout { timeout, .. } => *timeout < candidate.connect_timeout,
        _ => false,
    }
}

/// One call of one candidate, bounded by the deadline. An adapter that panics fails this
/// candidate, not the run.
async fn attempt(
    model: &dyn ChatModel,
    request: &ChatRequest,
    remaining: Duration,
    deadline: Instant,
    tokens: Option<Sender<String>>,
) -> Attempt {
    let streaming = tokens.is_some();
    let mut sink = TokenSink::new(tokens);
    let call = async {
        if streaming {
            model.stream(request, remaining, &mut sink).await
        } else {
            model.complete(request, remaining).await
        }
    };
    let outcome = tokio::time::timeout_at(deadline + DEADLINE_GRACE, AssertUnwindSafe(call).catch_unwind()).await;
    match outcome {
        Err(_) => Attempt::DeadlinePassed,
        Ok(Err(panic)) => Attempt::Panicked(format!("the adapter panicked: {}", crate::panic_message(&*panic))),
        Ok(Ok(Ok(response))) => Attempt::Answered(response),
        Ok(Ok(Err(error))) => Attempt::Failed { error, emitted: sink.emitted() },
    }
}

/// The outcome of probing one distinct provider endpoint (for the doctor).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeResult {
    /// `<kind> <endpoint>`, e.g. `openai_compat http://127.0.0.1:1234/v1`.
    pub name: String,
    pub ok: bool,
    /// `avg latency: 12ms`, or the error.
    pub message: String,
}

/// Health-checks every distinct (kind, endpoint) in parallel. Each check is bounded by
/// `timeout` even when the endpoint accepts the connection and then never answers. Local
/// models have no endpoint: the doctor reports them from `LocalModels::report`.
pub async fn probe(candidates: &[ModelCandidate], timeout: Duration) -> Vec<ProbeResult> {
    let mut distinct: Vec<&ModelCandidate> = Vec::new();
    for candidate in candidates.iter().filter(|candidate| candidate.kind != crate::config::model::ProviderKind::Local) {
        if !distinct.iter().any(|seen| seen.kind == candidate.kind && seen.endpoint == candidate.endpoint) {
            distinct.push(candidate);
        }
    }
    let mut checks = tokio::task::JoinSet::new();
    for (idx, candidate) in distinct.iter().enumerate() {
        let built = build_model(candidate);
        checks.spawn(async move {
            let model = match built {
                Ok(model) => model,
                Err(error) => return (idx, false, error.to_string()),
            };
            let started = std::time::Instant::now();
            match tokio::time::timeout(timeout + DEADLINE_GRACE, model.health(timeout)).await {
                Ok(Ok(())) => (idx, true, format!("avg latency: {}ms", started.elapsed().as_millis())),
                Ok(Err(error)) => (idx, false, error.to_string()),
                Err(_) => (idx, false, format!("no answer within {}ms", timeout.as_millis())),
            }
        });
    }
    let mut results: Vec<Option<ProbeResult>> = vec![None; distinct.len()];
    while let Some(joined) = checks.join_next().await {
        if let Ok((idx, ok, message)) = joined {
            let candidate = distinct[idx];
            results[idx] =
                Some(ProbeResult { name: format!("{} {}", candidate.kind.as_str(), candidate.endpoint), ok, message });
        }
    }
    results
        .into_iter()
        .zip(&distinct)
        .map(|(result, candidate)| {
            result.unwrap_or_else(|| ProbeResult {
                name: format!("{} {}", candidate.kind.as_str(), candidate.endpoint),
                ok: false,
                message: "the health check did not finish".to_string(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests;
