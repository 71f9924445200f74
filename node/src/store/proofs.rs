//! The evidence of each message, sent or received: the SQL of message proofs.
//!
//! A version 1 proof is one row of its own (`message_proofs`): the sender's signature over the
//! message and the receiver's over its receipt, each with its certificate. A version 2 proof is
//! the message's place in its batch (`message_batch_proofs`: digest, index, inclusion path)
//! and the batch's shared evidence, kept once per batch (`batch_proofs`: both signatures, the
//! times, the outcomes), with each certificate kept once by its SHA-256 (`certificates`). So
//! a batch of 64 referrals stores its two signatures and two certificates once, not 64 times.

use sha2::{Digest, Sha256};
use sqlx::Row;
use uuid::Uuid;

use super::audit_log::accountable;
use super::{MessageKind, MessageProof, Store, StoreError, Tx, from_ms, ms};
use crate::signing::BatchLink;

/// Stores the evidence of a message, once per direction.
pub(crate) async fn put(
    tx: &mut Tx,
    proof: &MessageProof,
    direction: &str,
) -> Result<(), StoreError> {
    if !accountable() {
        return Ok(());
    }
    match &proof.batch {
        None => put_single(tx, proof, direction).await,
        Some(batch) => put_in_batch(tx, proof, batch, direction).await,
    }
}

async fn put_single(tx: &mut Tx, proof: &MessageProof, direction: &str) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO message_proofs
             (message_id, direction, kind, peer, digest, signature, sender_certificate,
              receipt_signature, receipt_certificate, received_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT DO NOTHING",
    )
    .bind(proof.message_id.to_string())
    .bind(direction)
    .bind(proof.kind)
    .bind(&proof.peer)
    .bind(&proof.digest)
    .bind(&proof.signature)
    .bind(&proof.sender_certificate)
    .bind(&proof.receipt_signature)
    .bind(&proof.receipt_certificate)
    .bind(proof.received_at.map(ms))
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Keeps a certificate once, and returns the fingerprint rows refer to it by.
async fn put_certificate(tx: &mut Tx, der: &[u8]) -> Result<Vec<u8>, StoreError> {
    let fingerprint = Sha256::digest(der).to_vec();
    sqlx::query("INSERT INTO certificates (sha256, der) VALUES ($1, $2) ON CONFLICT DO NOTHING")
        .bind(&fingerprint)
        .bind(der)
        .execute(&mut **tx)
        .await?;
    Ok(fingerprint)
}

async fn put_in_batch(
    tx: &mut Tx,
    proof: &MessageProof,
    batch: &BatchLink,
    direction: &str,
) -> Result<(), StoreError> {
    // Every message of a batch names the same signature, so its digest picks out the one row
    // the batch's messages share, whichever of them is stored first.
    let key = Sha256::digest(&proof.signature).to_vec();
    let existing: Option<i64> =
        sqlx::query_scalar("SELECT id FROM batch_proofs WHERE direction = $1 AND batch_key = $2")
            .bind(direction)
            .bind(&key)
            .fetch_optional(&mut **tx)
            .await?;
    let id = match existing {
        Some(id) => id,
        None => {
            let sender_certificate = put_certificate(tx, &proof.sender_certificate).await?;
            let receipt_certificate = match &proof.receipt_certificate {
                Some(der) => Some(put_certificate(tx, der).await?),
                None => None,
            };
            sqlx::query_scalar(
                "INSERT INTO batch_proofs
                     (direction, batch_key, root, size, sender, recipient, sent_at, signature,
                      sender_certificate, receipt_signature, receipt_certificate, received_at,
                      outcomes)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
                 RETURNING id",
            )
            .bind(direction)
            .bind(&key)
            .bind(batch.root.as_slice())
            .bind(i64::from(batch.size))
            .bind(&batch.sender)
            .bind(&batch.recipient)
            .bind(batch.sent_at_ms)
            .bind(&proof.signature)
            .bind(sender_certificate)
            .bind(&proof.receipt_signature)
            .bind(receipt_certificate)
            .bind(proof.received_at.map(ms))
            .bind(&batch.outcomes)
            .fetch_one(&mut **tx)
            .await?
        }
    };
    sqlx::query(
        "INSERT INTO message_batch_proofs
             (message_id, direction, kind, digest, batch, leaf_index, path)
         VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING",
    )
    .bind(proof.message_id.to_string())
    .bind(direction)
    .bind(proof.kind)
    .bind(&proof.digest)
    .bind(id)
    .bind(i64::from(batch.index))
    .bind(batch.path.concat())
    .execute(&mut **tx)
    .await?;
    Ok(())
}

impl Store {
    /// The evidence kept for a message, sent or received, in whichever version it travelled.
    pub async fn message_proof(
        &self,
        message_id: Uuid,
        sent: bool,
    ) -> Result<Option<MessageProof>, StoreError> {
        let direction = if sent { "sent" } else { "received" };
        let row = sqlx::query(
            "SELECT kind, peer, digest, signature, sender_certificate, receipt_signature,
                    receipt_certificate, received_at
             FROM message_proofs WHERE message_id = $1 AND direction = $2",
        )
        .bind(message_id.to_string())
        .bind(direction)
        .fetch_optional(&self.pool)
        .await?;
        if let Some(row) = row {
            let kind: String = row.try_get("kind")?;
            return Ok(Some(MessageProof {
                message_id,
                kind: MessageKind::parse(&kind).map_or("unknown", MessageKind::as_str),
                peer: row.try_get("peer")?,
                digest: row.try_get("digest")?,
                signature: row.try_get("signature")?,
                sender_certificate: row.try_get("sender_certificate")?,
                receipt_signature: row.try_get("receipt_signature")?,
                receipt_certificate: row.try_get("receipt_certificate")?,
                received_at: row.try_get::<Option<i64>, _>("received_at")?.map(from_ms),
                batch: None,
            }));
        }
        let row = sqlx::query(
            "SELECT m.kind, m.digest, m.leaf_index, m.path, b.root, b.size, b.sender, b.recipient,
                    b.sent_at, b.signature, sc.der AS sender_der, b.receipt_signature,
                    rc.der AS receipt_der, b.received_at, b.outcomes
             FROM message_batch_proofs m
             JOIN batch_proofs b ON b.id = m.batch
             JOIN certificates sc ON sc.sha256 = b.sender_certificate
             LEFT JOIN certificates rc ON rc.sha256 = b.receipt_certificate
             WHERE m.message_id = $1 AND m.direction = $2",
        )
        .bind(message_id.to_string())
        .bind(direction)
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let corrupt = |problem: &str| StoreError::Corrupt {
            table: "message_batch_proofs",
            id: message_id.to_string(),
            problem: problem.to_owned(),
        };
        let kind: String = row.try_get("kind")?;
        let root: Vec<u8> = row.try_get("root")?;
        let root: [u8; 32] = root
            .try_into()
            .map_err(|_| corrupt("root is not 32 bytes"))?;
        let path: Vec<u8> = row.try_get("path")?;
        if !path.len().is_multiple_of(32) {
            return Err(corrupt("path is not whole hashes"));
        }
        let path = path
            .chunks_exact(32)
            .map(|h| {
                let mut hash = [0u8; 32];
                hash.copy_from_slice(h);
                hash
            })
            .collect();
        let sender: String = row.try_get("sender")?;
        let recipient: String = row.try_get("recipient")?;
        let index = u32::try_from(row.try_get::<i64, _>("leaf_index")?)
            .map_err(|_| corrupt("leaf_index out of range"))?;
        let size = u32::try_from(row.try_get::<i64, _>("size")?)
            .map_err(|_| corrupt("size out of range"))?;
        Ok(Some(MessageProof {
            message_id,
            kind: MessageKind::parse(&kind).map_or("unknown", MessageKind::as_str),
            peer: if sent {
                recipient.clone()
            } else {
                sender.clone()
            },
            digest: row.try_get("digest")?,
            signature: row.try_get("signature")?,
            sender_certificate: row.try_get("sender_der")?,
            receipt_signature: row.try_get("receipt_signature")?,
            receipt_certificate: row.try_get("receipt_der")?,
            received_at: row.try_get::<Option<i64>, _>("received_at")?.map(from_ms),
            batch: Some(BatchLink {
                root,
                index,
                size,
                path,
                sent_at_ms: row.try_get("sent_at")?,
                sender,
                recipient,
                outcomes: row.try_get("outcomes")?,
            }),
        }))
    }
}
