//! The disclosure filter on a referral of about twenty fields, against a baseline measured in
//! the same run: encoding the same referral to protobuf, the least any send must do.
//!
//! Run: cargo bench -p tatmx-node --bench filter

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use tatmx_node::consent::{Consent, Grantor, Provision, ProvisionKind, Recipient};
use tatmx_node::filter::{CaseKey, filter_outbound};
use tatmx_node::policy::{Exchange, Party, Policy};
use tatmx_node::referral::*;
use tatmx_node::trust::{Discipline, Peer, Role};
use time::OffsetDateTime;
use uuid::Uuid;

mod common;
use common::{identity, referral};

fn bench(c: &mut Criterion) {
    let policy = Policy::default_pack().expect("default pack");
    let recipient = Peer {
        identity: identity("county-core"),
        endpoint: "https://127.0.0.1:7443".parse().expect("uri"),
        role: Role::Core,
        discipline: Discipline::LawEnforcement,
        jurisdiction: String::new(),
        cjis_authorized: true,
    };
    let exchange = Exchange {
        sender: Party {
            team: identity("riverside-mh").uri(),
            federation: "county-mdt.example".into(),
            role: Role::Affiliate,
            discipline: Discipline::MentalHealth,
            cjis_authorized: false,
        },
        recipient: Party {
            team: recipient.identity.uri(),
            federation: "county-mdt.example".into(),
            role: Role::Core,
            discipline: Discipline::LawEnforcement,
            cjis_authorized: true,
        },
        purpose: Purpose::ThreatAssessment,
        basis: LegalBasis::Consent,
        justified: false,
        reidentify: false,
    };
    let now = OffsetDateTime::now_utc();
    let consent = Consent {
        id: Uuid::now_v7(),
        subject: "CASE-1".into(),
        grantor: Grantor::Subject,
        provision: Provision {
            kind: ProvisionKind::Permit,
            categories: vec![],
            recipients: vec![Recipient::Team(recipient.identity.clone())],
            purposes: vec![],
            provisions: vec![],
        },
        valid_from: now - time::Duration::days(1),
        valid_until: None,
        revoked_at: None,
        recorded_at: now,
    };
    let key = CaseKey::from_bytes([9; 32]);
    let draft = referral();

    c.bench_function("baseline: encode the referral to protobuf", |b| {
        b.iter(|| black_box(tatmx_node::store::encode_referral(black_box(&draft))))
    });
    c.bench_function("filter, cold: every decision evaluated by Cedar", |b| {
        b.iter(|| {
            policy.forget();
            black_box(filter_outbound(
                &policy,
                &exchange,
                &recipient,
                Some(&consent),
                &key,
                Some("CASE-1"),
                draft.clone(),
            ))
        })
    });
    c.bench_function(
        "filter, warm: decisions remembered from earlier referrals",
        |b| {
            b.iter(|| {
                black_box(filter_outbound(
                    &policy,
                    &exchange,
                    &recipient,
                    Some(&consent),
                    &key,
                    Some("CASE-1"),
                    draft.clone(),
                ))
            })
        },
    );
}

fn bench_decide(c: &mut Criterion) {
    let policy = Policy::default_pack().expect("default pack");
    let party = |role, discipline, cjis| Party {
        team: identity("x").uri(),
        federation: "county-mdt.example".into(),
        role,
        discipline,
        cjis_authorized: cjis,
    };
    let exchange = Exchange {
        sender: party(Role::Affiliate, Discipline::MentalHealth, false),
        recipient: party(Role::Core, Discipline::LawEnforcement, true),
        purpose: Purpose::ThreatAssessment,
        basis: LegalBasis::Consent,
        justified: false,
        reidentify: false,
    };
    c.bench_function("one Cedar decision, uncached", |b| {
        b.iter(|| {
            black_box(policy.evaluate(
                tatmx_node::policy::Action::Disclose,
                tatmx_node::DataCategory::MentalHealth,
                &exchange,
                tatmx_node::policy::ConsentVerdict::default(),
                &[],
            ))
        })
    });
}

criterion_group!(benches, bench, bench_decide);
criterion_main!(benches);
