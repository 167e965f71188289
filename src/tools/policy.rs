//! The sandbox of the tools: which addresses the network tools may reach, which files the file
//! tools may touch.
//!
//! **Network.** A destination is checked by the IP address it resolves to, never by its name
//! alone: `fetch` resolves through `PolicyResolver`, which calls `NetPolicy::check` on every
//! address before ureq connects to it, and redirects are followed by hand so each hop is
//! resolved and checked again. Refused unless allowed: loopback, private (RFC 1918, IPv6 unique
//! local), link-local, carrier-grade NAT (100.64/10), the cloud metadata address
//! (169.254.169.254), unspecified, multicast, broadcast and reserved ranges, including those
//! embedded in IPv6 (IPv4-mapped, NAT64, 6to4). A tool's `config` may allow some:
//! `allow_localhost: true` opens the loopback range only; `allowed_hosts: [names or IPs]` lets
//! those hosts through whatever they resolve to (an internal API). Every other host is still
//! reachable at public addresses only: `allowed_hosts` is an exception list, not an allow-list.
//! Limits on every response: `max_response_bytes` (default 5 MiB) and `timeout_seconds`
//! (default: the tool's timeout).
//!
//! **Files.** `allowed_paths` lists the roots; a path is resolved (symlinks and `..` included)
//! before it is compared with the roots, so neither can escape. No roots configured: refused.
//! Not here: sending requests (`fetch`), what a tool does with the answer.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use serde_json::{Map, Value};

/// The default response size limit.
pub(crate) const DEFAULT_MAX_RESPONSE_BYTES: u64 = 5 * 1024 * 1024;

/// Why the sandbox refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    #[error(
        "access to {host} ({addr}) is refused: {range} address (set `allow_localhost` or `allowed_hosts` in the \
         tool's config to allow it)"
    )]
    BlockedAddress { host: String, addr: IpAddr, range: &'static str },
    #[error("only http and https URLs are allowed, not {0:?}")]
    Scheme(String),
    #[error("file access is disabled: the tool's config has no `allowed_paths`")]
    NoRoots,
    #[error("path {0:?} is outside the allowed paths")]
    OutsideRoots(String),
    #[error("path {path:?} cannot be resolved: {reason}")]
    Unresolvable { path: String, reason: String },
}

/// Where a network tool may connect, and how much it may read.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct NetPolicy {
    pub allow_localhost: bool,
    /// Lower-cased host names and IP literals exempt from the address checks.
    pub allowed_hosts: Vec<String>,
    pub max_response_bytes: u64,
    pub timeout: Duration,
}

impl NetPolicy {
    /// Reads `allow_localhost`, `allowed_hosts`, `max_response_bytes` and `timeout_seconds`
    /// from a tool's config; `tool_timeout` is the default (and the upper bound) of the timeout.
    pub fn from_config(config: &Map<String, Value>, tool_timeout: Duration) -> NetPolicy {
        let allowed_hosts = config
            .get("allowed_hosts")
            .and_then(Value::as_array)
            .map(|hosts| {
                hosts.iter().filter_map(Value::as_str).map(|host| normalise_host(host).to_ascii_lowercase()).collect()
            })
            .unwrap_or_default();
        let timeout = config
            .get("timeout_seconds")
            .and_then(Value::as_f64)
            .filter(|secs| *secs > 0.0 && secs.is_finite())
            .map(|secs| Duration::from_secs_f64(secs.min(86_400.0)).min(tool_timeout))
            .unwrap_or(tool_timeout);
        NetPolicy {
            allow_localhost: config.get("allow_localhost").and_then(Value::as_bool).unwrap_or(false),
            allowed_hosts,
            max_response_bytes: config
                .get("max_response_bytes")
                .and_then(Value::as_u64)
                .filter(|bytes| *bytes > 0)
                .unwrap_or(DEFAULT_MAX_RESPONSE_BYTES),
            timeout,
        }
    }

    /// Whether `host` (as written in the URL) may be reached at `addr`.
    pub fn check(&self, host: &str, addr: IpAddr) -> Result<(), PolicyError> {
        let host = normalise_host(host).to_ascii_lowercase();
        if self.allowed_hosts.iter().any(|allowed| *allowed == host || *allowed == addr.to_string()) {
            return Ok(());
        }
        match blocked_range(addr) {
            None => Ok(()),
            Some("loopback") if self.allow_localhost => Ok(()),
            Some(range) => Err(PolicyError::BlockedAddress { host, addr, range }),
        }
    }
}

/// `[::1]` -> `::1`; names are compared without a trailing dot.
fn normalise_host(host: &str) -> &str {
    host.trim_start_matches('[').trim_end_matches(']').trim_end_matches('.')
}

/// The name of the range `addr` falls in when that range is refused by default.
pub(crate) fn blocked_range(addr: IpAddr) -> Option<&'static str> {
    match addr {
        IpAddr::V4(v4) => blocked_v4(v4),
        IpAddr::V6(v6) => blocked_v6(v6),
    }
}

fn blocked_v4(addr: Ipv4Addr) -> Option<&'static str> {
    let [a, b, c, _] = addr.octets();
    Some(match (a, b) {
        _ if addr == Ipv4Addr::new(169, 254, 169, 254) => "cloud metadata",
        (127, _) => "loopback",
        (10, _) | (192, 168) => "private",
        (172, 16..=31) => "private",
        (169, 254) => "link-local",
        (100, 64..=127) => "carrier-grade NAT",
        (0, _) => "unspecified",
        (192, 0) if c == 0 || c == 2 => "reserved",
        (198, 18..=19) => "reserved",
        (198, 51) if c == 100 => "reserved",
        (203, 0) if c == 113 => "reserved",
        (224..=239, _) => "multicast",
        (240..=255, _) => "reserved",
        _ => return None,
    })
}

fn blocked_v6(addr: Ipv6Addr) -> Option<&'static str> {
    if let Some(v4) = addr.to_ipv4_mapped() {
        return blocked_v4(v4);
    }
    let segments = addr.segments();
    let embedded_v4 = |high: u16, low: u16| Ipv4Addr::new((high >> 8) as u8, high as u8, (low >> 8) as u8, low as u8);
    Some(match segments {
        _ if addr == Ipv6Addr::LOCALHOST => "loopback",
        _ if addr == Ipv6Addr::UNSPECIFIED => "unspecified",
        // The metadata service's IPv6 address on AWS (fd00:ec2::254) is in the unique-local range.
        [first, ..] if first & 0xfe00 == 0xfc00 => "unique local (private)",
        [first, ..] if first & 0xffc0 == 0xfe80 => "link-local",
        [first, ..] if first & 0xffc0 == 0xfec0 => "site-local (private)",
        [first, ..] if first & 0xff00 == 0xff00 => "multicast",
        // NAT64 (64:ff9b::/96) and 6to4 (2002::/16) reach the embedded IPv4 address.
        [0x64, 0xff9b, 0, 0, 0, 0, high, low] => return blocked_v4(embedded_v4(high, low)),
        [0x2002, high, low, ..] => return blocked_v4(embedded_v4(high, low)),
        // IPv4-compatible (deprecated) ::a.b.c.d.
        [0, 0, 0, 0, 0, 0, high, low] => return blocked_v4(embedded_v4(high, low)),
        [0x2001, 0xdb8, ..] => "reserved",
        _ => return None,
    })
}

/// The roots the file tools may use.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct FilePolicy {
    roots: Vec<PathBuf>,
}

impl FilePolicy {
    /// Reads `allowed_paths` (a list, or one string) from a tool's config.
    pub fn from_config(config: &Map<String, Value>) -> FilePolicy {
        let roots = match config.get("allowed_paths") {
            Some(Value::String(one)) => vec![PathBuf::from(one)],
            Some(Value::Array(many)) => many.iter().filter_map(Value::as_str).map(PathBuf::from).collect(),
            _ => Vec::new(),
        };
        FilePolicy { roots }
    }

    /// The roots as they are on disk (symlinks resolved); roots that do not exist are skipped.
    fn resolved_roots(&self) -> Result<Vec<PathBuf>, PolicyError> {
        if self.roots.is_empty() {
            return Err(PolicyError::NoRoots);
        }
        Ok(self.roots.iter().filter_map(|root| root.canonicalize().ok()).collect())
    }

    /// A relative path is taken relative to the first root.
    fn absolute(&self, path: &str) -> PathBuf {
        let path = Path::new(path);
        match self.roots.first() {
            Some(root) if path.is_relative() => root.join(path),
            _ => path.to_path_buf(),
        }
    }

    /// The real path of an existing file inside a root. Blocking (file system).
    pub fn resolve_existing(&self, path: &str) -> Result<PathBuf, PolicyError> {
        let roots = self.resolved_roots()?;
        let real = self
            .absolute(path)
            .canonicalize()
            .map_err(|error| PolicyError::Unresolvable { path: path.to_string(), reason: error.to_string() })?;
        if roots.iter().any(|root| real.starts_with(root)) {
            Ok(real)
        } else {
            Err(PolicyError::OutsideRoots(path.to_string()))
        }
    }

    /// Where to write `path`: its nearest existing ancestor must resolve inside a root and the
    /// rest of the path must be plain names (no `..`). An existing target is resolved as a
    /// whole, so a symlink pointing out of the roots is refused. Blocking (file system).
    pub fn resolve_for_write(&self, path: &str) -> Result<PathBuf, PolicyError> {
        let roots = self.resolved_roots()?;
        let absolute = self.absolute(path);
        if absolute.symlink_metadata().is_ok() {
            return self.resolve_existing(path);
        }
        let mut existing = absolute.as_path();
        let mut rest: Vec<&std::ffi::OsStr> = Vec::new();
        while existing.symlink_metadata().is_err() {
            let Some(name) = existing.file_name() else {
                return Err(PolicyError::OutsideRoots(path.to_string()));
            };
            rest.push(name);
            existing = existing.parent().ok_or_else(|| PolicyError::OutsideRoots(path.to_string()))?;
        }
        // `file_name` is None for a path ending in `..`, so the walk above refuses a `..` after
        // a missing directory; a `..` inside the existing part is resolved by canonicalize.
        debug_assert!(!rest.iter().any(|name| Path::new(name).components().any(|c| c == Component::ParentDir)));
        let mut real = existing
            .canonicalize()
            .map_err(|error| PolicyError::Unresolvable { path: path.to_string(), reason: error.to_string() })?;
        if !roots.iter().any(|root| real.starts_with(root)) {
            return Err(PolicyError::OutsideRoots(path.to_string()));
        }
        for name in rest.iter().rev() {
            real.push(name);
        }
        Ok(real)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn policy(config: Value) -> NetPolicy {
        NetPolicy::from_config(config.as_object().unwrap(), Duration::from_secs(30))
    }

    #[test]
    fn private_and_special_addresses_are_refused_by_default() {
        let policy = policy(json!({}));
        for addr in [
            "127.0.0.1",
            "127.8.9.10",
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "169.254.1.1",
            "100.64.0.1",
            "100.127.255.254",
            "0.0.0.0",
            "224.0.0.1",
            "255.255.255.255",
            "::1",
            "::",
            "fd00:ec2::254",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "64:ff9b::a00:1",
            "2002:7f00:1::",
        ] {
            let ip: IpAddr = addr.parse().unwrap();
            assert!(policy.check("example.test", ip).is_err(), "{addr} should be refused");
        }
        for addr in ["93.184.216.34", "8.8.8.8", "172.32.0.1", "100.128.0.1", "2606:4700::1111"] {
            let ip: IpAddr = addr.parse().unwrap();
            assert!(policy.check("example.test", ip).is_ok(), "{addr} should be allowed");
        }
    }

    #[test]
    fn metadata_is_named_and_allow_localhost_opens_loopback_only() {
        let policy = policy(json!({"allow_localhost": true}));
        assert!(policy.check("localhost", "127.0.0.1".parse().unwrap()).is_ok());
        assert!(policy.check("localhost", "::1".parse().unwrap()).is_ok());
        let refused = policy.check("meta", "169.254.169.254".parse().unwrap()).unwrap_err();
        assert!(refused.to_string().contains("cloud metadata"), "{refused}");
        assert!(policy.check("intranet", "10.0.0.5".parse().unwrap()).is_err());
    }

    #[test]
    fn allowed_hosts_are_exempt_by_name_or_address() {
        let policy = policy(json!({"allowed_hosts": ["Intranet.Local", "10.0.0.7", "[::1]"]}));
        assert!(policy.check("intranet.local", "10.0.0.5".parse().unwrap()).is_ok());
        assert!(policy.check("other", "10.0.0.7".parse().unwrap()).is_ok());
        assert!(policy.check("[::1]", "::1".parse().unwrap()).is_ok());
        assert!(policy.check("other", "10.0.0.8".parse().unwrap()).is_err());
    }

    #[test]
    fn limits_come_from_the_config_and_never_exceed_the_tool_timeout() {
        let policy = policy(json!({"max_response_bytes": 10, "timeout_seconds": 90}));
        assert_eq!(policy.max_response_bytes, 10);
        assert_eq!(policy.timeout, Duration::from_secs(30));
        let default = super::NetPolicy::from_config(&Map::new(), Duration::from_secs(5));
        assert_eq!(default.max_response_bytes, DEFAULT_MAX_RESPONSE_BYTES);
        assert_eq!(default.timeout, Duration::from_secs(5));
    }

    #[test]
    fn files_resolve_inside_roots_only() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        std::fs::create_dir_all(root.join("sub")).unwrap();
        std::fs::write(root.join("sub/a.txt"), "a").unwrap();
        std::fs::write(dir.path().join("secret.txt"), "s").unwrap();
        std::os::unix::fs::symlink(dir.path().join("secret.txt"), root.join("link.txt")).unwrap();
        std::os::unix::fs::symlink(dir.path(), root.join("outdir")).unwrap();
        let policy = FilePolicy::from_config(json!({"allowed_paths": [root]}).as_object().unwrap());
        assert!(policy.resolve_existing("sub/a.txt").is_ok());
        assert!(policy.resolve_existing(root.join("sub/../sub/a.txt").to_str().unwrap()).is_ok());
        for escape in ["../secret.txt", "sub/../../secret.txt", "link.txt", "outdir/secret.txt", "/etc/hostname"] {
            assert!(policy.resolve_existing(escape).is_err(), "{escape} should be refused");
        }
        assert!(policy.resolve_for_write("new/dir/file.txt").unwrap().starts_with(root.canonicalize().unwrap()));
        for escape in ["../new.txt", "outdir/new.txt", "link.txt", "new/../../x.txt", "/tmp/x.txt"] {
            assert!(policy.resolve_for_write(escape).is_err(), "{escape} should be refused");
        }
        let none = FilePolicy::from_config(&Map::new());
        assert_eq!(none.resolve_existing("a"), Err(PolicyError::NoRoots));
    }
}
