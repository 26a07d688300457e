//! The connections the gRPC listener holds: admitted under a global and a per-address cap,
//! each with an [`Activity`] record the call tracker finds by its remote address.
//!
//! A connection is admitted when it is accepted, before any TLS work, and holds its
//! [`Permit`] until its socket is dropped, so a connection stalled in its handshake counts as
//! much as one serving calls.

use super::idle::Activity;
use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use tokio::time::Instant;

/// Why a connection was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// `max_connections` are open.
    Total,
    /// `max_connections_per_address` are open from its address.
    PerAddress,
}

impl Refusal {
    /// The `reason` label of `redline_rejected_inputs_total{source="connection"}`.
    pub fn reason(self) -> &'static str {
        match self {
            Refusal::Total => "connection_cap",
            Refusal::PerAddress => "address_cap",
        }
    }
}

/// The address a connection counts against: an IPv4 address (an IPv4-mapped IPv6 one is the
/// same caller), or the /64 of an IPv6 address, since one host is routinely given a whole
/// /64 and could otherwise open the per-address cap 2^64 times.
pub fn address_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(Ipv6Addr::from(u128::from(v6) & !((1u128 << 64) - 1))),
        },
    }
}

#[derive(Debug, Default)]
struct State {
    total: usize,
    per_address: HashMap<IpAddr, usize>,
    /// Open connections by remote address (unique among a listener's live connections).
    live: HashMap<SocketAddr, Arc<Activity>>,
}

/// The listener's open connections and their caps.
#[derive(Debug)]
pub struct Connections {
    max_total: usize,
    max_per_address: usize,
    /// Origin of the [`Activity`] clocks.
    epoch: Instant,
    state: Mutex<State>,
}

impl Connections {
    /// No connection yet; at most `max_total` at once and `max_per_address` per
    /// [`address_key`].
    pub fn new(max_total: usize, max_per_address: usize) -> Arc<Self> {
        Arc::new(Self {
            max_total,
            max_per_address,
            epoch: Instant::now(),
            state: Mutex::default(),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // The state stays consistent across a panic (each update is a few integer ops).
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Admits a connection from `remote`, or says which cap it is over.
    pub fn admit(self: &Arc<Self>, remote: SocketAddr) -> Result<Permit, Refusal> {
        let key = address_key(remote.ip());
        let mut s = self.lock();
        if s.total >= self.max_total {
            return Err(Refusal::Total);
        }
        let from = s.per_address.entry(key).or_insert(0);
        if *from >= self.max_per_address {
            return Err(Refusal::PerAddress);
        }
        *from += 1;
        s.total += 1;
        let activity = Arc::new(Activity::new(self.epoch));
        s.live.insert(remote, activity.clone());
        Ok(Permit {
            connections: self.clone(),
            remote,
            key,
            activity,
        })
    }

    /// The activity record of the open connection from `remote`.
    pub fn activity(&self, remote: SocketAddr) -> Option<Arc<Activity>> {
        self.lock().live.get(&remote).cloned()
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.lock().total
    }

    /// Connections open now from `ip`'s [`address_key`].
    pub fn open_from(&self, ip: IpAddr) -> usize {
        self.lock()
            .per_address
            .get(&address_key(ip))
            .copied()
            .unwrap_or(0)
    }
}

/// One admitted connection; dropping it (with the connection's socket) frees its place.
#[derive(Debug)]
pub struct Permit {
    connections: Arc<Connections>,
    remote: SocketAddr,
    key: IpAddr,
    activity: Arc<Activity>,
}

impl Permit {
    /// The connection's activity record.
    pub fn activity(&self) -> &Arc<Activity> {
        &self.activity
    }

    /// The remote address it was admitted for.
    pub fn remote(&self) -> SocketAddr {
        self.remote
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut s = self.connections.lock();
        s.total = s.total.saturating_sub(1);
        if let Some(n) = s.per_address.get_mut(&self.key) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                s.per_address.remove(&self.key);
            }
        }
        s.live.remove(&self.remote);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn caps_count_per_address_and_in_total_and_free_on_drop() {
        let c = Connections::new(5, 2);
        let a1 = c.admit(addr("10.0.0.1:1000")).unwrap();
        let a2 = c.admit(addr("10.0.0.1:1001")).unwrap();
        assert_eq!(
            c.admit(addr("10.0.0.1:1002")).unwrap_err(),
            Refusal::PerAddress
        );
        // The IPv4-mapped form is the same caller.
        assert_eq!(
            c.admit(addr("[::ffff:10.0.0.1]:1003")).unwrap_err(),
            Refusal::PerAddress
        );
        let b1 = c.admit(addr("10.0.0.2:1000")).unwrap();
        let v6a = c.admit(addr("[2001:db8:1:2::1]:1")).unwrap();
        let v6b = c.admit(addr("[2001:db8:1:2:ffff::9]:1")).unwrap();
        // Another address of the same /64 is the same caller; another /64 is not, but the
        // total is reached.
        assert_eq!(c.open(), 5);
        assert_eq!(c.open_from("2001:db8:1:2::77".parse().unwrap()), 2);
        assert_eq!(
            c.admit(addr("[2001:db8:1:3::1]:1")).unwrap_err(),
            Refusal::Total
        );
        assert!(c.activity(addr("10.0.0.2:1000")).is_some());

        drop(a1);
        assert_eq!(c.open(), 4);
        assert!(c.activity(addr("10.0.0.1:1000")).is_none());
        let a3 = c.admit(addr("10.0.0.1:1004")).unwrap();
        assert_eq!(c.open_from("10.0.0.1".parse().unwrap()), 2);
        drop((a2, a3, b1, v6a, v6b));
        assert_eq!(c.open(), 0);
        assert_eq!(c.open_from("10.0.0.1".parse().unwrap()), 0);
        assert!(c.lock().per_address.is_empty() && c.lock().live.is_empty());
    }
}
