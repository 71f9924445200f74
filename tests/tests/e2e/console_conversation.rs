//! A case as a conversation in the console, between two real nodes: the county asks and the
//! school answers, each with the live preview, the "Check and send" step and a confirmation;
//! a decline's coded reason reaches the school in words; a plan and a reassessment reach the
//! school; each page offers exactly the actions open to its user, and the server refuses a
//! crafted request for any other.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns; a panic is the failure report

use std::time::Duration;

use tatmx_proto::v1 as pb;
use tatmx_tests::{TeamSpec, TestFederation, console_section, web_certificate};

use super::console::{Browser, Page, add_user, browser, encode};

/// The county's own counsel, as in `case.rs`: case questions and notes may go back to the
/// referring school, so the school can read the county's question.
const CASE_NOTES_TO_SCHOOLS: &str = r#"@id("local-case-notes-to-referring-schools")
@reason("this county's agreement with its school district: case questions and notes may go back to the referring school")
permit (principal, action == Action::"disclose", resource == Category::"NARRATIVE")
when { context.recipient.role == "affiliate" && context.recipient.discipline == "education" };
"#;

/// A county core team with [`CASE_NOTES_TO_SCHOOLS`] and a school, both with their consoles.
fn county_and_school() -> (TestFederation, TeamSpec, TeamSpec) {
    let mut fed = TestFederation::new("county-mdt.example");
    let core = fed.team("county-core", "core", "law-enforcement");
    let school = fed.team("lincoln-high", "affiliate", "education");
    for team in [&core, &school] {
        web_certificate(&fed, team);
    }
    let local = core.dir.join("local.cedar");
    std::fs::write(&local, CASE_NOTES_TO_SCHOOLS).unwrap();
    let policy = format!("[policy]\nfiles = [\"{}\"]\n", local.display());
    fed.write_config(
        &core,
        &[&school],
        &format!("{policy}{}", console_section("30m")),
    );
    fed.write_config(&school, &[&core], &console_section("30m"));
    (fed, core, school)
}

/// A referral from the school, received at the county; its id.
async fn referral_received(core: &TeamSpec, school: &TeamSpec) -> String {
    let mut client = tatmx_tests::agency(school).await;
    let id = tatmx_tests::submit(&mut client, tatmx_tests::draft("county-core")).await;
    tatmx_tests::referral_when(core, &id, "receipt", |r| {
        r.status == pb::ReferralStatus::Received as i32
    })
    .await;
    id
}

/// The value of hidden field `name` in the form whose element id is `form`.
fn hidden(page: &Page, form: &str, name: &str) -> String {
    let start = page
        .body
        .find(&format!(r#"id="{form}""#))
        .unwrap_or_else(|| panic!("no form {form} on the page"));
    let marker = format!(r#"name="{name}" value=""#);
    let at = page.body[start..]
        .find(&marker)
        .unwrap_or_else(|| panic!("no field {name} in {form}"))
        + start
        + marker.len();
    page.body[at..].split('"').next().unwrap_or("").to_owned()
}

/// Posts one step of a case form, with the page's CSRF token and the form's key.
async fn step(
    web: &mut Browser,
    id: &str,
    action: &str,
    step: &str,
    fields: &[(&str, &str)],
) -> Page {
    let page = web.get(&format!("/referrals/{id}")).await;
    let csrf = page.csrf();
    let key = hidden(&page, &format!("{action}-form"), "key");
    let mut all = vec![
        ("csrf", csrf.as_str()),
        ("key", key.as_str()),
        ("step", step),
    ];
    all.extend_from_slice(fields);
    web.post(&format!("/referrals/{id}/{action}"), &all).await
}

/// Checks a form and confirms it as the "Check and send" page does: the check step, then the
/// same fields sent twice (a double click) with one key; returns the check page and the two
/// answers.
async fn check_and_send(
    web: &mut Browser,
    id: &str,
    action: &str,
    fields: &[(&str, &str)],
) -> (Page, Page, Page) {
    let page = web.get(&format!("/referrals/{id}")).await;
    let csrf = page.csrf();
    let key = hidden(&page, &format!("{action}-form"), "key");
    let mut all = vec![("csrf", csrf.as_str()), ("key", key.as_str())];
    all.extend_from_slice(fields);
    let path = format!("/referrals/{id}/{action}");
    let mut check = all.clone();
    check.push(("step", "check"));
    let checked = web.post(&path, &check).await;
    assert_eq!(checked.status, 200, "{}", checked.body);
    assert!(
        checked.body.contains(r#"id="confirm-send""#),
        "{}",
        checked.body
    );
    let mut send = all.clone();
    send.push(("step", "send"));
    let first = web.post(&path, &send).await;
    let second = web.post(&path, &send).await;
    (checked, first, second)
}

/// The case page, once `seen` is on it.
async fn page_showing(web: &mut Browser, id: &str, seen: &str) -> Page {
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        let page = web.get(&format!("/referrals/{id}")).await;
        if page.body.contains(seen) {
            return page;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {seen} on the case page: {}",
            page.body
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn count(page: &Page, text: &str) -> usize {
    page.body.matches(text).count()
}

#[tokio::test]
async fn the_county_asks_the_school_answers_each_checked_before_it_is_sent() {
    let (fed, core, school) = county_and_school();
    let core_node = tatmx_tests::start(&core).await;
    let school_node = tatmx_tests::start(&school).await;
    let id = referral_received(&core, &school).await;
    let chair = add_user(&core, "erin", "chair").await;
    let worker = add_user(&core, "bob", "case-worker").await;
    let counsellor = add_user(&school, "dana", "case-worker").await;

    // A case worker writes to the other team but decides nothing.
    let mut bob = browser(&core_node, &fed);
    assert_eq!(bob.sign_in(&worker).await.status, 303);
    let seen = bob.get(&format!("/referrals/{id}")).await;
    assert!(seen.body.contains(r#"id="ask-form""#), "{}", seen.body);
    for chair_only in ["action-accept", "decline-form", "forward-form", "plan-form"] {
        assert!(
            !seen.body.contains(chair_only),
            "a case worker is offered {chair_only}"
        );
    }
    assert!(seen.body.contains(r#"id="no-actions""#));

    let mut erin = browser(&core_node, &fed);
    assert_eq!(erin.sign_in(&chair).await.status, 303);
    let page = erin.get(&format!("/cases/{id}")).await;
    assert_eq!(page.status, 200);
    assert!(
        page.body
            .contains("New: waiting for your team to accept or decline"),
        "the status is not in words: {}",
        page.body
    );
    assert!(page.body.contains(r#"id="entry-referral""#));
    assert!(page.body.contains("action-accept") && page.body.contains(r#"id="decline-form""#));

    // The live preview says what will reach the school, and stores nothing.
    let question = "Who saw what happened at lunch on Friday?";
    let key = hidden(&page, "ask-form", "key");
    let csrf = page.csrf();
    let preview = erin
        .send(
            "POST",
            &format!("/referrals/{id}/preview/ask"),
            Some(encode(&[
                ("csrf", &csrf),
                ("key", &key),
                ("question", question),
                ("wanted", "THIRD_PARTY"),
            ])),
            &[("hx-request", "true"), ("x-csrf-token", &csrf)],
        )
        .await;
    assert_eq!(preview.status, 200, "{}", preview.body);
    assert!(
        preview
            .body
            .contains(r#"data-category="NARRATIVE" data-outcome="disclose""#),
        "{}",
        preview.body
    );
    assert!(preview.body.contains("will reach"), "{}", preview.body);

    // "Change it" brings the form back with the text kept, and sends nothing.
    let changed = step(
        &mut erin,
        &id,
        "ask",
        "change",
        &[("question", question), ("wanted", "THIRD_PARTY")],
    )
    .await;
    assert_eq!(changed.status, 200);
    assert!(changed.body.contains(question), "{}", changed.body);
    assert!(changed.body.contains("Nothing was sent"));

    let fields = [("question", question), ("wanted", "THIRD_PARTY")];
    let (checked, first, second) = check_and_send(&mut erin, &id, "ask", &fields).await;
    assert!(checked.body.contains("Check and send"), "{}", checked.body);
    assert!(checked.body.contains(question));
    assert_eq!(first.status, 303, "{}", first.body);
    assert_eq!(first.location(), format!("/referrals/{id}?done=asked"));
    assert_eq!(second.location(), first.location(), "{}", second.body);
    let after = erin.get(first.location()).await;
    assert!(
        after
            .body
            .contains("Your question was sent to Lincoln High. You will see their answer here."),
        "{}",
        after.body
    );
    assert_eq!(
        count(&after, r#"data-kind="information-request""#),
        1,
        "a double click sent the question twice"
    );

    // The school sees the question on its case page, and the case waits for its answer.
    let mut dana = browser(&school_node, &fed);
    assert_eq!(dana.sign_in(&counsellor).await.status, 303);
    let school_page = page_showing(&mut dana, &id, question).await;
    assert!(
        school_page.body.contains(r#"id="answer-form""#),
        "{}",
        school_page.body
    );
    assert!(school_page.body.contains("Other people involved"));
    page_showing(&mut dana, &id, "Waiting for more information from you").await;

    // An answer that is not ready comes back with the problem next to its field.
    let empty = step(&mut dana, &id, "answer", "check", &[("text", "")]).await;
    assert_eq!(empty.status, 422);
    assert!(
        empty.body.contains(r#"id="answer-text-problem""#)
            && empty.body.contains(r#"aria-invalid="true""#),
        "{}",
        empty.body
    );
    assert!(!empty.body.contains("content."), "a field path is shown");
    let bad_date = step(
        &mut dana,
        &id,
        "answer",
        "check",
        &[
            ("text", "x"),
            ("behavior", "LEAKAGE"),
            ("observed_on", "last week"),
        ],
    )
    .await;
    assert_eq!(bad_date.status, 422);
    assert!(bad_date.body.contains(r#"id="answer-observed_on-problem""#));
    assert!(bad_date.body.contains("last week"), "the text was not kept");

    let answer = "Two classmates saw it; their names are in the school's file.";
    let (checked, first, second) = check_and_send(
        &mut dana,
        &id,
        "answer",
        &[
            ("text", answer),
            ("behavior", "LEAKAGE"),
            ("observed_on", "2026-11-20"),
        ],
    )
    .await;
    assert!(
        checked
            .body
            .contains(r#"data-category="BEHAVIOR" data-outcome="disclose""#),
        "{}",
        checked.body
    );
    assert!(
        checked.body.contains("Told others"),
        "the behaviour is not in words"
    );
    assert_eq!(first.location(), format!("/referrals/{id}?done=answered"));
    assert_eq!(second.location(), first.location());
    let after = dana.get(first.location()).await;
    assert!(after.body.contains("Your answer was sent to County Core."));
    assert!(
        !after.body.contains(r#"id="answer-form""#),
        "the question is still open"
    );

    // The county sees the answer in the conversation, once.
    let county = page_showing(&mut erin, &id, answer).await;
    assert_eq!(count(&county, r#"data-kind="supplement""#), 1);
    assert!(county.body.contains("answered with more information"));
    assert!(county.body.contains("In answer to the question of"));
    core_node.shutdown().await;
    school_node.shutdown().await;
}

#[tokio::test]
async fn a_decline_reaches_the_school_in_words_and_what_is_not_open_is_refused() {
    let (fed, core, school) = county_and_school();
    let core_node = tatmx_tests::start(&core).await;
    let school_node = tatmx_tests::start(&school).await;
    let id = referral_received(&core, &school).await;
    let chair = add_user(&core, "erin", "chair").await;
    let counsellor = add_user(&school, "dana", "case-worker").await;
    let mut erin = browser(&core_node, &fed);
    assert_eq!(erin.sign_in(&chair).await.status, 303);

    // No reason chosen: the form comes back with the problem next to the reason.
    let missing = step(
        &mut erin,
        &id,
        "decline",
        "check",
        &[("reason", "Not ours.")],
    )
    .await;
    assert_eq!(missing.status, 422, "{}", missing.body);
    assert!(
        missing.body.contains(r#"id="decline-reason_code-problem""#),
        "{}",
        missing.body
    );
    assert!(missing.body.contains("Not ours."), "the text was not kept");
    // Sending without the check step only checks: nothing leaves without its confirmation.
    let page = erin.get(&format!("/referrals/{id}")).await;
    let unconfirmed = erin
        .post(
            &format!("/referrals/{id}/decline"),
            &[
                ("csrf", &page.csrf()),
                ("key", &hidden(&page, "decline-form", "key")),
                ("reason_code", "outside-jurisdiction"),
            ],
        )
        .await;
    assert_eq!(unconfirmed.status, 200);
    assert!(unconfirmed.body.contains(r#"id="confirm-send""#));

    let (checked, first, _) = check_and_send(
        &mut erin,
        &id,
        "decline",
        &[
            ("reason_code", "outside-jurisdiction"),
            ("reason", "The student lives in the next county."),
        ],
    )
    .await;
    assert!(
        checked.body.contains("Outside our jurisdiction"),
        "{}",
        checked.body
    );
    assert!(checked.body.contains("This always reaches them"));
    assert_eq!(first.location(), format!("/referrals/{id}?done=declined"));

    // Declined: nothing that needs an open referral is offered, and a crafted request for it
    // is refused with a page that says so.
    let declined = erin.get(first.location()).await;
    assert!(declined.body.contains("You declined the referral."));
    assert!(declined.body.contains(r#"data-status="declined""#));
    for gone in ["action-accept", r#"id="decline-form""#, r#"id="ask-form""#] {
        assert!(!declined.body.contains(gone), "{gone} is still offered");
    }
    let forced = erin
        .submit(
            &format!("/referrals/{id}"),
            &format!("/referrals/{id}/status"),
            &[("status", "accepted")],
        )
        .await;
    assert_eq!(forced.status, 422, "{}", forced.body);
    assert!(
        forced
            .body
            .contains("is not something you can do on this case now"),
        "{}",
        forced.body
    );
    let planned = erin
        .submit(
            &format!("/referrals/{id}"),
            &format!("/referrals/{id}/plan"),
            &[("step", "send"), ("intervention", "check-ins")],
        )
        .await;
    assert_eq!(planned.status, 422, "{}", planned.body);
    let unknown = erin
        .submit(
            &format!("/referrals/{id}"),
            &format!("/referrals/{id}/status"),
            &[("status", "sent")],
        )
        .await;
    assert_eq!(unknown.status, 422);
    let record = tatmx_tests::referral_when(&core, &id, "still declined", |_| true).await;
    assert_eq!(record.status, pb::ReferralStatus::Declined as i32);

    // The school reads the decline and its reason in words; a case worker there cannot
    // withdraw it, whatever the browser sends.
    let mut dana = browser(&school_node, &fed);
    assert_eq!(dana.sign_in(&counsellor).await.status, 303);
    let school_page = page_showing(&mut dana, &id, r#"data-status="declined""#).await;
    assert!(school_page.body.contains("Declined by their team"));
    assert!(
        school_page.body.contains("Outside our jurisdiction"),
        "{}",
        school_page.body
    );
    assert!(
        school_page
            .body
            .contains("County Core declined the referral")
    );
    let withdraw = dana
        .submit(
            &format!("/referrals/{id}"),
            &format!("/referrals/{id}/cancel"),
            &[("step", "send"), ("reason_code", "duplicate")],
        )
        .await;
    assert_eq!(withdraw.status, 403, "{}", withdraw.body);
    core_node.shutdown().await;
    school_node.shutdown().await;
}

#[tokio::test]
async fn a_plan_and_a_reassessment_recorded_in_the_console_reach_the_school() {
    let (fed, core, school) = county_and_school();
    let core_node = tatmx_tests::start(&core).await;
    let school_node = tatmx_tests::start(&school).await;
    let id = referral_received(&core, &school).await;
    let chair = add_user(&core, "erin", "chair").await;
    let counsellor = add_user(&school, "dana", "case-worker").await;
    let mut erin = browser(&core_node, &fed);
    assert_eq!(erin.sign_in(&chair).await.status, 303);

    // Accepting is one click; the same click again answers as the first did.
    let page = erin.get(&format!("/referrals/{id}")).await;
    let accept = [
        ("csrf", page.csrf()),
        ("status", "accepted".to_owned()),
        ("from", "received".to_owned()),
        ("key", uuid::Uuid::now_v7().to_string()),
    ];
    let accept: Vec<(&str, &str)> = accept.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let first = erin.post(&format!("/referrals/{id}/status"), &accept).await;
    let again = erin.post(&format!("/referrals/{id}/status"), &accept).await;
    assert_eq!(first.location(), format!("/referrals/{id}?done=accepted"));
    assert_eq!(again.location(), first.location(), "{}", again.body);
    let accepted = erin.get(first.location()).await;
    assert!(
        !accepted.body.contains("action-accept"),
        "Accept is offered after accepting"
    );
    assert!(accepted.body.contains(r#"id="plan-form""#));
    assert!(!accepted.body.contains(r#"id="reassess-form""#));

    let today = time::OffsetDateTime::now_utc().date();
    let date = |days| tatmx_node::case_message::format_date(today + time::Duration::days(days));
    let in_past = date(-2);
    let past = step(
        &mut erin,
        &id,
        "plan",
        "check",
        &[("intervention", "check-ins"), ("next", &in_past)],
    )
    .await;
    assert_eq!(past.status, 422);
    assert!(
        past.body.contains(r#"id="plan-next-problem""#),
        "{}",
        past.body
    );

    let school_uri = school.identity.uri();
    let next = date(30);
    let (_, planned, _) = check_and_send(
        &mut erin,
        &id,
        "plan",
        &[
            ("intervention", "check-ins"),
            ("team-check-ins", &school_uri),
            ("next", &next),
        ],
    )
    .await;
    assert_eq!(planned.location(), format!("/referrals/{id}?done=planned"));
    let after = erin.get(planned.location()).await;
    assert!(after.body.contains(r#"id="reassess-form""#));
    assert!(!after.body.contains(r#"id="plan-form""#));

    let later = date(60);
    let (checked, reassessed, _) = check_and_send(
        &mut erin,
        &id,
        "reassess",
        &[
            ("scheme", "CSTAG"),
            ("level", "transient"),
            ("intervention", "safety-plan"),
            ("next", &later),
        ],
    )
    .await;
    assert!(
        checked
            .body
            .contains("A written safety plan with the person and family"),
        "{}",
        checked.body
    );
    assert_eq!(
        reassessed.location(),
        format!("/referrals/{id}?done=reassessed")
    );

    let mut dana = browser(&school_node, &fed);
    assert_eq!(dana.sign_in(&counsellor).await.status, 303);
    let school_page = page_showing(&mut dana, &id, r#"data-kind="reassessment""#).await;
    assert!(school_page.body.contains("County Core reassessed the risk"));
    assert!(
        school_page
            .body
            .contains("Level of concern now: <strong>transient</strong>"),
        "{}",
        school_page.body
    );
    assert!(
        school_page
            .body
            .contains("Regular check-ins with a named adult or officer, by Lincoln High")
    );
    // The school reads the plan; it does not make one.
    assert!(!school_page.body.contains(r#"id="plan-form""#));
    core_node.shutdown().await;
    school_node.shutdown().await;
}

#[tokio::test]
async fn a_forward_and_a_consultation_start_with_no_team_chosen_and_are_checked_before_they_leave()
{
    let mut fed = TestFederation::new("county-mdt.example");
    let core = fed.team("county-core", "core", "law-enforcement");
    let school = fed.team("lincoln-high", "affiliate", "education");
    let state = fed.team("state-police-tat", "core", "law-enforcement");
    let bau = fed.team("fbi-bau", "partner", "federal-partner");
    for team in [&core, &school] {
        web_certificate(&fed, team);
    }
    fed.write_config(&core, &[&school, &state, &bau], &console_section("30m"));
    fed.write_config(&school, &[&core], &console_section("30m"));
    fed.write_config(&state, &[&core], "");
    fed.write_config(&bau, &[&core], "");
    let core_node = tatmx_tests::start(&core).await;
    let school_node = tatmx_tests::start(&school).await;
    let id = referral_received(&core, &school).await;
    let chair = add_user(&core, "erin", "chair").await;
    let mut erin = browser(&core_node, &fed);
    assert_eq!(erin.sign_in(&chair).await.status, 303);

    // No team is chosen for the user; the sender is not offered; a partner is.
    let page = erin.get(&format!("/referrals/{id}")).await;
    assert!(
        page.body
            .contains(r#"<select id="forward-recipient" name="recipient"><option value="" selected>Choose a team</option>"#),
        "{}",
        page.body
    );
    let forward_form = &page.body[page.body.find(r#"id="forward-form""#).unwrap()..];
    let forward_form = &forward_form[..forward_form.find("</form>").unwrap()];
    assert!(forward_form.contains(&state.identity.uri()));
    assert!(!forward_form.contains(&school.identity.uri()));
    assert!(page.body.contains(r#"id="consult-form""#));
    let unchosen = step(&mut erin, &id, "forward", "check", &[]).await;
    assert_eq!(unchosen.status, 422);
    assert!(
        unchosen.body.contains(r#"id="forward-recipient-problem""#),
        "{}",
        unchosen.body
    );

    let state_uri = state.identity.uri();
    let (checked, first, second) =
        check_and_send(&mut erin, &id, "forward", &[("recipient", &state_uri)]).await;
    assert!(
        checked.body.contains("Will reach State Police Tat"),
        "{}",
        checked.body
    );
    assert_eq!(first.location(), format!("/referrals/{id}?done=forwarded"));
    assert_eq!(second.location(), first.location(), "{}", second.body);
    let after = erin.get(first.location()).await;
    assert!(after.body.contains("The referral was passed on."));
    assert_eq!(
        count(&after, r#"data-status="forwarded""#),
        1,
        "a double click forwarded twice"
    );
    assert!(after.body.contains("Passed on to State Police Tat."));

    let bau_uri = bau.identity.uri();
    let question = "Does the pattern of leakage suggest escalation?";
    let (checked, first, _) = check_and_send(
        &mut erin,
        &id,
        "consult",
        &[("partner", &bau_uri), ("question", question)],
    )
    .await;
    assert!(
        checked.body.contains("without the person's identity"),
        "{}",
        checked.body
    );
    assert!(checked.body.contains(question));
    assert_eq!(first.location(), format!("/referrals/{id}?done=consulted"));
    let consultations = erin.get("/consultations").await;
    assert!(
        consultations.body.contains(question),
        "{}",
        consultations.body
    );
    core_node.shutdown().await;
    school_node.shutdown().await;
}
