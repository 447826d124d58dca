use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = netwatch::parse();
    match netwatch::run(cli) {
        Ok(code) => code,
        Err(e) if netwatch::is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("netwatch: {e:#}");
            ExitCode::FAILURE
        }
    }
}
