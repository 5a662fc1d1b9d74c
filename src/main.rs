//! The `lmbench` binary: parse the command line, set up logging, run, map the outcome to an
//! exit code (0 ok, 1 a run failed, 2 bad input, 130 interrupted).

use clap::Parser;
use std::io::IsTerminal;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = lmbench::cli::Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_env("LMBENCH_LOG")
        .or_else(|_| tracing_subscriber::EnvFilter::try_from_default_env())
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none())
        .with_target(false)
        .init();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let code = rt.block_on(lmbench::run(cli));
    // Request tasks still draining after a forced stop must not hold the process open.
    rt.shutdown_timeout(std::time::Duration::from_millis(200));
    match code {
        Ok(code) => code.into(),
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}
