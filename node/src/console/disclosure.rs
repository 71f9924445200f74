//! "What will reach them, and why": the filter's decision for each kind of information, in
//! words, as every outgoing form's live preview and its confirmation step show it.
//!
//! The decisions come from the node's own dry run (the same filter that runs when the
//! message is sent), so what the preview promises is what leaves. The rules' ids, which
//! counsel and admins need and case workers do not, stay behind a "Details" control.

use maud::{Markup, html};

use super::page;
use super::words;
use crate::filter::{FieldDecision, Outcome};
use crate::referral::Withheld;

/// What happens to one kind of information, in words, with the CSS class of its badge.
fn outcome(outcome: Outcome, recipient: &str) -> (&'static str, String) {
    match outcome {
        Outcome::Disclose => ("outcome-disclose", format!("Will reach {recipient}")),
        Outcome::Pseudonymize => (
            "outcome-pseudonymize",
            "Replaced by a case code that does not name the person".to_owned(),
        ),
        Outcome::Withhold => ("outcome-withhold", "Stays here".to_owned()),
    }
}

/// Why the filter decided as it did, in sentences. When no rule decided (the policy denies
/// by default what nothing permits), the filter's own sentence names the codes it compared;
/// staff read instead that nothing allows it, and the codes stay behind "Details".
pub fn why(reasons: &[String], rules: &[String]) -> String {
    if rules.is_empty() {
        // Read by the sender in a preview and by the recipient in the manifest alike, so it
        // names neither as "you".
        return "No rule of the law or of the sending agency's policy lets this kind of information reach the receiving team for this purpose, on the reason given for sharing; without one, it is not sent.".to_owned();
    }
    reasons
        .iter()
        .map(|r| page::sentence(r))
        .collect::<Vec<_>>()
        .join(" ")
}

/// One kind of information kept back from a message, after `lead` ("Your own words are kept
/// back: "), with why in words and the codes behind "Details".
pub fn kept_back(lead: &str, withheld: &Withheld) -> Markup {
    html! {
        li.kept-back data-category=(withheld.category.as_str()) {
            (lead) (why(&withheld.reasons, &withheld.rules))
            (details(withheld))
        }
    }
}

/// The codes behind a kept-back kind: the rules that decided, or, where none did, the
/// filter's own sentence.
pub fn details(withheld: &Withheld) -> Markup {
    html! {
        details.codes { summary { "Details" } p.mono {
            @if withheld.rules.is_empty() { (withheld.reasons.join(" ")) } @else { (withheld.rules.join(", ")) }
        } }
    }
}

/// The decisions for `recipient` (a team id or identity URI), one card each: the kind of
/// information, what happens to it, and why, after a sentence that sums them up. `id`, where
/// the page has one list of them, is the list's element id (its sentence's is `{id}-summary`).
pub fn decisions(id: Option<&str>, decisions: &[FieldDecision], recipient: &str) -> Markup {
    let recipient = words::team(page::team(recipient));
    let reaching = decisions
        .iter()
        .filter(|d| d.outcome == Outcome::Disclose)
        .count();
    html! {
        p.preview-summary id=[id.map(|id| format!("{id}-summary"))] {
            @if decisions.is_empty() {
                "Only the coded parts reach " strong { (recipient) } ": there is no case information in it."
            } @else if reaching == 0 {
                "None of the information in it will reach " strong { (recipient) } "."
            } @else {
                (reaching) " of the " (decisions.len()) " kinds of information in it will reach " strong { (recipient) } "."
            }
        }
        @if !decisions.is_empty() { ul.decisions id=[id] {
            @for d in decisions {
                @let (class, text) = outcome(d.outcome, &recipient);
                li.decision data-category=(d.category.as_str()) data-outcome=(d.outcome.as_str()) {
                    span.decision-what { (words::category(d.category)) }
                    " "
                    span class=(format!("badge {class}")) { (text) }
                    @if !d.reasons.is_empty() || d.outcome != Outcome::Disclose {
                        p.decision-why { "Why: " (why(&d.reasons, &d.rules)) }
                    }
                    details.decision-details {
                        summary { "Details" span.visually-hidden { " for " (words::category_short(d.category)) } }
                        p.mono { (d.category.as_str()) ": " (d.outcome.as_str()) }
                        @if d.rules.is_empty() { p.mono { (d.reasons.join(" ")) } }
                        @else { p.mono { "Rules: " (d.rules.join(", ")) } }
                    }
                }
            }
        } }
    }
}
