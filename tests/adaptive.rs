//! Dynamic fidelity: held metrics refreshed every P steps and the `adaptive` provider along a
//! flow of the Iris MLP — events, restarts and the flop account against independent counts.

use fisher_flow::config::{Experiment, Overrides};
use fisher_flow::flow::Simulator;
use fisher_flow::metric::MetricKind;
use fisher_flow::metric::cost::Shape;

const IRIS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/models/mlp-iris.toml");

fn iris(metric: &str, t_end: f64) -> Experiment {
    let ov = Overrides {
        metric: Some(metric.into()),
        t_end: Some(t_end),
        ..Overrides::default()
    };
    Experiment::load(IRIS.as_ref(), &ov).expect("load")
}

/// kfac held for P = 5 steps: exactly one refresh event (restart) per 5 accepted steps, and the
/// flops of a held run equal evaluations × (gradient + K-FAC solve) + refreshes × K-FAC refresh,
/// recomputed here from the cost model.
#[test]
fn a_held_metric_refreshes_every_period_and_its_flops_add_up() {
    let mut exp = iris("kfac", 0.5);
    exp.flow.metric_options.refresh = 5;
    exp.flow.metric_options.kfac_targets = fisher_flow::model::KfacTargets::Exact;
    let sim = Simulator::new(&exp.model, exp.flow.clone()).expect("sim");
    let tr = sim.run(&exp.starts[0]).expect("run");
    let refreshes = tr
        .events
        .iter()
        .filter(|e| e.kind == "metric-refresh" && e.t > 0.0)
        .count();
    // the hook runs after every accepted step but the last (t_end ends the run first)
    assert_eq!(
        refreshes,
        (tr.stats.accepted - 1) / 5,
        "{} steps",
        tr.stats.accepted
    );
    assert_eq!(tr.stats.metric_refreshes, refreshes);
    assert!(refreshes >= 1);
    let shape = Shape::of(&exp.model).expect("mlp shape");
    let per_eval = shape.gradient() + shape.solve(MetricKind::Kfac, &[], 0.0);
    let refresh = shape.refresh(MetricKind::Kfac, &[]);
    // each refresh: the new factors (no measurement); one more at the start
    let want = tr.stats.rhs_evals as f64 * per_eval + (refreshes + 1) as f64 * refresh;
    let got = tr.stats.flops;
    assert!(
        (got - want).abs() <= 1e-9 * want,
        "flops {got:e} vs {want:e}"
    );
    // per-step flops are cumulative
    assert!(tr.steps.windows(2).all(|w| w[1].flops >= w[0].flops));
    assert!(tr.succeeded());
}

/// adaptive: the first choice (K-FAC held, before any measurement) is an event at t = 0;
/// every later switch, refresh or trial round is an event; the loss never rises between
/// recorded steps.
#[test]
fn adaptive_records_its_choices_and_descends() {
    let exp = iris("adaptive", 2.0);
    let sim = Simulator::new(&exp.model, exp.flow.clone()).expect("sim");
    let tr = sim.run(&exp.starts[0]).expect("run");
    let first = &tr.events[0];
    assert_eq!((first.t, first.kind.as_str()), (0.0, "metric-switch"));
    assert!(first.detail.contains("-> kfac@8"), "{}", first.detail);
    let later: Vec<_> = tr.events.iter().filter(|e| e.t > 0.0).collect();
    let checks = later.iter().filter(|e| e.kind == "metric-check").count();
    assert_eq!(
        later.len(),
        tr.stats.metric_refreshes + tr.stats.metric_switches + checks
    );
    assert!(tr.stats.metric_refreshes >= 1);
    assert!(tr.steps.windows(2).all(|w| w[1].loss <= w[0].loss + 1e-12));
    assert!(tr.stats.flops > 0.0);
}

/// (label, rate per flop) of every trial listed in an event's detail.
fn trials(detail: &str) -> Vec<(String, f64)> {
    let Some(i) = detail.find("trial round") else {
        return Vec::new();
    };
    let body = &detail[i..];
    let body = &body[body.find(": ").expect("round body") + 2..];
    body.split("; ")
        .filter(|seg| seg.contains("/flop") && seg.contains(" ΔL="))
        .map(|seg| {
            let label = seg[..seg.find(" ΔL=").expect("ΔL")].to_string();
            let r = &seg[seg.rfind(": ").expect("rate") + 2..seg.find("/flop").expect("/flop")];
            (label, r.parse::<f64>().expect("rate number"))
        })
        .collect()
}

/// (measured, spent) of an event's budget note.
fn budget(detail: &str) -> Option<(f64, f64)> {
    let i = detail.rfind("measured ")?;
    let mut w = detail[i..].split_whitespace();
    w.next();
    let m = w.next()?.parse().ok()?;
    w.next(); // flops
    w.next(); // of
    let s = w.next()?.parse().ok()?;
    Some((m, s))
}

/// Trial rounds on Iris with half the spent flops allowed for measurements (so that rounds
/// come early): every decision is the one the recorded rates call for (the best rate, adopted
/// when it beats the current configuration's by the switch margin, else the current one
/// kept); euclidean, measured ≥ 10× worse per flop than the best, is retired and never chosen
/// again; and the measurements stay within the budget, from the recorded flops.
#[test]
fn trial_rounds_pick_the_measured_best_within_the_budget() {
    use fisher_flow::metric::adaptive::{RETIRE_FACTOR, SWITCH_MARGIN};
    let mut exp = iris("adaptive", 10.0);
    let fraction = 0.5;
    exp.flow.metric_options.measure_fraction = fraction;
    let sim = Simulator::new(&exp.model, exp.flow.clone()).expect("sim");
    let tr = sim.run(&exp.starts[1]).expect("run");
    // configurations by kind and mode: "kfac@" held (any period), "kfac" fresh
    let mut current = "kfac@".to_string();
    let mut rounds = 0;
    let mut retired_euclidean = false;
    let name = |label: &str| match label.split_once('@') {
        Some((k, _)) => format!("{k}@"),
        None => label.to_string(),
    };
    for e in tr.events.iter().filter(|e| e.t > 0.0) {
        let (m, spent) = budget(&e.detail).expect("budget note");
        assert!(m <= fraction * spent * (1.0 + 1e-12), "{}", e.detail);
        let ts = trials(&e.detail);
        if !ts.is_empty() {
            rounds += 1;
            let best = ts
                .iter()
                .max_by(|a, b| a.1.total_cmp(&b.1))
                .expect("a trial");
            let cur = ts
                .iter()
                .find(|t| name(&t.0) == current)
                .expect("the current configuration is trialed");
            let switch = name(&best.0) != current && best.1 > SWITCH_MARGIN * cur.1.max(0.0);
            assert_eq!(e.kind == "metric-switch", switch, "{}", e.detail);
            if switch {
                assert!(e.detail.contains(&format!("-> {}", best.0)), "{}", e.detail);
                current = name(&best.0);
            }
            if let Some(eu) = ts.iter().find(|t| t.0 == "euclidean") {
                let retired = e.detail.contains("retired: euclidean");
                assert_eq!(retired, eu.1 * RETIRE_FACTOR < best.1, "{}", e.detail);
                retired_euclidean |= retired;
            } else {
                assert!(
                    retired_euclidean,
                    "euclidean left out unretired: {}",
                    e.detail
                );
            }
        } else if e.kind == "metric-switch" {
            // a held metric that degraded at period 1 goes fresh (same metric)
            let kind = current.trim_end_matches('@').to_string();
            assert!(
                e.detail.contains(&format!("{kind}@1 -> {kind}")),
                "{}",
                e.detail
            );
            current = kind;
        }
    }
    assert!(rounds >= 2, "{rounds} trial rounds");
    assert!(
        retired_euclidean,
        "kfac/diagonal beat euclidean by ≥ 10× here"
    );
    assert_ne!(current, "euclidean");
    assert!(!tr.events.iter().any(|e| e.detail.contains("-> euclidean")));
    // the provider's estimate of spent flops is a lower bound of the recorded total
    let (m, _) = tr
        .events
        .iter()
        .rev()
        .find_map(|e| budget(&e.detail))
        .expect("a budget note");
    assert!(
        m <= fraction * tr.stats.flops,
        "{m:e} of {:e}",
        tr.stats.flops
    );
    assert!(m > 0.0);
}

/// Out-of-range settings are one-line errors naming the field.
#[test]
fn bad_refresh_settings_name_the_field() {
    let s = fisher_flow::metric::MetricSection {
        measure_fraction: Some(0.75),
        ..Default::default()
    };
    let e = fisher_flow::metric::MetricOptions::from_section(&s).unwrap_err();
    assert!(e.to_string().contains("metric.measure_fraction"), "{e}");
    let s = fisher_flow::metric::MetricSection {
        refresh: Some(10_000_000),
        ..Default::default()
    };
    let e = fisher_flow::metric::MetricOptions::from_section(&s).unwrap_err();
    assert!(e.to_string().contains("metric.refresh"), "{e}");
}
