//! `tatmx policy validate` and `tatmx policy test`: for counsel changing the policy, offline.
//!
//! Both load the built-in default pack plus the files given, exactly as a node does, so what
//! passes here is what a node will run.

use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use serde::Deserialize;
use tatmx_node::DataCategory;
use tatmx_node::policy::{Action, ConsentVerdict, Exchange, Party, Policy};
use tatmx_node::referral::{LegalBasis, Purpose};
use tatmx_node::trust::{Discipline, Role};

/// `tatmx policy ...`
#[derive(Subcommand)]
pub enum PolicyCommand {
    /// Check policy files against the schema, with the default pack.
    Validate(ValidateArgs),
    /// Run a table of scenarios and report every decision that differs from its expectation.
    Test(TestArgs),
    /// List every rule: id, file and reason.
    Rules(RulesArgs),
}

/// Arguments of `tatmx policy rules`.
#[derive(Args)]
pub struct RulesArgs {
    /// The agency's policy files (the default pack is always included).
    pub files: Vec<PathBuf>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `tatmx policy validate`.
#[derive(Args)]
pub struct ValidateArgs {
    /// The agency's policy files (the default pack is always included).
    pub files: Vec<PathBuf>,
}

/// Arguments of `tatmx policy test`.
#[derive(Args)]
pub struct TestArgs {
    /// The scenarios file (TOML, `[[scenario]]` tables).
    pub scenarios: PathBuf,
    /// The agency's policy files (the default pack is always included).
    #[arg(long = "policy")]
    pub files: Vec<PathBuf>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ScenarioFile {
    scenario: Vec<Scenario>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Scenario {
    name: String,
    category: String,
    sender: PartyFile,
    recipient: PartyFile,
    purpose: Purpose,
    basis: LegalBasis,
    #[serde(default)]
    justified: bool,
    /// none | permits | names-recipient
    #[serde(default = "no_consent")]
    consent: String,
    #[serde(default)]
    reidentify: bool,
    /// disclose (default) | hold
    #[serde(default = "disclose")]
    action: String,
    #[serde(default)]
    labels: Vec<String>,
    /// permit | withhold
    expect: String,
}

fn no_consent() -> String {
    "none".into()
}

fn disclose() -> String {
    "disclose".into()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PartyFile {
    role: Role,
    discipline: Discipline,
    #[serde(default)]
    cjis_authorized: bool,
    #[serde(default = "default_team")]
    team: String,
}

fn default_team() -> String {
    "spiffe://example.federation/team/example".into()
}

fn party(p: &PartyFile) -> Party {
    Party {
        team: p.team.clone(),
        federation: "example.federation".into(),
        role: p.role,
        discipline: p.discipline,
        cjis_authorized: p.cjis_authorized,
    }
}

/// Runs a `tatmx policy` command.
pub fn run(cmd: PolicyCommand) -> anyhow::Result<()> {
    match cmd {
        PolicyCommand::Validate(args) => {
            let policy = Policy::load(&args.files)?;
            println!(
                "The policy is valid: {} rules (the default pack plus {} file(s)).",
                policy.rules().len(),
                args.files.len()
            );
            Ok(())
        }
        PolicyCommand::Rules(args) => {
            let policy = Policy::load(&args.files)?;
            if args.json {
                let rows: Vec<_> = policy
                    .rules()
                    .into_iter()
                    .map(|(id, file, reason)| {
                        serde_json::json!({"id": id, "file": file, "reason": reason})
                    })
                    .collect();
                return crate::output::print_json(&rows);
            }
            for (id, file, reason) in policy.rules() {
                println!("{id}  ({file})\n    {reason}");
            }
            Ok(())
        }
        PolicyCommand::Test(args) => test(&args),
    }
}

fn test(args: &TestArgs) -> anyhow::Result<()> {
    let policy = Policy::load(&args.files)?;
    let text = std::fs::read_to_string(&args.scenarios)
        .with_context(|| format!("cannot read {}", args.scenarios.display()))?;
    let file: ScenarioFile = toml::from_str(&text)
        .with_context(|| format!("{} is not a valid scenarios file", args.scenarios.display()))?;
    let mut mismatches = 0;
    for scenario in &file.scenario {
        let category = DataCategory::parse(&scenario.category).with_context(|| {
            format!(
                "{}: unknown category {:?}",
                scenario.name, scenario.category
            )
        })?;
        let consent = match scenario.consent.as_str() {
            "none" => ConsentVerdict::default(),
            "permits" => ConsentVerdict {
                permits: true,
                names_recipient: false,
            },
            "names-recipient" => ConsentVerdict {
                permits: true,
                names_recipient: true,
            },
            other => bail!(
                "{}: consent {other:?}: use none, permits or names-recipient",
                scenario.name
            ),
        };
        let action = match scenario.action.as_str() {
            "disclose" => Action::Disclose,
            "hold" => Action::Hold,
            other => bail!("{}: action {other:?}: use disclose or hold", scenario.name),
        };
        let expect_permit = match scenario.expect.as_str() {
            "permit" => true,
            "withhold" => false,
            other => bail!(
                "{}: expect {other:?}: use permit or withhold",
                scenario.name
            ),
        };
        let exchange = Exchange {
            sender: party(&scenario.sender),
            recipient: party(&scenario.recipient),
            purpose: scenario.purpose,
            basis: scenario.basis,
            justified: scenario.justified,
            reidentify: scenario.reidentify,
        };
        let labels: Vec<&str> = scenario.labels.iter().map(String::as_str).collect();
        let decision = policy.decide(action, category, &exchange, consent, &labels);
        let got = if decision.permitted {
            "permit"
        } else {
            "withhold"
        };
        if decision.permitted == expect_permit {
            println!("ok        {} -> {got}", scenario.name);
        } else {
            mismatches += 1;
            println!(
                "MISMATCH  {}: expected {}, got {got}\n          rules: {}\n          reasons: {}",
                scenario.name,
                scenario.expect,
                if decision.rules.is_empty() {
                    "(none)".into()
                } else {
                    decision.rules.join(", ")
                },
                decision.reasons.join("; ")
            );
        }
    }
    println!(
        "\n{} passed, {mismatches} failed",
        file.scenario.len() - mismatches
    );
    if mismatches > 0 {
        bail!("{mismatches} scenario(s) did not get the expected decision");
    }
    Ok(())
}
