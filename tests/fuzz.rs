//! A mutation fuzzer over model files, in `cargo test` (issue 11). From a fixed seed it makes
//! `FISHER_FLOW_FUZZ_CASES` (default 2,000) mutants of the demo model files — byte flips,
//! deletions, duplicated or swapped lines, keys swapped, numbers replaced by extreme ones — and
//! feeds each to the in-process loader (`Experiment::load`, what every subcommand runs). Where
//! loading succeeds it evaluates the loss and gradient at every start, and for every 2nd such
//! mutant of at most 32 parameters (and ≤ 64 Monte Carlo draws) a short flow (≤ 6 steps). It asserts: no panic; an error is exit code 2 and one
//! line; an accepted file gives finite loss and gradient at its starts and finite recorded
//! steps; no case takes more than `FISHER_FLOW_FUZZ_BUDGET_S` (default 30) seconds.
//!
//! Run longer: `FISHER_FLOW_FUZZ_CASES=200000 FISHER_FLOW_FUZZ_SEED=7 cargo test --release
//! --test fuzz -- --nocapture`.

use fisher_flow::config::{Experiment, Overrides};
use fisher_flow::flow::Simulator;
use fisher_flow::model::StatModel;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::path::Path;
use std::sync::mpsc;
use std::time::{Duration, Instant};

const IRIS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/models/data/iris.csv");

/// Seed files: the demos (the Iris file with an absolute data path, the conjugate VI file) and small variants that
/// reach the other branches (empirical loss, Gauss–Hermite, sampled metrics, K-FAC, ReLU).
fn corpus() -> Vec<String> {
    let root = env!("CARGO_MANIFEST_DIR");
    let read = |p: &str| std::fs::read_to_string(Path::new(root).join(p)).expect("demo model");
    let gmm = read("models/gmm-seed.toml");
    let synth = read("models/mlp-synthetic.toml");
    let iris = read("models/mlp-iris.toml").replace("data/iris.csv", IRIS);
    let vi = read("models/vi-conjugate.toml");
    vec![
        gmm.clone(),
        synth.clone(),
        iris,
        "[model]\nsigma = 0.7\nweight = 0.3\ntarget = [-1.0, 1.5]\n[loss]\nkind = \"empirical\"\nsamples = 200\nseed = 3\n[quadrature]\nscheme = \"gauss-hermite\"\nnodes = 32\n[flow]\nmetric = \"sampled\"\nsolver = \"bdf\"\nrtol = 1e-6\natol = 1e-8\nt_end = 1.0\nmax_steps = 30\ninterior_points = 3\nstarts = [[0.2, 0.3], [-2.0, 2.5]]\n[metric]\nsamples = 40\nseed = 5\n[plot]\nrange = [-3.0, 3.0]\n".into(),
        "[model]\nfamily = \"mlp\"\n[mlp]\nlayers = [2, 5, 1]\nactivation = \"relu\"\noutput = \"gaussian\"\nnoise = 0.2\ninit_seeds = [1, 2]\n[mlp.synthetic]\nn = 30\nnoise = 0.1\nseed = 4\n[flow]\nmetric = \"kfac\"\ndamping = 1e-3\nt_end = 0.5\nmax_steps = 40\n[metric]\nkfac_targets = \"sampled\"\nkfac_samples = 2\nbase = \"empirical\"\n".into(),
        "[model]\nfamily = \"mlp\"\n[mlp]\nlayers = [2, 3, 1]\noutput = \"gaussian\"\n[mlp.synthetic]\nn = 10\n[flow]\nmetric = \"block-diagonal\"\ndamping = 1e-2\ndamping_floor = 0.1\nstarts = [[0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.1, 1.2, 1.3]]\n[metric]\nbase = \"sampled\"\nsamples = 3\n".into(),
        vi,
    ]
}

/// Values a fuzzer would try, by the kind of value they replace: at and beyond every boundary
/// of f64 and of the counts, and the wrong kinds (one time in eight).
const INTS: &[&str] = &[
    "0",
    "1",
    "-1",
    "2",
    "1000000000000",
    "9223372036854775807",
    "9223372036854775808",
    "18446744073709551615",
    "2305843009213693952",
    "4611686018427387904",
    "100000001",
    "1001",
];
const FLOATS: &[&str] = &[
    "0.0",
    "-0.0",
    "-1.0",
    "nan",
    "inf",
    "-inf",
    "1e-320",
    "4.9e-324",
    "1e-170",
    "1e-162",
    "1e-101",
    "1e-100",
    "1e-15",
    "1e8",
    "1e12",
    "1e155",
    "1e300",
    "-1e300",
    "1.79e308",
    "1e308",
    "0.9999999999",
];
const STRINGS: &[&str] = &[
    "\"\"",
    "\"nan\"",
    "\"exact\"",
    "\"kfac\"",
    "\"mlp\"",
    "\"gaussian-mixture\"",
    "\"gaussian\"",
    "\"relu\"",
    "\"empirical\"",
    "\"sampled\"",
    "\"bdf\"",
    "\"auto\"",
    "\"/dev/zero\"",
    "\"../../../../etc/passwd\"",
];
const ARRAYS: &[&str] = &[
    "[]",
    "[1e300, -1e300]",
    "[nan, 0.0]",
    "[0.0, 0.0]",
    "[[0.0, 0.0]]",
    "[[1e300, -1e300]]",
    "[4, 9223372036854775807, 3]",
    "[4, 2305843009213693952, 3]",
    "[1, 1]",
    "[2, 100000000, 1]",
];

/// A replacement for the value `old`.
fn extreme(old: &[u8], rng: &mut ChaCha8Rng) -> &'static str {
    let kinds = [INTS, FLOATS, STRINGS, ARRAYS];
    let kind = match old.first() {
        _ if rng.random_range(0..8u32) == 0 => kinds[rng.random_range(0..4usize)],
        Some(b'"') => STRINGS,
        Some(b'[') => ARRAYS,
        _ if old.iter().any(|c| matches!(c, b'.' | b'e' | b'n' | b'i')) => FLOATS,
        _ => INTS,
    };
    kind[rng.random_range(0..kind.len())]
}

/// One mutation of `text`.
fn mutate(text: &[u8], rng: &mut ChaCha8Rng) -> Vec<u8> {
    let mut b = text.to_vec();
    let rounds = if rng.random_range(0..4u32) == 0 { 2 } else { 1 };
    for _ in 0..rounds {
        if b.is_empty() {
            break;
        }
        match rng.random_range(0..10u32) {
            // Flip a bit.
            0 => {
                let i = rng.random_range(0..b.len());
                b[i] ^= 1 << rng.random_range(0..8u32);
            }
            // Delete a range of up to 16 bytes.
            1 => {
                let i = rng.random_range(0..b.len());
                let n = rng.random_range(1..=16usize).min(b.len() - i);
                b.drain(i..i + n);
            }
            // Replace a number (or a quoted string) by an extreme value.
            2..=5 => {
                let spans = value_spans(&b);
                if let Some(&(s, e)) = spans.get(rng.random_range(0..spans.len().max(1))) {
                    let v = extreme(&b[s..e], rng);
                    b.splice(s..e, v.bytes());
                }
            }
            // Swap the values of two `key = value` lines (keys keep their place).
            6 => {
                let mut lines: Vec<Vec<u8>> =
                    b.split(|&c| c == b'\n').map(<[u8]>::to_vec).collect();
                let kv: Vec<usize> = (0..lines.len())
                    .filter(|&i| lines[i].contains(&b'=') && !lines[i].starts_with(b"#"))
                    .collect();
                if kv.len() >= 2 {
                    let i = kv[rng.random_range(0..kv.len())];
                    let j = kv[rng.random_range(0..kv.len())];
                    let split = |l: &[u8]| {
                        let p = l.iter().position(|&c| c == b'=').unwrap_or(0);
                        (l[..p].to_vec(), l[p..].to_vec())
                    };
                    let (ki, vi) = split(&lines[i]);
                    let (kj, vj) = split(&lines[j]);
                    lines[i] = [ki, vj].concat();
                    lines[j] = [kj, vi].concat();
                }
                b = lines.join(&b'\n');
            }
            // Swap two lines (a key may move to another section).
            7 => {
                let mut lines: Vec<Vec<u8>> =
                    b.split(|&c| c == b'\n').map(<[u8]>::to_vec).collect();
                let n = lines.len();
                lines.swap(rng.random_range(0..n), rng.random_range(0..n));
                b = lines.join(&b'\n');
            }
            // Duplicate a line.
            _ => {
                let mut lines: Vec<Vec<u8>> =
                    b.split(|&c| c == b'\n').map(<[u8]>::to_vec).collect();
                let i = rng.random_range(0..lines.len());
                let l = lines[i].clone();
                lines.insert(i, l);
                b = lines.join(&b'\n');
            }
        }
    }
    b
}

/// Byte ranges of the values after `=` on each line (up to a comment).
fn value_spans(b: &[u8]) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut start = 0;
    for line in b.split(|&c| c == b'\n') {
        if let Some(eq) = line.iter().position(|&c| c == b'=') {
            let mut s = eq + 1;
            while s < line.len() && line[s] == b' ' {
                s += 1;
            }
            let e = line.iter().position(|&c| c == b'#').unwrap_or(line.len());
            let mut e = e.max(s);
            while e > s && line[e - 1] == b' ' {
                e -= 1;
            }
            if e > s {
                out.push((start + s, start + e));
            }
        }
        start += line.len() + 1;
    }
    out
}

/// What happened to one mutant.
#[derive(Debug, Default, Clone, Copy)]
struct Tally {
    parse_errors: usize,
    invalid: usize,
    accepted: usize,
    flows: usize,
}

/// Load one mutant and check the outcome; panics (caught by the caller) describe a failure.
fn check_one(dir: &Path, bytes: &[u8], flow: bool, tally: &mut Tally) {
    let path = dir.join("m.toml");
    std::fs::write(&path, bytes).expect("write mutant");
    match Experiment::load(&path, &Overrides::default()) {
        Err(e) => {
            let msg = e.to_string();
            assert_eq!(
                e.exit_code(),
                2,
                "error with exit code {}: {msg}",
                e.exit_code()
            );
            assert_eq!(msg.trim_end().lines().count(), 1, "multi-line error: {msg}");
            if msg.contains("line ") && msg.contains("column ") || msg.contains("UTF-8") {
                tally.parse_errors += 1;
            } else {
                tally.invalid += 1;
            }
        }
        Ok(exp) => {
            tally.accepted += 1;
            assert!(!exp.starts.is_empty(), "no starts");
            for s in &exp.starts {
                let l = exp.model.loss(s);
                let g = exp.model.gradient(s);
                assert!(l.is_finite(), "loss {l} at {s:?}");
                assert!(g.iter().all(|v| v.is_finite()), "gradient {g} at {s:?}");
            }
            // Flows only on the small models with few Monte Carlo draws (a debug-build flow of
            // the 65-parameter demos, or with 1000 draws per metric, takes seconds).
            let opts = &exp.flow.metric_options;
            let cheap = exp.model.dim() <= 32 && opts.samples <= 64 && opts.kfac_samples <= 64;
            if flow && cheap {
                tally.flows += 1;
                let mut settings = exp.flow.clone();
                settings.max_steps = settings.max_steps.min(6);
                settings.interior_points = settings.interior_points.min(4);
                let Ok(sim) = Simulator::new(&exp.model, settings) else {
                    return;
                };
                if let Ok(tr) = sim.run(&exp.starts[0]) {
                    for st in &tr.steps {
                        assert!(st.t.is_finite(), "t = {}", st.t);
                        assert!(
                            st.theta.iter().all(|v| v.is_finite()) && st.loss.is_finite(),
                            "non-finite step recorded: θ = {:?}, L = {} (stop: {:?})",
                            st.theta,
                            st.loss,
                            tr.stop
                        );
                    }
                }
            }
        }
    }
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[test]
fn mutated_model_files_never_panic_hang_or_give_non_finite_results() {
    let cases: usize = env_or("FISHER_FLOW_FUZZ_CASES", 2000);
    let seed: u64 = env_or("FISHER_FLOW_FUZZ_SEED", 11);
    let budget = Duration::from_secs_f64(env_or("FISHER_FLOW_FUZZ_BUDGET_S", 30.0));
    let flow_every: usize = env_or("FISHER_FLOW_FUZZ_FLOW_EVERY", 2);
    let mut seeds = corpus();
    if let Some(k) = std::env::var("FISHER_FLOW_FUZZ_ONLY")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
    {
        seeds = vec![seeds[k].clone()];
    }
    // Worker → main: the input about to run (`Err` with an empty message never happens), then
    // its outcome.
    let (tx, rx) = mpsc::channel::<Result<(usize, Tally, Duration, String), String>>();
    let (tx_in, rx_in) = mpsc::channel::<String>();
    // The cases run on a worker so that a hang fails the test (the main thread stops waiting)
    // instead of blocking it.
    let default_hook = std::sync::Arc::new(std::panic::take_hook());
    {
        let default_hook = default_hook.clone();
        // Panics of the cases are caught and reported with their input; keep the default
        // report (with backtrace) for every other thread.
        std::panic::set_hook(Box::new(move |info| {
            if std::thread::current().name() != Some("fuzz-worker") {
                default_hook(info);
            }
        }));
    }
    let worker = std::thread::Builder::new().name("fuzz-worker".into());
    let _ = worker.spawn(move || {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut tally = Tally::default();
        for i in 0..cases {
            let base = &seeds[i % seeds.len()];
            let bytes = mutate(base.as_bytes(), &mut rng);
            let mut t = tally;
            let flow = flow_every > 0 && tally.accepted % flow_every == 0;
            if tx_in
                .send(String::from_utf8_lossy(&bytes).into_owned())
                .is_err()
            {
                return;
            }
            let t0 = Instant::now();
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                check_one(dir.path(), &bytes, flow, &mut t);
                t
            }));
            match r {
                Ok(t) => {
                    tally = t;
                    let took = t0.elapsed();
                    let head = String::from_utf8_lossy(&bytes).chars().take(600).collect();
                    if tx.send(Ok((i, tally, took, head))).is_err() {
                        return;
                    }
                }
                Err(p) => {
                    let what = p
                        .downcast_ref::<String>()
                        .cloned()
                        .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                        .unwrap_or_default();
                    let _ = tx.send(Err(format!(
                        "case {i} (seed {seed}): {what}\n--- input ---\n{}",
                        String::from_utf8_lossy(&bytes)
                    )));
                    return;
                }
            }
        }
    });
    let start = Instant::now();
    let mut last = Tally::default();
    let mut slowest = (Duration::ZERO, 0, String::new());
    for done in 0..cases {
        match rx.recv_timeout(budget) {
            Ok(Ok((i, t, took, head))) => {
                let _ = rx_in.try_iter().count();
                last = t;
                if took > slowest.0 {
                    slowest = (took, i, head);
                }
            }
            Ok(Err(msg)) => panic!("{msg}"),
            Err(_) => panic!(
                "case {done} (seed {seed}) took longer than {budget:?} (hang?); rerun with FISHER_FLOW_FUZZ_CASES={}\n--- input ---\n{}",
                done + 1,
                rx_in.try_iter().last().unwrap_or_default()
            ),
        }
    }
    let total = last.parse_errors + last.invalid + last.accepted;
    assert_eq!(total, cases);
    println!(
        "fuzz: {cases} mutants (seed {seed}) in {:.1} s, slowest {:.2} s (case {}): {} TOML syntax/type errors, {} refused values, {} accepted ({} with a short flow)",
        start.elapsed().as_secs_f64(),
        slowest.0.as_secs_f64(),
        slowest.1,
        last.parse_errors,
        last.invalid,
        last.accepted,
        last.flows
    );
    if std::env::var_os("FISHER_FLOW_FUZZ_SHOW_SLOWEST").is_some() {
        println!("slowest input:\n{}", slowest.2);
    }
    // The mutants must reach validation and beyond, not only the parser.
    assert!(last.invalid >= cases / 20, "{last:?}");
    assert!(last.accepted >= cases / 20, "{last:?}");
}

#[test]
fn the_mutator_is_deterministic_and_changes_its_input() {
    let base = corpus()[0].clone();
    let run = |seed| {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        (0..50)
            .map(|_| mutate(base.as_bytes(), &mut rng))
            .collect::<Vec<_>>()
    };
    let a = run(3);
    assert_eq!(a, run(3));
    assert!(a.iter().filter(|m| m.as_slice() != base.as_bytes()).count() >= 45);
    let spans = value_spans(b"a = 1 # c\nb=[1, 2]\n[s]\n");
    assert_eq!(spans, vec![(4, 5), (12, 18)]);
}

/// Whether every `theta` array in a certificate's JSON is finite and within the mixture's
/// range |θ| ≤ 1e8·σ (σ from `model_resolved`; 1 when absent).
fn thetas_in_range(bytes: &[u8]) -> bool {
    fn walk(v: &serde_json::Value, bound: f64) -> bool {
        match v {
            serde_json::Value::Object(m) => m.iter().all(|(k, x)| {
                if k == "theta" || k == "start" {
                    x.as_array().is_none_or(|a| {
                        a.iter()
                            .all(|e| e.as_f64().is_none_or(|f| f.abs() <= bound))
                    })
                } else {
                    walk(x, bound)
                }
            }),
            serde_json::Value::Array(a) => a.iter().all(|x| walk(x, bound)),
            _ => true,
        }
    }
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(bytes) else {
        return true;
    };
    let sigma = v
        .pointer("/model_resolved/model/sigma")
        .and_then(|s| s.as_f64())
        .unwrap_or(1.0);
    walk(&v, fisher_flow::config::limits::MEAN_PER_SIGMA * sigma)
}

/// The certificate reader: mutants of a real certificate (a short run of a small mixture) —
/// the same byte-level mutations, plus JSON numbers replaced by extremes — through
/// `verify::load` and, where it parses, `verify`. No panic; unusable input is exit code 2;
/// a certificate that verifies has finite numbers in its report.
#[test]
fn mutated_certificates_never_panic() {
    use fisher_flow::certificate::Monotone;
    use fisher_flow::certificate::verify::{load, verify};
    let cases: usize = env_or("FISHER_FLOW_FUZZ_CERT_CASES", 150);
    let seed: u64 = env_or("FISHER_FLOW_FUZZ_SEED", 11);
    let dir = tempfile::tempdir().expect("tempdir");
    let model = dir.path().join("m.toml");
    std::fs::write(
        &model,
        "[model]\nsigma = 1.0\ntarget = [-1.0, 1.5]\n[flow]\nt_end = 0.5\nmax_steps = 8\nstarts = [[-2.0, 2.5], [0.5, 0.7]]\n",
    )
    .expect("write model");
    let exp = Experiment::load(&model, &Overrides::default()).expect("loads");
    let sim = Simulator::new(&exp.model, exp.flow.clone()).expect("settings");
    let trs: Vec<_> = exp
        .starts
        .iter()
        .map(|s| sim.run(s).expect("flows"))
        .collect();
    let cert = Monotone::build(&exp, &exp.model, &trs);
    let text = serde_json::to_string_pretty(&cert).expect("serializes");
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let path = dir.path().join("certificate.json");
    let (mut refused, mut verified, mut skipped) = (0usize, 0usize, 0usize);
    for i in 0..cases {
        let mut bytes = if rng.random_range(0..2u32) == 0 {
            mutate(text.as_bytes(), &mut rng)
        } else {
            // Replace one JSON number by an extreme one.
            let b = text.as_bytes();
            let nums: Vec<(usize, usize)> = {
                let mut v = Vec::new();
                let mut k = 0;
                while k < b.len() {
                    if (b[k].is_ascii_digit() || b[k] == b'-')
                        && k > 0
                        && matches!(b[k - 1], b' ' | b'[' | b',' | b'\n')
                    {
                        let s = k;
                        while k < b.len()
                            && matches!(b[k], b'0'..=b'9' | b'.' | b'e' | b'E' | b'-' | b'+')
                        {
                            k += 1;
                        }
                        v.push((s, k));
                    }
                    k += 1;
                }
                v
            };
            let mut out = b.to_vec();
            if let Some(&(s, e)) = nums.get(rng.random_range(0..nums.len().max(1))) {
                let v = [
                    "1e308",
                    "-1e308",
                    "0",
                    "-0.0",
                    "5e-324",
                    "1e400",
                    "18446744073709551616",
                    "null",
                    "\"x\"",
                ][rng.random_range(0..9usize)];
                out.splice(s..e, v.bytes());
            }
            out
        };
        if bytes.is_empty() {
            bytes.push(b'{');
        }
        std::fs::write(&path, &bytes).expect("write mutant");
        if let Ok(dump) = std::env::var("FISHER_FLOW_FUZZ_CERT_DUMP") {
            let _ = std::fs::write(format!("{dump}.{i}.json"), &bytes);
        }
        let t0 = Instant::now();
        let in_range = thetas_in_range(&bytes);
        let r = std::panic::catch_unwind(|| match load(&path) {
            Err(e) => {
                assert_eq!(e.exit_code(), 2, "{e}");
                None
            }
            // θ far outside the model's range (e.g. 1e308) must end quickly too (the
            // reference quadrature's bisections are bounded); counted apart.
            Ok(c) if !in_range => Some(verify(&c, None).map(|_| None)),
            Ok(c) => Some(verify(&c, None).map(|rep| Some(rep.ok()))),
        });
        match r {
            Err(_) => panic!(
                "certificate case {i} (seed {seed}) panicked:\n{}",
                String::from_utf8_lossy(&bytes)
            ),
            Ok(None) => refused += 1,
            Ok(Some(Err(e))) => {
                assert_eq!(e.exit_code(), 2, "case {i}: {e}");
                refused += 1;
            }
            Ok(Some(Ok(None))) => skipped += 1,
            Ok(Some(Ok(Some(_)))) => verified += 1,
        }
        if std::env::var_os("FISHER_FLOW_FUZZ_CERT_TRACE").is_some() {
            println!("case {i}: {:.2} s", t0.elapsed().as_secs_f64());
        }
    }
    println!(
        "certificate fuzz: {cases} mutants: {refused} refused, {verified} verified (pass or fail), {skipped} with θ out of range (verified, ended)"
    );
    assert_eq!(refused + verified + skipped, cases);
    assert!(
        refused > 0 && verified > 0,
        "{refused} refused, {verified} verified"
    );
}
