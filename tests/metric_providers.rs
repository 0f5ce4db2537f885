//! Metric providers against closed forms and independent computations.

use fisher_flow::metric::kfac::{KfacMetric, KfacProvider, pi_correction};
use fisher_flow::metric::provider::{BaseMetric, KfacDamping};
use fisher_flow::metric::{Factorized, MetricKind, MetricOptions, provider};
use fisher_flow::model::data::{Dataset, TargetSpec, Targets, read_csv, synthetic_regression};
use fisher_flow::model::mixture::draw_samples;
use fisher_flow::model::{
    Activation, GaussianMixture, KfacTargets, LayerShape, LossKind, Mlp, OutputKind, StatModel,
};
use fisher_flow::quadrature::Scheme;
use nalgebra::{DMatrix, DVector};
use std::path::Path;

fn mixture(loss_kind: LossKind) -> GaussianMixture {
    GaussianMixture {
        sigma: 1.0,
        w: 0.5,
        target: [-1.0, 1.5],
        loss_kind,
        scheme: Scheme::default(),
    }
}

fn iris() -> Dataset {
    let mut d = read_csv(
        Path::new("models/data/iris.csv"),
        &TargetSpec::Class("species".into()),
    )
    .expect("iris");
    d.standardize();
    d
}

fn iris_net(hidden: usize) -> Mlp {
    Mlp::new(
        vec![4, hidden, 3],
        Activation::Tanh,
        OutputKind::Softmax,
        iris(),
    )
    .expect("net")
}

fn regression_net(sizes: Vec<usize>, n: usize) -> Mlp {
    let mut d = synthetic_regression(n, sizes[0], 0.1, 3);
    let out = sizes[sizes.len() - 1];
    let x = d.x.clone();
    d.targets = Targets::Values(DMatrix::from_fn(out, n, |r, i| {
        (x[(0, i)] * (r + 1) as f64).sin()
    }));
    Mlp::new(
        sizes,
        Activation::Tanh,
        OutputKind::Gaussian { noise: 0.5 },
        d,
    )
    .expect("net")
}

fn rel(a: &DMatrix<f64>, b: &DMatrix<f64>) -> f64 {
    (a - b).norm() / b.norm()
}

fn opts(f: impl FnOnce(&mut MetricOptions)) -> MetricOptions {
    let mut o = MetricOptions::default();
    f(&mut o);
    o
}

fn spd(n: usize, seed: u64) -> DMatrix<f64> {
    let mut s = seed;
    let m = DMatrix::from_fn(n, n + 2, |_, _| {
        s = s
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((s >> 11) as f64 / (1u64 << 53) as f64) - 0.5
    });
    &m * m.transpose() + DMatrix::identity(n, n) * 0.05
}

#[test]
fn kfac_is_exact_for_linear_regression_and_not_for_two_layers() {
    // One dense layer with Gaussian output: the Fisher is E[x̃x̃ᵀ] ⊗ I/σ² exactly.
    let lin = regression_net(vec![3, 2], 40);
    let theta = lin.init(5);
    let k = KfacProvider {
        targets: KfacTargets::Exact,
        damping_mode: KfacDamping::Exact,
        samples: 1,
        seed: 1,
    };
    use fisher_flow::metric::MetricProvider;
    let approx = k.factorize(&lin, &theta, 0.0).unwrap().matrix().unwrap();
    let exact = lin.fisher(&theta);
    assert!(
        (&approx - &exact).amax() < 1e-10,
        "max diff {}",
        (&approx - &exact).amax()
    );
    // Independent closed form: (1/N) Σ x̃x̃ᵀ ⊗ I/σ².
    let x = &lin.data().x;
    let mut xa = DMatrix::from_element(4, x.ncols(), 1.0);
    xa.rows_mut(0, 3).copy_from(x);
    let a = &xa * xa.transpose() / x.ncols() as f64;
    let closed = a.kronecker(&(DMatrix::<f64>::identity(2, 2) / 0.25));
    assert!((&exact - &closed).amax() < 1e-10);

    // Two layers: the cross-layer blocks and the within-layer correlations are lost.
    let net = regression_net(vec![3, 4, 2], 40);
    let theta = net.init(6);
    let approx = k.factorize(&net, &theta, 0.0).unwrap().matrix().unwrap();
    let err = rel(&approx, &net.fisher(&theta));
    assert!(
        err > 1e-3,
        "K-FAC of a 2-layer net should not be exact (error {err})"
    );
}

#[test]
fn kronecker_solve_equals_dense_solve() {
    let (a1, g1, a2, g2) = (spd(4, 1), spd(3, 2), spd(3, 3), spd(2, 4));
    let shapes = vec![
        LayerShape {
            name: "l1".into(),
            d_in: 3,
            d_out: 3,
            offset: 0,
        },
        LayerShape {
            name: "l2".into(),
            d_in: 2,
            d_out: 2,
            offset: 12,
        },
    ];
    let n = 18;
    let v = DVector::from_fn(n, |i, _| (i as f64 * 0.7).sin());
    let lambda = 0.3;
    // Exact damping: (A ⊗ G + λI)⁻¹ per block.
    let m = KfacMetric::new(
        shapes.clone(),
        vec![a1.clone(), a2.clone()],
        vec![g1.clone(), g2.clone()],
        lambda,
        KfacDamping::Exact,
    );
    let mut dense = DMatrix::zeros(n, n);
    dense
        .view_mut((0, 0), (12, 12))
        .copy_from(&a1.kronecker(&g1));
    dense
        .view_mut((12, 12), (6, 6))
        .copy_from(&a2.kronecker(&g2));
    let damped = &dense + DMatrix::identity(n, n) * lambda;
    let reference = damped.clone().lu().solve(&v).unwrap();
    assert!((m.solve(&v) - &reference).norm() < 1e-10 * reference.norm());
    assert!((m.quad_form(&v) - v.dot(&(&damped * &v))).abs() < 1e-10 * v.dot(&(&damped * &v)));
    assert!((m.matrix().unwrap() - &dense).amax() < 1e-12);
    // Factored damping: ((A + π√λ) ⊗ (G + √λ/π))⁻¹.
    let f = KfacMetric::new(
        shapes.clone(),
        vec![a1.clone(), a2.clone()],
        vec![g1.clone(), g2.clone()],
        lambda,
        KfacDamping::Factored,
    );
    let mut fd = DMatrix::zeros(n, n);
    for (o, a, g) in [(0usize, &a1, &g1), (12, &a2, &g2)] {
        let pi = pi_correction(a, g);
        let (ga, gg) = (pi * lambda.sqrt(), lambda.sqrt() / pi);
        let k = (a + DMatrix::identity(a.nrows(), a.nrows()) * ga)
            .kronecker(&(g + DMatrix::identity(g.nrows(), g.nrows()) * gg));
        fd.view_mut((o, o), (k.nrows(), k.ncols())).copy_from(&k);
    }
    let reference = fd.clone().lu().solve(&v).unwrap();
    assert!((f.solve(&v) - &reference).norm() < 1e-10 * reference.norm());
    assert!((f.quad_form(&v) - v.dot(&(&fd * &v))).abs() < 1e-10 * v.dot(&(&fd * &v)));
    // The eigenvalues are the products of the factors' eigenvalues.
    let mut expect: Vec<f64> = nalgebra::SymmetricEigen::new(dense.clone())
        .eigenvalues
        .iter()
        .copied()
        .collect();
    expect.sort_by(f64::total_cmp);
    let got = f.eigenvalues().unwrap();
    for (a, b) in expect.iter().zip(got.iter()) {
        assert!((a - b).abs() < 1e-10 * expect[n - 1]);
    }
}

#[test]
fn pi_correction_is_the_trace_ratio() {
    let a = DMatrix::from_diagonal(&DVector::from_vec(vec![4.0, 2.0]));
    let g = DMatrix::from_diagonal(&DVector::from_vec(vec![0.5, 0.25, 0.75]));
    // (6/2) / (1.5/3) = 6 → π = √6
    assert!((pi_correction(&a, &g) - 6f64.sqrt()).abs() < 1e-15);
}

#[test]
fn diagonal_and_block_diagonal_equal_the_exact_parts() {
    let net = iris_net(3);
    let theta = net.init(3);
    let exact = net.fisher(&theta);
    let o = MetricOptions::default();
    let diag = provider(MetricKind::Diagonal, &o)
        .factorize(&net, &theta, 0.0)
        .unwrap()
        .matrix()
        .unwrap();
    assert!((diag - DMatrix::from_diagonal(&exact.diagonal())).amax() < 1e-12 * exact.amax());
    let block = provider(MetricKind::BlockDiagonal, &o)
        .factorize(&net, &theta, 0.0)
        .unwrap()
        .matrix()
        .unwrap();
    let groups = net.param_groups();
    assert_eq!(groups.len(), 2);
    for i in 0..net.dim() {
        for j in 0..net.dim() {
            let same = groups.iter().any(|(_, r)| r.contains(&i) && r.contains(&j));
            let want = if same { exact[(i, j)] } else { 0.0 };
            assert!(
                (block[(i, j)] - want).abs() < 1e-12 * exact.amax(),
                "({i},{j})"
            );
        }
    }
    // Named groups: all biases together, the rest in a leftover block.
    let named = opts(|o| o.blocks = vec![vec!["b1_*".into(), "b2_*".into()]]);
    let b = provider(MetricKind::BlockDiagonal, &named)
        .factorize(&net, &theta, 0.0)
        .unwrap()
        .matrix()
        .unwrap();
    let names = net.param_names();
    let bias: Vec<usize> = (0..names.len())
        .filter(|&i| names[i].starts_with('b'))
        .collect();
    for &i in &bias {
        for &j in &bias {
            assert!((b[(i, j)] - exact[(i, j)]).abs() < 1e-12 * exact.amax());
        }
        let w = names.iter().position(|n| n.starts_with('w')).unwrap();
        assert_eq!(b[(i, w)], 0.0);
    }
    // The mixture in one named block is its exact Fisher.
    let mx = mixture(LossKind::Population);
    let all = opts(|o| o.blocks = vec![vec!["mu1".into(), "mu2".into()]]);
    let th = [0.3, 0.9];
    let m = provider(MetricKind::BlockDiagonal, &all)
        .factorize(&mx, &th, 0.0)
        .unwrap()
        .matrix()
        .unwrap();
    assert!(rel(&m, &mx.fisher(&th)) < 1e-14);
}

#[test]
fn sampled_fisher_error_falls_like_one_over_root_samples() {
    let mx = mixture(LossKind::Population);
    let th = [-0.4, 1.1];
    let exact = mx.fisher(&th);
    let rms = |s: usize| -> f64 {
        let seeds = 12;
        let sum: f64 = (0..seeds)
            .map(|seed| {
                let o = opts(|o| {
                    o.samples = s;
                    o.seed = 100 + seed;
                });
                let g = provider(MetricKind::Sampled, &o)
                    .factorize(&mx, &th, 0.0)
                    .unwrap()
                    .matrix()
                    .unwrap();
                rel(&g, &exact).powi(2)
            })
            .sum();
        (sum / seeds as f64).sqrt()
    };
    let (e1, e2, e3) = (rms(200), rms(3200), rms(51200));
    // 16× the samples → 4× smaller error, within a factor 2.
    for (a, b) in [(e1, e2), (e2, e3)] {
        let ratio = a / b;
        assert!(
            ratio > 2.0 && ratio < 8.0,
            "ratio {ratio} (errors {e1:e}, {e2:e}, {e3:e})"
        );
    }
    assert!(e3 < 0.02);
}

#[test]
fn empirical_fisher_at_a_well_specified_optimum_approaches_the_exact() {
    let target = [-1.0, 1.5];
    let err = |n: usize| {
        let mx = mixture(LossKind::Empirical {
            samples: draw_samples(n, 11, target, 1.0, 0.5),
            seed: 11,
        });
        let o = MetricOptions::default();
        let g = provider(MetricKind::Empirical, &o)
            .factorize(&mx, &target, 0.0)
            .unwrap()
            .matrix()
            .unwrap();
        rel(&g, &mx.fisher(&target))
    };
    let (small, large) = (err(100), err(40_000));
    assert!(large < 0.03, "relative error {large}");
    assert!(large < small / 4.0, "{small} → {large}");
    // Away from the optimum the empirical Fisher is biased: it stays off.
    let mx = mixture(LossKind::Empirical {
        samples: draw_samples(40_000, 11, target, 1.0, 0.5),
        seed: 11,
    });
    let away = [0.5, 0.4];
    let g = provider(MetricKind::Empirical, &MetricOptions::default())
        .factorize(&mx, &away, 0.0)
        .unwrap()
        .matrix()
        .unwrap();
    assert!(rel(&g, &mx.fisher(&away)) > 0.1);
}

#[test]
fn every_provider_is_symmetric_positive_semidefinite_and_consistent() {
    let net = iris_net(3);
    let th_net = net.init(9);
    let mx = mixture(LossKind::Empirical {
        samples: draw_samples(300, 2, [-1.0, 1.5], 1.0, 0.5),
        seed: 2,
    });
    let th_mx = vec![0.2, 0.7];
    let cases: Vec<(&dyn StatModel, &[f64])> = vec![(&net, &th_net), (&mx, &th_mx)];
    for (model, theta) in cases {
        for name in MetricKind::NAMES {
            let kind = MetricKind::parse("test", name).unwrap();
            if kind == MetricKind::Kfac && model.dense_layers().is_none() {
                continue;
            }
            for base in [
                BaseMetric::Exact,
                BaseMetric::Sampled,
                BaseMetric::Empirical,
            ] {
                let o = opts(|o| {
                    o.samples = 3;
                    o.base = base;
                });
                let m = provider(kind, &o).factorize(model, theta, 0.01).unwrap();
                let g = m.matrix().unwrap();
                let asym = (&g - g.transpose()).amax();
                assert!(
                    asym <= 1e-12 * g.amax().max(1e-300),
                    "{name}: asymmetry {asym}"
                );
                let eig = m.eigenvalues().unwrap();
                assert!(
                    eig[0] >= -1e-10 * eig[eig.len() - 1],
                    "{name}: λ_min = {}",
                    eig[0]
                );
                // Solving against M v gives v back, and the quadratic form is positive.
                let v = DVector::from_fn(model.dim(), |i, _| ((i + 1) as f64).cos());
                let mv = DVector::from_fn(model.dim(), |i, _| {
                    let e = DVector::from_fn(model.dim(), |j, _| if j == i { 1.0 } else { 0.0 });
                    let pe = m.solve(&e);
                    pe.dot(&v)
                });
                assert!(m.quad_form(&v) > 0.0, "{name}");
                // vᵀM⁻¹v > 0 as well (the rows of M⁻¹ recovered through unit solves).
                assert!(mv.dot(&v) > 0.0, "{name}");
                if kind != MetricKind::Diagonal && kind != MetricKind::BlockDiagonal {
                    break; // the base only matters for these two
                }
            }
        }
    }
}

#[test]
fn exact_metric_of_the_mixture_is_unchanged_by_the_provider_path() {
    let mx = mixture(LossKind::Population);
    let th = [0.4, -0.2];
    let old = MetricKind::Exact.at(&mx, &th, 0.05);
    let new = provider(MetricKind::Exact, &MetricOptions::default())
        .factorize(&mx, &th, 0.05)
        .unwrap();
    // the provider uses the mixture's chart geometry: the same matrix and solves to rounding
    let g = DVector::from_vec(vec![0.3, -1.2]);
    let (a, b) = (old.solve(&g), new.solve(&g));
    assert!((&a - &b).norm() < 1e-13 * a.norm(), "{a} {b}");
    let (a, b) = (old.matrix(), new.matrix().unwrap());
    assert!((a - &b).norm() < 1e-14 * a.norm(), "{a} {b}");
    // and solving with the model's gradient returns the chart natural gradient
    let geo = mx.exact_geometry(&th, 0.05).unwrap();
    assert_eq!(new.solve(&geo.gradient), geo.natural);
}

#[test]
fn kfac_asked_of_a_model_without_dense_layers_is_a_clear_error() {
    let mx = mixture(LossKind::Population);
    let p = provider(MetricKind::Kfac, &MetricOptions::default());
    let e = p.check(&mx).unwrap_err().to_string();
    assert!(
        e.contains("kfac") && e.contains("dense layers") && e.contains("gaussian-mixture"),
        "{e}"
    );
    assert!(p.factorize(&mx, &[0.0, 1.0], 0.0).is_err());
    // The empirical metric needs a data set.
    let e = provider(MetricKind::Empirical, &MetricOptions::default())
        .check(&mx)
        .unwrap_err()
        .to_string();
    assert!(e.contains("loss.kind"), "{e}");
}

#[test]
fn kfac_exact_targets_match_the_exact_layer_factors_of_sampled_in_the_limit() {
    // G from many sampled targets approaches G from the exact expectation.
    let net = iris_net(3);
    let theta = net.init(4);
    let layers = net.dense_layers().unwrap();
    let exact = layers
        .kfac_factors(&theta, KfacTargets::Exact, 1, 1, false)
        .unwrap();
    let sampled = layers
        .kfac_factors(&theta, KfacTargets::Sampled, 400, 1, false)
        .unwrap();
    for l in 0..2 {
        assert_eq!(exact.a[l], sampled.a[l]);
        let e = rel(&sampled.g[l], &exact.g[l]);
        assert!(e < 0.05, "layer {l}: {e}");
    }
    // Empirical targets at the data differ from the model's expectation away from the optimum.
    let emp = layers
        .kfac_factors(&theta, KfacTargets::Empirical, 1, 1, false)
        .unwrap();
    assert!(rel(&emp.g[1], &exact.g[1]) > 0.05);
}

#[test]
fn regression_dataset_targets_are_values() {
    let d = synthetic_regression(10, 2, 0.0, 1);
    match d.targets {
        Targets::Values(y) => {
            for i in 0..10 {
                let (x1, x2) = (d.x[(0, i)], d.x[(1, i)]);
                assert!((y[(0, i)] - (x1.sin() + 0.5 * x2 * x1.cos())).abs() < 1e-15);
            }
        }
        Targets::Classes { .. } => panic!("expected values"),
    }
}

#[cfg(feature = "lapack")]
#[test]
fn lapack_backend_equals_nalgebra_to_1e_10() {
    use fisher_flow::linalg::{spd_inverse, spd_inverse_nalgebra, sym_eigen, sym_eigen_nalgebra};
    for n in [3usize, 10, 40] {
        let a = spd(n, n as u64);
        let (l, r) = (sym_eigen(&a), sym_eigen_nalgebra(&a));
        assert!((&l.values - &r.values).amax() < 1e-10);
        // Eigenvectors agree up to sign: compare the projectors.
        let pl = &l.vectors * DMatrix::from_diagonal(&l.values) * l.vectors.transpose();
        let pr = &r.vectors * DMatrix::from_diagonal(&r.values) * r.vectors.transpose();
        assert!((pl - pr).amax() < 1e-10);
        let (il, ir) = (spd_inverse(&a).unwrap(), spd_inverse_nalgebra(&a).unwrap());
        assert!((il - &ir).amax() < 1e-10 * ir.amax().max(1.0));
        let (cl, cr) = (
            fisher_flow::linalg::cholesky(&a).unwrap(),
            nalgebra::Cholesky::new(a.clone()).unwrap().unpack(),
        );
        assert!((cl - cr).amax() < 1e-10);
    }
}

#[test]
fn spd_factor_solves_equal_the_nalgebra_cholesky_solve() {
    use fisher_flow::linalg::SpdFactor;
    // Small and large (the large right-hand sides are split into pool tasks), left and right.
    for (n, m) in [(5usize, 3usize), (600, 17), (401, 2), (600, 250)] {
        let a = spd(n, n as u64 + 7);
        let b = DMatrix::from_fn(n, m, |i, j| ((i * 3 + j * 7) as f64 * 0.1).sin());
        let f = SpdFactor::new(&a).expect("spd");
        let reference = fisher_flow::linalg::spd_solve_nalgebra(&a, &b).unwrap();
        let mut x = b.clone();
        f.solve_mut(&mut x);
        let mut x_pool = b.clone();
        fisher_flow::gemm::on_pool(|| f.solve_mut(&mut x_pool));
        // Right solve: bᵀ A⁻¹ = (A⁻¹ b)ᵀ.
        let mut xr = b.transpose();
        f.solve_right_slice(xr.as_mut_slice(), m);
        for (name, got) in [("left", x), ("pool", x_pool), ("right", xr.transpose())] {
            let err = (&got - &reference).amax() / reference.amax();
            assert!(err < 1e-10, "n = {n}, {name}: relative difference {err}");
            assert!((&a * &got - &b).amax() < 1e-9 * b.amax() * a.amax());
        }
        // The shift is added to the diagonal: (A + γI)⁻¹ b.
        let g = 0.7;
        let shifted = &a + DMatrix::identity(n, n) * g;
        let mut xs = b.clone();
        SpdFactor::new_shifted(&a, g)
            .expect("spd")
            .solve_mut(&mut xs);
        assert!((&shifted * &xs - &b).amax() < 1e-9 * b.amax() * shifted.amax());
    }
    // Not positive definite, or not finite: no factor.
    let mut bad = spd(300, 1);
    bad[(200, 200)] = -5.0;
    assert!(SpdFactor::new(&bad).is_none());
    let mut nan = spd(300, 2);
    nan[(250, 10)] = f64::NAN;
    assert!(SpdFactor::new(&nan).is_none());
}

#[test]
fn kfac_one_pass_natural_gradient_equals_gradient_factorize_and_solve() {
    use fisher_flow::metric::MetricProvider;
    let net = iris_net(6);
    let theta = net.init(3);
    for (targets, damping_mode) in [
        (KfacTargets::Sampled, KfacDamping::Factored),
        (KfacTargets::Empirical, KfacDamping::Exact),
    ] {
        let k = KfacProvider {
            targets,
            damping_mode,
            samples: 2,
            seed: 9,
        };
        let (g, nat) = k
            .gradient_and_natural(&net, &theta, 1e-2)
            .expect("K-FAC has a one-pass path")
            .expect("finite");
        let g_ref = net.gradient(&theta);
        let nat_ref = k.factorize(&net, &theta, 1e-2).unwrap().solve(&g_ref);
        assert!((&g - &g_ref).amax() < 1e-14 * g_ref.amax().max(1.0));
        assert!(
            (&nat - &nat_ref).amax() < 1e-10 * nat_ref.amax(),
            "{targets:?} {damping_mode:?}: {}",
            (&nat - &nat_ref).amax()
        );
    }
    // Other providers have none: the flow takes gradient, factorize, solve.
    let exact = provider(MetricKind::Exact, &MetricOptions::default());
    assert!(exact.gradient_and_natural(&net, &theta, 1e-2).is_none());
}

/// A run's records report κ of the damped metric the flow solves with: finite at every step
/// of an MLP run (its undamped Fisher is singular), equal to (λ_max + λ)/(λ_min + λ) from an
/// independent eigen-decomposition of the exact Fisher at the recorded θ.
#[test]
fn mlp_runs_record_the_damped_condition_number_at_every_step() {
    use fisher_flow::flow::{FlowSettings, Simulator};
    let net = iris_net(3);
    let lam = 1e-3;
    let sim = Simulator::new(
        &net,
        FlowSettings {
            metric: MetricKind::Exact,
            damping: lam,
            t_end: 0.3,
            rtol: 1e-5,
            atol: 1e-7,
            ..FlowSettings::default()
        },
    )
    .expect("settings");
    let tr = sim.run(&net.init(1)).expect("runs");
    assert!(tr.steps.len() > 2);
    for s in &tr.steps {
        assert!(s.kappa.is_finite(), "t {}: κ {}", s.t, s.kappa);
        let ev = net.fisher(&s.theta).symmetric_eigenvalues();
        let (lo, hi) = (ev.min(), ev.max());
        let k = (hi + lam) / (lo + lam);
        assert!((s.kappa - k).abs() < 1e-6 * k, "{} vs {k}", s.kappa);
        assert!(
            (s.min_eig - lo).abs() < 1e-9 * hi,
            "undamped λ_min {} vs {lo}",
            s.min_eig
        );
    }
}

/// The sampled metric along a flow draws its targets at the step's start and holds them: with
/// an anchor the estimate is a smooth function of θ (second differences fall like ε²), and at
/// the anchor itself it equals the unanchored estimate; the flow then needs few rejections
/// (with targets redrawn at every stage, the class drawn for an example jumped wherever p
/// crossed its random number: more rejected than accepted steps on iris).
#[test]
fn sampled_metric_holds_its_draws_within_a_step() {
    use fisher_flow::flow::{FlowSettings, Simulator};
    let net = iris_net(3);
    let theta0 = net.init(1);
    let o = opts(|o| o.samples = 4);
    let p = provider(MetricKind::Sampled, &o);
    let plain = p.factorize(&net, &theta0, 0.0).unwrap().matrix().unwrap();
    p.set_anchor(Some(&theta0));
    let at0 = p.factorize(&net, &theta0, 0.0).unwrap().matrix().unwrap();
    assert_eq!(plain, at0);
    let dir = DVector::from_fn(theta0.len(), |i, _| ((i * 7 % 5) as f64 - 2.0) * 0.3);
    let m = |eps: f64| {
        let th: Vec<f64> = theta0
            .iter()
            .zip(dir.iter())
            .map(|(a, d)| a + eps * d)
            .collect();
        p.factorize(&net, &th, 0.0).unwrap().matrix().unwrap()
    };
    for eps in [1e-2, 1e-3] {
        let second = (m(2.0 * eps) - m(eps) * 2.0 + &at0).amax();
        assert!(second < 50.0 * eps * eps * at0.amax(), "ε {eps}: {second}");
    }
    let sim = Simulator::new(
        &net,
        FlowSettings {
            metric: MetricKind::Sampled,
            metric_options: o.clone(),
            damping: 1e-3,
            t_end: 2.0,
            rtol: 1e-6,
            atol: 1e-8,
            ..FlowSettings::default()
        },
    )
    .expect("settings");
    let tr = sim.run(&theta0).expect("runs");
    assert!(tr.succeeded(), "{:?}", tr.stop);
    assert!(
        tr.stats.rejected * 4 < tr.stats.accepted,
        "{} rejected for {} accepted",
        tr.stats.rejected,
        tr.stats.accepted
    );
}

/// κ of the damped matrix a provider solves with, against the eigenvalues of its dense matrix:
/// exact, sampled and K-FAC with exact damping give (λ_max + λ)/(λ_min + λ) of G̃.
#[test]
fn damped_condition_numbers_match_the_dense_eigenvalues() {
    let net = iris_net(3);
    let theta = net.init(2);
    let lam = 1e-2;
    for (kind, o) in [
        (MetricKind::Exact, opts(|_| {})),
        (MetricKind::Sampled, opts(|o| o.samples = 2)),
        (
            MetricKind::Kfac,
            opts(|o| o.kfac_damping = KfacDamping::Exact),
        ),
    ] {
        let m = provider(kind, &o).factorize(&net, &theta, lam).unwrap();
        let ev = m.matrix().unwrap().symmetric_eigenvalues();
        let k_ref = (ev.max() + lam) / (ev.min() + lam);
        let k = m.damped_condition_number().unwrap();
        assert!(
            k.is_finite() && (k - k_ref).abs() < 1e-8 * k_ref,
            "{kind:?}: {k} vs {k_ref}"
        );
        if kind == MetricKind::Exact {
            // the softmax net's exact Fisher is singular (a constant added to every output
            // leaves p unchanged): only the damped κ is finite
            assert_eq!(m.condition_number().map(f64::is_finite), Some(false));
        }
    }
}
