//! "My cases" end to end, over the console's real HTTPS: a school finds what it sent by its
//! own case number, which never leaves it; what arrived is new for each staff member of the
//! county until they open it; the list pages on the server; a case prints without the menu.

use tatmx_proto::v1 as pb;
use tatmx_tests::{Logs, contains, database_bytes};

use crate::console::{Browser, Page, add_user, browser, federation};

/// The school's case number and its reference for the student: canaries, kept at the school.
const CASE_NUMBER: &str = "LHS-CANARY-7731";
const SUBJECT_REF: &str = "CANARY-STUDENT-REF-55";
/// The county's own case number for the same case, set after it arrived.
const COUNTY_NUMBER: &str = "CC-CANARY-2026-9";

/// How many cases a page lists: one row per case carries its referral id.
fn rows(page: &Page) -> usize {
    page.body.matches("data-referral-id=").count()
}

/// Searches "My cases" for `text`, as its search form posts it.
async fn search(web: &mut Browser, text: &str) -> Page {
    web.submit("/cases", "/cases", &[("q", text)]).await
}

#[test]
fn the_school_finds_its_case_by_its_number_which_never_leaves_and_each_reader_sees_what_is_new() {
    Logs::run(the_school_finds_its_case_in);
}

async fn the_school_finds_its_case_in(logs: Logs) {
    let (fed, core, school) = federation("30m");
    let core_node = tatmx_tests::start(&core).await;
    let school_node = tatmx_tests::start(&school).await;
    let worker = add_user(&school, "dana", "case-worker").await;
    let chair = add_user(&core, "erin", "chair").await;
    let colleague = add_user(&core, "finn", "case-worker").await;

    let mut web = browser(&school_node, &fed);
    assert_eq!(web.sign_in(&worker).await.location(), "/cases");
    let empty = web.get("/cases").await;
    assert!(empty.body.contains(r#"id="cases-empty""#), "{}", empty.body);
    let csrf = web.get("/referrals/new").await.csrf();
    let recipient = core.identity.uri();
    let sent = web
        .post(
            "/referrals",
            &[
                ("csrf", csrf.as_str()),
                ("idempotency_key", &uuid::Uuid::now_v7().to_string()),
                ("recipient", recipient.as_str()),
                ("purpose", "threat-assessment"),
                ("legal_basis", "health-safety-emergency"),
                (
                    "justification",
                    "A student described a specific plan to harm classmates this week.",
                ),
                ("case_ref", CASE_NUMBER),
                ("subject_ref", SUBJECT_REF),
                ("identity_name", "CANARY-CASES-NAME"),
                ("threat_type", "targeted-violence"),
                ("target_type", "school"),
                ("confirmed", "yes"),
            ],
        )
        .await;
    assert_eq!(sent.status, 303, "{}", sent.body);
    let id = sent
        .location()
        .trim_start_matches("/referrals/")
        .trim_end_matches("?done=referral-sent")
        .to_owned();
    tatmx_tests::delivered(&school, &id).await;

    // The school's list shows the case under its own number and reference.
    let mine = web.get("/cases").await;
    assert_eq!(rows(&mine), 1, "{}", mine.body);
    assert!(mine.body.contains(CASE_NUMBER) && mine.body.contains(SUBJECT_REF));
    assert!(mine.body.contains("Sent to County Core"), "{}", mine.body);
    // Nothing from the county yet (its automatic acknowledgement is not news).
    assert!(!mine.body.contains("case-unread-"), "{}", mine.body);
    // Found by all of its number, by how it starts in another letter case, and by the
    // reference; a number it does not have finds nothing, and says what was searched.
    for text in [CASE_NUMBER, "lhs-canary", "  canary-student-ref-55 "] {
        let found = search(&mut web, text).await;
        assert_eq!(found.status, 200, "{}", found.body);
        assert!(
            found.body.contains(&format!(r#"data-referral-id="{id}""#)),
            "{text}: {}",
            found.body
        );
    }
    let missing = search(&mut web, "LHS-NOT-HERE").await;
    assert_eq!(rows(&missing), 0);
    assert!(
        missing.body.contains("No cases match “LHS-NOT-HERE”"),
        "{}",
        missing.body
    );
    // Sent filters exclude it when asking for received cases only.
    assert_eq!(rows(&web.get("/cases?way=received").await), 0);
    assert_eq!(rows(&web.get("/cases?way=sent&show=open").await), 1);

    // At the county: new for each reader until they open it.
    let mut county = browser(&core_node, &fed);
    assert_eq!(county.sign_in(&chair).await.location(), "/cases");
    let list = county.get("/cases").await;
    assert!(
        list.body.contains(&format!(r#"id="case-unread-{id}""#)),
        "{}",
        list.body
    );
    assert!(list.body.contains("Received from Lincoln High"));
    assert_eq!(county.get(&format!("/referrals/{id}")).await.status, 200);
    let list = county.get("/cases").await;
    assert!(
        !list.body.contains(&format!(r#"id="case-unread-{id}""#)),
        "opening the case did not clear its marker: {}",
        list.body
    );
    let mut other = browser(&core_node, &fed);
    assert_eq!(other.sign_in(&colleague).await.status, 303);
    let theirs = other.get("/cases").await;
    assert!(
        theirs.body.contains(&format!(r#"id="case-unread-{id}""#)),
        "another reader's marker was cleared too"
    );

    // The county gives the case its own number; it is found by it, and never reaches the
    // school, not even with the acceptance that follows.
    let too_long = county
        .submit(
            &format!("/cases/{id}/references"),
            &format!("/cases/{id}/references"),
            &[("case_number", &"9".repeat(65)), ("local_reference", "")],
        )
        .await;
    assert_eq!(too_long.status, 422);
    assert!(
        too_long.body.contains(r#"aria-invalid="true""#) && too_long.body.contains("too long"),
        "{}",
        too_long.body
    );
    let saved = county
        .submit(
            &format!("/cases/{id}/references"),
            &format!("/cases/{id}/references"),
            &[("case_number", COUNTY_NUMBER), ("local_reference", "")],
        )
        .await;
    assert_eq!(saved.status, 303, "{}", saved.body);
    let confirmed = county.get(saved.location()).await;
    assert!(confirmed.body.contains("Saved."), "{}", confirmed.body);
    assert!(
        search(&mut county, COUNTY_NUMBER)
            .await
            .body
            .contains(&format!(r#"data-referral-id="{id}""#))
    );
    let accepted = county
        .submit(
            &format!("/referrals/{id}"),
            &format!("/referrals/{id}/status"),
            &[("status", "accepted")],
        )
        .await;
    assert_eq!(accepted.status, 303, "{}", accepted.body);
    tatmx_tests::referral_when(&school, &id, "accepted at the school", |r| {
        r.status == pb::ReferralStatus::Accepted as i32
    })
    .await;
    // What arrived from the county is news at the school, in words.
    let mine = web.get("/cases").await;
    assert!(
        mine.body.contains(&format!(r#"id="case-unread-{id}""#))
            && mine.body.contains("Accepted by their team"),
        "{}",
        mine.body
    );

    // The print view: titled with the team's number, without the menu, and a case read.
    let printed = county.get(&format!("/cases/{id}/print")).await;
    assert_eq!(printed.status, 200, "{}", printed.body);
    assert!(printed.body.contains(&format!("Case {COUNTY_NUMBER}")));
    assert!(printed.body.contains("CANARY-CASES-NAME"));
    assert!(
        !printed.body.contains(r#"aria-label="Main""#),
        "the menu is printed"
    );
    assert!(printed.body.contains("accepted the referral"));
    let reads = tatmx_tests::audit_entries(&core, "case-read").await;
    assert!(reads.iter().filter(|e| e.actor == "console erin").count() >= 2);
    let lists = tatmx_tests::audit_entries(&core, "inbox-read").await;
    assert!(lists.iter().any(|e| e.actor == "console erin"));
    // A case worker of another role's pages, or an auditor, gets none of this.
    let auditor = add_user(&core, "gail", "auditor").await;
    let mut audit = browser(&core_node, &fed);
    assert_eq!(audit.sign_in(&auditor).await.status, 303);
    assert_eq!(audit.get("/cases").await.status, 403);
    assert_eq!(audit.get(&format!("/cases/{id}/print")).await.status, 403);
    // The school's auditor finds the disclosure under the case number as well as under the
    // reference for the person, though the case number is kept only sealed; a prefix of it
    // is not a reference.
    let school_auditor = add_user(&school, "hana", "auditor").await;
    let mut school_audit = browser(&school_node, &fed);
    assert_eq!(school_audit.sign_in(&school_auditor).await.status, 303);
    for reference in [CASE_NUMBER, SUBJECT_REF] {
        let found = school_audit
            .submit("/audit", "/audit/disclosures", &[("subject", reference)])
            .await;
        assert!(found.body.contains(&id), "{reference}: {}", found.body);
    }
    let prefix = &CASE_NUMBER[..CASE_NUMBER.len() - 1];
    let partial = school_audit
        .submit("/audit", "/audit/disclosures", &[("subject", prefix)])
        .await;
    assert!(!partial.body.contains(&id), "{}", partial.body);

    core_node.shutdown().await;
    school_node.shutdown().await;
    // Each team's numbers stay with it, and are sealed even there; no log line holds one.
    let county_store = database_bytes(&core);
    let school_store = database_bytes(&school);
    for canary in [CASE_NUMBER, SUBJECT_REF] {
        assert!(
            !contains(&county_store, canary.as_bytes()),
            "{canary} reached the county"
        );
    }
    // (The reference for the person stays readable in the school's accounting of disclosures,
    // where its auditor looks it up; the case number is kept only sealed.)
    assert!(
        !contains(&school_store, CASE_NUMBER.as_bytes()),
        "the case number is readable in the school's own database"
    );
    assert!(!contains(&school_store, COUNTY_NUMBER.as_bytes()));
    assert!(!contains(&county_store, COUNTY_NUMBER.as_bytes()));
    let lines = logs.text();
    for canary in [CASE_NUMBER, SUBJECT_REF, COUNTY_NUMBER, "LHS-NOT-HERE"] {
        assert!(!contains(&lines, canary.as_bytes()), "{canary} was logged");
    }
}

#[tokio::test]
async fn thirty_cases_page_in_twenty_fives_and_sort_by_their_numbers() {
    let (fed, _core, school) = federation("30m");
    let school_node = tatmx_tests::start(&school).await;
    let mut client = tatmx_tests::agency(&school).await;
    for n in 1..=30 {
        let mut draft = tatmx_tests::draft("county-core");
        draft.case_ref = format!("LHS-{n}");
        tatmx_tests::submit(&mut client, draft).await;
    }
    let worker = add_user(&school, "dana", "case-worker").await;
    let mut web = browser(&school_node, &fed);
    assert_eq!(web.sign_in(&worker).await.status, 303);

    let first = web.get("/cases").await;
    assert_eq!(rows(&first), 25);
    assert!(first.body.contains("Page 1 of 2"), "{}", first.body);
    assert!(first.body.contains(r#"rel="next" id="cases-next""#));
    assert!(first.body.contains(r#"href="/cases?page=2""#));
    let second = web.get("/cases?page=2").await;
    assert_eq!(rows(&second), 5);
    assert!(second.body.contains("Page 2 of 2"));
    assert!(second.body.contains(r#"rel="prev""#));
    assert!(!second.body.contains(r#"rel="next""#));
    // A page past the last shows the last.
    assert_eq!(rows(&web.get("/cases?page=9").await), 5);

    // By case number, numbers by value: LHS-1 ... LHS-25, then LHS-26 ... LHS-30.
    let by_number = web.get("/cases?sort=case-number").await;
    let order = |page: &Page| -> Vec<String> {
        page.body
            .split(r#"<span class="case-number">"#)
            .skip(1)
            .filter_map(|s| s.split('<').next())
            .map(str::to_owned)
            .collect()
    };
    let expected: Vec<String> = (1..=25).map(|n| format!("LHS-{n}")).collect();
    assert_eq!(order(&by_number), expected);
    let page_two = web.get("/cases?sort=case-number&page=2").await;
    let expected: Vec<String> = (26..=30).map(|n| format!("LHS-{n}")).collect();
    assert_eq!(order(&page_two), expected);
    // A search by a prefix shared by eleven cases pages as a search, by POST.
    let found = web
        .submit(
            "/cases",
            "/cases",
            &[("q", "lhs-1"), ("sort", "case-number")],
        )
        .await;
    assert_eq!(rows(&found), 11, "LHS-1 and LHS-10 to LHS-19");
    assert!(!found.body.contains("Page 1 of"), "{}", found.body);
    school_node.shutdown().await;
}
