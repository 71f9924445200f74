//! "My cases" in SQL: every case this team sent or received as one page of a list (filtered,
//! sorted and paged in the database), this team's own references for a case (sealed, and
//! found through keyed digests), and when each staff member last opened each case.
//!
//! A team's case number and its reference for the person identify the person, so they are
//! sealed like the rest of a case: under the referral's data key when it has one (a received
//! referral, a forward), else under a key made for the case with the referral's id, the key a
//! sent referral's received case messages are sealed under too. A purge deletes them with the
//! case ([`purge_in`]). The database cannot compare sealed values, so the search matches keyed
//! digests the application layer makes with the node's case key ([`IndexedReferences`]), and
//! sorting by case number opens the numbers of the matching cases (nothing else of them) and
//! sorts them here; every other order is paged by the database itself.

use std::cmp::Ordering;

use sqlx::Row;
use sqlx::any::AnyRow;
use time::OffsetDateTime;
use uuid::Uuid;

use super::case_messages::case_key;
use super::codec::{from_ms, ms, stored_status};
use super::referrals::sealing_of;
use super::{Backend, Direction, Store, StoreError, Tx};
use crate::referral::ReferralStatus;
use crate::vault;

/// This team's own references for a case, as its staff typed them: kept here, never sent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CaseReferences {
    /// This team's case number.
    pub case_number: Option<String>,
    /// This team's reference for the person (as its consents name them).
    pub local_reference: Option<String>,
}

impl CaseReferences {
    /// Whether neither reference is set.
    pub fn is_empty(&self) -> bool {
        self.case_number.is_none() && self.local_reference.is_none()
    }
}

/// References ready to store: the values, and the keyed digests the search matches, which
/// the application layer makes with the node's case key (the store never holds that key).
#[derive(Debug, Clone, Default)]
pub struct IndexedReferences {
    /// The references.
    pub references: CaseReferences,
    /// Hex digests of every searchable prefix of both references.
    pub digests: Vec<String>,
}

/// Which cases a page of "My cases" shows, and in which order.
#[derive(Debug, Clone)]
pub struct CaseQuery {
    /// Who is reading, as the audit log names them: what is unread is unread for them.
    pub reader: String,
    /// The keyed digest of the normalised search text: cases whose case number or local
    /// reference starts with it.
    pub search: Option<String>,
    /// Only open (`true`) or only closed (`false`) cases.
    pub open: Option<bool>,
    /// Only cases this team sent, or only cases it received.
    pub direction: Option<Direction>,
    /// Only cases in this status.
    pub status: Option<ReferralStatus>,
    /// The order.
    pub sort: CaseSort,
    /// The page, from 1; a page past the last shows the last.
    pub page: u32,
    /// Cases on a page.
    pub per_page: u32,
}

/// The orders "My cases" offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CaseSort {
    /// Urgent new information not yet read first, then open cases before closed ones, then
    /// the latest activity first.
    #[default]
    Priority,
    /// The latest activity first.
    Activity,
    /// By this team's case number; cases without one last.
    CaseNumber,
    /// By where the case stands, in the order a case moves; the latest activity first within.
    Status,
}

/// One case as "My cases" lists it: what and where, never its content.
#[derive(Debug, Clone)]
pub struct CaseRow {
    /// The referral.
    pub referral_id: Uuid,
    /// Sent by this team, or received.
    pub direction: Direction,
    /// Where it stands.
    pub status: ReferralStatus,
    /// The other team, as an identity URI.
    pub other_team: String,
    /// A consultation request rather than a referral.
    pub consultation: bool,
    /// This team's own references.
    pub references: CaseReferences,
    /// The latest thing that happened on it, by either team.
    pub last_activity: OffsetDateTime,
    /// Something arrived from the other team since the reader last opened it.
    pub unread: bool,
    /// Urgent new information arrived and no one here has read the case since.
    pub urgent: bool,
}

/// One page of "My cases".
#[derive(Debug, Clone)]
pub struct CasePage {
    /// The cases on this page.
    pub rows: Vec<CaseRow>,
    /// How many cases match, on every page.
    pub total: u64,
    /// This page, from 1.
    pub page: u32,
    /// How many pages there are (at least 1).
    pub pages: u32,
}

/// The statuses in which nothing more happens on a case: the console's "closed" (it matches
/// `console::words::is_open`, which a test checks).
pub const CLOSED: [ReferralStatus; 4] = [
    ReferralStatus::Declined,
    ReferralStatus::Closed,
    ReferralStatus::Cancelled,
    ReferralStatus::Completed,
];

/// The order a case moves through its statuses, for sorting by status.
const STATUS_ORDER: [ReferralStatus; 11] = [
    ReferralStatus::Received,
    ReferralStatus::Sent,
    ReferralStatus::InfoRequested,
    ReferralStatus::Accepted,
    ReferralStatus::InAssessment,
    ReferralStatus::Completed,
    ReferralStatus::UnderManagement,
    ReferralStatus::Forwarded,
    ReferralStatus::Declined,
    ReferralStatus::Cancelled,
    ReferralStatus::Closed,
];

/// A list of statuses as SQL literals; the names are the node's own constants, never input.
fn status_list(statuses: &[ReferralStatus]) -> String {
    statuses
        .iter()
        .map(|s| format!("'{}'", s.as_str()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The sealing context of one reference, bound to its case.
fn reference_context(referral_id: Uuid, what: &str) -> String {
    format!("case_references/{referral_id}/{what}")
}

/// The WHERE clause of a query's filters, its placeholders numbered from `first`, and the
/// values to bind to them in order.
fn filters(query: &CaseQuery, first: usize) -> (String, Vec<String>) {
    let mut clauses = vec!["1 = 1".to_owned()];
    let mut binds = Vec::new();
    let next = |value: String, binds: &mut Vec<String>| {
        binds.push(value);
        format!("${}", first + binds.len() - 1)
    };
    if let Some(direction) = query.direction {
        let p = next(direction.as_str().to_owned(), &mut binds);
        clauses.push(format!("r.direction = {p}"));
    }
    if let Some(status) = query.status {
        let p = next(status.as_str().to_owned(), &mut binds);
        clauses.push(format!("r.status = {p}"));
    }
    match query.open {
        Some(true) => clauses.push(format!("r.status NOT IN ({})", status_list(&CLOSED))),
        Some(false) => clauses.push(format!("r.status IN ({})", status_list(&CLOSED))),
        None => {}
    }
    if let Some(digest) = &query.search {
        let p = next(digest.clone(), &mut binds);
        clauses.push(format!(
            "EXISTS (SELECT 1 FROM case_reference_digests d
                     WHERE d.referral_id = r.id AND d.digest = {p})"
        ));
    }
    (clauses.join(" AND "), binds)
}

/// Every column a [`CaseRow`] needs, for the cases `where_clause` keeps; `$1` is the reader.
/// The latest activity and the latest arrival are computed here, so the database can order
/// and page by them: a status change counts from when this node recorded it (older rows:
/// from its author's time), and the other team's `received` acknowledgement is not news.
fn case_rows_sql(backend: Backend, where_clause: &str) -> String {
    // The larger of several values: a function of two names for one thing.
    let greatest = match backend {
        Backend::Sqlite => "MAX",
        Backend::Postgres => "GREATEST",
    };
    format!(
        "SELECT r.id, r.direction, r.status, r.sender, r.recipient, r.consultation_id,
                ref.case_number, ref.local_reference, k.key AS reference_key,
                COALESCE(rd.opened_at, 0) AS opened_at,
                {greatest}(r.recorded_at,
                    COALESCE((SELECT MAX(COALESCE(e.recorded_at, e.at)) FROM status_events e
                              WHERE e.referral_id = r.id), 0),
                    COALESCE((SELECT MAX(m.recorded_at) FROM case_messages m
                              WHERE m.referral_id = r.id), 0)) AS last_activity,
                {greatest}(CASE WHEN r.direction = 'inbound' THEN r.recorded_at ELSE 0 END,
                    COALESCE((SELECT MAX(COALESCE(e.recorded_at, e.at)) FROM status_events e
                              WHERE e.referral_id = r.id AND e.status <> 'received'
                                AND e.actor = CASE WHEN r.direction = 'outbound'
                                                   THEN r.recipient ELSE r.sender END), 0),
                    COALESCE((SELECT MAX(m.recorded_at) FROM case_messages m
                              WHERE m.referral_id = r.id AND m.direction = 'inbound'), 0))
                    AS last_arrival,
                CAST(CASE WHEN EXISTS (SELECT 1 FROM case_messages m
                                       WHERE m.referral_id = r.id AND m.direction = 'inbound'
                                         AND m.urgent = 1 AND m.seen_at IS NULL)
                          THEN 1 ELSE 0 END AS BIGINT) AS urgent,
                CAST(CASE WHEN r.status IN ({closed}) THEN 0 ELSE 1 END AS BIGINT) AS is_open
         FROM referrals r
         LEFT JOIN case_references ref ON ref.referral_id = r.id
         LEFT JOIN data_keys k ON k.id = ref.data_key
         LEFT JOIN case_reads rd ON rd.referral_id = r.id AND rd.reader = $1
         WHERE {where_clause}",
        closed = status_list(&CLOSED),
    )
}

/// The ORDER BY of a sort the database does, over the columns of [`case_rows_sql`].
fn order_by(sort: CaseSort) -> String {
    match sort {
        CaseSort::Priority | CaseSort::CaseNumber => {
            "c.urgent DESC, c.is_open DESC, c.last_activity DESC, c.id DESC".to_owned()
        }
        CaseSort::Activity => "c.last_activity DESC, c.id DESC".to_owned(),
        CaseSort::Status => {
            let ranks: String = STATUS_ORDER
                .iter()
                .enumerate()
                .map(|(rank, s)| format!(" WHEN '{}' THEN {rank}", s.as_str()))
                .collect();
            format!("CASE c.status{ranks} ELSE 99 END, c.last_activity DESC, c.id DESC")
        }
    }
}

/// Reads one row of [`case_rows_sql`], opening its references.
fn case_row(row: &AnyRow) -> Result<CaseRow, StoreError> {
    let id: String = row.try_get("id")?;
    let corrupt = |problem: &str| StoreError::Corrupt {
        table: "referrals",
        id: id.clone(),
        problem: problem.to_owned(),
    };
    let referral_id = Uuid::parse_str(&id).map_err(|_| corrupt("id"))?;
    let direction = match row.try_get::<String, _>("direction")?.as_str() {
        "outbound" => Direction::Outbound,
        "inbound" => Direction::Inbound,
        _ => return Err(corrupt("unknown direction")),
    };
    let other_team: String = row.try_get(match direction {
        Direction::Outbound => "recipient",
        Direction::Inbound => "sender",
    })?;
    let key: Option<Vec<u8>> = row.try_get("reference_key")?;
    let open = |what: &str| -> Result<Option<String>, StoreError> {
        let sealed: Option<Vec<u8>> = row.try_get(what)?;
        match (sealed, &key) {
            (None, _) => Ok(None),
            (Some(sealed), Some(key)) => {
                let plain = vault::open(key, &reference_context(referral_id, what), &sealed)?;
                String::from_utf8(plain)
                    .map(Some)
                    .map_err(|_| corrupt("a reference is not text"))
            }
            (Some(_), None) => Err(corrupt("the key of its references is gone")),
        }
    };
    let opened_at: i64 = row.try_get("opened_at")?;
    let last_arrival: i64 = row.try_get("last_arrival")?;
    Ok(CaseRow {
        referral_id,
        direction,
        status: stored_status(row, referral_id)?,
        other_team,
        consultation: row
            .try_get::<Option<String>, _>("consultation_id")?
            .is_some(),
        references: CaseReferences {
            case_number: open("case_number")?,
            local_reference: open("local_reference")?,
        },
        last_activity: from_ms(row.try_get("last_activity")?),
        unread: last_arrival > opened_at,
        urgent: row.try_get::<i64, _>("urgent")? != 0,
    })
}

/// Case numbers in the order staff expect: without regard to letter case, numbers in them
/// by value ("LHS-9" before "LHS-10"); cases without a number last.
fn by_case_number(a: &CaseRow, b: &CaseRow) -> Ordering {
    match (&a.references.case_number, &b.references.case_number) {
        (Some(x), Some(y)) => natural(x, y),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => Ordering::Equal,
    }
    .then(b.last_activity.cmp(&a.last_activity))
    .then(b.referral_id.cmp(&a.referral_id))
}

/// Compares two texts with their runs of digits by value and the rest without case.
fn natural(a: &str, b: &str) -> Ordering {
    let (mut a, mut b) = (a.chars().peekable(), b.chars().peekable());
    loop {
        match (a.peek().copied(), b.peek().copied()) {
            (None, None) => return Ordering::Equal,
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(x), Some(y)) if x.is_ascii_digit() && y.is_ascii_digit() => {
                let run = |it: &mut std::iter::Peekable<std::str::Chars<'_>>| {
                    let mut digits = String::new();
                    while let Some(d) = it.next_if(char::is_ascii_digit) {
                        digits.push(d);
                    }
                    digits.trim_start_matches('0').to_owned()
                };
                let (x, y) = (run(&mut a), run(&mut b));
                let order = x.len().cmp(&y.len()).then_with(|| x.cmp(&y));
                if order != Ordering::Equal {
                    return order;
                }
            }
            (Some(x), Some(y)) => {
                let order = x.to_lowercase().cmp(y.to_lowercase());
                if order != Ordering::Equal {
                    return order;
                }
                a.next();
                b.next();
            }
        }
    }
}

impl Store {
    /// One page of the cases this team sent or received, as `query` filters and orders them,
    /// with how many match in all.
    pub async fn cases(&self, query: &CaseQuery) -> Result<CasePage, StoreError> {
        let per_page = query.per_page.max(1);
        let (count_where, count_binds) = filters(query, 1);
        let count_sql = format!("SELECT COUNT(*) FROM referrals r WHERE {count_where}");
        let mut count = sqlx::query_scalar::<_, i64>(&count_sql);
        for value in &count_binds {
            count = count.bind(value);
        }
        let total = u64::try_from(count.fetch_one(&self.pool).await?).unwrap_or(0);
        let pages = u32::try_from(total.div_ceil(u64::from(per_page)))
            .unwrap_or(u32::MAX)
            .max(1);
        let page = query.page.clamp(1, pages);
        let offset = u64::from(page - 1) * u64::from(per_page);
        let (where_clause, binds) = filters(query, 2);
        let select = case_rows_sql(self.backend, &where_clause);
        let rows = if query.sort == CaseSort::CaseNumber {
            // Sealed numbers cannot be ordered by the database: the matching cases' rows
            // (references, never content) are read and ordered here, then paged.
            let mut sql = sqlx::query(&select).bind(&query.reader);
            for value in &binds {
                sql = sql.bind(value);
            }
            let mut rows = sql
                .fetch_all(&self.pool)
                .await?
                .iter()
                .map(case_row)
                .collect::<Result<Vec<_>, _>>()?;
            rows.sort_by(by_case_number);
            rows.into_iter()
                .skip(usize::try_from(offset).unwrap_or(usize::MAX))
                .take(usize::try_from(per_page).unwrap_or(usize::MAX))
                .collect()
        } else {
            let limit = format!("${}", binds.len() + 2);
            let skip = format!("${}", binds.len() + 3);
            let sql_text = format!(
                "SELECT * FROM ({select}) c ORDER BY {} LIMIT {limit} OFFSET {skip}",
                order_by(query.sort)
            );
            let mut sql = sqlx::query(&sql_text).bind(&query.reader);
            for value in &binds {
                sql = sql.bind(value);
            }
            sql.bind(i64::from(per_page))
                .bind(i64::try_from(offset).unwrap_or(i64::MAX))
                .fetch_all(&self.pool)
                .await?
                .iter()
                .map(case_row)
                .collect::<Result<Vec<_>, _>>()?
        };
        Ok(CasePage {
            rows,
            total,
            page,
            pages,
        })
    }

    /// The referrals one of whose references has `digest` among its indexed prefixes: the
    /// candidates for a reference typed whole, which the caller confirms by reading them.
    pub async fn referrals_with_reference_digest(
        &self,
        digest: &str,
    ) -> Result<Vec<Uuid>, StoreError> {
        let rows = sqlx::query("SELECT referral_id FROM case_reference_digests WHERE digest = $1")
            .bind(digest)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|row| {
                let id: String = row.try_get("referral_id")?;
                Uuid::parse_str(&id).map_err(|e| StoreError::Corrupt {
                    table: "case_reference_digests",
                    id,
                    problem: e.to_string(),
                })
            })
            .collect()
    }

    /// This team's own references for a case; empty when none were given.
    pub async fn case_references(&self, referral_id: Uuid) -> Result<CaseReferences, StoreError> {
        let row = sqlx::query(
            "SELECT ref.case_number, ref.local_reference, k.key
             FROM case_references ref LEFT JOIN data_keys k ON k.id = ref.data_key
             WHERE ref.referral_id = $1",
        )
        .bind(referral_id.to_string())
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else {
            return Ok(CaseReferences::default());
        };
        let key: Option<Vec<u8>> = row.try_get("key")?;
        let open = |what: &str| -> Result<Option<String>, StoreError> {
            let sealed: Option<Vec<u8>> = row.try_get(what)?;
            let corrupt = |problem: &str| StoreError::Corrupt {
                table: "case_references",
                id: referral_id.to_string(),
                problem: problem.to_owned(),
            };
            match (sealed, &key) {
                (None, _) => Ok(None),
                (Some(sealed), Some(key)) => String::from_utf8(vault::open(
                    key,
                    &reference_context(referral_id, what),
                    &sealed,
                )?)
                .map(Some)
                .map_err(|_| corrupt("a reference is not text")),
                (Some(_), None) => Err(corrupt("the key of its references is gone")),
            }
        };
        Ok(CaseReferences {
            case_number: open("case_number")?,
            local_reference: open("local_reference")?,
        })
    }

    /// Sets (or, with both empty, clears) this team's own references for a case. Returns
    /// `false`, changing nothing, when this node holds no such referral.
    pub async fn set_case_references(
        &self,
        referral_id: Uuid,
        references: &IndexedReferences,
    ) -> Result<bool, StoreError> {
        let mut tx = self.write().await?;
        let exists: Option<String> = sqlx::query_scalar("SELECT id FROM referrals WHERE id = $1")
            .bind(referral_id.to_string())
            .fetch_optional(&mut *tx)
            .await?;
        if exists.is_none() {
            return Ok(false);
        }
        let now = tx.now();
        put_references(&mut tx, referral_id, references, now).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Records that `reader` opened a case now: what arrived on it so far is read for them,
    /// and its received case messages are seen (no longer urgent news for anyone).
    pub async fn mark_case_opened(
        &self,
        reader: &str,
        referral_id: Uuid,
    ) -> Result<(), StoreError> {
        let mut tx = self.write().await?;
        let now = ms(tx.now());
        sqlx::query(
            "INSERT INTO case_reads (reader, referral_id, opened_at) VALUES ($1, $2, $3)
             ON CONFLICT (reader, referral_id) DO UPDATE SET opened_at = excluded.opened_at",
        )
        .bind(reader)
        .bind(referral_id.to_string())
        .bind(now)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "UPDATE case_messages SET seen_at = $1
             WHERE referral_id = $2 AND direction = 'inbound' AND seen_at IS NULL",
        )
        .bind(now)
        .bind(referral_id.to_string())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }
}

/// Stores a case's references in `tx`, sealed, with their digests, replacing any before;
/// both empty removes them.
pub(super) async fn put_references(
    tx: &mut Tx,
    referral_id: Uuid,
    indexed: &IndexedReferences,
    now: OffsetDateTime,
) -> Result<(), StoreError> {
    let id = referral_id.to_string();
    sqlx::query("DELETE FROM case_reference_digests WHERE referral_id = $1")
        .bind(&id)
        .execute(&mut **tx)
        .await?;
    let references = &indexed.references;
    if references.is_empty() {
        sqlx::query("DELETE FROM case_references WHERE referral_id = $1")
            .bind(&id)
            .execute(&mut **tx)
            .await?;
        return Ok(());
    }
    let sealing = match sealing_of(tx, referral_id).await? {
        Some(sealing) => sealing,
        None => case_key(tx, referral_id, now).await?,
    };
    let seal = |what: &str, text: &Option<String>| {
        text.as_ref()
            .map(|t| {
                vault::seal(
                    &sealing.key,
                    &reference_context(referral_id, what),
                    t.as_bytes(),
                )
            })
            .transpose()
    };
    sqlx::query(
        "INSERT INTO case_references (referral_id, data_key, case_number, local_reference,
                                      changed_at)
         VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (referral_id) DO UPDATE SET data_key = excluded.data_key,
             case_number = excluded.case_number, local_reference = excluded.local_reference,
             changed_at = excluded.changed_at",
    )
    .bind(&id)
    .bind(&sealing.key_id)
    .bind(seal("case_number", &references.case_number)?)
    .bind(seal("local_reference", &references.local_reference)?)
    .bind(ms(now))
    .execute(&mut **tx)
    .await?;
    for digest in &indexed.digests {
        sqlx::query(
            "INSERT INTO case_reference_digests (digest, referral_id) VALUES ($1, $2)
             ON CONFLICT DO NOTHING",
        )
        .bind(digest)
        .bind(&id)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

/// Removes a purged case's references, their digests, the key made for them, and who read
/// it, in `tx`.
pub(super) async fn purge_in(tx: &mut Tx, referral_id: &str) -> Result<(), StoreError> {
    // The key made for the case has the referral's id; a forward's references are sealed
    // under its source's key, which goes with the source.
    sqlx::query("DELETE FROM data_keys WHERE id = $1")
        .bind(referral_id)
        .execute(&mut **tx)
        .await?;
    for table in ["case_references", "case_reference_digests", "case_reads"] {
        sqlx::query(&format!("DELETE FROM {table} WHERE referral_id = $1"))
            .bind(referral_id)
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn case_numbers_sort_by_their_numbers_and_without_letter_case() {
        let mut numbers = vec!["lhs-10", "LHS-9", "LHS-009a", "abc", "LHS-2"];
        numbers.sort_by(|a, b| natural(a, b));
        assert_eq!(numbers, ["abc", "LHS-2", "LHS-9", "LHS-009a", "lhs-10"]);
    }
}
