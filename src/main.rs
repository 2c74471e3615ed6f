//! The `k1s` command: parses the command line and wires the crates together; nothing else lives here.

mod cli;
mod server;

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = cli::Cli::parse();
    cli::init_logging(&cli.log_format);
    match cli.command {
        cli::Command::Version => {
            println!("k1s version {}", cli::version_string());
            std::process::ExitCode::SUCCESS
        }
        cli::Command::Server(args) => run(server::run(*args)),
        cli::Command::Agent(args) => run(server::run_agent(args)),
        cli::Command::Simulate(args) => run(server::run_simulate(args)),
    }
}

/// Run a top-level future on a multi-threaded runtime; report its error and exit non-zero.
fn run(fut: impl std::future::Future<Output = anyhow::Result<()>>) -> std::process::ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("k1s: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(fut) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "k1s exited with an error");
            eprintln!("k1s: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
