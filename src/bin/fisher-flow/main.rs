//! fisher-flow command-line entry point: parse, dispatch, map errors to exit codes.

mod cli;
mod metric;
mod quality;
mod run;

use clap::Parser;
use cli::{Cli, Command};
use run::RunArgs;

fn main() {
    let cli = Cli::parse();
    let result = match cli.command {
        None => run::run(&RunArgs::demo()),
        Some(Command::Run(args)) => run::run(&args),
        Some(Command::Metric(args)) => metric::metric(&args),
    };
    if let Err(e) = result {
        eprintln!("error: {e}");
        std::process::exit(e.exit_code());
    }
}
