//! Form fields as every page draws them, and problems beside the field they concern.
//!
//! A page that refuses a form draws it again with everything typed kept, a summary at the
//! top linking to each problem, and each problem in plain words next to its field
//! (`aria-invalid`, `aria-describedby`), as screen readers expect. Text fields show their
//! limit and a live count (`/assets/limits.js`, same-origin as the CSP asks); the limit is
//! checked again here, since a browser need not run the script.

use maud::{Markup, html};

use super::page::{Fields, Refusal};

/// The limit of a one-line text, in characters.
pub const SHORT: usize = 200;
/// The limit of a long text, in characters: a case message's (`case_message::MAX_TEXT_CHARS`).
pub const LONG: usize = crate::case_message::MAX_TEXT_CHARS;
/// The "field" of a problem that concerns the whole form.
pub const TOP: &str = "form";

/// What is wrong with a form, field by field, in the order found.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Problems(Vec<(String, String)>);

impl Problems {
    /// Adds a problem with `field` (a field's name, or [`TOP`]).
    pub fn add(&mut self, field: &str, message: &str) {
        self.0.push((field.to_owned(), message.to_owned()));
    }

    /// Adds a refusal of the node that names no field of the form: its sentence and what to
    /// do, with the node's own words (which may name a protocol field) behind "Details".
    pub fn refused(&mut self, field: &str, refusal: &Refusal) {
        self.add(field, &format!("{} {}", refusal.message, refusal.advice));
    }

    /// Whether nothing is wrong.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The problems with `field`.
    pub fn of(&self, field: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(f, _)| f == field)
            .map(|(_, m)| m.as_str())
            .collect()
    }

    /// The list of every problem, each linking to its field.
    pub fn list(&self) -> Markup {
        html! {
            ul.problem-list {
                @for (field, message) in &self.0 {
                    li {
                        @if field == TOP { (message) } @else { a href=(format!("#{}", anchor(field))) { (message) } }
                    }
                }
            }
        }
    }

    /// The box at the top of a refused form.
    pub fn summary(&self) -> Markup {
        html! {
            @if !self.is_empty() {
                div.notice.error id="problems" role="alert" tabindex="-1" {
                    h2.notice-heading { "Nothing was sent. Please correct this:" }
                    (self.list())
                }
            }
        }
    }
}

/// The element a problem with `field` links to: the field itself.
fn anchor(field: &str) -> String {
    field.replace(
        |c: char| !c.is_ascii_alphanumeric() && c != '-' && c != '_',
        "-",
    )
}

/// The problem lines under a field, and the attributes its input needs.
fn problem_lines(id: &str, problems: &Problems) -> (Option<String>, Markup) {
    let mine = problems.of(id);
    if mine.is_empty() {
        return (None, html! {});
    }
    let error_id = format!("{}-error", anchor(id));
    let lines = html! {
        p.field-error id=(error_id) { span.visually-hidden { "Problem: " } (mine.join(" ")) }
    };
    (Some(error_id), lines)
}

/// `aria-describedby` for a field with an optional hint, an optional problem and a counter.
fn described(ids: &[Option<String>]) -> Option<String> {
    let ids: Vec<&str> = ids.iter().flatten().map(String::as_str).collect();
    (!ids.is_empty()).then(|| ids.join(" "))
}

/// What a text field draws besides its input: its label, hint and problem lines, and the ids
/// its input names in `aria-describedby`.
struct Around {
    id: String,
    count_id: String,
    error_id: Option<String>,
    described_by: Option<String>,
    before: Markup,
}

impl Around {
    fn of(name: &str, label: &str, hint: Option<&str>, problems: &Problems) -> Self {
        let id = anchor(name);
        let hint_id = hint.map(|_| format!("{id}-hint"));
        let count_id = format!("{id}-count");
        let (error_id, lines) = problem_lines(name, problems);
        let described_by = described(&[hint_id.clone(), error_id.clone(), Some(count_id.clone())]);
        let before = html! {
            label for=(id) { (label) }
            @if let (Some(hint), Some(hint_id)) = (hint, &hint_id) { p.hint id=(hint_id) { (hint) } }
            (lines)
        };
        Self {
            id,
            count_id,
            error_id,
            described_by,
            before,
        }
    }
}

/// A one-line text field with its label, hint, limit and problem.
pub fn text(
    name: &str,
    label: &str,
    hint: Option<&str>,
    limit: usize,
    fields: &Fields,
    problems: &Problems,
) -> Markup {
    let a = Around::of(name, label, hint, problems);
    html! {
        div.field {
            (a.before)
            input type="text" id=(a.id) name=(name) value=(fields.get(name)) data-limit=(limit)
                aria-invalid=[a.error_id.as_ref().map(|_| "true")]
                aria-describedby=[a.described_by];
            (counter(&a.count_id, fields.get(name), limit))
        }
    }
}

/// A text area with its label, hint, limit and problem.
pub fn area(
    name: &str,
    label: &str,
    hint: Option<&str>,
    limit: usize,
    fields: &Fields,
    problems: &Problems,
) -> Markup {
    let a = Around::of(name, label, hint, problems);
    html! {
        div.field {
            (a.before)
            textarea id=(a.id) name=(name) data-limit=(limit)
                aria-invalid=[a.error_id.as_ref().map(|_| "true")]
                aria-describedby=[a.described_by] { (fields.get(name)) }
            (counter(&a.count_id, fields.get(name), limit))
        }
    }
}

/// "12 of 200 characters": what the server counts; the script keeps it current as one types.
fn counter(id: &str, value: &str, limit: usize) -> Markup {
    let used = value.chars().count();
    html! {
        p.counter id=(id)
            data-over=[(used > limit).then_some("yes")] {
            (used) " of " (limit) " characters"
        }
    }
}

/// A date field (a calendar in the browser; `YYYY-MM-DD` on the wire).
pub fn date(name: &str, label: &str, fields: &Fields, problems: &Problems) -> Markup {
    let id = anchor(name);
    let (error_id, lines) = problem_lines(name, problems);
    html! {
        span.date-field {
            label.inline for=(id) { (label) }
            (lines)
            input type="date" id=(id) name=(name) value=(fields.get(name))
                aria-invalid=[error_id.as_ref().map(|_| "true")]
                aria-describedby=[error_id];
        }
    }
}

/// A select with its label, hint and problem; `options` are its options.
pub fn select(
    name: &str,
    label: &str,
    hint: Option<&str>,
    _fields: &Fields,
    problems: &Problems,
    options: Markup,
) -> Markup {
    let id = anchor(name);
    let hint_id = hint.map(|_| format!("{id}-hint"));
    let (error_id, lines) = problem_lines(name, problems);
    html! {
        div.field {
            label for=(id) { (label) }
            @if let (Some(hint), Some(hint_id)) = (hint, &hint_id) { p.hint id=(hint_id) { (hint) } }
            (lines)
            select id=(id) name=(name)
                aria-invalid=[error_id.as_ref().map(|_| "true")]
                aria-describedby=[described(&[hint_id.clone(), error_id.clone()])] { (options) }
        }
    }
}

/// A group of radio buttons, with a legend and the group's problem.
pub fn radios(name: &str, legend: &str, problems: &Problems, choices: Markup) -> Markup {
    let id = anchor(name);
    let (error_id, lines) = problem_lines(name, problems);
    html! {
        fieldset.choices id=(id) aria-describedby=[error_id] {
            legend { (legend) }
            (lines)
            (choices)
        }
    }
}

/// One radio button of a group, with its words and an optional longer description.
pub fn radio(name: &str, value: &str, label: &str, hint: Option<&str>, checked: bool) -> Markup {
    let id = format!("{}-{}", anchor(name), anchor(value));
    html! {
        div.choice {
            input type="radio" id=(id) name=(name) value=(value) checked[checked];
            label.inline for=(id) { (label) }
            @if let Some(hint) = hint { p.hint { (hint) } }
        }
    }
}

/// A checkbox with its label.
pub fn check(name: &str, label: &str, fields: &Fields) -> Markup {
    let id = anchor(name);
    html! {
        div.choice {
            input type="checkbox" id=(id) name=(name) value="yes" checked[fields.checked(name)];
            label.inline for=(id) { (label) }
        }
    }
}

/// Adds a problem when `name` holds text longer than `limit` characters.
pub fn check_limit(
    problems: &mut Problems,
    fields: &Fields,
    name: &str,
    label: &str,
    limit: usize,
) {
    let used = fields.get(name).chars().count();
    if used > limit {
        problems.add(
            name,
            &format!("{label} is {used} characters long; it can be at most {limit}. Shorten it."),
        );
    }
}

/// Adds a problem when `name` holds something that is not a date.
pub fn check_date(problems: &mut Problems, fields: &Fields, name: &str, what: &str) {
    let value = fields.get(name);
    let format = time::macros::format_description!("[year]-[month]-[day]");
    if !value.is_empty() && time::Date::parse(value, format).is_err() {
        problems.add(
            name,
            &format!("Write {what} as year-month-day, for example 2010-04-30."),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_field_with_a_problem_says_so_beside_it_and_keeps_what_was_typed() {
        let fields = Fields::parse(b"case_ref=LHS-1");
        let mut problems = Problems::default();
        problems.add("case_ref", "Shorten it.");
        let html = text("case_ref", "Case", None, 3, &fields, &problems).into_string();
        assert!(html.contains(r#"value="LHS-1""#), "{html}");
        assert!(html.contains(r#"aria-invalid="true""#), "{html}");
        assert!(
            html.contains(r#"aria-describedby="case_ref-error case_ref-count""#),
            "{html}"
        );
        assert!(html.contains("5 of 3 characters"), "{html}");
        assert!(
            problems
                .summary()
                .into_string()
                .contains(r##"href="#case_ref""##)
        );
    }

    #[test]
    fn limits_count_characters_not_bytes() {
        let fields = Fields::parse("name=%C3%A9%C3%A9%C3%A9".as_bytes());
        let mut problems = Problems::default();
        check_limit(&mut problems, &fields, "name", "Name", 3);
        assert!(problems.is_empty());
        check_limit(&mut problems, &fields, "name", "Name", 2);
        assert_eq!(
            problems.of("name"),
            ["Name is 3 characters long; it can be at most 2. Shorten it."]
        );
    }
}
