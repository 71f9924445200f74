//! The Agency API: staff input is validated before anything is stored, and the socket is
//! private to the node's user.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns; a panic is the failure report

use std::os::unix::fs::PermissionsExt;

use tatmx_node::refusal::Reason;
use tatmx_proto::v1 as pb;
use tatmx_tests::*;

fn single() -> (TestFederation, TeamSpec, TeamSpec) {
    let mut fed = TestFederation::new("county-mdt.example");
    let core = fed.team("county-core", "core", "law-enforcement");
    let school = fed.team("lincoln-high", "affiliate", "education");
    fed.write_config(&school, &[&core], "");
    (fed, core, school)
}

async fn outbox_len(team: &TeamSpec) -> usize {
    agency(team)
        .await
        .list_outbox(pb::ListOutboxRequest {
            limit: 0,
            dead_only: false,
        })
        .await
        .unwrap()
        .into_inner()
        .entries
        .len()
}

#[tokio::test]
async fn the_agency_socket_is_owner_only_and_serves_health() {
    let (_fed, _core, school) = single();
    let node = start(&school).await;
    let mode = std::fs::metadata(school.socket())
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "socket mode {mode:o}");
    let data_mode = std::fs::metadata(school.dir.join("data"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(data_mode & 0o777, 0o700, "data dir mode {data_mode:o}");

    let channel = tonic::transport::Endpoint::from_static("http://agency.local")
        .connect_with_connector(tower::service_fn({
            let path = school.socket();
            move |_| {
                let path = path.clone();
                async move {
                    Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(
                        tokio::net::UnixStream::connect(path).await?,
                    ))
                }
            }
        }))
        .await
        .unwrap();
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel);
    let reply = health
        .check(tonic_health::pb::HealthCheckRequest {
            service: "tatmx.v1.Agency".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        reply.status,
        tonic_health::pb::health_check_response::ServingStatus::Serving as i32
    );
    node.shutdown().await;
}

#[tokio::test]
async fn a_dry_run_shows_what_would_go_and_stores_nothing() {
    let (_fed, core, school) = single();
    let node = start(&school).await;
    let preview = agency(&school)
        .await
        .submit_referral(pb::SubmitReferralRequest {
            referral: Some(draft("county-core")),
            dry_run: true,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(preview.dry_run);
    let outgoing = preview.outgoing.unwrap();
    assert_eq!(outgoing.recipient, core.identity.uri());
    assert_eq!(outgoing.sender, school.identity.uri());
    let categories: Vec<i32> = [
        pb::DataCategory::Identity,
        pb::DataCategory::Threat,
        pb::DataCategory::Narrative,
        pb::DataCategory::Assessment,
    ]
    .into_iter()
    .map(Into::into)
    .collect();
    assert_eq!(preview.categories_disclosed, categories);
    assert_eq!(outbox_len(&school).await, 0);
    node.shutdown().await;
}

#[tokio::test]
async fn a_consent_is_a_basis_only_for_a_referral_about_its_own_subject() {
    let (_fed, core, school) = core_and_school();
    let node = start(&school).await;
    let mut client = agency(&school).await;
    let consent = consent_for(&school, "LHS-2026-0117", &[&core]).await;
    let on_consent = |subject_ref: &str| {
        let mut d = draft("county-core");
        d.legal_basis = pb::LegalBasis::Consent.into();
        d.justification.clear();
        d.consent_ref = consent.clone();
        d.subject_ref = subject_ref.into();
        d
    };

    // Another student's reference: refused, naming the consent and neither subject.
    for dry_run in [true, false] {
        let status = client
            .submit_referral(pb::SubmitReferralRequest {
                referral: Some(on_consent("LHS-2026-0999")),
                dry_run,
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_refused(&status, Reason::NotAllowedNow);
        assert!(status.message().contains(&consent), "{status:?}");
        assert!(!status.message().contains("LHS-2026"), "{status:?}");
        assert!(!status.message().contains("CANARY"), "{status:?}");
    }
    // No reference at all: the node cannot tell whose referral it is.
    let status = client
        .submit_referral(pb::SubmitReferralRequest {
            referral: Some(on_consent("")),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_refused_at(&status, Reason::InvalidMessage, "referral.subject_ref", "");
    assert!(status.message().contains("subject_ref"), "{status:?}");
    assert_eq!(outbox_len(&school).await, 0);

    // The consent's own subject: sent.
    submit(&mut client, on_consent("LHS-2026-0117")).await;
    assert_eq!(outbox_len(&school).await, 1);
    node.shutdown().await;
}

#[tokio::test]
async fn a_consent_may_be_given_with_only_an_end_date() {
    let (_fed, core, school) = core_and_school();
    let node = start(&school).await;
    let mut client = agency(&school).await;
    // Until the end of a day a year ahead, as a form with only "valid until" gives it.
    let until = time::OffsetDateTime::now_utc()
        .date()
        .saturating_add(time::Duration::days(365));
    let recorded = client
        .record_consent(pb::RecordConsentRequest {
            consent: Some(pb::Consent {
                subject: "LHS-2026-0117".into(),
                grantor: pb::Grantor::Self_.into(),
                provision: Some(pb::Provision {
                    r#type: pb::ProvisionType::Permit.into(),
                    recipient_teams: vec![core.identity.uri()],
                    ..Default::default()
                }),
                valid_until: Some(prost_types::Timestamp {
                    seconds: until.midnight().assume_utc().unix_timestamp(),
                    nanos: 0,
                }),
                ..Default::default()
            }),
        })
        .await
        .expect("a consent with only an end date is recorded")
        .into_inner();
    assert!(recorded.valid_until.is_some());
    let mut d = draft("county-core");
    d.legal_basis = pb::LegalBasis::Consent.into();
    d.justification.clear();
    d.consent_ref = recorded.id;
    d.subject_ref = "LHS-2026-0117".into();
    submit(&mut client, d).await;
    node.shutdown().await;
}

#[tokio::test]
async fn invalid_submissions_are_refused_precisely_and_leave_no_rows() {
    let (_fed, _core, school) = single();
    let node = start(&school).await;
    let mut client = agency(&school).await;

    let mut no_justification = draft("county-core");
    no_justification.justification.clear();
    let mut no_consent = draft("county-core");
    no_consent.legal_basis = pb::LegalBasis::Consent.into();
    no_consent.consent_ref.clear();
    let mut unknown_consent = draft("county-core");
    unknown_consent.legal_basis = pb::LegalBasis::Consent.into();
    unknown_consent.consent_ref = uuid::Uuid::now_v7().to_string();
    let mut empty = draft("county-core");
    empty.content = None;
    empty.level_of_concern = None;
    let mut bad_date = draft("county-core");
    if let Some(identity) = bad_date.content.as_mut().and_then(|c| c.identity.as_mut()) {
        identity.date_of_birth = "CANARY-14/03/2010".into();
    }

    use Reason as R;
    let cases = [
        (
            no_justification,
            R::InvalidMessage,
            "justification",
            Some("referral.justification"),
        ),
        (
            no_consent,
            R::InvalidMessage,
            "consent_ref",
            Some("referral.consent_ref"),
        ),
        (
            unknown_consent,
            R::InvalidMessage,
            "no consent",
            Some("referral.consent_ref"),
        ),
        (empty, R::InvalidMessage, "at least one section", None),
        (bad_date, R::InvalidMessage, "date_of_birth", None),
        (
            draft("nobody-we-know"),
            R::UnknownRecipient,
            "not a known peer",
            Some("referral.recipient"),
        ),
        (draft("Not A Team"), R::InvalidMessage, "recipient", None),
    ];
    for (draft, reason, needle, field) in cases {
        let status = client
            .submit_referral(pb::SubmitReferralRequest {
                referral: Some(draft),
                dry_run: false,
                ..Default::default()
            })
            .await
            .unwrap_err();
        match field {
            Some(field) => assert_refused_at(&status, reason, field, "CANARY"),
            None => assert_refused(&status, reason),
        }
        assert!(status.message().contains(needle), "{needle}: {status:?}");
        assert!(!status.message().contains("CANARY"), "{status:?}");
    }
    assert_eq!(outbox_len(&school).await, 0);

    let status = client
        .get_referral(pb::GetReferralRequest {
            referral_id: uuid::Uuid::now_v7().to_string(),
        })
        .await
        .unwrap_err();
    assert_refused(&status, Reason::UnknownReferral);
    node.shutdown().await;
}

/// Bytes as a stock client might send them, not a message of the Agency API.
#[derive(Clone, PartialEq, prost::Message)]
struct RawBytes {
    #[prost(bytes = "vec", tag = "1")]
    first: Vec<u8>,
}

#[tokio::test]
async fn refusals_of_the_agency_api_carry_a_reason_code_and_the_field_at_fault() {
    let (_fed, _core, school) = single();
    let node = start(&school).await;
    let mut client = agency(&school).await;

    // A referral id that is no UUID: the field, and not the value, in the description.
    let status = client
        .get_referral(pb::GetReferralRequest {
            referral_id: "CANARY-not-a-uuid".into(),
        })
        .await
        .unwrap_err();
    assert_refused_at(&status, Reason::InvalidMessage, "referral_id", "CANARY");

    // A consent left out of its request.
    let status = client
        .record_consent(pb::RecordConsentRequest { consent: None })
        .await
        .unwrap_err();
    assert_refused_at(&status, Reason::InvalidMessage, "consent", "");

    // A referral left out of its request.
    let status = client
        .submit_referral(pb::SubmitReferralRequest::default())
        .await
        .unwrap_err();
    assert_refused_at(&status, Reason::InvalidMessage, "referral", "");

    // Bytes that do not decode as the request (field 1 of GetReferralRequest is a string;
    // these are not UTF-8): the caller's fault, not the node's.
    let channel = tonic::transport::Endpoint::from_static("http://agency.local")
        .connect_with_connector(tower::service_fn({
            let path = school.socket();
            move |_| {
                let path = path.clone();
                async move {
                    Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(
                        tokio::net::UnixStream::connect(path).await?,
                    ))
                }
            }
        }))
        .await
        .unwrap();
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.unwrap();
    let status = grpc
        .unary::<_, pb::ReferralRecord, _>(
            tonic::Request::new(RawBytes {
                first: vec![0xff, 0xfe, 0xfd],
            }),
            http::uri::PathAndQuery::from_static("/tatmx.v1.Agency/GetReferral"),
            tonic_prost::ProstCodec::default(),
        )
        .await
        .unwrap_err();
    assert_refused(&status, Reason::InvalidMessage);

    // The node still serves, and stored nothing.
    assert_eq!(outbox_len(&school).await, 0);
    node.shutdown().await;
}

#[tokio::test]
async fn a_submission_retried_with_its_idempotency_key_is_sent_once() {
    let (_fed, core, school) = core_and_school();
    let node = start(&school).await;
    let submit_with = |key: &str, draft: pb::NewReferral| {
        let school = school.clone();
        let key = key.to_owned();
        async move {
            agency(&school)
                .await
                .submit_referral(pb::SubmitReferralRequest {
                    referral: Some(draft),
                    dry_run: false,
                    idempotency_key: key,
                })
                .await
        }
    };
    let first = submit_with("case-system-42", draft("county-core"))
        .await
        .unwrap()
        .into_inner();
    let again = submit_with("case-system-42", draft("county-core"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(again.referral_id, first.referral_id);
    assert_eq!(again.decisions, first.decisions);
    let mut other = draft("county-core");
    other.purpose = pb::Purpose::ThreatManagement.into();
    let status = submit_with("case-system-42", other).await.unwrap_err();
    assert_refused_at(
        &status,
        Reason::IdempotencyKeyReused,
        "idempotency_key",
        "case-system-42",
    );
    assert!(status.message().contains("idempotency_key"), "{status:?}");
    let outbox = agency(&school)
        .await
        .list_outbox(pb::ListOutboxRequest {
            limit: 0,
            dead_only: false,
        })
        .await
        .unwrap()
        .into_inner()
        .entries;
    assert_eq!(outbox.len(), 1, "sent once: {outbox:?}");
    let _ = core;
    node.shutdown().await;
}
