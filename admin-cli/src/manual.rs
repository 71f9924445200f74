//! `tatmx completions` and `tatmx man`: shell completion scripts and manual pages.
//!
//! Both are generated from the same clap definition that parses the command line, so they
//! cannot drift from it: a new command or flag appears in them with the build that adds it.
//! Packagers run them once at build time; an admin can run them on a node's host.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Args;

/// Arguments of `tatmx completions`.
#[derive(Args)]
pub struct CompletionsArgs {
    /// The shell to complete in.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

/// Arguments of `tatmx man`.
#[derive(Args)]
pub struct ManArgs {
    /// Write tatmx.1 and one page per command (such as tatmx-referral-send.1) into this
    /// directory, instead of printing tatmx.1.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
}

/// Prints the completion script for one shell.
pub fn completions(mut cli: clap::Command, args: &CompletionsArgs) -> anyhow::Result<()> {
    let name = cli.get_name().to_owned();
    clap_complete::generate(args.shell, &mut cli, name, &mut std::io::stdout());
    Ok(())
}

/// Prints the main page, or writes every page into `--out`.
pub fn man(cli: clap::Command, args: &ManArgs) -> anyhow::Result<()> {
    let pages = pages(cli)?;
    let Some(dir) = &args.out else {
        // The main page comes last, after the pages of the commands under it.
        if let Some((_, page)) = pages.last() {
            use std::io::Write;
            std::io::stdout()
                .write_all(page)
                .context("cannot write the manual page to standard output")?;
        }
        return Ok(());
    };
    write_pages(dir, &pages)?;
    println!(
        "Wrote {} manual pages to {} (tatmx.1 and one per command); read one with `man -l {}`.",
        pages.len(),
        dir.display(),
        dir.join("tatmx.1").display()
    );
    Ok(())
}

fn write_pages(dir: &Path, pages: &[(String, Vec<u8>)]) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    for (name, page) in pages {
        let path = dir.join(name);
        std::fs::write(&path, page).with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(())
}

/// Every manual page as (file name, roff text): the commands' pages first, the main page last.
pub fn pages(cli: clap::Command) -> anyhow::Result<Vec<(String, Vec<u8>)>> {
    // Building names each command by its path (`tatmx-referral-send`); the `help` subcommand
    // clap adds would otherwise get pages of its own, so it goes first.
    let mut cli = cli.disable_help_subcommand(true);
    cli.build();
    let mut pages = Vec::new();
    collect(&cli, &mut pages)?;
    Ok(pages)
}

fn collect(cmd: &clap::Command, pages: &mut Vec<(String, Vec<u8>)>) -> anyhow::Result<()> {
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        collect(sub, pages)?;
    }
    let name = cmd.get_display_name().unwrap_or(cmd.get_name()).to_owned();
    // man pages title themselves in capitals (`.TH TATMX 1`); clap_mangen keeps the case given.
    let man = clap_mangen::Man::new(cmd.clone())
        .title(name.to_uppercase())
        .manual("tatmx manual");
    let mut page = Vec::new();
    man.render(&mut page)
        .with_context(|| format!("cannot render the manual page of {name}"))?;
    pages.push((format!("{name}.1"), page));
    Ok(())
}
