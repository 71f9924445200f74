//! Turning wire values into text a person reads, tables into aligned columns, and `--json`
//! output into one stable document.
//!
//! The `--json` form of every list command is an array of objects with snake_case keys, times
//! in RFC 3339 (UTC), enums as the same lower-case words the table shows, and an absent value as
//! `null`; it carries the fields of the table, with full identities where the table shortens
//! them to team ids. Scripts can rely on that shape.

use tatmx_proto::v1 as pb;
use time::OffsetDateTime;

/// A wire timestamp as `YYYY-MM-DD HH:MM:SS UTC`, or `-`.
pub fn time(ts: Option<&prost_types::Timestamp>) -> String {
    ts.and_then(|ts| OffsetDateTime::from_unix_timestamp(ts.seconds).ok())
        .map(|t| {
            let f = time::macros::format_description!(
                "[year]-[month]-[day] [hour]:[minute]:[second] UTC"
            );
            t.format(&f).unwrap_or_else(|_| t.to_string())
        })
        .unwrap_or_else(|| "-".into())
}

/// A wire timestamp as RFC 3339, for JSON, or null.
pub fn time_json(ts: Option<&prost_types::Timestamp>) -> serde_json::Value {
    ts.and_then(|ts| OffsetDateTime::from_unix_timestamp(ts.seconds).ok())
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .map_or(serde_json::Value::Null, serde_json::Value::String)
}

/// Prints one JSON document on standard output, the whole output of a `--json` command.
pub fn print_json(value: &impl serde::Serialize) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

/// A time as RFC 3339, for JSON.
pub fn datetime_json(at: OffsetDateTime) -> serde_json::Value {
    at.format(&time::format_description::well_known::Rfc3339)
        .map_or(serde_json::Value::Null, serde_json::Value::String)
}

/// Category names, such as `THREAT, BEHAVIOR`.
pub fn categories(values: &[i32]) -> Vec<String> {
    values
        .iter()
        .map(|v| {
            pb::DataCategory::try_from(*v)
                .map(|c| {
                    c.as_str_name()
                        .trim_start_matches("DATA_CATEGORY_")
                        .to_owned()
                })
                .unwrap_or_else(|_| format!("UNKNOWN({v})"))
        })
        .collect()
}

/// A referral status in lower case, such as `received`.
pub fn status(value: i32) -> String {
    enum_name(
        pb::ReferralStatus::try_from(value).map(|s| s.as_str_name()),
        "REFERRAL_STATUS_",
        value,
    )
}

/// A purpose in lower case, such as `threat-assessment`.
pub fn purpose(value: i32) -> String {
    enum_name(
        pb::Purpose::try_from(value).map(|s| s.as_str_name()),
        "PURPOSE_",
        value,
    )
}

/// A reason code in lower case, such as `referred-elsewhere`.
pub fn reason_code(value: i32) -> String {
    enum_name(
        pb::ReasonCode::try_from(value).map(|s| s.as_str_name()),
        "REASON_CODE_",
        value,
    )
}

/// A legal basis in lower case, such as `health-safety-emergency`.
pub fn basis(value: i32) -> String {
    enum_name(
        pb::LegalBasis::try_from(value).map(|s| s.as_str_name()),
        "LEGAL_BASIS_",
        value,
    )
}

/// A delivery state in lower case.
pub fn delivery_state(value: i32) -> String {
    enum_name(
        pb::DeliveryState::try_from(value).map(|s| s.as_str_name()),
        "DELIVERY_STATE_",
        value,
    )
}

/// A message kind in lower case.
pub fn message_kind(value: i32) -> String {
    enum_name(
        pb::MessageKind::try_from(value).map(|s| s.as_str_name()),
        "MESSAGE_KIND_",
        value,
    )
}

fn enum_name<E>(name: Result<&str, E>, prefix: &str, value: i32) -> String {
    match name {
        Ok(name) => name
            .trim_start_matches(prefix)
            .to_ascii_lowercase()
            .replace('_', "-"),
        Err(_) => format!("unknown({value})"),
    }
}

/// The team id part of an identity URI, for compact display.
pub fn team(uri: &str) -> &str {
    uri.rsplit_once("/team/").map_or(uri, |(_, team)| team)
}

/// Prints rows under headers, each column as wide as its widest cell.
pub fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(cell.chars().count());
            }
        }
    }
    let line = |cells: Vec<&str>| {
        let mut out = String::new();
        for (i, cell) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                out.push_str(cell);
            } else {
                out.push_str(&format!("{cell:<width$}  ", width = widths[i]));
            }
        }
        out.trim_end().to_owned()
    };
    let mut out = line(headers.to_vec());
    out.push('\n');
    for row in rows {
        out.push_str(&line(row.iter().map(String::as_str).collect()));
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_columns() {
        let t = table(
            &["A", "LONGER"],
            &[
                vec!["wide cell".into(), "x".into()],
                vec!["y".into(), "z".into()],
            ],
        );
        assert_eq!(t, "A          LONGER\nwide cell  x\ny          z\n");
    }

    #[test]
    fn enum_names_read_as_words() {
        assert_eq!(
            status(pb::ReferralStatus::InfoRequested as i32),
            "info-requested"
        );
        assert_eq!(status(99), "unknown(99)");
        assert_eq!(team("spiffe://f.example/team/core"), "core");
    }
}
