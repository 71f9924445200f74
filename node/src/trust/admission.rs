//! Fair admission of Federation API connections to a TLS handshake.
//!
//! Every accepted connection holds a pending-handshake slot from accept until its handshake
//! completes, fails or hits the handshake deadline. One shared pool of slots let a single
//! address with slow, half-finished handshakes hold all of them, and so keep every new peer out
//! for as long as the flood lasted. Here the pool is shared fairly:
//!
//! - one source address may hold at most [`Limits::per_address`] slots, and one network (a /24
//!   of IPv4, a /64 of IPv6) at most [`Limits::per_network`];
//! - [`Limits::reserved`] of the [`Limits::total`] slots are kept for the addresses the peers'
//!   endpoints resolve to ([`KnownAddresses`], kept fresh by [`follow_peers`]), so a flood
//!   from many networks still cannot keep a known peer from reconnecting.
//!
//! [`Admission`] is the ledger: pure counting, decided and released under one short lock, with
//! a [`Permit`] that gives its counts back when dropped. [`ShedLog`] turns the connections
//! refused at accept into at most one summary per reason per interval, never a line per
//! connection. The accept loop in [`super::handshake`] puts them together.
//!
//! A connection's source address is all this module knows; the certificate comes later, in the
//! handshake itself. A peer whose outgoing connections leave from another address than its
//! endpoint (an egress NAT) is therefore not recognised as known; it still has the general
//! share under the same per-address and per-network caps as everyone else.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use futures_util::StreamExt;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::TrustState;

/// How the pending-handshake slots are shared out.
///
/// Invariants: `reserved <= total`, and `per_address <= per_network`, so the reasons a
/// connection is shed are checked from the most specific to the least.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Handshakes in progress at once, from anyone. Each holds a task, a socket and a few
    /// kilobytes of TLS state for at most the handshake deadline; 256 of them bound a flood's
    /// memory to a few MiB while being far more than a federation's honest reconnects need.
    pub total: usize,
    /// Of `total`, the slots only connections from a known peer's address may take. A
    /// quarter: enough for every peer of a large federation to reconnect at once (after this
    /// node restarts, say), leaving three quarters to everyone else.
    pub reserved: usize,
    /// Slots one source address may hold. An honest node opens one connection per channel and
    /// finishes its handshake in milliseconds; 16 leaves room for reconnect bursts and for a
    /// few replicas behind one NAT address, while one address holds at most a sixteenth of
    /// the pool.
    pub per_address: usize,
    /// Slots one network (a /24 of IPv4, a /64 of IPv6) may hold: two addresses' worth. A
    /// network is usually one operator's, and an IPv6 host often has a whole /64, so one
    /// machine cannot escape the per-address cap by changing address; filling the general
    /// share takes at least six networks. Known peers' addresses are not held to it.
    pub per_network: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            total: 256,
            reserved: 64,
            per_address: 16,
            per_network: 32,
        }
    }
}

/// Why a connection was shed at accept, before its handshake began.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Shed {
    /// Its address already holds [`Limits::per_address`] pending handshakes.
    PerAddress,
    /// Its network already holds [`Limits::per_network`] pending handshakes.
    PerNetwork,
    /// Every slot it may take is in use: the general share for an unknown address, the whole
    /// pool for a known peer's.
    Full,
}

impl Shed {
    /// Every reason, in the order the ledger checks them.
    pub const ALL: [Self; 3] = [Self::PerAddress, Self::PerNetwork, Self::Full];

    /// The metrics label and log field.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::PerAddress => "per_address",
            Self::PerNetwork => "per_network",
            Self::Full => "full",
        }
    }

    /// Its place in [`Shed::ALL`].
    fn index(self) -> usize {
        match self {
            Self::PerAddress => 0,
            Self::PerNetwork => 1,
            Self::Full => 2,
        }
    }
}

/// The address a connection is counted under: an IPv4 address mapped into IPv6 (as a
/// dual-stack listener reports it) is the IPv4 address it carries.
pub fn source_of(ip: IpAddr) -> IpAddr {
    ip.to_canonical()
}

/// The network `ip` is counted in: its /24 for IPv4, its /64 for IPv6, host bits zeroed.
pub fn network_of(ip: IpAddr) -> IpAddr {
    match source_of(ip) {
        IpAddr::V4(v4) => IpAddr::V4((u32::from(v4) & 0xffff_ff00).into()),
        IpAddr::V6(v6) => IpAddr::V6((u128::from(v6) & !((1u128 << 64) - 1)).into()),
    }
}

/// The counts behind an [`Admission`]. Invariant: `pending` is the sum of `by_address`, every
/// entry of both maps is above zero, and each equals the number of live [`Permit`]s for it.
#[derive(Debug, Default)]
struct Counts {
    /// Handshakes in progress.
    pending: usize,
    /// Handshakes in progress per source address.
    by_address: HashMap<IpAddr, usize>,
    /// Handshakes in progress per network, from addresses that are not known peers'.
    by_network: HashMap<IpAddr, usize>,
}

impl Counts {
    /// Takes one from `key`'s count, forgetting it at zero so a flood from many addresses
    /// leaves nothing behind.
    fn release(map: &mut HashMap<IpAddr, usize>, key: IpAddr) {
        if let Some(count) = map.get_mut(&key) {
            *count -= 1;
            if *count == 0 {
                map.remove(&key);
            }
        }
    }
}

/// The ledger of pending handshakes. Cheap to clone; clones share the counts.
#[derive(Debug, Clone)]
pub struct Admission {
    /// How the slots are shared.
    limits: Limits,
    /// What is pending now.
    counts: Arc<Mutex<Counts>>,
}

impl Admission {
    /// An empty ledger.
    pub fn new(limits: Limits) -> Self {
        Self {
            limits,
            counts: Arc::default(),
        }
    }

    /// Admits a connection from `ip` to a handshake, or says why not. `known` says whether
    /// `ip` is a known peer's: such a connection may take a reserved slot and is not held to
    /// the per-network cap (nor counted towards it), but is held to the per-address one.
    pub fn admit(&self, ip: IpAddr, known: bool) -> Result<Permit, Shed> {
        let address = source_of(ip);
        let network = (!known).then(|| network_of(address));
        let mut counts = lock(&self.counts);
        if counts.by_address.get(&address).copied().unwrap_or(0) >= self.limits.per_address {
            return Err(Shed::PerAddress);
        }
        if let Some(network) = network
            && counts.by_network.get(&network).copied().unwrap_or(0) >= self.limits.per_network
        {
            return Err(Shed::PerNetwork);
        }
        let open_to_it = if known {
            self.limits.total
        } else {
            self.limits.total.saturating_sub(self.limits.reserved)
        };
        if counts.pending >= open_to_it {
            return Err(Shed::Full);
        }
        counts.pending += 1;
        *counts.by_address.entry(address).or_default() += 1;
        if let Some(network) = network {
            *counts.by_network.entry(network).or_default() += 1;
        }
        Ok(Permit {
            counts: self.counts.clone(),
            address,
            network,
        })
    }

    /// Handshakes in progress now.
    pub fn pending(&self) -> usize {
        lock(&self.counts).pending
    }
}

/// The counts stay consistent through a panic elsewhere (each change is made whole under the
/// lock), so a poisoned lock is used as it is.
fn lock(counts: &Mutex<Counts>) -> MutexGuard<'_, Counts> {
    counts.lock().unwrap_or_else(PoisonError::into_inner)
}

/// One admitted handshake's slot; dropping it gives the slot back.
#[derive(Debug)]
pub struct Permit {
    /// The ledger it was taken from.
    counts: Arc<Mutex<Counts>>,
    /// The source address it counts under.
    address: IpAddr,
    /// The network it counts under, unless it came from a known peer's address. Kept from
    /// admission, so a change of the known set in between cannot unbalance the counts.
    network: Option<IpAddr>,
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut counts = lock(&self.counts);
        counts.pending = counts.pending.saturating_sub(1);
        Counts::release(&mut counts.by_address, self.address);
        if let Some(network) = self.network {
            Counts::release(&mut counts.by_network, network);
        }
    }
}

/// The most distinct addresses a [`ShedLog`] tallies per reason and interval, so a flood from
/// a million addresses costs a bounded map; past it, the summary says "at least".
const MAX_TALLIED_SOURCES: usize = 1024;

/// One reason's connections shed since its last summary.
#[derive(Debug, Default)]
struct Tally {
    /// When its last summary was written.
    last_summary: Option<Instant>,
    /// Connections shed since.
    shed: u64,
    /// Per source address, up to [`MAX_TALLIED_SOURCES`] of them.
    sources: HashMap<IpAddr, u64>,
    /// Whether more addresses were seen than are tallied.
    overflowed: bool,
}

/// What one summary line says about one reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    /// Why they were shed.
    pub reason: Shed,
    /// Connections shed since the last summary of this reason.
    pub shed: u64,
    /// From how many source addresses.
    pub addresses: usize,
    /// Whether there were more addresses than `addresses` (the tally is bounded).
    pub at_least: bool,
    /// The address most were shed from, and how many.
    pub top: Option<(IpAddr, u64)>,
}

impl Summary {
    /// Writes the summary as one WARN line: counts and the top source, nothing else.
    pub fn log(&self) {
        let addresses = if self.at_least {
            format!("{}+", self.addresses)
        } else {
            self.addresses.to_string()
        };
        let (top_source, top_shed) = match self.top {
            Some((ip, shed)) => (ip.to_string(), shed),
            None => (String::new(), 0),
        };
        tracing::warn!(
            reason = self.reason.as_str(),
            shed = self.shed,
            addresses = %addresses,
            top_source = %top_source,
            top_shed,
            "federation connections shed at accept: too many TLS handshakes pending",
        );
    }
}

/// Turns connections shed one by one into summaries: the first shed of a reason is reported at
/// once, and the rest at most once per `interval` per reason.
#[derive(Debug)]
pub struct ShedLog {
    /// The least time between two summaries of one reason.
    interval: Duration,
    /// One tally per reason, in [`Shed::ALL`] order.
    tallies: [Tally; 3],
}

impl ShedLog {
    /// An empty log that summarises each reason at most once per `interval`.
    pub fn new(interval: Duration) -> Self {
        Self {
            interval,
            tallies: Default::default(),
        }
    }

    /// Tallies one connection shed at `now`, and returns a summary if one is due.
    pub fn record(&mut self, reason: Shed, ip: IpAddr, now: Instant) -> Option<Summary> {
        let tally = &mut self.tallies[reason.index()];
        tally.shed += 1;
        let source = source_of(ip);
        if let Some(count) = tally.sources.get_mut(&source) {
            *count += 1;
        } else if tally.sources.len() < MAX_TALLIED_SOURCES {
            tally.sources.insert(source, 1);
        } else {
            tally.overflowed = true;
        }
        self.due_one(reason, now)
    }

    /// The summaries due at `now`: reasons with connections shed and no summary for an
    /// interval. Called on a timer, so the end of a flood is reported too.
    pub fn due(&mut self, now: Instant) -> Vec<Summary> {
        Shed::ALL
            .into_iter()
            .filter_map(|reason| self.due_one(reason, now))
            .collect()
    }

    /// Everything not yet summarised, whatever the time: for when the listener stops.
    pub fn drain(&mut self) -> Vec<Summary> {
        Shed::ALL
            .into_iter()
            .filter_map(|reason| Self::take(&mut self.tallies[reason.index()], reason))
            .collect()
    }

    /// `reason`'s summary, if it has something to say and its interval has passed.
    fn due_one(&mut self, reason: Shed, now: Instant) -> Option<Summary> {
        let tally = &mut self.tallies[reason.index()];
        let quiet = tally
            .last_summary
            .is_none_or(|last| now.saturating_duration_since(last) >= self.interval);
        if !quiet || tally.shed == 0 {
            return None;
        }
        tally.last_summary = Some(now);
        Self::take(tally, reason)
    }

    /// Empties `tally` into a summary, if anything was shed.
    fn take(tally: &mut Tally, reason: Shed) -> Option<Summary> {
        if tally.shed == 0 {
            return None;
        }
        // Ties go to the lowest address, so the same flood reads the same every time.
        let top = tally
            .sources
            .iter()
            .max_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(a.0)))
            .map(|(ip, shed)| (*ip, *shed));
        let summary = Summary {
            reason,
            shed: tally.shed,
            addresses: tally.sources.len(),
            at_least: tally.overflowed,
            top,
        };
        tally.shed = 0;
        tally.sources.clear();
        tally.overflowed = false;
        Some(summary)
    }
}

/// The addresses the peers' endpoints resolve to, read without waiting by the accept loop.
/// Cheap to clone; clones share the set.
#[derive(Debug, Clone, Default)]
pub struct KnownAddresses(Arc<ArcSwap<HashSet<IpAddr>>>);

impl KnownAddresses {
    /// Whether `ip` is one of them.
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.0.load().contains(&source_of(ip))
    }

    /// Replaces the set.
    fn replace(&self, addresses: HashSet<IpAddr>) {
        self.0.store(Arc::new(addresses));
    }
}

/// How often the peers' host names are resolved again even if trust did not change: their
/// DNS records may.
const RESOLVE_INTERVAL: Duration = Duration::from_secs(300);

/// How long one host name may take to resolve before its previous addresses are kept.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(5);

/// How many host names are resolved at once; the system resolver runs on blocking threads.
const RESOLVE_CONCURRENCY: usize = 8;

/// Keeps `known` to the addresses of the current unblocked peers' endpoints: at once, after
/// every trust change `changes` signals, and every [`RESOLVE_INTERVAL`], until `shutdown`.
/// Runs as its own task, so a slow resolver never holds up an accept. A host name that does
/// not resolve keeps the addresses it last resolved to.
pub async fn follow_peers(
    states: Arc<ArcSwap<TrustState>>,
    mut changes: watch::Receiver<u64>,
    known: KnownAddresses,
    shutdown: CancellationToken,
) {
    let mut resolved: HashMap<(String, u16), Vec<IpAddr>> = HashMap::new();
    loop {
        changes.borrow_and_update();
        let endpoints = peer_endpoints(&states.load());
        resolved = resolve(endpoints, resolved).await;
        known.replace(resolved.values().flatten().copied().collect());
        tracing::debug!(
            hosts = resolved.len(),
            addresses = known.0.load().len(),
            "known peer addresses resolved"
        );
        tokio::select! {
            _ = shutdown.cancelled() => return,
            changed = changes.changed() => {
                // The sender lives as long as trust does; without it, only time changes DNS.
                if changed.is_err() {
                    tokio::select! {
                        _ = shutdown.cancelled() => return,
                        _ = tokio::time::sleep(RESOLVE_INTERVAL) => {}
                    }
                }
            }
            _ = tokio::time::sleep(RESOLVE_INTERVAL) => {}
        }
    }
}

/// The host and port of every unblocked peer's endpoint, brackets taken off IPv6 literals.
fn peer_endpoints(state: &TrustState) -> HashSet<(String, u16)> {
    state
        .peers()
        .into_iter()
        .filter(|entry| !entry.blocked)
        .filter_map(|entry| {
            let endpoint = &entry.peer.endpoint;
            let host = endpoint
                .host()?
                .trim_start_matches('[')
                .trim_end_matches(']');
            Some((host.to_owned(), endpoint.port_u16().unwrap_or(443)))
        })
        .collect()
}

/// Resolves `endpoints`, keeping an endpoint's `previous` addresses when it fails to resolve.
async fn resolve(
    endpoints: HashSet<(String, u16)>,
    mut previous: HashMap<(String, u16), Vec<IpAddr>>,
) -> HashMap<(String, u16), Vec<IpAddr>> {
    let lookups = futures_util::stream::iter(endpoints)
        .map(|(host, port)| async move {
            let addresses = match host.parse::<IpAddr>() {
                Ok(ip) => Some(vec![source_of(ip)]),
                Err(_) => {
                    let lookup = tokio::net::lookup_host((host.as_str(), port));
                    match tokio::time::timeout(RESOLVE_TIMEOUT, lookup).await {
                        Ok(Ok(found)) => Some(found.map(|a| source_of(a.ip())).collect()),
                        Ok(Err(e)) => {
                            tracing::debug!(%host, error = %e, "a peer's host did not resolve");
                            None
                        }
                        Err(_) => {
                            tracing::debug!(%host, "resolving a peer's host timed out");
                            None
                        }
                    }
                }
            };
            ((host, port), addresses)
        })
        .buffer_unordered(RESOLVE_CONCURRENCY)
        .collect::<Vec<_>>()
        .await;
    lookups
        .into_iter()
        .filter_map(|(endpoint, addresses)| {
            let addresses = addresses.or_else(|| previous.remove(&endpoint))?;
            Some((endpoint, addresses))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn small() -> Limits {
        Limits {
            total: 8,
            reserved: 2,
            per_address: 2,
            per_network: 3,
        }
    }

    #[test]
    fn networks_are_slash_24_and_slash_64_and_mapped_ipv4_is_ipv4() {
        assert_eq!(network_of(ip("192.0.2.77")), ip("192.0.2.0"));
        assert_eq!(network_of(ip("2001:db8:1:2:3:4:5:6")), ip("2001:db8:1:2::"));
        assert_eq!(network_of(ip("::ffff:192.0.2.77")), ip("192.0.2.0"));
        assert_eq!(source_of(ip("::ffff:127.0.0.1")), ip("127.0.0.1"));
        assert_ne!(network_of(ip("127.0.0.1")), network_of(ip("127.0.1.2")));
    }

    #[test]
    fn one_address_holds_at_most_its_share_and_gets_it_back_on_drop() {
        let admission = Admission::new(small());
        let a = ip("192.0.2.1");
        let first = admission.admit(a, false).unwrap();
        let _second = admission.admit(a, false).unwrap();
        assert_eq!(admission.admit(a, false).unwrap_err(), Shed::PerAddress);
        // A mapped form of the same address is the same address.
        assert_eq!(
            admission.admit(ip("::ffff:192.0.2.1"), false).unwrap_err(),
            Shed::PerAddress
        );
        drop(first);
        assert_eq!(admission.pending(), 1);
        let _third = admission.admit(a, false).unwrap();
    }

    #[test]
    fn one_network_holds_at_most_its_share() {
        let admission = Admission::new(small());
        let _held: Vec<Permit> = ["192.0.2.1", "192.0.2.1", "192.0.2.2"]
            .iter()
            .map(|a| admission.admit(ip(a), false).unwrap())
            .collect();
        assert_eq!(
            admission.admit(ip("192.0.2.3"), false).unwrap_err(),
            Shed::PerNetwork
        );
        // Another /24 is another network.
        admission.admit(ip("192.0.3.3"), false).unwrap();
        // IPv6 counts by /64.
        let _v6: Vec<Permit> = ["2001:db8::1", "2001:db8::2", "2001:db8::3"]
            .iter()
            .map(|a| admission.admit(ip(a), false).unwrap())
            .collect();
        assert_eq!(
            admission.admit(ip("2001:db8::ffff"), false).unwrap_err(),
            Shed::PerNetwork
        );
    }

    #[test]
    fn the_reserve_is_only_for_known_peers_addresses() {
        let admission = Admission::new(small());
        // Six unknown networks fill the general share (8 - 2).
        let _flood: Vec<Permit> = (1..=6)
            .map(|n| {
                admission
                    .admit(ip(&format!("198.51.{n}.1")), false)
                    .unwrap()
            })
            .collect();
        assert_eq!(
            admission.admit(ip("203.0.113.9"), false).unwrap_err(),
            Shed::Full
        );
        let known = ip("192.0.2.10");
        let _a = admission.admit(known, true).unwrap();
        let _b = admission.admit(known, true).unwrap();
        // Known addresses keep the per-address cap, and the pool still ends.
        assert_eq!(admission.admit(known, true).unwrap_err(), Shed::PerAddress);
        assert_eq!(
            admission.admit(ip("192.0.2.11"), true).unwrap_err(),
            Shed::Full
        );
        assert_eq!(admission.pending(), 8);
    }

    #[test]
    fn known_addresses_are_not_held_to_their_networks_cap() {
        let admission = Admission::new(small());
        let _flood: Vec<Permit> = ["192.0.2.1", "192.0.2.1", "192.0.2.2"]
            .iter()
            .map(|a| admission.admit(ip(a), false).unwrap())
            .collect();
        let known = admission.admit(ip("192.0.2.50"), true).unwrap();
        // Nor counted towards it: the network's unknown share is unchanged once it leaves.
        drop(known);
        assert_eq!(
            admission.admit(ip("192.0.2.3"), false).unwrap_err(),
            Shed::PerNetwork
        );
    }

    #[test]
    fn every_permit_dropped_leaves_the_ledger_empty() {
        let admission = Admission::new(Limits::default());
        let permits: Vec<Permit> = (0..200u32)
            .filter_map(|n| {
                let address = IpAddr::V4((0x0a00_0000 + n * 37).into());
                admission.admit(address, n % 7 == 0).ok()
            })
            .collect();
        assert!(!permits.is_empty());
        drop(permits);
        let counts = lock(&admission.counts);
        assert_eq!(counts.pending, 0);
        assert!(counts.by_address.is_empty() && counts.by_network.is_empty());
    }

    #[test]
    fn sheds_are_summarised_once_per_interval_per_reason() {
        let mut log = ShedLog::new(Duration::from_secs(10));
        let start = Instant::now();
        let flood = ip("192.0.2.1");
        // The first is reported at once.
        let first = log.record(Shed::PerAddress, flood, start).unwrap();
        assert_eq!((first.shed, first.addresses), (1, 1));
        // The rest wait for the interval.
        for n in 0..500 {
            let at = start + Duration::from_millis(n * 10);
            assert!(log.record(Shed::PerAddress, flood, at).is_none());
        }
        log.record(
            Shed::PerAddress,
            ip("192.0.2.2"),
            start + Duration::from_secs(6),
        );
        // Another reason has its own interval.
        assert!(log.record(Shed::Full, flood, start).is_some());
        assert!(log.due(start + Duration::from_secs(9)).is_empty());
        let due = log.due(start + Duration::from_secs(10));
        assert_eq!(
            due,
            vec![Summary {
                reason: Shed::PerAddress,
                shed: 501,
                addresses: 2,
                at_least: false,
                top: Some((flood, 500)),
            }]
        );
        // Nothing more to say.
        assert!(log.due(start + Duration::from_secs(60)).is_empty());
        assert!(log.drain().is_empty());
    }

    #[test]
    fn a_summary_counts_at_most_so_many_addresses() {
        let mut log = ShedLog::new(Duration::from_secs(10));
        let start = Instant::now();
        log.record(Shed::PerNetwork, ip("10.0.0.1"), start);
        for n in 0..(MAX_TALLIED_SOURCES as u32 + 10) {
            log.record(
                Shed::PerNetwork,
                IpAddr::V4((0x0a01_0000 + n).into()),
                start,
            );
        }
        let drained = log.drain();
        assert_eq!(drained.len(), 1);
        assert_eq!(drained[0].shed, MAX_TALLIED_SOURCES as u64 + 10);
        assert_eq!(drained[0].addresses, MAX_TALLIED_SOURCES);
        assert!(drained[0].at_least);
    }

    #[tokio::test]
    async fn literal_endpoints_resolve_to_themselves_and_failures_keep_the_old_addresses() {
        let endpoints: HashSet<(String, u16)> = [
            ("127.0.0.1".to_owned(), 7443),
            ("::1".to_owned(), 7443),
            ("no-such-host.invalid".to_owned(), 7443),
        ]
        .into_iter()
        .collect();
        let previous: HashMap<(String, u16), Vec<IpAddr>> = [(
            ("no-such-host.invalid".to_owned(), 7443),
            vec![ip("192.0.2.5")],
        )]
        .into_iter()
        .collect();
        let resolved = resolve(endpoints, previous).await;
        let all: HashSet<IpAddr> = resolved.values().flatten().copied().collect();
        assert_eq!(
            all,
            [ip("127.0.0.1"), ip("::1"), ip("192.0.2.5")]
                .into_iter()
                .collect()
        );
    }
}
