//! `redline completions SHELL` and `redline manpage [COMMAND]`: shell completions and roff man
//! pages generated from the command's own clap definitions, so they can never disagree with
//! `--help`. Packagers install them; `-o FILE` writes them to a file.

use super::{Cli, Out};
use anyhow::{bail, Context, Result};
use clap::{Args, CommandFactory};
use clap_complete::Shell;

/// Print a shell completion script for `redline`.
#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  redline completions bash > /etc/bash_completion.d/redline
  redline completions zsh -o ~/.zfunc/_redline
  redline completions fish > ~/.config/fish/completions/redline.fish")]
pub struct CompletionsArgs {
    /// The shell: bash, zsh, fish, elvish or powershell.
    #[arg(value_name = "SHELL")]
    shell: Shell,
}

/// Print a man page (roff) for `redline` or one of its commands.
#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  redline manpage -o /usr/share/man/man1/redline.1
  redline manpage audit -o /usr/share/man/man1/redline-audit.1
  redline manpage | man -l -")]
pub struct ManpageArgs {
    /// A command (`audit`, `proof`, ...) for its own page (`redline-COMMAND(1)`); none for
    /// the top-level page.
    #[arg(value_name = "COMMAND")]
    command: Option<String>,
}

pub fn completions(a: CompletionsArgs, out: &mut Out) -> Result<bool> {
    let mut cmd = Cli::command();
    clap_complete::generate(a.shell, &mut cmd, "redline", out.writer());
    Ok(true)
}

pub fn manpage(a: ManpageArgs, out: &mut Out) -> Result<bool> {
    let top = Cli::command();
    let man = match &a.command {
        None => clap_mangen::Man::new(top),
        Some(name) => {
            let Some(sub) = top.find_subcommand(name).cloned() else {
                let names: Vec<_> = top.get_subcommands().map(|c| c.get_name()).collect();
                bail!("no command {name:?}; the commands are {}", names.join(", "));
            };
            // `redline-audit(1)`, as man pages of subcommands are named.
            let title = format!("redline-{}", sub.get_name());
            let bin_name = format!("redline {}", sub.get_name());
            let sub = sub.bin_name(bin_name).display_name(title.clone());
            clap_mangen::Man::new(sub).title(title)
        }
    };
    man.render(out.writer())
        .context("cannot write the man page")?;
    Ok(true)
}
