//! Consents and retraction's SQL: recording and revoking consents, retracting what was
//! disclosed on a revoked consent hop by hop, acknowledgements, purges (by retraction or
//! retention) with their tombstones, and the WAL checkpoint after a purge.

use sqlx::Row;
use tatmx_certs::TeamIdentity;
use time::OffsetDateTime;
use uuid::Uuid;

use super::codec::{consent_row, copy_of, digest, from_ms, identity_column, ms, tombstone_row};
use super::outbox::enqueue;
use super::{
    Applied, Backend, Inbound, MessageKind, Store, StoreError, Tx, audit_log, check_replay, proofs,
    record_received,
};
use crate::actor::Actor;
use crate::audit;
use crate::consent::Consent;
use crate::received::Received;
use crate::retraction::{
    Copy, PurgeCause, Retraction, RetractionAck, RetractionProgress, TargetProgress, Tombstone,
};
use crate::wire;

impl Store {
    /// Records a consent, and who recorded it (for the consent's page).
    pub async fn put_consent(&self, consent: &Consent, actor: &Actor) -> Result<(), StoreError> {
        let body = wire::encode_consent(consent);
        let mut tx = self.write().await?;
        sqlx::query(
            "INSERT INTO consents (id, recorded_at, revoked_at, body, recorded_by)
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(consent.id.to_string())
        .bind(ms(consent.recorded_at))
        .bind(consent.revoked_at.map(ms))
        .bind(body)
        .bind(actor.to_string())
        .execute(&mut *tx)
        .await?;
        audit_log::append(&mut tx, &audit::consent_recorded(consent, actor)).await?;
        tx.commit().await?;
        Ok(())
    }

    /// One consent, with its revocation.
    pub async fn consent(
        &self,
        id: Uuid,
        federation: &tatmx_certs::FederationId,
    ) -> Result<Option<Consent>, StoreError> {
        let row = sqlx::query("SELECT id, revoked_at, body FROM consents WHERE id = $1")
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await?;
        row.map(|row| consent_row(&row, federation)).transpose()
    }

    /// Consents, newest first.
    pub async fn consents(
        &self,
        limit: u32,
        federation: &tatmx_certs::FederationId,
    ) -> Result<Vec<Consent>, StoreError> {
        sqlx::query(
            "SELECT id, revoked_at, body FROM consents ORDER BY recorded_at DESC, id DESC LIMIT $1",
        )
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|row| consent_row(row, federation))
        .collect()
    }

    /// Revokes a consent, once, and starts its retraction in the same transaction: every
    /// referral sent on the basis of that consent that is still undelivered is cancelled, and
    /// each recipient is sent a [`Retraction`] (even of a cancelled one, which may have been in
    /// flight). Returns the consent and the peers with new messages, or `None` if there is no
    /// such consent. Revoking again changes nothing; the first retraction goes on.
    pub async fn revoke_consent(
        &self,
        id: Uuid,
        at: OffsetDateTime,
        federation: &tatmx_certs::FederationId,
        actor: &Actor,
    ) -> Result<Option<(Consent, Vec<TeamIdentity>)>, StoreError> {
        let mut tx = self.write().await?;
        let revoked =
            sqlx::query("UPDATE consents SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
                .bind(ms(at))
                .bind(id.to_string())
                .execute(&mut *tx)
                .await?
                .rows_affected();
        let mut notify = Vec::new();
        if revoked == 1 {
            let retraction_id = Uuid::now_v7();
            sqlx::query("INSERT INTO retractions (id, consent_id, started_at) VALUES ($1, $2, $3)")
                .bind(retraction_id.to_string())
                .bind(id.to_string())
                .bind(ms(at))
                .execute(&mut *tx)
                .await?;
            let shared = sqlx::query(
                "SELECT id, sender, recipient FROM referrals
                 WHERE direction = 'outbound' AND consent_ref = $1 ORDER BY recorded_at",
            )
            .bind(id.to_string())
            .fetch_all(&mut *tx)
            .await?;
            let mut targets = Vec::new();
            for row in shared {
                let copy = copy_of(&row, "recipient")?;
                let sender = identity_column(&row, "sender")?;
                sqlx::query(
                    "UPDATE outbox SET state = 'cancelled'
                     WHERE message_id = $1 AND kind = 'referral' AND state IN ('pending', 'dead')",
                )
                .bind(copy.referral_id.to_string())
                .execute(&mut *tx)
                .await?;
                // What was to follow it on the same consent (a supplement, new information)
                // never leaves either.
                sqlx::query(
                    "UPDATE outbox SET state = 'cancelled'
                     WHERE referral_id = $1 AND kind = 'case-message' AND state IN ('pending', 'dead')",
                )
                .bind(copy.referral_id.to_string())
                .execute(&mut *tx)
                .await?;
                let retraction = Retraction {
                    id: Uuid::now_v7(),
                    retraction_id,
                    referral_id: copy.referral_id,
                    author: sender,
                    cause: crate::retraction::RetractionCause::ConsentRevoked,
                    at,
                };
                retract_copy(&mut tx, &retraction, &copy.team).await?;
                targets.push((copy.team.uri(), copy.referral_id));
                notify.push(copy.team);
            }
            let row = sqlx::query("SELECT id, revoked_at, body FROM consents WHERE id = $1")
                .bind(id.to_string())
                .fetch_one(&mut *tx)
                .await?;
            let consent = consent_row(&row, federation)?;
            audit_log::append(
                &mut tx,
                &audit::consent_revoked(&consent, retraction_id, &targets, actor),
            )
            .await?;
        }
        tx.commit().await?;
        let consent = self.consent(id, federation).await?;
        Ok(consent.map(|consent| (consent, notify)))
    }

    /// How far the retraction that followed a consent's revocation has got.
    pub async fn retraction_progress(
        &self,
        consent_id: Uuid,
    ) -> Result<Option<RetractionProgress>, StoreError> {
        let Some(row) = sqlx::query("SELECT id, started_at FROM retractions WHERE consent_id = $1")
            .bind(consent_id.to_string())
            .fetch_optional(&self.pool)
            .await?
        else {
            return Ok(None);
        };
        let id: String = row.try_get("id")?;
        let corrupt = |problem: &str| StoreError::Corrupt {
            table: "retractions",
            id: id.clone(),
            problem: problem.to_owned(),
        };
        let targets = sqlx::query(
            "SELECT referral_id, team, reported_by, acknowledged_at, held, purged_at
             FROM retraction_targets WHERE retraction_id = $1 ORDER BY position",
        )
        .bind(&id)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|row| {
            Ok(TargetProgress {
                copy: copy_of(row, "team")?,
                reported_by: row.try_get("reported_by")?,
                acknowledged_at: row
                    .try_get::<Option<i64>, _>("acknowledged_at")?
                    .map(from_ms),
                held: row.try_get::<Option<i64>, _>("held")?.unwrap_or(0) != 0,
                purged_at: row.try_get::<Option<i64>, _>("purged_at")?.map(from_ms),
            })
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
        Ok(Some(RetractionProgress {
            id: Uuid::parse_str(&id).map_err(|_| corrupt("id"))?,
            consent_id,
            started_at: from_ms(row.try_get("started_at")?),
            targets,
        }))
    }

    /// Applies a retraction from the sender of a referral this node received: purges the
    /// referral and every forward made from it, keeps tombstones, retracts those forwards
    /// from their recipients, and queues the acknowledgement to `from` (the [`Received`]'s
    /// checked sender), all in one transaction. A retraction of something this node does not
    /// hold from `from` is acknowledged as not held, in the name of `local`, so a retraction
    /// that raced its referral still completes.
    pub async fn receive_retraction(
        &self,
        retraction: &Received<Retraction>,
        local: &TeamIdentity,
    ) -> Result<Applied, StoreError> {
        let (from, proof) = (retraction.sender(), retraction.proof());
        let body = retraction.wire().to_vec();
        let retraction = retraction.message();
        let digest = digest(&body);
        let now = self.clock.now();
        let mut tx = self.write().await?;
        if let Some(outcome) = check_replay(&mut tx, retraction.id, &digest).await? {
            return Ok(Applied {
                outcome,
                notify: Vec::new(),
            });
        }
        record_received(
            &mut tx,
            retraction.id,
            MessageKind::Retraction,
            from,
            &digest,
            now,
        )
        .await?;
        let held: Option<String> = sqlx::query_scalar(
            "SELECT recipient FROM referrals WHERE id = $1 AND direction = 'inbound' AND sender = $2",
        )
        .bind(retraction.referral_id.to_string())
        .bind(from.uri())
        .fetch_optional(&mut *tx)
        .await?;
        let mut notify = Vec::new();
        let mut downstream = Vec::new();
        let purger = match &held {
            Some(recipient) => {
                TeamIdentity::parse_uri(recipient).map_err(|_| StoreError::Corrupt {
                    table: "referrals",
                    id: retraction.referral_id.to_string(),
                    problem: "recipient".into(),
                })?
            }
            None => local.clone(),
        };
        if held.is_some() {
            let forwards = sqlx::query(
                "SELECT id, sender, recipient FROM referrals
                 WHERE direction = 'outbound' AND forwarded_from = $1",
            )
            .bind(retraction.referral_id.to_string())
            .fetch_all(&mut *tx)
            .await?;
            let mut purged = vec![retraction.referral_id];
            sqlx::query(
                "INSERT INTO retractions (id, started_at, upstream_peer, upstream_author)
                 VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
            )
            .bind(retraction.retraction_id.to_string())
            .bind(ms(now))
            .bind(from.uri())
            .bind(purger.uri())
            .execute(&mut *tx)
            .await?;
            for row in &forwards {
                let copy = copy_of(row, "recipient")?;
                let onward = Retraction {
                    id: Uuid::now_v7(),
                    retraction_id: retraction.retraction_id,
                    referral_id: copy.referral_id,
                    author: identity_column(row, "sender")?,
                    cause: retraction.cause,
                    at: now,
                };
                retract_copy(&mut tx, &onward, &copy.team).await?;
                purged.push(copy.referral_id);
                notify.push(copy.team.clone());
                downstream.push(copy);
            }
            purge(
                &mut tx,
                &purged,
                PurgeCause::ConsentRevoked,
                Some(retraction.retraction_id),
                now,
            )
            .await?;
        }
        proofs::put(&mut tx, proof, "received").await?;
        audit_log::append(
            &mut tx,
            &audit::retraction_received(retraction, held.is_some(), downstream.len()),
        )
        .await?;
        let ack = RetractionAck {
            id: Uuid::now_v7(),
            retraction_id: retraction.retraction_id,
            purged: Copy {
                team: purger.clone(),
                referral_id: retraction.referral_id,
            },
            held: held.is_some(),
            purged_at: now,
            downstream,
            author: purger,
        };
        enqueue_ack(&mut tx, &ack, from, now).await?;
        notify.push(from.clone());
        tx.commit().await?;
        self.checkpoint().await;
        Ok(Applied {
            outcome: Inbound::Stored,
            notify,
        })
    }

    /// Records a report that a copy was purged: from its holder, or relayed by the hop that
    /// forwarded it (the [`Received`]'s checked sender). Copies the report names as forwarded
    /// on become targets too, and the report is relayed upstream when this node is itself
    /// passing the retraction on.
    pub async fn receive_retraction_ack(
        &self,
        ack: &Received<RetractionAck>,
    ) -> Result<Applied, StoreError> {
        let (from, proof) = (ack.sender(), ack.proof());
        let body = ack.wire().to_vec();
        let ack = ack.message();
        let digest = digest(&body);
        let now = self.clock.now();
        let mut tx = self.write().await?;
        if let Some(outcome) = check_replay(&mut tx, ack.id, &digest).await? {
            return Ok(Applied {
                outcome,
                notify: Vec::new(),
            });
        }
        // Only the holder of a copy, or the hop that reported it, may report on it.
        let known: Option<String> = sqlx::query_scalar(
            "SELECT team FROM retraction_targets
             WHERE retraction_id = $1 AND referral_id = $2 AND team = $3 AND (team = $4 OR reported_by = $5)",
        )
        .bind(ack.retraction_id.to_string())
        .bind(ack.purged.referral_id.to_string())
        .bind(ack.purged.team.uri())
        .bind(from.uri())
        .bind(from.uri())
        .fetch_optional(&mut *tx)
        .await?;
        if known.is_none() {
            return Ok(Applied {
                outcome: Inbound::UnknownReferral,
                notify: Vec::new(),
            });
        }
        record_received(
            &mut tx,
            ack.id,
            MessageKind::RetractionAck,
            from,
            &digest,
            now,
        )
        .await?;
        sqlx::query(
            "UPDATE retraction_targets SET acknowledged_at = $1, held = $2, purged_at = $3
             WHERE retraction_id = $4 AND referral_id = $5 AND acknowledged_at IS NULL",
        )
        .bind(ms(now))
        .bind(i64::from(ack.held))
        .bind(ms(ack.purged_at))
        .bind(ack.retraction_id.to_string())
        .bind(ack.purged.referral_id.to_string())
        .execute(&mut *tx)
        .await?;
        proofs::put(&mut tx, proof, "received").await?;
        audit_log::append(&mut tx, &audit::retraction_acknowledged(ack, &from.uri())).await?;
        for copy in &ack.downstream {
            sqlx::query(
                "INSERT INTO retraction_targets
                     (retraction_id, referral_id, team, reported_by, position)
                 VALUES ($1, $2, $3, $4, (SELECT COALESCE(MAX(position), 0) + 1
                                          FROM retraction_targets))
                 ON CONFLICT DO NOTHING",
            )
            .bind(ack.retraction_id.to_string())
            .bind(copy.referral_id.to_string())
            .bind(copy.team.uri())
            .bind(from.uri())
            .execute(&mut *tx)
            .await?;
        }
        let upstream = sqlx::query(
            "SELECT upstream_peer, upstream_author FROM retractions
             WHERE id = $1 AND upstream_peer IS NOT NULL",
        )
        .bind(ack.retraction_id.to_string())
        .fetch_optional(&mut *tx)
        .await?;
        let mut notify = Vec::new();
        if let Some(row) = upstream {
            let peer = identity_column(&row, "upstream_peer")?;
            let relayed = RetractionAck {
                id: Uuid::now_v7(),
                author: identity_column(&row, "upstream_author")?,
                ..ack.clone()
            };
            enqueue_ack(&mut tx, &relayed, &peer, now).await?;
            notify.push(peer);
        }
        tx.commit().await?;
        Ok(Applied {
            outcome: Inbound::Stored,
            notify,
        })
    }

    /// Purges every received referral whose retention deadline is before `now`, with the
    /// forwards made from it; returns how many referrals were purged.
    pub async fn purge_expired(&self, now: OffsetDateTime) -> Result<usize, StoreError> {
        let mut tx = self.write().await?;
        let expired: Vec<String> = sqlx::query_scalar(
            "SELECT id FROM referrals WHERE direction = 'inbound' AND retain_until <= $1
             ORDER BY retain_until LIMIT 500",
        )
        .bind(ms(now))
        .fetch_all(&mut *tx)
        .await?;
        if expired.is_empty() {
            return Ok(0);
        }
        let mut ids = Vec::new();
        for id in &expired {
            let forwards: Vec<String> = sqlx::query_scalar(
                "SELECT id FROM referrals WHERE direction = 'outbound' AND forwarded_from = $1",
            )
            .bind(id)
            .fetch_all(&mut *tx)
            .await?;
            for text in std::iter::once(id).chain(forwards.iter()) {
                ids.push(Uuid::parse_str(text).map_err(|_| StoreError::Corrupt {
                    table: "referrals",
                    id: text.clone(),
                    problem: "id".into(),
                })?);
            }
        }
        let count = purge(&mut tx, &ids, PurgeCause::Retention, None, now).await?;
        tx.commit().await?;
        self.checkpoint().await;
        Ok(count)
    }

    /// The tombstone of one purged referral.
    pub async fn tombstone(&self, referral_id: Uuid) -> Result<Option<Tombstone>, StoreError> {
        sqlx::query(
            "SELECT referral_id, direction, sender, recipient, purpose, categories, recorded_at,
                    purged_at, cause, retraction_id
             FROM tombstones WHERE referral_id = $1",
        )
        .bind(referral_id.to_string())
        .fetch_optional(&self.pool)
        .await?
        .as_ref()
        .map(tombstone_row)
        .transpose()
    }

    /// Tombstones of purged referrals, newest first.
    pub async fn tombstones(&self, limit: u32) -> Result<Vec<Tombstone>, StoreError> {
        sqlx::query(
            "SELECT referral_id, direction, sender, recipient, purpose, categories, recorded_at,
                    purged_at, cause, retraction_id
             FROM tombstones ORDER BY purged_at DESC, referral_id DESC LIMIT $1",
        )
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(tombstone_row)
        .collect()
    }

    /// Moves every committed page out of the WAL and truncates it, so the old frames of purged
    /// rows leave the disk now rather than at some later automatic checkpoint. A reader holding
    /// an old snapshot can make it partial; the next purge or close finishes it. PostgreSQL has
    /// no such step: its dead row versions go at the next (auto)vacuum, and once the data key
    /// is deleted they hold only sealed bytes.
    async fn checkpoint(&self) {
        if self.backend != Backend::Sqlite {
            return;
        }
        if let Err(e) = sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
            .execute(&self.pool)
            .await
        {
            tracing::warn!(error = %e, "WAL checkpoint after a purge failed");
        }
    }
}

/// Queues a retraction of `copy` to the team holding it, and tracks the copy as a target.
async fn retract_copy(
    tx: &mut Tx,
    retraction: &Retraction,
    holder: &TeamIdentity,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO retraction_targets (retraction_id, referral_id, team, reported_by, position)
         VALUES ($1, $2, $3, $4, (SELECT COALESCE(MAX(position), 0) + 1 FROM retraction_targets))
         ON CONFLICT DO NOTHING",
    )
    .bind(retraction.retraction_id.to_string())
    .bind(retraction.referral_id.to_string())
    .bind(holder.uri())
    .bind(retraction.author.uri())
    .execute(&mut **tx)
    .await?;
    let body = wire::encode_retraction(retraction);
    enqueue(
        tx,
        retraction.id,
        MessageKind::Retraction,
        retraction.referral_id,
        holder,
        &body,
        retraction.at,
        None,
    )
    .await
}

async fn enqueue_ack(
    tx: &mut Tx,
    ack: &RetractionAck,
    to: &TeamIdentity,
    now: OffsetDateTime,
) -> Result<(), StoreError> {
    let body = wire::encode_retraction_ack(ack);
    enqueue(
        tx,
        ack.id,
        MessageKind::RetractionAck,
        ack.purged.referral_id,
        to,
        &body,
        now,
        None,
    )
    .await
}

/// Purges referrals: their data keys, rows, timelines, case messages and unsent messages go,
/// and a tombstone stays. Bodies of messages already delivered are emptied too: the peer has them, and this
/// node no longer needs them. Returns how many referrals were purged.
async fn purge(
    tx: &mut Tx,
    ids: &[Uuid],
    cause: PurgeCause,
    retraction_id: Option<Uuid>,
    now: OffsetDateTime,
) -> Result<usize, StoreError> {
    let mut count = 0;
    for &referral_id in ids {
        let id = referral_id.to_string();
        let inserted = sqlx::query(
            "INSERT INTO tombstones (referral_id, direction, sender, recipient, purpose,
                                               categories, recorded_at, purged_at, cause,
                                               retraction_id)
             SELECT id, direction, sender, recipient, purpose, categories, recorded_at, $1, $2, $3
             FROM referrals WHERE id = $4 ON CONFLICT DO NOTHING",
        )
        .bind(ms(now))
        .bind(cause.as_str())
        .bind(retraction_id.map(|r| r.to_string()))
        .bind(&id)
        .execute(&mut **tx)
        .await?
        .rows_affected();
        let row = sqlx::query("SELECT data_key, categories FROM referrals WHERE id = $1")
            .bind(&id)
            .fetch_optional(&mut **tx)
            .await?;
        let Some(row) = row else { continue };
        let categories: String = row.try_get("categories")?;
        audit_log::append(
            tx,
            &audit::purge(referral_id, &categories, cause, retraction_id),
        )
        .await?;
        if let Some(key_id) = row.try_get::<Option<String>, _>("data_key")? {
            sqlx::query("DELETE FROM data_keys WHERE id = $1")
                .bind(key_id)
                .execute(&mut **tx)
                .await?;
        }
        // Its case messages go with it: their keys (the referral's own, or the one made for
        // the case), then their rows.
        sqlx::query(
            "DELETE FROM data_keys WHERE id IN
                 (SELECT data_key FROM case_messages WHERE referral_id = $1 AND data_key IS NOT NULL)",
        )
        .bind(&id)
        .execute(&mut **tx)
        .await?;
        sqlx::query("DELETE FROM case_messages WHERE referral_id = $1")
            .bind(&id)
            .execute(&mut **tx)
            .await?;
        sqlx::query(
            "UPDATE outbox SET state = 'cancelled'
             WHERE referral_id = $1 AND kind IN ('referral', 'status-update', 'case-message')
               AND state IN ('pending', 'dead')",
        )
        .bind(&id)
        .execute(&mut **tx)
        .await?;
        sqlx::query(
            "UPDATE outbox SET body = $1 WHERE referral_id = $2
               AND kind IN ('referral', 'status-update', 'case-message')",
        )
        .bind(Vec::<u8>::new())
        .bind(&id)
        .execute(&mut **tx)
        .await?;
        super::cases::purge_in(tx, &id).await?;
        sqlx::query("DELETE FROM status_events WHERE referral_id = $1")
            .bind(&id)
            .execute(&mut **tx)
            .await?;
        sqlx::query("DELETE FROM referrals WHERE id = $1")
            .bind(&id)
            .execute(&mut **tx)
            .await?;
        count += usize::try_from(inserted).unwrap_or(0);
    }
    crate::metrics::get()
        .purged
        .get_or_create(&vec![("cause", cause.as_str().to_owned())])
        .inc_by(count as u64);
    Ok(count)
}
