//! Prometheus metrics: counters the node's parts increment, and gauges read from the store and
//! the trust state at each scrape, served as OpenMetrics text on a local HTTP endpoint that is
//! off unless `[metrics] listen` is set.
//!
//! The counters and the delivery-latency histogram live in one process-wide set, so any layer
//! can count without carrying a handle; a process runs one node (tests that run several share
//! the counts, and only ever check that a count moved). The gauges are read afresh for every
//! scrape from the node that serves the endpoint, so they are always that node's own and never
//! stale. Labels carry peer teams, federations, methods, codes, reasons, categories and causes:
//! never ids, and never anything about a person.

use std::sync::atomic::AtomicU64;
use std::sync::{Arc, OnceLock};

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};
use time::OffsetDateTime;

use crate::category::DataCategory;

/// Label pairs, such as `[("method", "Retract")]`.
type Labels = Vec<(&'static str, String)>;

/// A gauge with a fractional value (ages, days).
type FloatGauge = Gauge<f64, AtomicU64>;

/// Delivery-latency buckets, in seconds: from a fast loopback round trip, through retries with
/// backoff, to a peer that was down for hours or days (a message waits up to the seven-day
/// maximum age before it becomes a dead letter).
const LATENCY_BUCKETS: [f64; 18] = [
    0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0,
    14400.0, 86400.0, 604800.0,
];

fn latency_histogram() -> Histogram {
    Histogram::new(LATENCY_BUCKETS)
}

/// Every counter and histogram the node keeps.
#[derive(Debug)]
pub struct Metrics {
    /// Peers whose audit history contradicted a checkpoint this node witnessed.
    pub witness_conflicts: Counter,
    /// Inbound calls refused, by method, status code and [`Refusal`] reason.
    pub inbound_rejected: Family<Labels, Counter>,
    /// Connections refused in the TLS handshake, before any call, by [`Refusal`] reason:
    /// certificates that do not chain, are revoked, or belong to no peer.
    pub handshakes_refused: Family<Labels, Counter>,
    /// Connections closed at accept, before any handshake, because too many handshakes were
    /// pending from their address or network, or in all: by reason (`per_address`,
    /// `per_network`, `full`).
    pub handshakes_shed: Family<Labels, Counter>,
    /// Referrals purged, by cause.
    pub purged: Family<Labels, Counter>,
    /// Messages acknowledged by their peer.
    pub delivered: Counter,
    /// Messages that became dead letters.
    pub dead_letters: Counter,
    /// Seconds from a message's queueing to its peer's acknowledgement, by peer and kind: what
    /// staff wait for, retries and outages included.
    delivery_latency: Family<Labels, Histogram, fn() -> Histogram>,
    /// Categories the disclosure filter took out of outgoing messages, by category and
    /// outcome: a sudden rise usually means a changed policy or an expired consent.
    withheld: Family<Labels, Counter>,
}

impl Metrics {
    fn new() -> Self {
        Self {
            witness_conflicts: Counter::default(),
            inbound_rejected: Family::default(),
            handshakes_refused: Family::default(),
            handshakes_shed: Family::default(),
            purged: Family::default(),
            delivered: Counter::default(),
            dead_letters: Counter::default(),
            delivery_latency: Family::new_with_constructor(latency_histogram),
            withheld: Family::default(),
        }
    }

    /// Records the acknowledgement, at `delivered_at`, of a message to `peer` (an identity URI)
    /// that was queued at `queued_at`.
    pub fn observe_delivery(
        &self,
        peer: &str,
        kind: &'static str,
        queued_at: OffsetDateTime,
        delivered_at: OffsetDateTime,
    ) {
        let seconds = (delivered_at - queued_at).as_seconds_f64();
        self.delivery_latency
            .get_or_create(&vec![("peer", peer.to_owned()), ("kind", kind.to_owned())])
            // A clock stepped back can make the wait negative; it was not.
            .observe(seconds.max(0.0));
    }

    /// Counts one category the filter took out of an outgoing message.
    pub fn count_withheld(&self, category: DataCategory, outcome: &str) {
        self.withheld
            .get_or_create(&vec![
                ("category", category.as_str().to_owned()),
                ("outcome", outcome.to_owned()),
            ])
            .inc();
    }

    /// Adds the process-wide metrics to `registry`. The handles are shared, so what is
    /// registered is the live count.
    fn register(&self, registry: &mut Registry) {
        registry.register(
            "witness_conflicts",
            "Peers whose audit history contradicted a checkpoint this node held",
            self.witness_conflicts.clone(),
        );
        registry.register(
            "inbound_rejected",
            "Calls from other nodes that were refused, by method, status code and reason",
            self.inbound_rejected.clone(),
        );
        registry.register(
            "handshakes_refused",
            "Connections from other nodes refused in the TLS handshake, by reason",
            self.handshakes_refused.clone(),
        );
        registry.register(
            "handshakes_shed",
            "Connections from other nodes closed at accept, before any handshake, because too \
             many handshakes were pending from their address or network or in all, by reason",
            self.handshakes_shed.clone(),
        );
        registry.register(
            "purged",
            "Received referrals purged by crypto-shredding, by cause",
            self.purged.clone(),
        );
        registry.register(
            "delivered",
            "Messages acknowledged by their peer with a verified receipt",
            self.delivered.clone(),
        );
        registry.register(
            "dead_letters",
            "Messages that became dead letters",
            self.dead_letters.clone(),
        );
        registry.register_with_unit(
            "delivery_latency",
            "Time from queueing a message to its peer's verified acknowledgement, by peer and kind",
            Unit::Seconds,
            self.delivery_latency.clone(),
        );
        registry.register(
            "withheld",
            "Categories the disclosure filter took out of outgoing messages (previews included), \
             by category and outcome",
            self.withheld.clone(),
        );
    }

    /// The process-wide metrics, with `node`'s gauges when given, as OpenMetrics text.
    pub fn render(&self, node: Option<&Snapshot>) -> String {
        let mut registry = Registry::with_prefix("tatmx");
        self.register(&mut registry);
        if let Some(node) = node {
            node.register(&mut registry);
        }
        let mut text = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut text, &registry);
        text
    }
}

/// The process's metrics.
pub fn get() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(Metrics::new)
}

/// Why another node's call was refused: a closed set, so the label says what kind of refusal
/// it was and never carries ids, serials or message text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("refused: {}", self.as_str())]
pub enum Refusal {
    /// No client certificate, or one that names no team.
    NotAuthenticated,
    /// The certificate does not chain to the anchors of its federation, or is expired.
    UntrustedCertificate,
    /// The certificate is on its federation's CRL.
    Revoked,
    /// The team is not one of this node's peers.
    UnknownPeer,
    /// An admin blocked the team.
    Blocked,
    /// The certificate is not the one the federation directory pins for the team.
    NotPinned,
    /// A known peer asked for something it may not (a body naming another sender, say).
    NotAuthorized,
    /// The caller's clock is too far from this node's.
    ClockSkew,
    /// The message was malformed, unsigned, or addressed elsewhere.
    InvalidArgument,
    /// This node's policy may not hold what the message carries.
    PolicyDenied,
    /// The message does not fit the current state (a status change the lifecycle forbids).
    Precondition,
    /// A message id was reused for different content.
    Replayed,
    /// The message is about something this node does not share with the caller.
    NotFound,
    /// The store was busy or locked; the caller retries.
    StoreBusy,
    /// The store's disk is full.
    StoreFull,
    /// Anything else, such as a failure inside this node.
    Internal,
}

impl Refusal {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NotAuthenticated => "not_authenticated",
            Self::UntrustedCertificate => "untrusted_certificate",
            Self::Revoked => "revoked",
            Self::UnknownPeer => "unknown_peer",
            Self::Blocked => "blocked",
            Self::NotPinned => "not_pinned",
            Self::NotAuthorized => "not_authorized",
            Self::ClockSkew => "clock_skew",
            Self::InvalidArgument => "invalid_argument",
            Self::PolicyDenied => "policy_denied",
            Self::Precondition => "precondition",
            Self::Replayed => "replayed",
            Self::NotFound => "not_found",
            Self::StoreBusy => "store_busy",
            Self::StoreFull => "store_full",
            Self::Internal => "internal",
        }
    }

    /// Marks `status` with this reason, for [`Refusal::of`] to find. The mark stays inside the
    /// node: a status's source is not sent to the caller.
    pub fn attach(self, mut status: tonic::Status) -> tonic::Status {
        status.set_source(Arc::new(self));
        status
    }

    /// The reason a refusal was marked with, or else the one its status code implies.
    pub fn of(status: &tonic::Status) -> Self {
        use tonic::Code;
        if let Some(marked) =
            std::error::Error::source(status).and_then(|s| s.downcast_ref::<Self>())
        {
            return *marked;
        }
        match status.code() {
            Code::Unauthenticated => Self::NotAuthenticated,
            Code::PermissionDenied => Self::NotAuthorized,
            Code::InvalidArgument | Code::OutOfRange => Self::InvalidArgument,
            Code::FailedPrecondition => Self::Precondition,
            Code::AlreadyExists => Self::Replayed,
            Code::NotFound => Self::NotFound,
            Code::Unavailable => Self::StoreBusy,
            Code::ResourceExhausted => Self::StoreFull,
            _ => Self::Internal,
        }
    }
}

/// One peer's part of the outbox that is not settled: what waits, and what gave up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerDepth {
    /// The peer, as an identity URI: a team, never a person.
    pub peer: String,
    /// Messages still to be delivered (pending; neither delivered, dead nor cancelled).
    pub pending: u64,
    /// When the oldest of them was queued; `None` when nothing is pending.
    pub oldest: Option<OffsetDateTime>,
    /// Dead letters waiting for an admin's retry.
    pub dead: u64,
}

/// How much of the audit log no signed checkpoint covers yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuditLag {
    /// Entries appended since the newest checkpoint.
    pub entries: u64,
    /// When the oldest of those entries was written; `None` when every entry is covered.
    pub oldest: Option<OffsetDateTime>,
    /// When the newest checkpoint was signed; `None` before the first.
    pub checkpoint_at: Option<OffsetDateTime>,
}

/// One node's gauges, read at one scrape.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// Whether the last store check succeeded.
    pub store_up: bool,
    /// Every peer's unsettled messages; peers with none are listed with zeros. `None` when
    /// the store did not answer.
    pub outbox: Option<Vec<PeerDepth>>,
    /// How far the audit log is past its last checkpoint; `None` when the store did not
    /// answer.
    pub audit: Option<AuditLag>,
    /// Days until this node's certificate in each federation expires.
    pub certificates: Vec<(String, f64)>,
    /// For each federation this node belongs to, the age in seconds of its imported
    /// directory, or `None` when none was imported.
    pub directories: Vec<(String, Option<f64>)>,
    /// When it was read.
    pub at: Option<OffsetDateTime>,
}

impl Snapshot {
    /// Adds these gauges to `registry`. They are made afresh for each scrape, so a peer that
    /// is gone leaves no stale series behind.
    fn register(&self, registry: &mut Registry) {
        let now = self.at.unwrap_or_else(OffsetDateTime::now_utc);
        let age = |since: OffsetDateTime| (now - since).as_seconds_f64().max(0.0);

        let store_up = Gauge::<i64>::default();
        store_up.set(i64::from(self.store_up));
        registry.register(
            "store_up",
            "Whether the last store check could begin a write (1) or not (0); readiness follows it",
            store_up,
        );

        if let Some(outbox) = &self.outbox {
            let depth = Family::<Labels, Gauge>::default();
            let oldest = Family::<Labels, FloatGauge>::default();
            let dead = Family::<Labels, Gauge>::default();
            for peer in outbox {
                let labels = vec![("peer", peer.peer.clone())];
                depth
                    .get_or_create(&labels)
                    .set(i64::try_from(peer.pending).unwrap_or(i64::MAX));
                oldest
                    .get_or_create(&labels)
                    .set(peer.oldest.map_or(0.0, age));
                dead.get_or_create(&labels)
                    .set(i64::try_from(peer.dead).unwrap_or(i64::MAX));
            }
            registry.register(
                "outbox_depth",
                "Messages queued for a peer and not yet acknowledged, by peer",
                depth,
            );
            registry.register_with_unit(
                "outbox_oldest_age",
                "How long the oldest message queued for a peer has waited (0 when none waits), \
                 by peer",
                Unit::Seconds,
                oldest,
            );
            registry.register(
                "outbox_dead_letters",
                "Dead letters waiting for an admin's retry, by peer",
                dead,
            );
        }

        if let Some(audit) = &self.audit {
            let entries = Gauge::<i64>::default();
            entries.set(i64::try_from(audit.entries).unwrap_or(i64::MAX));
            registry.register(
                "audit_checkpoint_lag_entries",
                "Audit entries appended since the newest signed checkpoint",
                entries,
            );
            let waited = FloatGauge::default();
            waited.set(audit.oldest.map_or(0.0, age));
            registry.register_with_unit(
                "audit_checkpoint_lag",
                "How long the oldest audit entry no checkpoint covers has waited (0 when all are \
                 covered)",
                Unit::Seconds,
                waited,
            );
            if let Some(at) = audit.checkpoint_at {
                let since = FloatGauge::default();
                since.set(age(at));
                registry.register_with_unit(
                    "audit_checkpoint_age",
                    "Time since the newest signed audit checkpoint",
                    Unit::Seconds,
                    since,
                );
            }
        }

        let expiry = Family::<Labels, FloatGauge>::default();
        for (federation, days) in &self.certificates {
            expiry
                .get_or_create(&vec![("federation", federation.clone())])
                .set(*days);
        }
        registry.register_with_unit(
            "certificate_expiry",
            "Days until this node's own certificate expires, by federation",
            Unit::Other("days".into()),
            expiry,
        );

        let present = Family::<Labels, Gauge>::default();
        let directory_age = Family::<Labels, FloatGauge>::default();
        for (federation, age) in &self.directories {
            let labels = vec![("federation", federation.clone())];
            present.get_or_create(&labels).set(i64::from(age.is_some()));
            if let Some(age) = age {
                directory_age.get_or_create(&labels).set(*age);
            }
        }
        registry.register(
            "directory_present",
            "Whether a signed federation directory was imported (1) or not (0), by federation",
            present,
        );
        registry.register_with_unit(
            "directory_age",
            "Time since the imported federation directory was issued, by federation; absent \
             when none was imported",
            Unit::Seconds,
            directory_age,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_marked_refusal_keeps_its_reason_and_an_unmarked_one_gets_its_codes() {
        let marked = Refusal::PolicyDenied.attach(tonic::Status::failed_precondition("no"));
        assert_eq!(Refusal::of(&marked), Refusal::PolicyDenied);
        let unmarked = tonic::Status::failed_precondition("no");
        assert_eq!(Refusal::of(&unmarked), Refusal::Precondition);
        assert_eq!(
            Refusal::of(&tonic::Status::unavailable("busy")),
            Refusal::StoreBusy
        );
    }

    #[test]
    fn metric_names_carry_their_units() {
        get().observe_delivery(
            "spiffe://f.example/team/t",
            "referral",
            OffsetDateTime::now_utc() - time::Duration::seconds(2),
            OffsetDateTime::now_utc(),
        );
        get().count_withheld(DataCategory::ReporterIdentity, "withhold");
        let text = get().render(Some(&Snapshot {
            store_up: true,
            outbox: Some(vec![PeerDepth {
                peer: "spiffe://f.example/team/t".into(),
                pending: 2,
                oldest: Some(OffsetDateTime::now_utc() - time::Duration::seconds(30)),
                dead: 1,
            }]),
            certificates: vec![("f.example".into(), 10.5)],
            directories: vec![("f.example".into(), None)],
            ..Snapshot::default()
        }));
        for expected in [
            "tatmx_delivery_latency_seconds_count{peer=\"spiffe://f.example/team/t\",kind=\"referral\"} 1",
            "tatmx_withheld_total{category=\"REPORTER_IDENTITY\",outcome=\"withhold\"}",
            "tatmx_outbox_depth{peer=\"spiffe://f.example/team/t\"} 2",
            "tatmx_outbox_dead_letters{peer=\"spiffe://f.example/team/t\"} 1",
            "tatmx_outbox_oldest_age_seconds{peer=\"spiffe://f.example/team/t\"} 30",
            "tatmx_certificate_expiry_days{federation=\"f.example\"} 10.5",
            "tatmx_directory_present{federation=\"f.example\"} 0",
            "tatmx_store_up 1",
        ] {
            assert!(text.contains(expected), "{expected} missing from:\n{text}");
        }
        assert!(
            !text.contains("tatmx_directory_age_seconds{"),
            "no directory, no age:\n{text}"
        );
        assert!(text.ends_with("# EOF\n"), "{text}");
    }
}
