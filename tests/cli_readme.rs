//! README's "Command line" synopsis lists every flag of every subcommand, as clap defines
//! them (read from `fisher-flow SUBCOMMAND --help`, so a new flag or subcommand that the
//! README does not mention fails here).

use assert_cmd::Command;

fn help(args: &[&str]) -> String {
    let o = Command::cargo_bin("fisher-flow")
        .unwrap()
        .args(args)
        .arg("--help")
        .output()
        .unwrap();
    assert!(o.status.success());
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Subcommands listed under "Commands:" of the top-level help.
fn subcommands() -> Vec<String> {
    let h = help(&[]);
    h.lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .filter(|c| c != "help")
        .collect()
}

/// Long flags of a subcommand's options (without --help / --version).
fn flags(sub: &str) -> Vec<String> {
    help(&[sub])
        .lines()
        .map(str::trim_start)
        .filter(|l| l.starts_with('-'))
        .filter_map(|l| {
            l.split(|c: char| c.is_whitespace() || c == ',' || c == '=' || c == '<')
                .find(|w| w.starts_with("--"))
                .map(str::to_string)
        })
        .filter(|f| f != "--help" && f != "--version")
        .collect()
}

/// The synopsis block of README's "## Command line": for each subcommand, its lines.
fn synopsis() -> std::collections::HashMap<String, String> {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
        .expect("README.md");
    let section = readme
        .split("\n## Command line\n")
        .nth(1)
        .expect("a '## Command line' section");
    let block = section
        .split("```")
        .nth(1)
        .expect("a code block in '## Command line'");
    let mut map = std::collections::HashMap::new();
    let mut current: Option<String> = None;
    for line in block.lines() {
        if let Some(rest) = line.strip_prefix("fisher-flow ") {
            let sub = rest.split_whitespace().next().unwrap_or("");
            current = (!sub.starts_with('[')).then(|| sub.to_string());
        }
        if let Some(c) = &current {
            let e: &mut String = map.entry(c.clone()).or_default();
            e.push_str(line);
            e.push('\n');
        }
    }
    map
}

fn mentions(text: &str, flag: &str) -> bool {
    text.match_indices(flag).any(|(i, _)| {
        text[i + flag.len()..]
            .chars()
            .next()
            .is_none_or(|c| !(c.is_ascii_alphanumeric() || c == '-'))
    })
}

#[test]
fn readme_synopsis_lists_every_flag_of_every_subcommand() {
    let subs = subcommands();
    assert!(subs.len() >= 8, "{subs:?}");
    let syn = synopsis();
    let mut missing = Vec::new();
    for sub in &subs {
        let Some(text) = syn.get(sub) else {
            missing.push(format!("{sub}: no synopsis line"));
            continue;
        };
        let fl = flags(sub);
        assert!(!fl.is_empty(), "{sub}: no flags parsed from --help");
        for f in fl {
            if !mentions(text, &f) {
                missing.push(format!("{sub} {f}"));
            }
        }
    }
    assert!(missing.is_empty(), "README synopsis misses: {missing:?}");
}
