//! fisher-flow command-line entry point: parse, dispatch, map errors to exit codes.

mod check;
mod cli;
mod compare;
mod field;
mod integrate;
mod manifold;
mod metric;
mod optimize;
mod quality;
mod run;
mod verify;

use clap::Parser;
use cli::{Cli, Command};
use run::RunArgs;

fn main() {
    let cli = Cli::parse();
    let result = match cli.command {
        None => run::run(&RunArgs::demo()),
        Some(Command::Run(args)) => run::run(&args),
        Some(Command::Metric(args)) => metric::metric(&args),
        Some(Command::Optimize(args)) => optimize::optimize(&args),
        Some(Command::Field(args)) => field::field(&args),
        Some(Command::Compare(args)) => compare::compare(&args),
        Some(Command::Manifold(args)) => manifold::manifold(&args),
        Some(Command::Check(args)) => match check::check(&args) {
            Ok(code) => std::process::exit(code),
            Err(e) => Err(e),
        },
        Some(Command::Verify(args)) => match verify::verify(&args) {
            Ok(code) => std::process::exit(code),
            Err(e) => Err(e),
        },
    };
    if let Err(e) = result {
        eprintln!("error: {e}");
        std::process::exit(e.exit_code());
    }
}
