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

/// adaptive: the first choice is an event at t = 0 naming every candidate's quality; every
/// later switch or refresh is an event; the loss never rises between recorded steps.
#[test]
fn adaptive_records_its_choices_and_descends() {
    let exp = iris("adaptive", 2.0);
    let sim = Simulator::new(&exp.model, exp.flow.clone()).expect("sim");
    let tr = sim.run(&exp.starts[0]).expect("run");
    let first = &tr.events[0];
    assert_eq!((first.t, first.kind.as_str()), (0.0, "metric-switch"));
    for name in ["euclidean", "diagonal", "block-diagonal", "kfac", "exact"] {
        assert!(
            first.detail.contains(&format!("{name} q=")),
            "{}",
            first.detail
        );
    }
    let later = tr.events.iter().filter(|e| e.t > 0.0).count();
    assert_eq!(later, tr.stats.metric_refreshes + tr.stats.metric_switches);
    assert!(later >= 1);
    assert!(tr.steps.windows(2).all(|w| w[1].loss <= w[0].loss + 1e-12));
    assert!(tr.stats.flops > 0.0);
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
