use std::process::ExitCode;

use clap::Parser as _;

fn main() -> ExitCode {
    let cli = netwatch::cli::Cli::parse();
    match netwatch::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if netwatch::is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("netwatch: {e:#}");
            ExitCode::FAILURE
        }
    }
}
