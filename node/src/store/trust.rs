//! The trust layer's SQL: anchors, peers, blocks and removals, CRLs and imported directories,
//! each change written with its audit entry.

use sqlx::Row;
use time::OffsetDateTime;

use super::codec::{from_ms, ms, to_i64, to_u64};
use super::{Store, StoreError, Tx, audit_log};
use crate::audit::AuditRecord;

/// A trust anchor added by an admin or a directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredAnchor {
    /// SHA-256 of the certificate DER, hex.
    pub fingerprint: String,
    /// The federation it is the root of.
    pub federation: String,
    /// The certificate, PEM.
    pub pem: String,
    /// `admin` or `directory`.
    pub source: String,
}

/// A peer added by an admin or a directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredPeer {
    /// Team identity URI.
    pub identity: String,
    /// `https://host:port`.
    pub endpoint: String,
    /// core, affiliate or partner.
    pub role: String,
    /// The discipline's name.
    pub discipline: String,
    /// Jurisdiction.
    pub jurisdiction: String,
    /// Whether it may hold criminal-justice information.
    pub cjis_authorized: bool,
    /// A certificate fingerprint the directory pins it to.
    pub pinned_sha256: Option<String>,
    /// `admin` or `directory`.
    pub source: String,
}

/// The latest imported directory of one federation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredDirectory {
    /// The federation.
    pub federation: String,
    /// Its sequence number.
    pub sequence: u64,
    /// When the CA signed it.
    pub issued_at: OffsetDateTime,
    /// When this node imported it.
    pub imported_at: OffsetDateTime,
    /// The signed document, verbatim.
    pub document: String,
}

/// The latest CRL of one federation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredCrl {
    /// The federation.
    pub federation: String,
    /// Its CRL number.
    pub crl_number: u64,
    /// The CRL, PEM.
    pub pem: String,
}

/// Everything the trust layer keeps in the store.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoredTrust {
    /// Anchors beyond the config file's.
    pub anchors: Vec<StoredAnchor>,
    /// Peers beyond the config file's.
    pub peers: Vec<StoredPeer>,
    /// Identities refused whatever their source.
    pub blocked: std::collections::HashSet<String>,
    /// Config peers an admin removed.
    pub removed: std::collections::HashSet<String>,
    /// The latest directory per federation.
    pub directories: Vec<StoredDirectory>,
    /// The latest CRL per federation.
    pub crls: Vec<StoredCrl>,
}

impl Store {
    /// Reads the whole trust state.
    pub async fn load_trust(&self) -> Result<StoredTrust, StoreError> {
        let anchors = sqlx::query("SELECT fingerprint, federation, pem, source FROM trust_anchors")
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|r| {
                Ok(StoredAnchor {
                    fingerprint: r.try_get("fingerprint")?,
                    federation: r.try_get("federation")?,
                    pem: r.try_get("pem")?,
                    source: r.try_get("source")?,
                })
            })
            .collect::<Result<Vec<_>, sqlx::Error>>()?;
        let peers = sqlx::query(
            "SELECT identity, endpoint, role, discipline, jurisdiction, cjis_authorized,
                    pinned_sha256, source FROM trust_peers",
        )
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|r| {
            Ok(StoredPeer {
                identity: r.try_get("identity")?,
                endpoint: r.try_get("endpoint")?,
                role: r.try_get("role")?,
                discipline: r.try_get("discipline")?,
                jurisdiction: r.try_get("jurisdiction")?,
                cjis_authorized: r.try_get::<i64, _>("cjis_authorized")? != 0,
                pinned_sha256: r.try_get("pinned_sha256")?,
                source: r.try_get("source")?,
            })
        })
        .collect::<Result<Vec<_>, sqlx::Error>>()?;
        let blocked = sqlx::query_scalar("SELECT identity FROM blocked_peers")
            .fetch_all(&self.pool)
            .await?
            .into_iter()
            .collect();
        let removed = sqlx::query_scalar("SELECT identity FROM removed_peers")
            .fetch_all(&self.pool)
            .await?
            .into_iter()
            .collect();
        let directories = sqlx::query(
            "SELECT federation, sequence, issued_at, imported_at, document FROM directories",
        )
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|r| {
            Ok(StoredDirectory {
                federation: r.try_get("federation")?,
                sequence: to_u64(r.try_get("sequence")?),
                issued_at: from_ms(r.try_get("issued_at")?),
                imported_at: from_ms(r.try_get("imported_at")?),
                document: r.try_get("document")?,
            })
        })
        .collect::<Result<Vec<_>, sqlx::Error>>()?;
        let crls = sqlx::query("SELECT federation, crl_number, pem FROM crls")
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|r| {
                Ok(StoredCrl {
                    federation: r.try_get("federation")?,
                    crl_number: to_u64(r.try_get("crl_number")?),
                    pem: r.try_get("pem")?,
                })
            })
            .collect::<Result<Vec<_>, sqlx::Error>>()?;
        Ok(StoredTrust {
            anchors,
            peers,
            blocked,
            removed,
            directories,
            crls,
        })
    }

    /// Adds or replaces a peer, and lifts an earlier removal of it.
    pub async fn put_peer(&self, peer: &StoredPeer, audit: &AuditRecord) -> Result<(), StoreError> {
        let mut tx = self.write().await?;
        insert_peer(&mut tx, peer).await?;
        sqlx::query("DELETE FROM removed_peers WHERE identity = $1")
            .bind(&peer.identity)
            .execute(&mut *tx)
            .await?;
        audit_log::append(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Removes a peer, whatever its source.
    pub async fn remove_peer(&self, identity: &str, audit: &AuditRecord) -> Result<(), StoreError> {
        let mut tx = self.write().await?;
        sqlx::query("DELETE FROM trust_peers WHERE identity = $1")
            .bind(identity)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO removed_peers (identity, removed_at) VALUES ($1, $2)
             ON CONFLICT (identity) DO UPDATE SET removed_at = excluded.removed_at",
        )
        .bind(identity)
        .bind(ms(self.clock.now()))
        .execute(&mut *tx)
        .await?;
        audit_log::append(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Blocks or unblocks an identity.
    pub async fn set_blocked(
        &self,
        identity: &str,
        blocked: bool,
        audit: &AuditRecord,
    ) -> Result<(), StoreError> {
        let mut tx = self.write().await?;
        let query = if blocked {
            sqlx::query(
                "INSERT INTO blocked_peers (identity, blocked_at) VALUES ($1, $2)
                 ON CONFLICT (identity) DO UPDATE SET blocked_at = excluded.blocked_at",
            )
            .bind(identity)
            .bind(ms(self.clock.now()))
        } else {
            sqlx::query("DELETE FROM blocked_peers WHERE identity = $1").bind(identity)
        };
        query.execute(&mut *tx).await?;
        audit_log::append(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Adds a trust anchor.
    pub async fn put_anchor(
        &self,
        anchor: &StoredAnchor,
        audit: &AuditRecord,
    ) -> Result<(), StoreError> {
        let mut tx = self.write().await?;
        insert_anchor(&mut tx, anchor).await?;
        audit_log::append(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Removes a trust anchor.
    pub async fn remove_anchor(
        &self,
        fingerprint: &str,
        audit: &AuditRecord,
    ) -> Result<(), StoreError> {
        let mut tx = self.write().await?;
        sqlx::query("DELETE FROM trust_anchors WHERE fingerprint = $1")
            .bind(fingerprint)
            .execute(&mut *tx)
            .await?;
        audit_log::append(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Stores a CRL, replacing the federation's previous one.
    pub async fn put_crl(&self, crl: &StoredCrl, audit: &AuditRecord) -> Result<(), StoreError> {
        let mut tx = self.write().await?;
        insert_crl(&mut tx, crl).await?;
        audit_log::append(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Applies a verified directory in one transaction: it replaces the federation's
    /// directory-sourced peers and anchors, and its CRL when it carries a newer one.
    pub async fn apply_directory(
        &self,
        directory: &StoredDirectory,
        peers: &[StoredPeer],
        anchors: &[StoredAnchor],
        crl: Option<&StoredCrl>,
        audit: &AuditRecord,
    ) -> Result<(), StoreError> {
        let mut tx = self.write().await?;
        sqlx::query(
            "INSERT INTO directories (federation, sequence, issued_at, imported_at, document)
             VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (federation) DO UPDATE SET sequence = excluded.sequence,
                 issued_at = excluded.issued_at, imported_at = excluded.imported_at,
                 document = excluded.document",
        )
        .bind(&directory.federation)
        .bind(to_i64(directory.sequence))
        .bind(ms(directory.issued_at))
        .bind(ms(directory.imported_at))
        .bind(&directory.document)
        .execute(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM trust_peers WHERE source = 'directory' AND identity LIKE $1")
            .bind(format!("spiffe://{}/team/%", directory.federation))
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM trust_anchors WHERE source = 'directory' AND federation = $1")
            .bind(&directory.federation)
            .execute(&mut *tx)
            .await?;
        for peer in peers {
            insert_peer(&mut tx, peer).await?;
        }
        for anchor in anchors {
            insert_anchor(&mut tx, anchor).await?;
        }
        if let Some(crl) = crl {
            insert_crl(&mut tx, crl).await?;
        }
        audit_log::append(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(())
    }
}

async fn insert_peer(tx: &mut Tx, peer: &StoredPeer) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO trust_peers (identity, endpoint, role, discipline, jurisdiction,
                                  cjis_authorized, pinned_sha256, source, added_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
         ON CONFLICT (identity) DO UPDATE SET endpoint = excluded.endpoint,
             role = excluded.role, discipline = excluded.discipline,
             jurisdiction = excluded.jurisdiction, cjis_authorized = excluded.cjis_authorized,
             pinned_sha256 = excluded.pinned_sha256, source = excluded.source,
             added_at = excluded.added_at",
    )
    .bind(&peer.identity)
    .bind(&peer.endpoint)
    .bind(&peer.role)
    .bind(&peer.discipline)
    .bind(&peer.jurisdiction)
    .bind(i64::from(peer.cjis_authorized))
    .bind(&peer.pinned_sha256)
    .bind(&peer.source)
    .bind(ms(tx.now()))
    .execute(&mut **tx)
    .await?;
    Ok(())
}

async fn insert_anchor(tx: &mut Tx, anchor: &StoredAnchor) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO trust_anchors (fingerprint, federation, pem, source, added_at)
         VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (fingerprint) DO UPDATE SET federation = excluded.federation,
             pem = excluded.pem, source = excluded.source, added_at = excluded.added_at",
    )
    .bind(&anchor.fingerprint)
    .bind(&anchor.federation)
    .bind(&anchor.pem)
    .bind(&anchor.source)
    .bind(ms(tx.now()))
    .execute(&mut **tx)
    .await?;
    Ok(())
}

async fn insert_crl(tx: &mut Tx, crl: &StoredCrl) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO crls (federation, crl_number, pem, imported_at) VALUES ($1, $2, $3, $4)
         ON CONFLICT (federation) DO UPDATE SET crl_number = excluded.crl_number,
             pem = excluded.pem, imported_at = excluded.imported_at
         WHERE excluded.crl_number > crls.crl_number",
    )
    .bind(&crl.federation)
    .bind(to_i64(crl.crl_number))
    .bind(&crl.pem)
    .bind(ms(tx.now()))
    .execute(&mut **tx)
    .await?;
    Ok(())
}
