//! What a referral or a case message carries, in words: its content section by section, the
//! filter's decision for each kind of information ("what will reach them, and why"), and the
//! manifest of what the other team's filter kept back. The case page, the previews beside
//! every outgoing text and the new-referral form all draw them from here, so a decision reads
//! the same wherever it is shown. Rule ids stay behind a "Details" control.

use maud::{Markup, html};

use super::page;
use super::words;
use crate::referral::{ReferralContent, ThreatDetails, Withheld};

/// What another team's filter kept back, and why, with none of its content. `id` is the
/// table's element id.
pub fn withheld(withheld: &[Withheld], id: &str) -> Markup {
    html! {
        table.withheld id=(id) {
            thead { tr { th scope="col" { "Information" } th scope="col" { "What happened" } th scope="col" { "Why" } } }
            tbody {
                @for w in withheld {
                    tr data-category=(w.category.as_str()) {
                        th scope="row" { (words::category(w.category)) }
                        td { @if w.pseudonymized { "replaced by the case handle" } @else { "kept back" } }
                        td {
                            (super::disclosure::why(&w.reasons, &w.rules))
                            (super::disclosure::details(w))
                        }
                    }
                }
            }
        }
    }
}

/// The content sections present, one per kind of information. `id` is the card's element id.
pub fn content(c: &ReferralContent, id: &str) -> Markup {
    let lines = |items: &[String]| items.join("; ");
    let heading = |suffix: &str| format!("{id}-{suffix}");
    html! {
        div.card.content id=(id) {
            @if let Some(i) = &c.identity {
                div.content-section { h4 id=(heading("identity")) { "Who the person is" }
                    p { (i.full_name) @if !i.date_of_birth.is_empty() { ", born " (i.date_of_birth) } }
                    @for x in &i.identifiers { p { (x.system) ": " (x.value) } } }
            }
            @if let Some(x) = &c.contact {
                div.content-section { h4 id=(heading("contact")) { "How to reach the person" }
                    p { (x.address) " " (x.phone) " " (x.email) } }
            }
            @if let Some(b) = &c.behavior {
                div.content-section { h4 id=(heading("behavior")) { "Behaviours of concern" }
                    ul {
                        @for o in &b.observations {
                            li {
                                @match words::behavior(&o.code) {
                                    Some(w) => { strong { (w.name) } ": " (w.meaning) }
                                    None => { (o.code) " (a behaviour this console has no words for)" }
                                }
                                @if !o.observed_on.is_empty() { " Seen on " (o.observed_on) "." }
                            }
                        }
                    }
                }
            }
            @if let Some(t) = &c.threat {
                div.content-section { h4 id=(heading("threat")) { "The threat" }
                    p { (threat_text(t)) } }
            }
            @if let Some(n) = &c.narrative {
                div.content-section { h4 id=(heading("narrative")) { "In their words" } p.text { (n.text) } }
            }
            @if let Some(m) = &c.mental_health {
                div.content-section { h4 id=(heading("mh")) { "Mental health" }
                    p { (lines(&m.diagnoses)) } p { (m.treatment) } }
            }
            @if let Some(s) = &c.substance_use {
                div.content-section { h4 id=(heading("su")) { "Substance use treatment" } p { (s.treatment_record) } }
            }
            @if let Some(e) = &c.education_record {
                div.content-section { h4 id=(heading("edu")) { "School records" }
                    p { (e.school) ", grade " (e.grade) @if e.iep_or_504 { ", IEP or 504 plan" } }
                    @if !e.discipline.is_empty() { p { "Discipline: " (lines(&e.discipline)) } } }
            }
            @if let Some(h) = &c.criminal_history {
                div.content-section { h4 id=(heading("crim")) { "Criminal history" }
                    p { "Arrests: " (lines(&h.arrests)) } p { "Protective orders: " (lines(&h.protective_orders)) }
                    p { "Firearm records: " (lines(&h.firearm_records)) } }
            }
            @if let Some(r) = &c.reporter {
                div.content-section { h4 id=(heading("reporter")) { "Who reported the concern" }
                    p { (r.name) " (" (r.relationship) ") " (r.contact) } }
            }
            @if !c.third_parties.is_empty() {
                div.content-section { h4 id=(heading("third")) { "Other people involved" }
                    ul { @for t in &c.third_parties { li { (t.name) " (" (t.role) ")" } } } }
            }
        }
    }
}

/// Threat details in words, leaving out what was not filled in.
fn threat_text(t: &ThreatDetails) -> String {
    let mut parts = Vec::new();
    if !t.threat_type.is_empty() {
        parts.push(t.threat_type.replace(['-', '_'], " "));
    }
    if !t.target_type.is_empty() {
        parts.push(format!(
            "against: {}",
            t.target_type.replace(['-', '_'], " ")
        ));
    }
    if !t.grievance_code.is_empty() {
        parts.push(format!("grievance: {}", t.grievance_code));
    }
    parts.push(format!(
        "access to weapons: {}",
        if t.weapons_access { "yes" } else { "no" }
    ));
    let mut text = parts.join(", ");
    if let Some(first) = text.get(..1) {
        text = first.to_uppercase() + &text[1..];
    }
    text
}

/// A team identity URI as the team's name in words: "county core".
pub fn team_name(uri: &str) -> String {
    words::team(page::team(uri))
}

/// A team's name at the start of a sentence or on its own: "County core".
pub fn team_title(uri: &str) -> String {
    capitalised(&team_name(uri))
}

/// `text` with its first letter in upper case.
pub fn capitalised(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}
