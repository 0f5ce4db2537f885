//! fisher-flow command-line entry point: parse, dispatch, map errors to exit codes.

mod check;
mod cli;
mod compare;
mod density;
mod explore;
mod field;
mod integrate;
mod manifold;
mod metric;
mod optimize;
mod quality;
mod run;
mod sweep;
mod verify;

use clap::Parser;
use cli::{Cli, Command};
use run::RunArgs;

/// Restore the default action of SIGPIPE (terminate quietly), which the Rust runtime sets to
/// "ignore": `fisher-flow check | head -1` then ends like any Unix filter instead of panicking
/// in `println!` on a closed pipe.
#[cfg(unix)]
fn default_sigpipe() {
    unsafe extern "C" {
        fn signal(signum: i32, handler: usize) -> usize;
    }
    const SIGPIPE: i32 = 13;
    const SIG_DFL: usize = 0;
    // SAFETY: `signal` with SIG_DFL installs no Rust code as a handler; it is called once,
    // before any thread is started.
    unsafe {
        signal(SIGPIPE, SIG_DFL);
    }
}

#[cfg(not(unix))]
fn default_sigpipe() {}

fn main() {
    default_sigpipe();
    let cli = Cli::parse();
    let result = match cli.command {
        None => run::run(&RunArgs::demo()),
        Some(Command::Run(args)) => run::run(&args),
        Some(Command::Metric(args)) => metric::metric(&args),
        Some(Command::Optimize(args)) => optimize::optimize(&args),
        Some(Command::Field(args)) => field::field(&args),
        Some(Command::Compare(args)) => compare::compare(&args),
        Some(Command::Manifold(args)) => manifold::manifold(&args),
        Some(Command::Explore(args)) => explore::explore(&args),
        Some(Command::Sweep(args)) => sweep::sweep(&args),
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
