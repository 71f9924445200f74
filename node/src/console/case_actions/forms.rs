//! Each open action drawn as a form: its fields with their limits, problems beside them, the
//! live preview before its button.

use maud::{Markup, html};
use uuid::Uuid;

use crate::app::CaseRecord;
use crate::case_message::{self, InformationKind, InterventionCode, MAX_TEXT_CHARS};
use crate::category::DataCategory;
use crate::console::Console;
use crate::console::page::{self, Fields};
use crate::console::referral::{team_name, team_title};
use crate::console::session::Staff;
use crate::console::words;
use crate::lifecycle::Side;
use crate::referral::{ReasonCode, ReferralStatus};

use super::*;

/// The forms of every action offered, with the one being written filled in.
pub fn forms(
    console: &Console,
    staff: &Staff,
    record: &CaseRecord,
    facts: &Facts,
    editing: Option<&Editing<'_>>,
) -> Markup {
    let offered = offered(facts);
    if offered.is_empty() {
        return html! {
            p id="no-actions" {
                @if !facts.decides && matches!(facts.status, ReferralStatus::Sent | ReferralStatus::Received) && facts.side == Side::Recipient {
                    "Your role (" (words::role(staff.role)) ") reads cases and writes to the other team; a chair accepts, declines, completes, forwards and consults."
                } @else {
                    "There is nothing to do on this case now."
                }
            }
        };
    }
    let empty = Fields::default();
    let form_of = |action: Action| -> (&Fields, &[Problem]) {
        match editing {
            Some(e) if e.action == action => (e.fields, e.problems),
            _ => (&empty, &[]),
        }
    };
    let one_click: Vec<Action> = offered
        .iter()
        .copied()
        .filter(|a| a.one_click().is_some())
        .collect();
    html! {
        @if !one_click.is_empty() {
            div.actions id="actions" {
                @for action in &one_click {
                    @if let Some(next) = action.one_click() {
                        form method="post" action=(format!("/referrals/{}/status", facts.id)) {
                            (page::csrf_field(staff))
                            input type="hidden" name="status" value=(next.as_str());
                            input type="hidden" name="from" value=(facts.status.as_str());
                            input type="hidden" name="key" value=(Uuid::now_v7().to_string());
                            @let id = match action { Action::Accept => "action-accept", Action::Assess => "action-assess", _ => "action-close" };
                            button type="submit" id=(id) { (action.heading()) }
                        }
                    }
                }
            }
        }
        @if !facts.decides && facts.side == Side::Recipient && matches!(facts.status, ReferralStatus::Sent | ReferralStatus::Received) {
            p.hint id="no-actions" { "Your role (" (words::role(staff.role)) ") writes to the other team; a chair accepts, declines, completes, forwards and consults." }
        }
        @for action in offered.iter().copied().filter(|a| a.one_click().is_none()) {
            @let (fields, problems) = form_of(action);
            (form(console, staff, record, facts, action, fields, problems, editing.is_some_and(|e| e.action == action)))
        }
    }
}

/// One action's form: its fields, the live preview before the button (so it comes first on
/// a narrow screen too), and the "Check and send" button.
#[allow(clippy::too_many_arguments)]
fn form(
    console: &Console,
    staff: &Staff,
    record: &CaseRecord,
    facts: &Facts,
    action: Action,
    fields: &Fields,
    problems: &[Problem],
    open: bool,
) -> Markup {
    let slug = action.slug();
    let key = match fields.get("key") {
        "" => Uuid::now_v7().to_string(),
        key => key.to_owned(),
    };
    let general: Vec<&Problem> = problems.iter().filter(|p| p.field.is_none()).collect();
    let f = FormCtx {
        slug,
        fields,
        problems,
    };
    let other = team_name(&facts.other);
    let state = console.trust().state();
    html! {
        details.card.action-form id=(format!("{slug}-form")) open[open] {
            summary { h3 { (action.heading()) } }
            form method="post" action=(format!("/referrals/{}/{slug}", facts.id))
                hx-post=(format!("/referrals/{}/preview/{slug}", facts.id))
                hx-trigger="change, input delay:600ms"
                hx-target=(format!("#{slug}-preview")) hx-swap="innerHTML" {
                (page::csrf_field(staff))
                input type="hidden" name="key" value=(key);
                @if !general.is_empty() {
                    div.notice.error role="alert" id=(format!("{slug}-problem")) {
                        @for p in &general { p { (p.text) } }
                    }
                }
                @match action {
                    Action::Decline | Action::Cancel => {
                        (f.select("reason_code", "Why (they always see this)", "Choose a reason",
                            &ReasonCode::all().map(|c| (c.as_str().to_owned(), words::reason(c))).collect::<Vec<_>>()))
                        (f.area("reason", "In your own words (optional)", Some("They see these words only as far as the law and your policy allow; the preview says whether they do.")))
                    }
                    Action::Complete => {
                        (f.text("scheme", "Scheme the level comes from", "CSTAG"))
                        (f.text("level", "Level of concern", ""))
                        (f.check("management_plan", "A plan to manage the risk is in place"))
                    }
                    Action::Advise => {
                        (f.area("advice", "Your advice", None))
                        (f.area("recommendations", "Recommendations (optional)", Some("One per line.")))
                    }
                    Action::Ask => {
                        (f.area("question", "Your question", None))
                        (f.choices("wanted", "The information you need (optional)",
                            &DataCategory::ALL.iter().filter(|c| **c != DataCategory::Assessment)
                                .map(|c| (c.as_str().to_owned(), words::category(*c).to_owned(), None)).collect::<Vec<_>>(), false))
                    }
                    Action::Answer => {
                        @if let Some(question) = facts.question.and_then(|q| record.messages.iter().find(|m| m.message.id == q)) {
                            input type="hidden" name="answers" value=(question.message.id);
                            blockquote.question {
                                p { (team_title(&facts.other)) " asked on " (page::datetime(question.message.at)) ":" }
                                @if let case_message::CaseBody::InformationRequest { question: text, wanted } = &question.message.body {
                                    @if let Some(text) = text { p.text { (text) } }
                                    @if !wanted.is_empty() {
                                        p { "They need: " (wanted.iter().map(|c| words::category_short(*c)).collect::<Vec<_>>().join(", ")) "." }
                                    }
                                }
                            }
                        }
                        (f.area("text", "Your answer", None))
                        (f.behaviours())
                    }
                    Action::Inform => {
                        (f.choices("kind", "What is it about?",
                            &<InformationKind as strum::IntoEnumIterator>::iter()
                                .map(|k| (k.as_str().to_owned(), words::information(k).to_owned(), None)).collect::<Vec<_>>(), true))
                        (f.check("urgent", "Urgent: put it first in their list"))
                        (f.area("text", "What happened", None))
                        (f.behaviours())
                    }
                    Action::Plan | Action::Reassess => {
                        @if action == Action::Reassess {
                            (f.text("scheme", "Scheme the level comes from", "CSTAG"))
                            (f.text("level", "New level of concern", ""))
                        }
                        (f.plan(&state.local.identity.uri(), &facts.other, &facts.forward_to))
                        (f.date("next", "Next reassessment"))
                    }
                    Action::Forward => {
                        p.hint { "It is filtered again against the consent the sender attached; what the sender marked as not to be passed on stays here." }
                        (f.select("recipient", "Team", "Choose a team",
                            &facts.forward_to.iter().map(|t| (t.clone(), words::team(page::team(t)))).collect::<Vec<_>>()))
                        (f.area("justification", "Why they need it (optional)", Some("The original reason goes with it; add one if this team's need is different.")))
                    }
                    Action::Consult => {
                        (f.choices("partner", "Partner teams",
                            &facts.partners.iter().map(|t| (t.clone(), words::team(page::team(t)), None)).collect::<Vec<_>>(), false))
                        (f.area("question", "Your question", None))
                    }
                    Action::Accept | Action::Assess | Action::Close => {}
                }
                section.preview aria-labelledby=(format!("{slug}-preview-heading")) {
                    h4 id=(format!("{slug}-preview-heading")) {
                        @if action == Action::Consult { "What will reach the partners, and why" }
                        @else if action == Action::Forward { "What will reach the team, and why" }
                        @else { "What will reach " (other) ", and why" }
                    }
                    div id=(format!("{slug}-preview")) aria-live="polite" {
                        p.hint { "As you write, this shows what the law and your policy let reach them." }
                    }
                }
                p { button type="submit" name="step" value="check" id=(format!("{slug}-check")) { "Check and send" } }
            }
        }
    }
}

/// What every field of one form needs: the form's slug (for element ids), its values, and
/// its problems.
struct FormCtx<'a> {
    slug: &'static str,
    fields: &'a Fields,
    problems: &'a [Problem],
}

impl FormCtx<'_> {
    fn id(&self, name: &str) -> String {
        format!("{}-{name}", self.slug)
    }

    /// The field's problems, as the element after its label, and the id that names them.
    fn problem(&self, name: &str) -> Option<(String, Markup)> {
        let texts: Vec<&str> = self
            .problems
            .iter()
            .filter(|p| p.field == Some(name))
            .map(|p| p.text.as_str())
            .collect();
        if texts.is_empty() {
            return None;
        }
        let id = format!("{}-problem", self.id(name));
        let markup = html! { p.field-problem id=(id) { @for t in &texts { (t) " " } } };
        Some((id, markup))
    }

    fn described(&self, name: &str, hint: Option<&str>) -> (Option<String>, bool, Markup) {
        let hint_id = hint.map(|_| format!("{}-hint", self.id(name)));
        let problem = self.problem(name);
        let mut ids: Vec<String> = Vec::new();
        if let Some(h) = &hint_id {
            ids.push(h.clone());
        }
        if let Some((id, _)) = &problem {
            ids.push(id.clone());
        }
        let markup = html! {
            @if let (Some(id), Some(hint)) = (&hint_id, hint) { p.hint id=(id) { (hint) } }
            @if let Some((_, m)) = &problem { (m) }
        };
        (
            (!ids.is_empty()).then(|| ids.join(" ")),
            problem.is_some(),
            markup,
        )
    }

    fn text(&self, name: &str, label: &str, default: &str) -> Markup {
        let (describedby, invalid, notes) = self.described(name, None);
        let value = match self.fields.get(name) {
            "" => default,
            value => value,
        };
        html! {
            label for=(self.id(name)) { (label) }
            (notes)
            input type="text" id=(self.id(name)) name=(name) value=(value)
                aria-describedby=[describedby] aria-invalid=[invalid.then_some("true")];
        }
    }

    fn date(&self, name: &str, label: &str) -> Markup {
        let (describedby, invalid, notes) = self.described(name, None);
        html! {
            label for=(self.id(name)) { (label) }
            (notes)
            input type="date" id=(self.id(name)) name=(name) value=(self.fields.get(name))
                aria-describedby=[describedby] aria-invalid=[invalid.then_some("true")];
        }
    }

    /// A textarea with its limit and a live counter (`assets/limits.js`).
    fn area(&self, name: &str, label: &str, hint: Option<&str>) -> Markup {
        let limit_hint = match hint {
            Some(h) => format!("{h} At most {MAX_TEXT_CHARS} characters."),
            None => format!("At most {MAX_TEXT_CHARS} characters."),
        };
        let (describedby, invalid, notes) = self.described(name, Some(&limit_hint));
        let counter = format!("{}-count", self.id(name));
        // The counter describes the field, so a screen reader reads it with the field rather
        // than announcing every keystroke.
        let describedby = match describedby {
            Some(ids) => format!("{ids} {counter}"),
            None => counter.clone(),
        };
        let value = self.fields.get(name);
        html! {
            label for=(self.id(name)) { (label) }
            (notes)
            textarea id=(self.id(name)) name=(name) data-limit=(MAX_TEXT_CHARS) data-counter=(counter)
                aria-describedby=(describedby) aria-invalid=[invalid.then_some("true")] { (value) }
            p.counter id=(counter) { (value.chars().count()) " of " (MAX_TEXT_CHARS) " characters" }
        }
    }

    fn check(&self, name: &str, label: &str) -> Markup {
        html! {
            p { input type="checkbox" id=(self.id(name)) name=(name) value="yes" checked[self.fields.checked(name)];
                label.inline for=(self.id(name)) { (label) } }
        }
    }

    fn select(
        &self,
        name: &str,
        label: &str,
        prompt: &str,
        options: &[(String, String)],
    ) -> Markup {
        let (describedby, invalid, notes) = self.described(name, None);
        let chosen = self.fields.get(name);
        html! {
            label for=(self.id(name)) { (label) }
            (notes)
            select id=(self.id(name)) name=(name)
                aria-describedby=[describedby] aria-invalid=[invalid.then_some("true")] {
                option value="" selected[chosen.is_empty()] { (prompt) }
                @for (value, text) in options {
                    option value=(value) selected[chosen == value] { (text) }
                }
            }
        }
    }

    /// A described list of choices: checkboxes, or radio buttons for one choice. Each option
    /// is `(value, words, meaning)`.
    fn choices(
        &self,
        name: &str,
        legend: &str,
        options: &[(String, String, Option<&str>)],
        one: bool,
    ) -> Markup {
        let (describedby, _, notes) = self.described(name, None);
        let chosen = self.fields.all(name);
        html! {
            fieldset.choices id=(self.id(name)) aria-describedby=[describedby] {
                legend { (legend) }
                (notes)
                @for (i, (value, text, meaning)) in options.iter().enumerate() {
                    @let id = format!("{}-{i}", self.id(name));
                    div.choice {
                        input type=(if one { "radio" } else { "checkbox" }) id=(id) name=(name) value=(value)
                            checked[chosen.contains(value)];
                        label.inline for=(id) {
                            (text)
                            @if let Some(m) = meaning { span.meaning { " " (m) } }
                        }
                    }
                }
            }
        }
    }

    /// The behaviours of concern, from the described list, and when they were seen.
    fn behaviours(&self) -> Markup {
        let options: Vec<(String, String, Option<&str>)> = words::BEHAVIORS
            .iter()
            .map(|b| (b.code.to_owned(), format!("{}:", b.name), Some(b.meaning)))
            .collect();
        html! {
            (self.choices("behavior", "Behaviours of concern (optional)", &options, false))
            (self.date("observed_on", "When they were seen (optional)"))
        }
    }

    /// The steps of a plan, from the described list, each with the team that does it.
    fn plan(&self, ours: &str, other: &str, others: &[String]) -> Markup {
        let (describedby, _, notes) = self.described("intervention", None);
        let chosen = self.fields.all("intervention");
        let mut teams = vec![ours.to_owned(), other.to_owned()];
        teams.extend(others.iter().filter(|t| *t != other && *t != ours).cloned());
        html! {
            fieldset.choices id=(self.id("intervention")) aria-describedby=[describedby] {
                legend { "Steps of the plan" }
                (notes)
                @for code in <InterventionCode as strum::IntoEnumIterator>::iter() {
                    @let id = format!("{}-intervention-{}", self.slug, code.as_str());
                    @let team_field = format!("team-{}", code.as_str());
                    @let team_id = format!("{}-team-{}", self.slug, code.as_str());
                    @let team_chosen = self.fields.get(&team_field);
                    div.choice.plan-step {
                        input type="checkbox" id=(id) name="intervention" value=(code.as_str())
                            checked[chosen.iter().any(|c| c == code.as_str())];
                        label.inline for=(id) { (words::intervention(code)) }
                        label.inline for=(team_id) { span.visually-hidden { (words::intervention(code)) ": " } "by" }
                        select id=(team_id) name=(team_field) {
                            @for (i, team) in teams.iter().enumerate() {
                                option value=(team) selected[team_chosen == team || (team_chosen.is_empty() && i == 0)] {
                                    (words::team(page::team(team))) @if i == 0 { " (your team)" }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}
