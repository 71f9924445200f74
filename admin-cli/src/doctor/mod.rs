//! `tatmx doctor`: checks a node's setup and says, for each problem, what to do next.
//!
//! An agency admin runs it before starting a node, after changing its config or certificate,
//! and when something stops working. It reads the same config file the node reads, with the
//! node's own parser, then checks in the order a problem would bite: the config, this node's
//! keys and certificates, its store, whether the node runs, and every configured peer over a
//! real mutual-TLS handshake made with the node's own certificate and client code. It changes
//! nothing. Each check is one line, OK, WARN, FAIL or SKIP (when a failure above makes it
//! impossible), and the exit status is non-zero when any check fails.
//!
//! # Layout
//! - this file: the arguments, the report and its two forms (lines, JSON).
//! - [`identity`]: the CA certificate, this node's certificate and key, and how they fit.
//! - [`store`]: the SQLite database (or the data directory it will be made in), or PostgreSQL.
//! - [`reach`]: whether the node answers on its Admin socket, and whether each peer does.

mod identity;
mod reach;
mod store;

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use serde::Serialize;
use serde_json::json;
use tatmx_node::Config;

use crate::errors;

/// Arguments of `tatmx doctor`.
#[derive(Args)]
pub struct DoctorArgs {
    /// The node's config file, as `tatmx-node --config` is given it.
    #[arg(long, env = "TATMX_CONFIG", default_value = "/etc/tatmx/node.toml")]
    pub config: PathBuf,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
    /// How long to wait for each peer, for the TCP connection and then for the handshake.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    pub timeout: Duration,
    /// Warn about a certificate that expires within this many days.
    #[arg(long, default_value_t = 30)]
    pub warn_days: u32,
}

/// A check's outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// Nothing to do.
    Ok,
    /// Works now, but needs attention soon (a certificate near expiry, a node not started).
    Warn,
    /// Broken: the node will not start, or cannot exchange with a peer, until it is fixed.
    Fail,
    /// Not checked, because a failure reported above makes the check impossible.
    Skip,
}

impl Verdict {
    fn label(self) -> &'static str {
        match self {
            Self::Ok => "OK",
            Self::Warn => "WARN",
            Self::Fail => "FAIL",
            Self::Skip => "SKIP",
        }
    }
}

/// One line of the report.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    /// What was checked, such as `key file mode` or `peer county-core`.
    pub check: String,
    /// The outcome.
    pub status: Verdict,
    /// What was found: paths, dates, identities, never case data.
    pub detail: String,
    /// What to do about it; absent when the check passed.
    pub next: Option<String>,
}

/// The checks made so far, in order.
#[derive(Debug, Default)]
pub struct Report {
    /// Every check, in the order made.
    checks: Vec<Check>,
}

impl Report {
    /// Records a check that passed.
    pub fn ok(&mut self, check: impl Into<String>, detail: impl Into<String>) {
        self.push(check, Verdict::Ok, detail, None);
    }

    /// Records a check that needs attention soon.
    pub fn warn(
        &mut self,
        check: impl Into<String>,
        detail: impl Into<String>,
        next: impl Into<String>,
    ) {
        self.push(check, Verdict::Warn, detail, Some(next.into()));
    }

    /// Records a check that failed.
    pub fn fail(
        &mut self,
        check: impl Into<String>,
        detail: impl Into<String>,
        next: impl Into<String>,
    ) {
        self.push(check, Verdict::Fail, detail, Some(next.into()));
    }

    /// Records a check that could not be made because of a failure above.
    pub fn skip(&mut self, check: impl Into<String>, why: impl Into<String>) {
        self.push(
            check,
            Verdict::Skip,
            why,
            Some("fix the failure above, then run tatmx doctor again".into()),
        );
    }

    /// Records a check made elsewhere (on another task).
    pub fn record(&mut self, check: Check) {
        self.checks.push(check);
    }

    fn push(
        &mut self,
        check: impl Into<String>,
        status: Verdict,
        detail: impl Into<String>,
        next: Option<String>,
    ) {
        self.checks.push(Check {
            check: check.into(),
            status,
            detail: detail.into(),
            next,
        });
    }

    /// Whether no check failed.
    pub fn healthy(&self) -> bool {
        !self.checks.iter().any(|c| c.status == Verdict::Fail)
    }

    /// The checks made.
    pub fn checks(&self) -> &[Check] {
        &self.checks
    }

    fn count(&self, verdict: Verdict) -> usize {
        self.checks.iter().filter(|c| c.status == verdict).count()
    }

    /// The report as lines for a person: one per check, the next step under each problem, and
    /// a count at the end.
    pub fn text(&self) -> String {
        let width = self
            .checks
            .iter()
            .map(|c| c.check.chars().count())
            .max()
            .unwrap_or(0);
        let mut out = String::new();
        // A detail of several lines (every invalid key of a config) continues under itself.
        let indent = " ".repeat(6 + width + 2);
        for c in &self.checks {
            out.push_str(&format!(
                "{:<5} {:<width$}  {}\n",
                c.status.label(),
                c.check,
                c.detail.trim().replace('\n', &format!("\n{indent}"))
            ));
            if let Some(next) = &c.next {
                out.push_str(&format!("      next: {next}\n"));
            }
        }
        let (fail, warn, skip) = (
            self.count(Verdict::Fail),
            self.count(Verdict::Warn),
            self.count(Verdict::Skip),
        );
        out.push('\n');
        if fail + warn + skip == 0 {
            out.push_str(&format!("All {} checks passed.\n", self.checks.len()));
        } else {
            out.push_str(&format!(
                "{fail} failed, {warn} to look at, {skip} not checked, of {} checks.\n",
                self.checks.len()
            ));
        }
        out
    }
}

/// Runs every check and prints the report; returns whether no check failed.
pub async fn run(args: &DoctorArgs) -> anyhow::Result<bool> {
    let report = examine(args).await;
    if args.json {
        crate::output::print_json(&json!({
            "config": args.config,
            "healthy": report.healthy(),
            "checks": report.checks(),
        }))?;
    } else {
        print!("{}", report.text());
    }
    Ok(report.healthy())
}

/// Makes every check, in order; a config that does not load stops it there, as the node stops.
pub async fn examine(args: &DoctorArgs) -> Report {
    let mut report = Report::default();
    let config = match Config::load(&args.config) {
        Ok(config) => {
            report.ok(
                "config",
                format!(
                    "{} is valid: this node is {}, with {} peer(s) in the file",
                    args.config.display(),
                    config.local.identity,
                    config.peers.len()
                ),
            );
            config
        }
        Err(e) => {
            let failure = errors::config(&args.config, &e);
            report.fail("config", failure.to_string(), failure.next());
            return report;
        }
    };
    let credentials = identity::check_all(&mut report, &config, args.warn_days);
    store::check(&mut report, &config, args.timeout).await;
    reach::check_node(&mut report, &config, &args.config, args.timeout).await;
    reach::check_peers(&mut report, &config, credentials, args.timeout).await;
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_text_report_puts_the_next_step_under_each_problem() {
        let mut report = Report::default();
        report.ok("config", "valid");
        report.fail("key file mode", "/k is mode 0644", "chmod 600 /k");
        let text = report.text();
        assert!(text.contains("OK    config         valid\n"), "{text}");
        assert!(
            text.contains("FAIL  key file mode  /k is mode 0644\n      next: chmod 600 /k\n"),
            "{text}"
        );
        assert!(text.contains("1 failed, 0 to look at, 0 not checked, of 2 checks."));
        assert!(!report.healthy());
    }
}
