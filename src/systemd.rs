//! systemd's notify protocol: READY, RELOADING, STOPPING and WATCHDOG messages.
//!
//! Every call is a no-op unless the daemon runs under a service manager that set
//! `NOTIFY_SOCKET` (the `sd-notify` crate reads it, and `WATCHDOG_USEC`, which systemd sets for
//! `Type=notify` units: they are the protocol, not our configuration). A failed send is logged
//! and ignored: the daemon serves whether or not anyone listens. Not here: when to send (the
//! callers: `App::serve` for READY/STOPPING/watchdog, `reload_agents` for RELOADING).

use std::time::Duration;

use sd_notify::NotifyState;
use tokio_util::sync::CancellationToken;

fn send(states: &[NotifyState]) {
    if let Err(error) = sd_notify::notify(states) {
        tracing::warn!("cannot notify the service manager: {error}");
    }
}

/// Listening: systemd considers the unit started.
pub fn ready() {
    send(&[NotifyState::Ready, NotifyState::Status("serving")]);
}

/// Shutting down: in-flight requests are draining.
pub fn stopping() {
    send(&[NotifyState::Stopping, NotifyState::Status("draining")]);
}

/// A reload begins; `ready()` ends it. systemd wants the monotonic time with RELOADING=1.
pub fn reloading() {
    match NotifyState::monotonic_usec_now() {
        Ok(now) => send(&[NotifyState::Reloading, now, NotifyState::Status("reloading agents")]),
        Err(_) => send(&[NotifyState::Reloading, NotifyState::Status("reloading agents")]),
    }
}

/// The interval between watchdog pings: half of `WATCHDOG_USEC`, when the unit has a watchdog.
pub fn watchdog_interval() -> Option<Duration> {
    sd_notify::watchdog_enabled().map(|timeout| timeout / 2)
}

/// Pings WATCHDOG=1 every `interval` until `stop`. The pings come from the async runtime, so a
/// wedged runtime stops them and systemd restarts the daemon (`Restart=on-failure`).
pub async fn watchdog(interval: Duration, stop: CancellationToken) {
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticks.tick() => send(&[NotifyState::Watchdog]),
            () = stop.cancelled() => break,
        }
    }
}
