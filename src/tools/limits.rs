//! Per-agent, per-tool rate limits: a sliding window of call times.
//!
//! `rate_limit{max_calls, window_seconds}` allows `max_calls` calls in any window of that
//! length, counted per (agent, tool), as the reference counts per tool name in one registry
//! (each agent has its own there). Times are `tokio::time::Instant`, so tests can pause the
//! clock. The map holds one entry per (agent, tool) that has a limit: bounded by configuration.
//! A `std` mutex: held for a few deque operations, never across an await.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use tokio::time::Instant;

use crate::config::agent::RateLimit;

#[derive(Default)]
pub(crate) struct RateLimiter {
    calls: Mutex<HashMap<(String, String), VecDeque<Instant>>>,
}

impl RateLimiter {
    /// Records a call and says whether it is within the limit (a refused call is not counted).
    pub fn admit(&self, agent: &str, tool: &str, limit: &RateLimit) -> bool {
        let now = Instant::now();
        let mut calls = self.calls.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let window = calls.entry((agent.to_string(), tool.to_string())).or_default();
        while window.front().is_some_and(|&at| now.duration_since(at) >= limit.window) {
            window.pop_front();
        }
        if window.len() >= limit.max_calls as usize {
            return false;
        }
        window.push_back(now);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test(start_paused = true)]
    async fn the_window_slides() {
        let limiter = RateLimiter::default();
        let limit = RateLimit { max_calls: 2, window: Duration::from_secs(10) };
        assert!(limiter.admit("a", "t", &limit));
        tokio::time::advance(Duration::from_secs(6)).await;
        assert!(limiter.admit("a", "t", &limit));
        assert!(!limiter.admit("a", "t", &limit));
        assert!(limiter.admit("b", "t", &limit), "other agents have their own window");
        tokio::time::advance(Duration::from_secs(4)).await;
        assert!(limiter.admit("a", "t", &limit), "the first call left the window");
        assert!(!limiter.admit("a", "t", &limit));
    }
}
