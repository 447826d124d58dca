//! `netwatch completions SHELL` and `netwatch man`: generated from the clap
//! definition, so they never disagree with `--help`. `cargo xtask install`
//! runs these (xtask must not depend on the netwatch crate).

use std::{
    io::{self, Write as _},
    path::{Path, PathBuf},
};

use anyhow::{Context as _, Result};
use clap::Args;
use clap_complete::Shell;

#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  netwatch completions bash > /usr/share/bash-completion/completions/netwatch\n  \
                        netwatch completions zsh > /usr/local/share/zsh/site-functions/_netwatch\n  \
                        netwatch completions fish > ~/.config/fish/completions/netwatch.fish")]
pub struct CompletionsArgs {
    /// bash, zsh, fish, elvish or powershell
    #[arg(value_name = "SHELL")]
    pub shell: Shell,
}

#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  netwatch man | man -l -\n  netwatch man --dir /usr/local/share/man/man1")]
pub struct ManArgs {
    /// Write netwatch.1 and one netwatch-COMMAND.1 page per command into this directory
    /// instead of printing netwatch.1
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

/// `cmd`: the whole command line's definition.
pub fn completions(args: &CompletionsArgs, mut cmd: clap::Command) -> Result<()> {
    // Into memory first: clap_complete panics on a write error, and a
    // closed pipe (`| head`) must end netwatch quietly (main.rs).
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut cmd, "netwatch", &mut script);
    let mut out = io::stdout().lock();
    out.write_all(&script).and_then(|()| out.flush()).context("writing the completion script")
}

/// `cmd`: the whole command line's definition.
pub fn man(args: &ManArgs, mut cmd: clap::Command) -> Result<()> {
    cmd.build();
    match &args.dir {
        None => {
            let mut out = io::stdout().lock();
            clap_mangen::Man::new(cmd).render(&mut out).context("writing the man page")?;
            out.flush().context("writing the man page")
        }
        Some(dir) => write_pages(&cmd, dir),
    }
}

/// netwatch.1, then netwatch-events.1 and so on, as git's pages are named
/// (a built command's subcommands carry those display names).
fn write_pages(cmd: &clap::Command, dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let subs = cmd.get_subcommands().filter(|s| !s.is_hide_set() && s.get_name() != "help");
    for page in std::iter::once(cmd).chain(subs).map(|c| clap_mangen::Man::new(c.clone())) {
        let name = page.get_filename();
        let path = dir.join(&name);
        let mut buf = Vec::new();
        page.render(&mut buf).with_context(|| format!("rendering {name}"))?;
        std::fs::write(&path, buf).with_context(|| format!("writing {}", path.display()))?;
        // Not println!, which panics on a closed pipe.
        writeln!(io::stdout(), "{}", path.display()).context("writing to stdout")?;
    }
    Ok(())
}
