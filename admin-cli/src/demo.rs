//! `tatmx demo`: a throwaway four-team federation on loopback, and the whole closed loop.
//!
//! It does what admins and staff would do, with the same code paths as the commands: the
//! federation CA is created, each team makes its own key and CSR and gets a certificate, each
//! node starts from a TOML config with real mutual TLS and its own SQLite file, and each team
//! works through its own Agency socket: a referral with its preview, delivery, receipt and
//! assessment; a consultation with a partner; a referral shared on consent, forwarded, and
//! retracted from both hops when the consent is withdrawn. Everything lives in a temporary
//! directory that is removed at the end unless `--keep` is given.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Args;
use tatmx_node::loopback::{self, NodeToml, ReservedPort};
use tatmx_proto::v1 as pb;

use crate::agency;
use crate::consult;
use crate::directory;
use crate::pki;
use crate::trust;

const FEDERATION: &str = "lincoln-county-mdt.example";

/// Arguments of `tatmx demo`.
#[derive(Args)]
pub struct DemoArgs {
    /// Keep the temporary federation directory instead of deleting it.
    #[arg(long)]
    pub keep: bool,
    /// Show the nodes' logs (ids and categories only, never case data).
    #[arg(long)]
    pub verbose: bool,
    /// After the walkthrough, keep the federation running with the browser console of the
    /// school and of the county team, print their addresses and demo logins, and wait for
    /// Ctrl-C.
    #[arg(long)]
    pub console: bool,
}

/// One team in the demo federation.
struct Team {
    id: &'static str,
    name: &'static str,
    role: &'static str,
    discipline: &'static str,
}

const TEAMS: [Team; 4] = [
    Team {
        id: "county-core",
        name: "Lincoln County Threat Assessment Team",
        role: "core",
        discipline: "law-enforcement",
    },
    Team {
        id: "lincoln-high",
        name: "Lincoln High School",
        role: "affiliate",
        discipline: "education",
    },
    Team {
        id: "riverside-mh",
        name: "Riverside Behavioral Health",
        role: "affiliate",
        discipline: "mental-health",
    },
    Team {
        id: "federal-bau",
        name: "Federal Behavioral Analysis Unit",
        role: "partner",
        discipline: "federal-partner",
    },
];

const SHARED_ON_CONSENT: &str = r#"# A fictional referral from Riverside Behavioral Health, on a guardian's consent.
recipient = "county-core"
purpose = "threat-management"
legal_basis = "consent"

[content.identity]
full_name = "Jordan Example (fictional)"
date_of_birth = "2010-03-14"

[content.mental_health]
diagnoses = ["adjustment disorder (fictional)"]
treatment = "Weekly counselling since September; engaged and improving (fictional)."

[content.narrative]
text = "The student's counsellor supports the school safety plan and can attend the next team meeting (fictional)."
"#;

const REFERRAL: &str = r#"# A fictional referral from Lincoln High School to the county core team.
recipient = "county-core"
case_ref = "LHS-2026-0117"                  # the school's own case number; never sent
purpose = "threat-assessment"
legal_basis = "health-safety-emergency"
justification = "A student described a specific plan to harm classmates this week; the school team judged the situation an emergency under FERPA 99.36."

[level_of_concern]
scheme = "CSTAG"
value = "very serious substantive"

[content.identity]
full_name = "Jordan Example (fictional)"
date_of_birth = "2010-03-14"

[content.behavior]
observations = [
  { code = "LEAKAGE", observed_on = "2026-11-20" },
  { code = "FIXATION", observed_on = "2026-11-18" },
]

[content.threat]
threat_type = "targeted-violence"
target_type = "school"
weapons_access = true
grievance_code = "PEER-CONFLICT"

[content.education_record]
school = "Lincoln High School"
grade = "10"
discipline = ["one-day suspension, October"]

[content.reporter]
name = "A teacher (fictional)"
relationship = "teacher"
"#;

/// Runs the demo.
pub async fn run(args: DemoArgs) -> anyhow::Result<()> {
    if args.verbose {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new("info"))
            .with_writer(std::io::stderr)
            .try_init();
    }
    let dir = tempfile::Builder::new()
        .prefix("tatmx-demo-")
        .tempdir()
        .context("cannot create a temporary directory")?;
    let result = run_in(dir.path(), args.console).await;
    if args.keep {
        let kept = dir.keep();
        println!("\nThe demo federation was kept in {}", kept.display());
    } else {
        println!("\nThe temporary federation has been deleted; nothing was left behind.");
    }
    result
}

async fn run_in(root: &Path, console: bool) -> anyhow::Result<()> {
    println!("tatmx demo: a threat-assessment federation of four teams, on this computer");
    println!("Each agency runs its own node and keeps its own records. Nodes talk only to");
    println!("each other, over mutual TLS 1.3; there is no central server.\n");

    println!("1. Setting up trust");
    let ca_dir = root.join("federation-ca");
    pki::ca_init(&pki::CaInitArgs {
        federation: FEDERATION.into(),
        dir: ca_dir.clone(),
        days: 30,
    })?;
    println!("   - The federation admin created the certificate authority for {FEDERATION}.");
    for team in &TEAMS {
        let dir = root.join(team.id);
        let files = pki::node_init(&pki::NodeInitArgs {
            federation: FEDERATION.into(),
            team: team.id.into(),
            dir: dir.clone(),
            dns_names: Vec::new(),
        })?;
        let (_, issued, _) = pki::ca_sign(&pki::CaSignArgs {
            csr: files.csr,
            team: team.id.into(),
            ca_dir: ca_dir.clone(),
            days: 7,
            role: Some(team.role.into()),
            discipline: Some(team.discipline.into()),
            out: Some(dir.join("node.pem")),
            dns_names: Vec::new(),
        })?;
        println!(
            "   - {} ({}, {}) made its own key and was enrolled as {}",
            team.name, team.role, team.discipline, issued.identity
        );
    }

    // Every port is reserved before any config names it, and stays the node's until the end.
    let reserved = TEAMS
        .iter()
        .map(|_| ReservedPort::new())
        .collect::<Result<Vec<_>, _>>()
        .context("cannot reserve loopback ports")?;
    let ports: Vec<u16> = reserved.iter().map(ReservedPort::port).collect();
    let location = directory::Location {
        ca_dir: ca_dir.clone(),
        draft: None,
    };
    for (team, port) in TEAMS.iter().zip(&ports) {
        directory::add(&directory::AddArgs {
            location: location.clone(),
            team: team.id.into(),
            endpoint: format!("https://127.0.0.1:{port}"),
            role: team.role.into(),
            discipline: team.discipline.into(),
            jurisdiction: "Lincoln County".into(),
            cjis_authorized: team.discipline == "law-enforcement",
            fingerprint: None,
        })?;
    }
    let (directory_file, signed) = directory::sign(&directory::SignArgs {
        location,
        also_anchor: vec![],
        out: None,
    })?;
    println!(
        "   - The federation admin listed the four teams in the federation directory and signed it (sequence {}).",
        signed.sequence
    );

    println!("\n2. Starting the four nodes");
    let mut nodes = Vec::new();
    for (team, port) in TEAMS.iter().zip(&ports) {
        let mut toml = node_config(team, *port, &ca_dir);
        if console && CONSOLE_TEAMS.contains(&team.id) {
            // Any free port on this host only; the address is printed once it is bound.
            toml.extra = "[console]\nlisten = \"127.0.0.1:0\"\n".into();
        }
        if team.id == "county-core" {
            // The county's counsel lets its questions and case notes go back to the school
            // that referred the case: a local rule beside the default pack (docs/policy.md).
            let rules = root.join(team.id).join("local.cedar");
            std::fs::write(&rules, COUNTY_LOCAL_RULES)?;
            toml.extra.push_str(&format!(
                "[policy]\nfiles = [{:?}]\n",
                rules.display().to_string()
            ));
        }
        let config = toml.write(&root.join(team.id).join("node.toml"))?;
        let node = loopback::start(config)
            .await
            .with_context(|| format!("the {} node could not start", team.id))?;
        let mut admin = trust::client(node.admin_socket()).await?;
        trust::import(&mut admin, &directory_file).await?;
        println!(
            "   - {:<13} listening on {} (mutual TLS); its admin imported the signed directory",
            team.id,
            node.federation_addr(),
        );
        nodes.push(node);
    }

    let mut outcome = exchange(root).await;
    if console && outcome.is_ok() {
        outcome = seed_cases(root).await;
    }
    if console && outcome.is_ok() {
        outcome = console_logins(root, &nodes).await;
    }
    for node in nodes {
        node.shutdown().await;
    }
    outcome
}

async fn exchange(root: &Path) -> anyhow::Result<()> {
    let school_socket = root.join("lincoln-high").join("data").join("agency.sock");
    let core_socket = root.join("county-core").join("data").join("agency.sock");
    let referral_file = root.join("lincoln-high").join("referral.toml");
    std::fs::write(&referral_file, REFERRAL)?;
    let draft = agency::read_referral_file(&referral_file)?;

    println!("\n3. Lincoln High School refers a student of concern to the county team");
    println!(
        "   Legal basis: health or safety emergency (FERPA 34 CFR 99.36), with a written justification."
    );
    let preview = agency::submit(&school_socket, &draft, true, None).await?;
    println!(
        "   Preview (nothing sent yet): the node checks every category against the law and shows why."
    );
    indent(&agency::describe_decisions(&preview.decisions));
    let withheld = preview
        .decisions
        .iter()
        .filter(|d| d.outcome != pb::DisclosureOutcome::Disclose as i32)
        .count();
    if withheld == 0 {
        bail!("the demo expects the reporter's identity to be withheld");
    }
    let started = Instant::now();
    let submitted = agency::submit(&school_socket, &draft, false, None).await?;
    let id = submitted.referral_id.clone();
    println!("   - Stored at the school and queued for delivery as referral {id}");

    let delivered = wait_for(Duration::from_secs(20), || async {
        let outbox = agency::list_outbox(&school_socket, 100, false).await?;
        Ok(outbox
            .into_iter()
            .find(|e| e.referral_id == id && e.state == pb::DeliveryState::Delivered as i32))
    })
    .await?
    .context("the referral was not delivered within 20 seconds")?;
    println!(
        "   - Delivered to county-core over mutual TLS and acknowledged once it was on the county's disk ({} attempt, {} ms)",
        delivered.attempts,
        started.elapsed().as_millis()
    );
    wait_for(Duration::from_secs(20), || async {
        let record = agency::show(&school_socket, &id).await?;
        Ok((record.status == pb::ReferralStatus::Received as i32).then_some(()))
    })
    .await?
    .context("the county team's receipt did not come back within 20 seconds")?;
    println!(
        "   - The county team's node confirmed receipt; the school now sees status \"received\" ({} ms)",
        started.elapsed().as_millis()
    );

    println!("\n4. The county team's inbox (tatmx inbox)");
    let inbox = agency::list_inbox(&core_socket, 100).await?;
    if !inbox.iter().any(|i| i.referral_id == id) {
        bail!("the referral is missing from the county team's inbox");
    }
    indent(&agency::inbox_table(&inbox));

    println!("\n5. What the county team received (tatmx referral show)");
    let received = agency::show(&core_socket, &id).await?;
    indent(&agency::describe_record(&received));

    println!("\n6. The county team accepts and asks the school a question (tatmx referral ask)");
    let county = |status, outcome| agency::update_status(&core_socket, &id, status, None, outcome);
    county(pb::ReferralStatus::Accepted, None).await?;
    case_in_motion(&school_socket, &core_socket, &id).await?;
    let record = agency::show(&school_socket, &id).await?;

    println!(
        "\n7. The county team consults the federal partner, de-identified (tatmx consult request)"
    );
    let partner_socket = root.join("federal-bau").join("data").join("agency.sock");
    let mut case = draft.clone();
    case.legal_basis = tatmx_node::referral::LegalBasis::DeIdentified;
    case.justification = None;
    case.case_ref = Some("LC-2026-0117".into());
    let consultation = consult::request(
        &core_socket,
        &case,
        vec!["federal-bau".into()],
        "Does the leakage and fixation pattern suggest movement toward an attack?".into(),
        None,
    )
    .await?;
    let copy_id = consultation
        .answers
        .first()
        .map(|a| a.referral_id.clone())
        .context("the consultation went to no partner")?;
    let copy = wait_for(Duration::from_secs(20), || async {
        Ok(agency::show(&partner_socket, &copy_id).await.ok())
    })
    .await?
    .context("the partner did not receive the consultation within 20 seconds")?;
    let handle = copy
        .referral
        .as_ref()
        .map(|r| r.case_handle.clone())
        .unwrap_or_default();
    let has_identity = copy
        .referral
        .as_ref()
        .and_then(|r| r.content.as_ref())
        .is_some_and(|c| c.identity.is_some());
    if has_identity || handle.is_empty() {
        bail!("the consultation reached the partner with identifiers");
    }
    println!(
        "   - The partner received the case without the student's name: only the case handle {handle}"
    );
    agency::update_status(
        &partner_socket,
        &copy_id,
        pb::ReferralStatus::Completed,
        None,
        Some(pb::AssessmentOutcome {
            advice: "Leakage plus fixation warrants a mental-health evaluation and a safety plan at school.".into(),
            recommendations: vec!["MH-EVAL".into(), "SAFETY-PLAN".into()],
            ..Default::default()
        }),
    )
    .await?;
    let answered = wait_for(Duration::from_secs(20), || async {
        let c = consult::show(&core_socket, &consultation.consultation_id).await?;
        Ok(c.awaiting.is_empty().then_some(c))
    })
    .await?
    .context("the partner's answer did not reach the county team within 20 seconds")?;
    if let Some(answer) = answered.answers.first().and_then(|a| a.answer.as_ref()) {
        println!(
            "   - The partner answered: \"{}\" [{}]",
            answer.advice,
            answer.recommendations.join(", ")
        );
    }

    consent_loop(root).await?;

    println!("\n11. The school's view of its own referral: outbox and timeline");
    let outbox = agency::list_outbox(&school_socket, 100, false).await?;
    indent(&agency::outbox_table(&outbox));
    println!();
    indent(&agency::describe_timeline(&record));
    indent(&crate::case::describe_case(&record));

    println!(
        "\n12. Counsel's view: the accounting of disclosures (tatmx audit disclosures --subject LHS-2026-0117)"
    );
    let admin_socket = |team: &str| root.join(team).join("data").join("admin.sock");
    let accounting = tatmx_node::client::admin(&admin_socket("lincoln-high"))
        .await?
        .account_disclosures(pb::AccountDisclosuresRequest {
            subject: "LHS-2026-0117".into(),
            since: None,
        })
        .await
        .map_err(|s| anyhow::anyhow!("the accounting was refused: {}", s.message()))?
        .into_inner()
        .disclosures;
    if accounting.is_empty() {
        bail!("the school's accounting of disclosures is empty");
    }
    indent(&crate::audit::disclosure_table(&accounting));

    println!("\n13. Every node's audit chain is intact (tatmx audit verify)");
    for team in &TEAMS {
        let socket = admin_socket(team.id);
        let verification = wait_for(Duration::from_secs(10), || async {
            let verification = tatmx_node::client::admin(&socket)
                .await?
                .verify_audit(pb::VerifyAuditRequest {})
                .await
                .map_err(|s| anyhow::anyhow!("verification was refused: {}", s.message()))?
                .into_inner();
            // Wait for the first signed checkpoint, so the check covers signatures too.
            Ok((verification.checkpoints > 0 || !verification.ok).then_some(verification))
        })
        .await?
        .context("no audit checkpoint was signed within 10 seconds")?;
        println!(
            "   {:<13} {}",
            team.id,
            crate::audit::verification_text(&verification)
        );
        if !verification.ok {
            bail!("the audit chain of {} failed verification", team.id);
        }
    }

    println!("\nThe school's referral left the school once, over an authenticated and encrypted");
    println!("channel, and exists only at the school (as sent) and at the county team (as");
    println!("received). The teacher who reported the concern was never named outside the school.");
    println!("After the referral the two teams kept talking about the case, each message filtered");
    println!("the same way: a question and its answer, a plan, an urgent tripwire report and a");
    println!(
        "reassessment that lowered the concern, all in the school's and the county's timelines."
    );
    println!("The federal partner advised without ever learning who the student is. When the");
    println!("guardian withdrew consent, what Riverside had shared was purged at both teams that");
    println!("held it, and Riverside's node has each team's acknowledgement.");
    let riverside = root.join("riverside-mh").join("data").join("agency.sock");
    if !agency::list_inbox(&riverside, 100).await?.is_empty() {
        bail!("a team that was not a recipient received data");
    }
    Ok(())
}

/// The county's local rule: its questions and case notes may go back to the school that
/// referred the case. Without it the default pack keeps a core team's free text from a school,
/// and the school would learn only which categories the county asks for.
const COUNTY_LOCAL_RULES: &str = r#"@id("local-case-notes-to-referring-schools")
@reason("the county's agreement with the school district: case questions and notes may go back to the referring school")
permit (principal, action == Action::"disclose", resource == Category::"NARRATIVE")
when { context.recipient.role == "affiliate" && context.recipient.discipline == "education" };
"#;

/// Scenes 6 to 6d: the case goes on after the referral. The county asks and the school
/// answers; the county assesses, completes and plans; the school reports a tripwire; the
/// county reassesses and the school sees the lower concern.
async fn case_in_motion(school: &Path, county: &Path, id: &str) -> anyhow::Result<()> {
    let mut county_api = crate::errors::agency(county).await?;
    let mut school_api = crate::errors::agency(school).await?;
    let refused = |what: &'static str| {
        move |s: tonic::Status| anyhow::anyhow!("{what} was refused: {}", s.message())
    };
    let asked = county_api
        .request_information(pb::RequestInformationRequest {
            referral_id: id.to_owned(),
            question: "Has the student been absent or disciplined since the essay? Please send attendance and behaviour notes.".into(),
            wanted: vec![pb::DataCategory::Behavior.into(), pb::DataCategory::EducationRecord.into()],
            dry_run: false,
        })
        .await
        .map_err(refused("the question"))?
        .into_inner();
    let question_seen = wait_for(Duration::from_secs(20), || async {
        let record = agency::show(school, id).await?;
        Ok(record
            .case_messages
            .iter()
            .find_map(|m| match m.message.as_ref()?.body.as_ref()? {
                pb::case_message::Body::InformationRequest(q) => Some(q.clone()),
                _ => None,
            }))
    })
    .await?
    .context("the county's question did not reach the school within 20 seconds")?;
    println!(
        "   - The school reads the question: \"{}\" (wanted: {})",
        question_seen.question,
        crate::output::categories(&question_seen.wanted).join(", ")
    );
    println!("\n6a. The school answers with a supplement (tatmx referral answer)");
    let answer = school_api
        .send_supplement(pb::SendSupplementRequest {
            referral_id: id.to_owned(),
            answers: asked.message_id.clone(),
            content: Some(pb::ReferralContent {
                behavior: Some(pb::Behavior {
                    observations: vec![pb::ObservedBehavior {
                        code: "ABSENT-3-DAYS".into(),
                        observed_on: "2026-11-20".into(),
                    }],
                }),
                education_record: Some(pb::EducationRecord {
                    school: "Lincoln High School".into(),
                    grade: "10".into(),
                    iep_or_504: false,
                    discipline: vec!["DETENTION-2026-11-18".into()],
                }),
                ..Default::default()
            }),
            dry_run: false,
        })
        .await
        .map_err(refused("the answer"))?
        .into_inner();
    println!(
        "   - Sent, filtered like the referral: {}",
        crate::output::categories(&answer.categories_disclosed).join(", ")
    );
    wait_for(Duration::from_secs(20), || async {
        let record = agency::show(county, id).await?;
        Ok(record
            .case_messages
            .iter()
            .any(|m| {
                m.message
                    .as_ref()
                    .is_some_and(|m| m.id == answer.message_id)
            })
            .then_some(()))
    })
    .await?
    .context("the school's answer did not reach the county within 20 seconds")?;
    println!(
        "   - The county's view of the case now merges the answer into the referral, part by part."
    );

    println!(
        "\n6b. The county assesses, completes, and records a management plan (tatmx referral plan)"
    );
    let status = |status, outcome| agency::update_status(county, id, status, None, outcome);
    status(pb::ReferralStatus::InAssessment, None).await?;
    status(
        pb::ReferralStatus::Completed,
        Some(pb::AssessmentOutcome {
            level_of_concern: Some(pb::LevelOfConcern {
                scheme: "CSTAG".into(),
                value: "serious substantive".into(),
            }),
            management_plan: true,
            ..Default::default()
        }),
    )
    .await?;
    let in_a_month = (time::OffsetDateTime::now_utc() + time::Duration::days(30)).date();
    let plan = |next: time::Date| pb::ManagementPlan {
        interventions: vec![
            pb::Intervention {
                code: "safety-plan".into(),
                responsible_team: "lincoln-high".into(),
            },
            pb::Intervention {
                code: "mental-health-referral".into(),
                responsible_team: "county-core".into(),
            },
        ],
        next_reassessment: next.to_string(),
    };
    county_api
        .record_management_plan(pb::RecordManagementPlanRequest {
            referral_id: id.to_owned(),
            plan: Some(plan(in_a_month)),
            dry_run: false,
        })
        .await
        .map_err(refused("the plan"))?;
    wait_for(Duration::from_secs(20), || async {
        let record = agency::show(school, id).await?;
        Ok((record.status == pb::ReferralStatus::UnderManagement as i32).then_some(()))
    })
    .await?
    .context("the plan did not reach the school within 20 seconds")?;
    println!(
        "   - The school sees: concern serious substantive; the case is under management; a safety plan is the school's, reassessment by {in_a_month}."
    );

    println!(
        "\n6c. Weeks later, the school reports a tripwire, marked urgent (tatmx referral inform)"
    );
    school_api
        .send_new_information(pb::SendNewInformationRequest {
            referral_id: id.to_owned(),
            kind: pb::InformationKind::TripwireReport.into(),
            urgent: true,
            text: "A classmate reports the student asked where to buy ammunition.".into(),
            content: None,
            dry_run: false,
        })
        .await
        .map_err(refused("the tripwire report"))?;
    let first = wait_for(Duration::from_secs(20), || async {
        let inbox = agency::list_inbox(county, 100).await?;
        Ok(inbox.first().filter(|i| i.referral_id == id).cloned())
    })
    .await?
    .context("the tripwire report did not reach the county within 20 seconds")?;
    println!(
        "   - It reaches the county first in its inbox, marked urgent, while the case is {}.",
        crate::output::status(first.status)
    );

    println!(
        "\n6d. The county reassesses and lowers the level of concern (tatmx referral reassess)"
    );
    let in_three_months = (time::OffsetDateTime::now_utc() + time::Duration::days(90)).date();
    county_api
        .record_reassessment(pb::RecordReassessmentRequest {
            referral_id: id.to_owned(),
            level_of_concern: Some(pb::LevelOfConcern {
                scheme: "CSTAG".into(),
                value: "transient".into(),
            }),
            plan: Some(plan(in_three_months)),
            dry_run: false,
        })
        .await
        .map_err(refused("the reassessment"))?;
    let lowered = wait_for(Duration::from_secs(20), || async {
        let record = agency::show(school, id).await?;
        Ok(record.case_messages.iter().rev().find_map(|m| {
            match m.message.as_ref()?.body.as_ref()? {
                pb::case_message::Body::Reassessment(r) => r.level_of_concern.clone(),
                _ => None,
            }
        }))
    })
    .await?
    .context("the reassessment did not reach the school within 20 seconds")?;
    println!(
        "   - The school sees the new level of concern: {} ({}); next reassessment {in_three_months}.",
        lowered.value, lowered.scheme
    );
    Ok(())
}

/// Riverside shares on a guardian's consent, the county forwards to the school, and the
/// guardian withdraws consent: the data is purged at both hops, and Riverside sees it done.
async fn consent_loop(root: &Path) -> anyhow::Result<()> {
    let socket = |team: &str| root.join(team).join("data").join("agency.sock");
    let (riverside, county, school) = (
        socket("riverside-mh"),
        socket("county-core"),
        socket("lincoln-high"),
    );
    let team_uri = |team: &str| format!("spiffe://{FEDERATION}/team/{team}");

    println!(
        "\n8. Riverside Behavioral Health shares on the guardian's consent (tatmx consent record, referral send)"
    );
    let mut client = tatmx_node::client::agency(&riverside).await?;
    let consent = client
        .record_consent(pb::RecordConsentRequest {
            consent: Some(pb::Consent {
                subject: "RBH-2026-0311".into(),
                grantor: pb::Grantor::Guardian.into(),
                grantor_name: "A parent (fictional)".into(),
                provision: Some(pb::Provision {
                    r#type: pb::ProvisionType::Permit.into(),
                    recipient_teams: vec![team_uri("county-core"), team_uri("lincoln-high")],
                    purposes: vec![pb::Purpose::ThreatManagement.into()],
                    ..Default::default()
                }),
                ..Default::default()
            }),
        })
        .await
        .map_err(|s| anyhow::anyhow!("recording the consent was refused: {}", s.message()))?
        .into_inner();
    println!(
        "   - Consent {} recorded: the county team and the school, for threat management.",
        consent.id
    );
    let file = root.join("riverside-mh").join("referral.toml");
    std::fs::write(&file, SHARED_ON_CONSENT)?;
    let mut draft = agency::read_referral_file(&file)?;
    draft.consent_ref = Some(consent.id.clone());
    draft.subject_ref = Some(consent.subject.clone());
    let shared = agency::submit(&riverside, &draft, false, None).await?;
    let shared_id = shared.referral_id.clone();
    wait_for(Duration::from_secs(20), || async {
        Ok(agency::show(&county, &shared_id).await.ok())
    })
    .await?
    .context("Riverside's referral did not reach the county team within 20 seconds")?;
    println!("   - Delivered to the county team as referral {shared_id}.");

    println!("\n9. The county team forwards it to the school's team (tatmx referral forward)");
    let forward = tatmx_node::client::agency(&county)
        .await?
        .forward_referral(pb::ForwardReferralRequest {
            referral_id: shared_id.clone(),
            recipient: "lincoln-high".into(),
            ..Default::default()
        })
        .await
        .map_err(|s| anyhow::anyhow!("the forward was refused: {}", s.message()))?
        .into_inner();
    indent(&agency::describe_decisions(&forward.decisions));
    let forward_id = forward.referral_id.clone();
    let copy = wait_for(Duration::from_secs(20), || async {
        Ok(agency::show(&school, &forward_id).await.ok())
    })
    .await?
    .context("the forward did not reach the school within 20 seconds")?;
    let origin = copy
        .referral
        .as_ref()
        .and_then(|r| r.provenance.first())
        .map(|hop| crate::output::team(&hop.team).to_owned())
        .unwrap_or_default();
    println!(
        "   - The school holds the forward {forward_id}; its provenance names the original sender, {origin}."
    );
    if copy.referral.is_none() {
        bail!("the forward reached the school without its content");
    }

    println!("\n10. The guardian withdraws consent (tatmx consent revoke)");
    client
        .revoke_consent(pb::RevokeConsentRequest {
            consent_id: consent.id.clone(),
        })
        .await
        .map_err(|s| anyhow::anyhow!("the revocation was refused: {}", s.message()))?;
    let progress = wait_for(Duration::from_secs(20), || async {
        let progress = tatmx_node::client::agency(&riverside)
            .await?
            .get_retraction(pb::GetRetractionRequest {
                consent_id: consent.id.clone(),
            })
            .await
            .map_err(|s| anyhow::anyhow!("{}", s.message()))?
            .into_inner();
        Ok((progress.complete && progress.targets.len() == 2).then_some(progress))
    })
    .await?
    .context("the retraction was not acknowledged by both teams within 20 seconds")?;
    println!("   Riverside's node follows the retraction hop by hop (tatmx consent retraction):");
    indent(&crate::consent::progress_text(&progress));
    for (name, socket, id) in [
        ("county team", &county, &shared_id),
        ("school", &school, &forward_id),
    ] {
        if agency::show(socket, id).await.is_ok() {
            bail!("the {name} still holds retracted data");
        }
        let tombstones = tatmx_node::client::agency(socket)
            .await?
            .list_tombstones(pb::ListTombstonesRequest { limit: 10 })
            .await
            .map_err(|s| anyhow::anyhow!("{}", s.message()))?
            .into_inner()
            .tombstones;
        println!(
            "   What the {name}'s node keeps instead (tatmx purged): ids, categories, when and why."
        );
        indent(&agency::tombstone_table(&tombstones));
    }
    println!("   Each copy was sealed under its own key on disk; purging deleted the key.");
    Ok(())
}

/// How many cases `--console` adds, so that the console's list has pages to turn and a case
/// number to search for.
const SEEDED_CASES: usize = 64;

/// Fills the consoles with cases in every state a case can be in, so that paging, search and
/// the status words are real: [`SEEDED_CASES`] fictional referrals from the school (case
/// numbers `LHS-2026-0200` and up), which the county then accepts, declines, asks about,
/// assesses, completes, closes, or the school withdraws, one kind in eight.
async fn seed_cases(root: &Path) -> anyhow::Result<()> {
    let school = root.join("lincoln-high").join("data").join("agency.sock");
    let county = root.join("county-core").join("data").join("agency.sock");
    println!("\n14. Filling the consoles with {SEEDED_CASES} fictional cases in every state");
    let template: tatmx_node::NewReferral = toml::from_str(REFERRAL)?;
    let mut ids = Vec::with_capacity(SEEDED_CASES);
    for n in 0..SEEDED_CASES {
        let mut draft = template.clone();
        let case = 200 + n;
        draft.case_ref = Some(format!("LHS-2026-{case:04}"));
        if let Some(identity) = draft.content.identity.as_mut() {
            identity.full_name = format!("Student {case} Example (fictional)");
        }
        let submitted = agency::submit(&school, &draft, false, None).await?;
        ids.push(submitted.referral_id);
    }
    let arrived = wait_for(Duration::from_secs(60), || async {
        let inbox = agency::list_inbox(&county, 1000).await?;
        Ok((ids
            .iter()
            .all(|id| inbox.iter().any(|r| &r.referral_id == id)))
        .then_some(()))
    })
    .await?;
    arrived.context("the seeded cases did not all reach the county within a minute")?;
    let status = |socket: &Path,
                  id: &str,
                  status: pb::ReferralStatus,
                  code: Option<pb::ReasonCode>,
                  outcome: Option<pb::AssessmentOutcome>| {
        let socket = socket.to_owned();
        let id = id.to_owned();
        async move {
            let mut client = crate::errors::agency(&socket).await?;
            client
                .update_referral_status(pb::UpdateReferralStatusRequest {
                    referral_id: id,
                    status: status.into(),
                    reason_code: code.map_or(0, Into::into),
                    outcome,
                    ..Default::default()
                })
                .await
                .map_err(|s| {
                    anyhow::anyhow!("a seeded status change was refused: {}", s.message())
                })?;
            anyhow::Ok(())
        }
    };
    let outcome = || {
        Some(pb::AssessmentOutcome {
            level_of_concern: Some(pb::LevelOfConcern {
                scheme: "CSTAG".into(),
                value: "transient".into(),
            }),
            management_plan: false,
            ..Default::default()
        })
    };
    use pb::ReferralStatus as S;
    for (n, id) in ids.iter().enumerate() {
        match n % 8 {
            0 => {}
            1 => status(&county, id, S::Accepted, None, None).await?,
            2 => status(&county, id, S::InfoRequested, None, None).await?,
            3 => {
                status(&county, id, S::Accepted, None, None).await?;
                status(&county, id, S::InAssessment, None, None).await?;
            }
            4 => {
                let code = if n % 16 == 4 {
                    pb::ReasonCode::OutsideJurisdiction
                } else {
                    pb::ReasonCode::InsufficientInformation
                };
                status(&county, id, S::Declined, Some(code), None).await?;
            }
            5 => {
                status(&county, id, S::Accepted, None, None).await?;
                status(&county, id, S::InAssessment, None, None).await?;
                status(&county, id, S::Completed, None, outcome()).await?;
            }
            6 => {
                status(&county, id, S::Accepted, None, None).await?;
                status(&county, id, S::InAssessment, None, None).await?;
                status(&county, id, S::Completed, None, outcome()).await?;
                status(&county, id, S::Closed, None, None).await?;
            }
            _ => {
                status(
                    &school,
                    id,
                    S::Cancelled,
                    Some(pb::ReasonCode::Duplicate),
                    None,
                )
                .await?
            }
        }
    }
    println!(
        "   - {SEEDED_CASES} cases, LHS-2026-0200 to LHS-2026-{:04}: new, accepted, asked about, being assessed,",
        200 + SEEDED_CASES - 1
    );
    println!("     declined with a reason, finished, closed, and withdrawn by the school.");
    Ok(())
}

/// The teams whose console `--console` turns on: the school and the county team.
const CONSOLE_TEAMS: [&str; 2] = ["lincoln-high", "county-core"];

/// Adds demo accounts to the consoles, prints where they are and how to sign in, and waits
/// for Ctrl-C. The passwords and TOTP secrets are printed because this federation is a
/// throwaway on this computer; a real node shows them once, to the admin who ran `tatmx user`.
async fn console_logins(root: &Path, nodes: &[tatmx_node::RunningNode]) -> anyhow::Result<()> {
    println!("\n15. The browser console, for staff who will not use a command line");
    let accounts = [
        (
            "lincoln-high",
            "casey",
            "case-worker",
            "a school counsellor: writes referrals, finds them on My cases, answers the county",
        ),
        (
            "lincoln-high",
            "avery",
            "auditor",
            "the school's auditor: audit log, accounting of disclosures",
        ),
        (
            "lincoln-high",
            "jesse",
            "admin",
            "the school's admin: staff accounts (add, disable, unlock), trust",
        ),
        (
            "county-core",
            "morgan",
            "chair",
            "the county team's chair: accepts, completes, forwards, consults",
        ),
    ];
    for (team, username, role, who) in accounts {
        let index = TEAMS
            .iter()
            .position(|t| t.id == team)
            .context("a demo team")?;
        let address = nodes
            .get(index)
            .and_then(|n| n.console_addr())
            .context("the console did not start")?;
        let issued = tatmx_node::client::admin(&root.join(team).join("data").join("admin.sock"))
            .await?
            .add_user(pb::AddUserRequest {
                username: username.into(),
                role: role.into(),
            })
            .await
            .map_err(|s| anyhow::anyhow!("adding a console account was refused: {}", s.message()))?
            .into_inner();
        println!("\n   {team}: https://{address}/   ({who})");
        println!("     username {username}   password {}", issued.password);
        println!(
            "     TOTP secret {}   (SHA-1, 6 digits, 30 s)",
            issued.totp_secret
        );
        println!(
            "     current code: oathtool --totp -b {}",
            issued.totp_secret
        );
    }
    println!(
        "\n   Add a secret to an authenticator app, or compute the code with oathtool (Debian"
    );
    println!("   package oathtool). Each console presents its node's own certificate, which your");
    println!(
        "   browser does not know: accept the warning for this demo. A real node can present a"
    );
    println!("   web certificate for its host name ([console] cert and key).");
    println!(
        "\n   Try it: as casey, find LHS-2026-0117 on My cases, or write a referral to County Core"
    );
    println!(
        "   and watch the preview; as morgan, accept it and ask a question; as casey, see the"
    );
    println!("   question arrive and answer it. Press Ctrl-C to stop and delete everything.");
    tokio::signal::ctrl_c()
        .await
        .context("cannot wait for Ctrl-C")?;
    Ok(())
}

fn indent(text: &str) {
    for line in text.lines() {
        println!("   {line}");
    }
}

async fn wait_for<T, F, Fut>(limit: Duration, mut check: F) -> anyhow::Result<Option<T>>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<Option<T>>>,
{
    let deadline = Instant::now() + limit;
    loop {
        if let Some(value) = check().await? {
            return Ok(Some(value));
        }
        if Instant::now() >= deadline {
            return Ok(None);
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// The config of `team`'s node, on `port`. It lists no peers: they come from the signed
/// directory.
fn node_config(team: &Team, port: u16, ca_dir: &Path) -> NodeToml {
    let mut toml = NodeToml::new(
        FEDERATION,
        team.id,
        team.role,
        team.discipline,
        &ca_dir.join("ca.pem"),
        port,
    );
    toml.comment = Some(team.name.into());
    toml.jurisdiction = Some("Lincoln County".into());
    toml.delivery = Some(loopback::Delivery {
        initial_backoff: Some(Duration::from_millis(100)),
        max_backoff: Some(Duration::from_secs(2)),
        ..Default::default()
    });
    // A real node signs its audit chain every five minutes; the demo is over sooner.
    toml.checkpoint_interval = Some(Duration::from_millis(300));
    toml
}
