//! `fisher-flow explore`: serve the interactive Fisher-manifold page on 127.0.0.1.

use clap::Args;
use fisher_flow::Result;
use fisher_flow::serve::Server;
use fisher_flow::serve::api::Base;
use std::path::PathBuf;

#[derive(Args, Debug, Clone)]
pub struct ExploreArgs {
    /// Model file (TOML, a gaussian-mixture) [default: the built-in models/gmm-seed.toml]
    pub model: Option<PathBuf>,
    /// Port on 127.0.0.1 (0: any free port; the URL is printed)
    #[arg(long, default_value_t = 8717)]
    pub port: u16,
    /// Do not open a browser (otherwise `xdg-open URL` is tried, if present) [default: open]
    #[arg(long = "no-open")]
    pub no_open: bool,
}

pub fn explore(args: &ExploreArgs) -> Result<()> {
    let base = Base::load(args.model.as_deref())?;
    let model = base.path.display().to_string();
    let server = Server::start(base, args.port)?;
    let url = server.url();
    println!("fisher-flow explore: {model} at {url}  (Ctrl-C stops)");
    use std::io::Write;
    let _ = std::io::stdout().flush();
    if !args.no_open {
        // Best effort: no browser, no display or no xdg-open is not an error.
        match std::process::Command::new("xdg-open")
            .arg(&url)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
        {
            Ok(_) => {}
            Err(_) => println!("(no xdg-open: open the URL in a browser)"),
        }
    }
    server.wait()
}
