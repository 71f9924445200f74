//! `tatmx bench`: end-to-end delivery between real node processes, against the raw mutual-TLS
//! ceiling measured in the same run.
//!
//! The layers, in the order a run uses them:
//! - [`federation`] enrols the teams and runs each node as its own `tatmx-node` process, on
//!   loopback, with real certificates and SQLite files at the durability the node ships with;
//! - [`ceiling`] measures a bare gRPC echo over the same mutual TLS, and new connections;
//! - [`delivery`] submits referrals and times each until it is acknowledged;
//! - [`report`] holds the figures against the targets and prints them.
//!
//! `--quick` runs every phase small, for CI: it fails on a lost, duplicated or undelivered
//! message, never on a timing.

mod ceiling;
mod delivery;
mod federation;
mod footprint;
mod report;

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use clap::{Args, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use prost::Message;
use tatmx_proto::v1 as pb;

use delivery::Offered;
use federation::Federation;
use footprint::{Footprint, Growth, Stored};
use report::{ColdStart, FixedRate, Memory, Registry, Report, Setting};

/// The store's durability, as every node ships.
const DURABILITY: &str = "SQLite WAL, synchronous=FULL (fsync at every commit)";
/// The same, with `--postgres`.
const DURABILITY_POSTGRES: &str =
    "PostgreSQL, one database per node (the server's fsync and synchronous_commit)";

/// Arguments of `tatmx bench`.
#[derive(Args)]
pub struct BenchArgs {
    /// Referrals in the maximum-rate run, and again with the large registry.
    #[arg(long, default_value_t = 10_000)]
    pub referrals: usize,
    /// Concurrent submitters in the maximum-rate runs, and concurrent echo calls.
    #[arg(long, default_value_t = 64)]
    pub concurrency: usize,
    /// Offered rate of the fixed-rate run, in referrals per second.
    #[arg(long, default_value_t = 500.0)]
    pub rate: f64,
    /// How long the fixed-rate run offers referrals.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub rate_for: Duration,
    /// Referrals queued while the receiver is down, then drained.
    #[arg(long, default_value_t = 100_000)]
    pub backlog: usize,
    /// Partner nodes the consultation fans out to.
    #[arg(long, default_value_t = 50)]
    pub partners: usize,
    /// Extra peers listed in the directory for the registry run.
    #[arg(long, default_value_t = 1000)]
    pub registry: usize,
    /// A few seconds of every phase at small sizes; fails only if a message is lost.
    #[arg(long)]
    pub quick: bool,
    /// Run only these phases.
    #[arg(long, value_enum, value_delimiter = ',')]
    pub only: Vec<Phase>,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
    /// The node binary; defaults to the tatmx-node beside this program.
    #[arg(long, env = "TATMX_NODE_BIN")]
    pub node_bin: Option<PathBuf>,
    /// Keep the benchmark federation's directory (keys, configs, databases, node logs).
    #[arg(long)]
    pub keep: bool,
    /// Put every node's store on this PostgreSQL server (a URL without a database, such as
    /// postgres://postgres@127.0.0.1:5432) instead of SQLite files; each node gets a database
    /// of its own, dropped at the end of a run that completes, unless --keep.
    #[arg(long, value_name = "URL")]
    pub postgres: Option<String>,
}

/// A part of the benchmark.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Phase {
    /// Cold start and idle memory.
    Startup,
    /// The raw mTLS echo, and new connections.
    Ceiling,
    /// End-to-end at maximum rate, and at the fixed rate.
    Delivery,
    /// Backlog drain to a peer that comes back.
    Drain,
    /// One consultation to many partners.
    FanOut,
    /// A large registry.
    Registry,
}

/// The sizes a run uses.
struct Sizes {
    referrals: usize,
    concurrency: usize,
    rate: f64,
    rate_count: usize,
    backlog: usize,
    partners: usize,
    registry: usize,
    echo_calls: usize,
    handshakes: usize,
    starts: usize,
}

impl Sizes {
    fn of(args: &BenchArgs) -> Self {
        if args.quick {
            Self {
                referrals: 200,
                concurrency: 16,
                rate: 100.0,
                rate_count: 100,
                backlog: 200,
                partners: 3,
                registry: 20,
                echo_calls: 500,
                handshakes: 20,
                starts: 2,
            }
        } else {
            Self {
                referrals: args.referrals,
                concurrency: args.concurrency,
                rate: args.rate,
                rate_count: (args.rate * args.rate_for.as_secs_f64()).ceil() as usize,
                backlog: args.backlog,
                partners: args.partners,
                registry: args.registry,
                echo_calls: args.referrals.max(1000) * 2,
                handshakes: 500,
                starts: 5,
            }
        }
    }
}

/// Runs the benchmark, prints its report, and fails if a message was lost.
pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    let node_bin = federation::node_binary(args.node_bin.clone())?;
    let dir = tempfile::Builder::new()
        .prefix("tatmx-bench-")
        .tempdir()
        .context("cannot create a temporary directory")?;
    let result = run_in(dir.path(), node_bin, &args).await;
    if args.keep {
        eprintln!(
            "The benchmark federation was kept in {}",
            dir.keep().display()
        );
    }
    let report = result?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report.table());
    }
    let failures = report.failures();
    if !failures.is_empty() {
        anyhow::bail!("messages went missing:\n  {}", failures.join("\n  "));
    }
    Ok(())
}

async fn run_in(root: &Path, node_bin: PathBuf, args: &BenchArgs) -> anyhow::Result<Report> {
    let sizes = Sizes::of(args);
    let wanted = |phase| args.only.is_empty() || args.only.contains(&phase);
    let partners: Vec<String> = if wanted(Phase::FanOut) {
        (1..=sizes.partners)
            .map(|i| format!("partner-{i:03}"))
            .collect()
    } else {
        Vec::new()
    };
    let mut teams = vec![
        ("lincoln-high".to_owned(), "affiliate", "education"),
        ("county-core".to_owned(), "core", "law-enforcement"),
    ];
    teams.extend(
        partners
            .iter()
            .map(|p| (p.clone(), "partner", "federal-partner")),
    );
    let progress = phase_bar("enrolling the teams", teams.len());
    let federation = Federation::create(root, node_bin, &teams, args.postgres.as_deref()).await?;
    let directory = federation.sign()?;
    progress.finish_and_clear();

    let sender_team = federation.team("lincoln-high")?.clone();
    let receiver_team = federation.team("county-core")?.clone();
    let ca = federation.ca_dir.join("ca.pem");
    let draft = bench_referral(root)?;
    let referral_bytes = draft.encoded_len()
        + std::fs::read(sender_team.cert()).map_or(0, |pem| pem.len() * 3 / 4)
        + 100;

    let mut report = Report {
        setting: Setting {
            mode: if args.quick { "quick" } else { "full" },
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            durability: if args.postgres.is_some() {
                DURABILITY_POSTGRES
            } else {
                DURABILITY
            },
            referral_bytes,
            concurrency: sizes.concurrency,
        },
        max_rate: None,
        fixed_rate: None,
        ceiling: None,
        ratio_to_ceiling: None,
        stored: None,
        handshakes: None,
        memory: None,
        cold_start: None,
        drain: None,
        fan_out: None,
        registry: None,
        targets: Vec::new(),
    };

    let mut sender = federation.start(&sender_team).await?;
    sender.import(&directory).await?;
    let mut receiver = federation.start(&receiver_team).await?;
    receiver.import(&directory).await?;

    if wanted(Phase::Startup) {
        let progress = phase_bar("cold starts", sizes.starts);
        let mut starts = Vec::new();
        for _ in 0..sizes.starts {
            sender.stop().await?;
            sender = federation.start(&sender_team).await?;
            starts.push(sender.cold_start);
            progress.inc(1);
        }
        progress.finish_and_clear();
        starts.sort();
        report.cold_start = Some(ColdStart {
            starts: starts.len(),
            median_ms: starts[starts.len() / 2].as_secs_f64() * 1000.0,
            max_ms: starts.last().map_or(0.0, |d| d.as_secs_f64() * 1000.0),
        });
        // Settled after start-up: the first checkpoint and directory refresh are done.
        tokio::time::sleep(Duration::from_secs(1)).await;
        report.memory = Some(Memory {
            idle_sender: sender.rss()?,
            idle_receiver: receiver.rss()?,
            ..Memory::default()
        });
    }

    if wanted(Phase::Ceiling) {
        let echo = ceiling::Ceiling::serve(&receiver_team, &ca).await?;
        let progress = phase_bar("ceiling: raw mTLS echo", sizes.echo_calls);
        report.ceiling = Some(
            echo.measure(
                &sender_team,
                &ca,
                sizes.echo_calls,
                referral_bytes,
                sizes.concurrency,
                &progress,
            )
            .await?,
        );
        progress.finish_and_clear();
        let progress = phase_bar("new connections", sizes.handshakes);
        report.handshakes = Some(
            ceiling::handshakes(
                &sender_team,
                &receiver_team,
                &ca,
                sizes.handshakes,
                &progress,
            )
            .await?,
        );
        progress.finish_and_clear();
    }

    if wanted(Phase::Delivery) {
        let before = (
            Footprint::of(&sender_team.store).await?,
            Footprint::of(&receiver_team.store).await?,
        );
        let outcome = max_rate(
            &sender,
            &receiver,
            &draft,
            &sizes,
            "end-to-end, maximum rate",
        )
        .await?;
        // Every write of the run is committed by now: the sender announces a receipt only
        // after recording it, and the receiver gives one only after storing the referral.
        let after = (
            Footprint::of(&sender_team.store).await?,
            Footprint::of(&receiver_team.store).await?,
        );
        report.stored = Some(Stored {
            method: if args.postgres.is_some() {
                footprint::POSTGRES_METHOD
            } else {
                footprint::SQLITE_METHOD
            },
            delivered: outcome.acknowledged,
            sender: Growth::between(&before.0, &after.0, outcome.acknowledged),
            receiver: Growth::between(&before.1, &after.1, outcome.acknowledged),
        });
        let memory = report.memory.get_or_insert_with(Memory::default);
        memory.loaded_sender = outcome.peak_rss_sender;
        memory.loaded_receiver = outcome.peak_rss_receiver;
        if let Some(ceiling) = &report.ceiling {
            report.ratio_to_ceiling = Some(outcome.per_second / ceiling.per_second);
        }
        report.max_rate = Some(outcome);

        let progress = phase_bar("end-to-end, fixed rate", sizes.rate_count);
        let outcome = delivery::run(
            &sender,
            &receiver,
            &draft,
            sizes.rate_count,
            Offered::Fixed {
                per_second: sizes.rate,
            },
            &progress,
        )
        .await?;
        progress.finish_and_clear();
        report.fixed_rate = Some(FixedRate {
            offered_per_second: sizes.rate,
            outcome,
        });
    }

    if wanted(Phase::Drain) {
        let progress = phase_bar("backlog drain", sizes.backlog);
        let (outcome, restarted) = delivery::drain(
            &sender,
            receiver,
            || federation.start(&receiver_team),
            &draft,
            sizes.backlog,
            sizes.concurrency,
            &progress,
        )
        .await?;
        progress.finish_and_clear();
        receiver = restarted;
        report.drain = Some(outcome);
    }

    if wanted(Phase::FanOut) && !partners.is_empty() {
        let progress = phase_bar("starting the partners", partners.len());
        let mut partner_nodes = Vec::new();
        for id in &partners {
            let node = federation.start(federation.team(id)?).await?;
            node.import(&directory).await?;
            partner_nodes.push(node);
            progress.inc(1);
        }
        progress.finish_and_clear();
        let mut case = draft.clone();
        case.legal_basis = pb::LegalBasis::DeIdentified as i32;
        case.justification = String::new();
        let progress = phase_bar("consultation fan-out", partners.len());
        report.fan_out = Some(delivery::fan_out(&receiver, &case, &partners, &progress).await?);
        progress.finish_and_clear();
        for node in partner_nodes {
            node.stop().await?;
        }
    }

    if wanted(Phase::Registry) {
        let progress = phase_bar("listing the registry", sizes.registry);
        for i in 0..sizes.registry {
            // Listed only: these teams never run, as most of a large federation is quiet.
            federation.list(
                &format!("listed-{i:04}"),
                "affiliate",
                "education",
                federation::quiet_port()?,
            )?;
            progress.inc(1);
        }
        progress.finish_and_clear();
        let large = federation.sign()?;
        let rss_before = receiver.rss()?;
        sender.import(&large).await?;
        receiver.import(&large).await?;
        tokio::time::sleep(Duration::from_millis(500)).await;
        let rss_after = receiver.rss()?;
        let outcome = max_rate(
            &sender,
            &receiver,
            &draft,
            &sizes,
            "end-to-end, large registry",
        )
        .await?;
        let before = report.max_rate.as_ref().map_or(0.0, |r| r.per_second);
        let per_message = |rate: f64| if rate > 0.0 { 1e6 / rate } else { 0.0 };
        report.registry = Some(Registry {
            peers: sizes.registry,
            rss_before,
            rss_after,
            bytes_per_peer: (rss_after as f64 - rss_before as f64) / sizes.registry.max(1) as f64,
            per_second_before: before,
            per_message_cost_us: if before > 0.0 {
                per_message(outcome.per_second) - per_message(before)
            } else {
                0.0
            },
            outcome,
        });
    }

    sender.stop().await?;
    receiver.stop().await?;
    if !args.keep {
        federation.drop_databases().await?;
    }
    report.judge();
    Ok(report)
}

/// The maximum-rate delivery run, under a progress bar labelled `phase`.
async fn max_rate(
    sender: &federation::NodeProcess,
    receiver: &federation::NodeProcess,
    draft: &pb::NewReferral,
    sizes: &Sizes,
    phase: &str,
) -> anyhow::Result<delivery::DeliveryOutcome> {
    let progress = phase_bar(phase, sizes.referrals);
    let outcome = delivery::run(
        sender,
        receiver,
        draft,
        sizes.referrals,
        Offered::MaxRate {
            concurrency: sizes.concurrency,
        },
        &progress,
    )
    .await?;
    progress.finish_and_clear();
    Ok(outcome)
}

/// A progress bar on standard error for one phase; invisible when that is not a terminal.
fn phase_bar(phase: &str, length: usize) -> ProgressBar {
    let bar = ProgressBar::new(length as u64);
    if let Ok(style) =
        ProgressStyle::with_template("{prefix:32} [{bar:30}] {pos}/{len} {per_sec:>12} {msg}")
    {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_prefix(phase.to_owned());
    bar
}

/// The referral every run sends: a school's emergency referral to the county's core team, with
/// content in most categories, so the filter, the signature and the store do their full work.
fn bench_referral(root: &Path) -> anyhow::Result<pb::NewReferral> {
    let file = root.join("bench-referral.toml");
    std::fs::write(&file, BENCH_REFERRAL)?;
    let draft = crate::agency::read_referral_file(&file)?;
    Ok(tatmx_node::convert::new_referral_to_proto(&draft))
}

const BENCH_REFERRAL: &str = r#"# A fictional referral, sent over and over by `tatmx bench`.
recipient = "county-core"
case_ref = "BENCH-0001"
purpose = "threat-assessment"
legal_basis = "health-safety-emergency"
justification = "A student described a specific plan to harm classmates this week (fictional)."

[level_of_concern]
scheme = "CSTAG"
value = "very serious substantive"

[content.identity]
full_name = "Bench Example (fictional)"
date_of_birth = "2010-03-14"

[content.contact]
address = "1 Example Street (fictional)"
phone = "555-0100"

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

[content.narrative]
text = "A teacher overheard the student describe a plan, naming a date and a place (fictional)."

[content.education_record]
school = "Lincoln High School"
grade = "10"
discipline = ["one-day suspension, October"]

[content.reporter]
name = "A teacher (fictional)"
relationship = "teacher"
"#;
