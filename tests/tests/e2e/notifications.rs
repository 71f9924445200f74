//! Notifications end to end: what is new counted in the console's header and listed, without
//! a reload and without keeping an idle session open; emailed through a real SMTP server
//! (aiosmtpd, started per test by the harness) to the staff who asked, saying only which team
//! and what kind of event, with no duplicate after a restart; and times in each staff
//! member's own time zone.

use std::time::Duration;

use tatmx_node::clock::Clock;
use tatmx_proto::v1 as pb;
use tatmx_tests::mail::{MailSink, email_section, required};
use tatmx_tests::{TeamSpec, TestFederation, console_section, web_certificate};

use super::console::{Browser, add_user, browser};

/// What the console links to in emails.
const CONSOLE_URL: &str = "https://tatmx.county.example:8443";

/// A referral draft from the school to `core` with a canary in every field that could name
/// the student or the case, the school's own case number and reference among them.
fn canary_draft(core: &TeamSpec, n: usize) -> (pb::NewReferral, Vec<String>) {
    let mut draft = tatmx_tests::draft(&core.identity.team.to_string());
    draft.case_ref = format!("CANARY-CASE-REF-{n}");
    draft.subject_ref = format!("CANARY-SUBJECT-REF-{n}");
    let canaries = vec![
        "CANARY-NAME-7f3a".to_owned(),
        "CANARY-NARRATIVE-91bc".to_owned(),
        draft.case_ref.clone(),
        draft.subject_ref.clone(),
        "2010-01-02".to_owned(),
    ];
    (draft, canaries)
}

/// A county core team whose console emails through `sink`, and a school.
fn federation_with_mail(fed: &mut TestFederation, sink: &MailSink) -> (TeamSpec, TeamSpec) {
    let core = fed.team("county-core", "core", "law-enforcement");
    let school = fed.team("lincoln-high", "affiliate", "education");
    web_certificate(fed, &core);
    let extra = format!(
        "{}\n{}",
        console_section("30m"),
        email_section(sink, CONSOLE_URL)
    );
    fed.write_config(&core, &[&school], &extra);
    fed.write_config(&school, &[&core], "");
    (core, school)
}

/// What the core's store says of its notifications and mails, and what the SMTP server
/// logged, for a failure's message.
async fn mail_state(core: &TeamSpec, fed: &TestFederation) -> String {
    use sqlx::Row;
    let mut db = tatmx_tests::store_connection(core, false).await;
    let mut out = String::new();
    for query in [
        "SELECT seq, kind FROM notifications",
        "SELECT notification_seq, username, state, attempts FROM notification_mails",
        "SELECT through_seq FROM mail_cursor",
        "SELECT username, email_on, email_kinds FROM console_preferences",
    ] {
        let rows = sqlx::query(query).fetch_all(&mut db).await.expect(query);
        out.push_str(&format!("{query}: {} rows\n", rows.len()));
        for row in rows {
            let cells: Vec<String> = (0..row.len())
                .map(|i| {
                    row.try_get::<String, _>(i)
                        .or_else(|_| row.try_get::<i64, _>(i).map(|n| n.to_string()))
                        .unwrap_or_default()
                })
                .collect();
            out.push_str(&format!("  {cells:?}\n"));
        }
    }
    out.push_str(&std::fs::read_to_string(fed.dir.path().join("aiosmtpd.log")).unwrap_or_default());
    out
}

/// Saves a staff member's email settings on the console's page.
async fn save_email(web: &mut Browser, address: &str, on: bool, kinds: &[&str]) {
    let mut fields = vec![("email", address)];
    if on {
        fields.push(("email_on", "1"));
    }
    for kind in kinds {
        fields.push(("email_kind", kind));
    }
    fields.push(("time_zone", ""));
    let saved = web
        .submit("/account/settings", "/account/settings", &fields)
        .await;
    assert_eq!(saved.status, 303, "{}", saved.body);
    assert_eq!(saved.location(), "/account/settings?done=saved");
    let page = web.get(saved.location()).await;
    assert!(
        page.body.contains(r#"id="settings-saved""#),
        "{}",
        page.body
    );
}

#[tokio::test]
async fn a_referral_emails_the_chair_who_asked_only_the_team_kind_and_link_once() {
    let mut fed = TestFederation::new("county-mdt.example");
    let port = fed.port();
    let sink = match MailSink::start(port, fed.dir.path()) {
        Ok(sink) => sink,
        Err(missing) if !required() => {
            println!("SKIPPED: {missing}");
            return;
        }
        Err(missing) => panic!("{missing} (TATMX_MAIL_TESTS or TATMX_BROWSER_TESTS=require)"),
    };
    let (core, school) = federation_with_mail(&mut fed, &sink);
    let mut core_node = tatmx_tests::start(&core).await;
    let school_node = tatmx_tests::start(&school).await;

    // Carla asks to be emailed about new referrals; Otto saves his address but leaves email
    // off; Ivan asked only about case messages.
    let carla = add_user(&core, "carla", "chair").await;
    let otto = add_user(&core, "otto", "chair").await;
    let ivan = add_user(&core, "ivan", "case-worker").await;
    for (login, address, on, kinds) in [
        (
            &carla,
            "carla@county.example",
            true,
            &["referral-received", "status-update"][..],
        ),
        (
            &otto,
            "otto@county.example",
            false,
            &["referral-received"][..],
        ),
        (&ivan, "ivan@county.example", true, &["case-message"][..]),
    ] {
        let mut web = browser(&core_node, &fed);
        assert_eq!(web.sign_in(login).await.status, 303);
        save_email(&mut web, address, on, kinds).await;
    }

    let (draft, canaries) = canary_draft(&core, 1);
    let id = tatmx_tests::submit(&mut tatmx_tests::agency(&school).await, draft).await;
    tatmx_tests::delivered(&school, &id).await;

    let mails = sink.wait_for(1, Duration::from_secs(20)).await;
    assert_eq!(
        mails.len(),
        1,
        "{mails:?}\n{}",
        mail_state(&core, &fed).await
    );
    let mail = &mails[0];
    assert!(
        mail.header("To")
            .is_some_and(|to| to.contains("carla@county.example")),
        "{}",
        mail.raw
    );
    assert_eq!(
        mail.header("Subject").as_deref(),
        Some("tatmx: Lincoln High sent your team a new referral"),
        "{}",
        mail.raw
    );
    let text = mail.text();
    assert!(
        text.contains(&format!("Open the case: {CONSOLE_URL}/referrals/{id}")),
        "{text}"
    );
    for canary in &canaries {
        assert!(
            !mail.raw.contains(canary.as_str()) && !text.contains(canary.as_str()),
            "{canary} in {}",
            mail.raw
        );
    }
    // Otto (email off) and Ivan (another kind) get nothing, however long we wait.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(sink.mails().len(), 1);

    // A restart sends nothing twice; the job goes on with what is new after it.
    core_node.shutdown().await;
    core_node = tatmx_tests::start(&core).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(sink.mails().len(), 1, "a restart sent a mail again");
    let (draft, canaries) = canary_draft(&core, 2);
    let second = tatmx_tests::submit(&mut tatmx_tests::agency(&school).await, draft).await;
    tatmx_tests::delivered(&school, &second).await;
    let mails = sink.wait_for(2, Duration::from_secs(20)).await;
    assert_eq!(mails.len(), 2, "{mails:?}");
    assert!(mails[1].text().contains(&second), "{}", mails[1].raw);
    for canary in &canaries {
        assert!(!mails[1].raw.contains(canary.as_str()));
    }
    core_node.shutdown().await;
    school_node.shutdown().await;
}

#[tokio::test]
async fn what_is_new_is_counted_without_keeping_an_idle_session_open_in_the_user_s_zone() {
    let mut fed = TestFederation::new("county-mdt.example");
    let core = fed.team("county-core", "core", "law-enforcement");
    let school = fed.team("lincoln-high", "affiliate", "education");
    web_certificate(&fed, &core);
    fed.write_config(&core, &[&school], &console_section("15m"));
    fed.write_config(&school, &[&core], "");
    // The core node's clock starts on a whole minute, so the test knows the minute the
    // referral arrives in (it takes seconds).
    let start = time::OffsetDateTime::now_utc()
        .replace_nanosecond(0)
        .and_then(|t| t.replace_second(0))
        .expect("a whole minute");
    let clock = Clock::tokio(start);
    let core_node = tatmx_tests::start_with_clock(&core, clock).await;
    let school_node = tatmx_tests::start(&school).await;
    let chair = add_user(&core, "carla", "chair").await.reading(clock);
    let mut web = browser(&core_node, &fed);
    // Signed in from a browser in New York, which the sign-in form reports.
    let signed_in = web
        .post(
            "/sign-in",
            &[
                ("username", &chair.username),
                ("password", &chair.password),
                ("code", &chair.fresh_code().await),
                ("time_zone", "America/New_York"),
            ],
        )
        .await;
    assert_eq!(signed_in.status, 303, "{}", signed_in.body);
    let inbox = web.get("/cases").await;
    assert!(
        inbox.body.contains(r#"hx-get="/notifications/count""#)
            && inbox.body.contains(r#"aria-live="polite""#),
        "{}",
        inbox.body
    );
    let count = web.get("/notifications/count").await;
    assert_eq!((count.status, count.body.as_str()), (200, ""));

    let (draft, _) = canary_draft(&core, 1);
    let id = tatmx_tests::submit(&mut tatmx_tests::agency(&school).await, draft).await;
    tatmx_tests::delivered(&school, &id).await;
    let count = web.get("/notifications/count").await;
    assert!(count.body.contains("1 new"), "{}", count.body);

    // The list: in words, linking to the case, at the time in New York.
    let list = web.get("/notifications").await;
    assert_eq!(list.status, 200);
    assert!(
        list.body
            .contains("Lincoln High sent your team a new referral"),
        "{}",
        list.body
    );
    assert!(list.body.contains(&format!(r#"href="/referrals/{id}""#)));
    let minute = |offset_hours: i64, zone: &str| {
        let local = start + time::Duration::hours(offset_hours);
        format!(
            "{:04}-{:02}-{:02} {:02}:{:02} {zone}",
            local.year(),
            u8::from(local.month()),
            local.day(),
            local.hour(),
            local.minute()
        )
    };
    let (est, edt) = (minute(-5, "EST"), minute(-4, "EDT"));
    assert!(
        list.body.contains(&est) || list.body.contains(&edt),
        "neither {est} nor {edt} in {}",
        list.body
    );
    assert!(!list.body.contains(&minute(0, "UTC")));
    // Seen now, for this chair.
    assert_eq!(web.get("/notifications/count").await.body, "");

    // A zone chosen in the settings wins over the browser's: India has no summer time.
    let saved = web
        .submit(
            "/account/settings",
            "/account/settings",
            &[("email", ""), ("time_zone", "Asia/Kolkata")],
        )
        .await;
    assert_eq!(saved.status, 303, "{}", saved.body);
    let list = web.get("/notifications").await;
    let kolkata = {
        let local = start + time::Duration::minutes(330);
        format!(
            "{:04}-{:02}-{:02} {:02}:{:02} IST",
            local.year(),
            u8::from(local.month()),
            local.day(),
            local.hour(),
            local.minute()
        )
    };
    assert!(
        list.body.contains(&kolkata),
        "{kolkata} not in {}",
        list.body
    );

    // The lockout message at sign-in says until when in the browser's zone, too.
    let guesser = add_user(&core, "gus", "case-worker").await.reading(clock);
    let mut other = browser(&core_node, &fed);
    let mut last = None;
    for _ in 0..5 {
        last = Some(
            other
                .post(
                    "/sign-in",
                    &[
                        ("username", guesser.username.as_str()),
                        ("password", "not the password"),
                        ("code", "000000"),
                        ("time_zone", "Asia/Kolkata"),
                    ],
                )
                .await,
        );
    }
    let locked_out = last.expect("five tries");
    assert_eq!(locked_out.status, 403, "{}", locked_out.body);
    assert!(
        locked_out.body.contains("Try again after ") && locked_out.body.contains(" IST,"),
        "{}",
        locked_out.body
    );

    // The page polls by itself for fourteen minutes: that is not activity...
    tatmx_tests::skip_ahead(Duration::from_secs(14 * 60)).await;
    let polled = web.get("/notifications/count").await;
    assert_eq!(polled.status, 200);
    // ...so two minutes later the session is past its fifteen-minute idle lock, and the poll
    // is told so: 401, with htmx sent to the lock screen.
    tatmx_tests::skip_ahead(Duration::from_secs(2 * 60)).await;
    let locked = web
        .send(
            "GET",
            "/notifications/count",
            None,
            &[("hx-request", "true")],
        )
        .await;
    assert_eq!(locked.status, 401, "{}", locked.body);
    assert_eq!(
        locked
            .headers
            .get("hx-redirect")
            .and_then(|v| v.to_str().ok()),
        Some("/unlock")
    );
    assert_eq!(web.get("/inbox").await.location(), "/unlock");
    core_node.shutdown().await;
    school_node.shutdown().await;
}
