//! Consents, retractions and their acknowledgements, and tombstones on the wire.

use super::*;

// ---- consent ----

/// Domain consent to wire.
pub fn consent_to_proto(c: &Consent) -> pb::Consent {
    let (grantor, grantor_name) = match &c.grantor {
        Grantor::Subject => (pb::Grantor::Self_, String::new()),
        Grantor::Guardian { name } => (pb::Grantor::Guardian, name.clone()),
    };
    pb::Consent {
        id: c.id.to_string(),
        subject: c.subject.clone(),
        grantor: grantor.into(),
        grantor_name,
        provision: Some(provision_to_proto(&c.provision)),
        valid_from: Some(timestamp_to_proto(c.valid_from)),
        valid_until: c.valid_until.map(timestamp_to_proto),
        revoked_at: c.revoked_at.map(timestamp_to_proto),
        recorded_at: Some(timestamp_to_proto(c.recorded_at)),
    }
}

pub(super) fn provision_to_proto(p: &Provision) -> pb::Provision {
    pb::Provision {
        r#type: match p.kind {
            ProvisionKind::Permit => pb::ProvisionType::Permit,
            ProvisionKind::Deny => pb::ProvisionType::Deny,
        }
        .into(),
        categories: p
            .categories
            .iter()
            .map(|c| category_to_proto(*c).into())
            .collect(),
        recipient_teams: p
            .recipients
            .iter()
            .filter_map(|r| match r {
                Recipient::Team(team) => Some(team.uri()),
                Recipient::Discipline(_) => None,
            })
            .collect(),
        recipient_disciplines: p
            .recipients
            .iter()
            .filter_map(|r| match r {
                Recipient::Discipline(d) => Some(d.as_str().to_owned()),
                Recipient::Team(_) => None,
            })
            .collect(),
        purposes: p
            .purposes
            .iter()
            .map(|purpose| purpose_to_proto(*purpose).into())
            .collect(),
        provisions: p.provisions.iter().map(provision_to_proto).collect(),
    }
}

/// Wire provision to domain; bare team ids are taken in `federation`. Nesting is bounded so a
/// hostile record cannot exhaust the stack.
pub(super) fn provision_from_proto(
    p: pb::Provision,
    field: &str,
    federation: &tatmx_certs::FederationId,
    depth: usize,
) -> Result<Provision, ConversionError> {
    if depth > 8 {
        return Err(invalid(field, "provisions are nested more than 8 deep"));
    }
    let kind = match pb::ProvisionType::try_from(p.r#type) {
        Ok(pb::ProvisionType::Permit) => ProvisionKind::Permit,
        Ok(pb::ProvisionType::Deny) => ProvisionKind::Deny,
        _ => return Err(invalid(&format!("{field}.type"), "must be permit or deny")),
    };
    let categories = p
        .categories
        .iter()
        .map(|c| {
            category_from_proto(*c)
                .ok_or_else(|| invalid(&format!("{field}.categories"), "unknown category"))
        })
        .collect::<Result<_, _>>()?;
    let mut recipients = Vec::new();
    for team in &p.recipient_teams {
        let identity = if team.starts_with("spiffe://") {
            tatmx_certs::TeamIdentity::parse_uri(team).ok()
        } else {
            tatmx_certs::TeamId::new(team.clone())
                .ok()
                .map(|t| tatmx_certs::TeamIdentity::new(federation.clone(), t))
        };
        recipients.push(Recipient::Team(identity.ok_or_else(|| {
            invalid(
                &format!("{field}.recipient_teams"),
                "not a team id or identity",
            )
        })?));
    }
    for discipline in &p.recipient_disciplines {
        recipients.push(Recipient::Discipline(
            Discipline::parse(discipline).ok_or_else(|| {
                invalid(
                    &format!("{field}.recipient_disciplines"),
                    "unknown discipline",
                )
            })?,
        ));
    }
    let purposes = p
        .purposes
        .iter()
        .map(|purpose| purpose_from_proto(*purpose, &format!("{field}.purposes")))
        .collect::<Result<_, _>>()?;
    let provisions = p
        .provisions
        .into_iter()
        .enumerate()
        .map(|(i, nested)| {
            provision_from_proto(
                nested,
                &format!("{field}.provisions[{i}]"),
                federation,
                depth + 1,
            )
        })
        .collect::<Result<_, _>>()?;
    Ok(Provision {
        kind,
        categories,
        recipients,
        purposes,
        provisions,
    })
}

/// Wire consent to domain, as recorded through the Agency API (bare team ids are in
/// `federation`).
pub fn consent_from_proto(
    c: pb::Consent,
    federation: &tatmx_certs::FederationId,
) -> Result<Consent, ConversionError> {
    let grantor = match pb::Grantor::try_from(c.grantor) {
        Ok(pb::Grantor::Self_) => Grantor::Subject,
        Ok(pb::Grantor::Guardian) => Grantor::Guardian {
            name: c.grantor_name,
        },
        _ => return Err(invalid("consent.grantor", "must be self or guardian")),
    };
    let provision = provision_from_proto(
        required(c.provision, "consent.provision")?,
        "consent.provision",
        federation,
        0,
    )?;
    Ok(Consent {
        id: if c.id.is_empty() {
            Uuid::now_v7()
        } else {
            message_id_from_proto(&c.id, "consent.id")?
        },
        subject: c.subject,
        grantor,
        provision,
        valid_from: match c.valid_from {
            Some(ts) => timestamp_from_proto(Some(ts), "consent.valid_from")?,
            None => OffsetDateTime::now_utc(),
        },
        valid_until: c
            .valid_until
            .map(|ts| timestamp_from_proto(Some(ts), "consent.valid_until"))
            .transpose()?,
        revoked_at: c
            .revoked_at
            .map(|ts| timestamp_from_proto(Some(ts), "consent.revoked_at"))
            .transpose()?,
        recorded_at: match c.recorded_at {
            Some(ts) => timestamp_from_proto(Some(ts), "consent.recorded_at")?,
            None => OffsetDateTime::now_utc(),
        },
    })
}

// ---- retraction ----

/// Domain retraction to wire.
pub fn retraction_to_proto(r: &Retraction) -> pb::Retraction {
    pb::Retraction {
        id: r.id.to_string(),
        retraction_id: r.retraction_id.to_string(),
        referral_id: r.referral_id.to_string(),
        author: r.author.uri(),
        cause: match r.cause {
            RetractionCause::ConsentRevoked => pb::RetractionCause::ConsentRevoked,
        }
        .into(),
        at: Some(timestamp_to_proto(r.at)),
    }
}

/// Wire retraction to domain; an unknown cause is refused.
pub fn retraction_from_proto(r: pb::Retraction) -> Result<Retraction, ConversionError> {
    Ok(Retraction {
        id: message_id_from_proto(&r.id, "retraction.id")?,
        retraction_id: message_id_from_proto(&r.retraction_id, "retraction.retraction_id")?,
        referral_id: message_id_from_proto(&r.referral_id, "retraction.referral_id")?,
        author: identity_from_proto(&r.author, "retraction.author")?,
        cause: match pb::RetractionCause::try_from(r.cause) {
            Ok(pb::RetractionCause::ConsentRevoked) => RetractionCause::ConsentRevoked,
            _ => return Err(invalid("retraction.cause", "is not a known cause")),
        },
        at: timestamp_from_proto(r.at, "retraction.at")?,
    })
}

fn copy_to_proto(c: &Copy) -> pb::RetractionTarget {
    pb::RetractionTarget {
        team: c.team.uri(),
        referral_id: c.referral_id.to_string(),
    }
}

fn copy_from_proto(c: Option<pb::RetractionTarget>, field: &str) -> Result<Copy, ConversionError> {
    let c = c.ok_or_else(|| invalid(field, "is required"))?;
    Ok(Copy {
        team: identity_from_proto(&c.team, &format!("{field}.team"))?,
        referral_id: message_id_from_proto(&c.referral_id, &format!("{field}.referral_id"))?,
    })
}

/// Domain acknowledgement to wire.
pub fn retraction_ack_to_proto(a: &RetractionAck) -> pb::RetractionAck {
    pb::RetractionAck {
        id: a.id.to_string(),
        retraction_id: a.retraction_id.to_string(),
        purged: Some(copy_to_proto(&a.purged)),
        held: a.held,
        purged_at: Some(timestamp_to_proto(a.purged_at)),
        downstream: a.downstream.iter().map(copy_to_proto).collect(),
        author: a.author.uri(),
    }
}

/// Wire acknowledgement to domain.
pub fn retraction_ack_from_proto(a: pb::RetractionAck) -> Result<RetractionAck, ConversionError> {
    Ok(RetractionAck {
        id: message_id_from_proto(&a.id, "ack.id")?,
        retraction_id: message_id_from_proto(&a.retraction_id, "ack.retraction_id")?,
        purged: copy_from_proto(a.purged, "ack.purged")?,
        held: a.held,
        purged_at: timestamp_from_proto(a.purged_at, "ack.purged_at")?,
        downstream: a
            .downstream
            .into_iter()
            .enumerate()
            .map(|(i, c)| copy_from_proto(Some(c), &format!("ack.downstream[{i}]")))
            .collect::<Result<_, _>>()?,
        author: identity_from_proto(&a.author, "ack.author")?,
    })
}

/// How far a retraction has got, for staff.
pub fn retraction_progress_to_proto(p: &RetractionProgress) -> pb::RetractionProgress {
    pb::RetractionProgress {
        retraction_id: p.id.to_string(),
        consent_id: p.consent_id.to_string(),
        started_at: Some(timestamp_to_proto(p.started_at)),
        targets: p
            .targets
            .iter()
            .map(|t| pb::RetractionTargetProgress {
                target: Some(copy_to_proto(&t.copy)),
                reported_by: t.reported_by.clone(),
                acknowledged: t.acknowledged_at.is_some(),
                held: t.held,
                purged_at: t.purged_at.map(timestamp_to_proto),
            })
            .collect(),
        complete: p.complete(),
    }
}

/// A tombstone, for staff and counsel.
pub fn tombstone_to_proto(t: &Tombstone) -> pb::Tombstone {
    pb::Tombstone {
        referral_id: t.referral_id.to_string(),
        direction: if t.inbound {
            pb::Direction::Inbound
        } else {
            pb::Direction::Outbound
        }
        .into(),
        sender: t.sender.clone(),
        recipient: t.recipient.clone(),
        purpose: t
            .purpose
            .map(purpose_to_proto)
            .unwrap_or(pb::Purpose::Unspecified)
            .into(),
        categories: t
            .categories
            .iter()
            .map(|c| category_to_proto(*c).into())
            .collect(),
        recorded_at: Some(timestamp_to_proto(t.recorded_at)),
        purged_at: Some(timestamp_to_proto(t.purged_at)),
        cause: match t.cause {
            PurgeCause::ConsentRevoked => pb::PurgeCause::ConsentRevoked,
            PurgeCause::Retention => pb::PurgeCause::Retention,
        }
        .into(),
        retraction_id: t.retraction_id.map(|r| r.to_string()).unwrap_or_default(),
    }
}
