//! The MLP model: data, gradients and Fisher matrices against independent computations,
//! and bad input.

use fisher_flow::config::{Experiment, Overrides};
use fisher_flow::model::data::{Dataset, TargetSpec, Targets, read_csv, synthetic_regression};
use fisher_flow::model::{Activation, FisherSource, Mlp, OutputKind, StatModel};
use nalgebra::DMatrix;
use std::path::Path;

fn iris_raw() -> Dataset {
    read_csv(
        Path::new("models/data/iris.csv"),
        &TargetSpec::Class("species".into()),
    )
    .expect("iris.csv")
}

/// A few Iris rows (every 10th), standardized.
fn iris_small() -> Dataset {
    let d = iris_raw();
    let idx: Vec<usize> = (0..150).step_by(10).collect();
    let labels = match &d.targets {
        Targets::Classes { labels, names } => Targets::Classes {
            labels: idx.iter().map(|&i| labels[i]).collect(),
            names: names.clone(),
        },
        Targets::Values(_) => unreachable!(),
    };
    let mut s = Dataset {
        x: d.x.select_columns(idx.iter()),
        targets: labels,
        source: "iris subset".into(),
    };
    s.standardize();
    s
}

fn central_grad(f: impl Fn(&[f64]) -> f64, theta: &[f64]) -> Vec<f64> {
    let h = 1e-6;
    (0..theta.len())
        .map(|i| {
            let mut p = theta.to_vec();
            let mut m = theta.to_vec();
            p[i] += h;
            m[i] -= h;
            (f(&p) - f(&m)) / (2.0 * h)
        })
        .collect()
}

#[test]
fn iris_has_150_rows_and_50_of_each_species() {
    let d = iris_raw();
    assert_eq!(d.len(), 150);
    assert_eq!(d.x.nrows(), 4);
    match &d.targets {
        Targets::Classes { labels, names } => {
            assert_eq!(names, &["Iris-setosa", "Iris-versicolor", "Iris-virginica"]);
            for c in 0..3 {
                assert_eq!(labels.iter().filter(|&&l| l == c).count(), 50, "class {c}");
            }
        }
        Targets::Values(_) => panic!("expected classes"),
    }
    // Known column means of the UCI table (cm): 5.843, 3.054, 3.759, 1.199.
    let means: Vec<f64> = d.x.row_iter().map(|r| r.sum() / 150.0).collect();
    for (m, want) in means.iter().zip([5.8433, 3.0540, 3.7587, 1.1987]) {
        assert!((m - want).abs() < 1e-3, "{m} vs {want}");
    }
}

#[test]
fn gradients_match_finite_differences() {
    let nets = [
        Mlp::new(
            vec![4, 5, 3],
            Activation::Tanh,
            OutputKind::Softmax,
            iris_small(),
        )
        .unwrap(),
        Mlp::new(
            vec![4, 3, 4, 3],
            Activation::Tanh,
            OutputKind::Softmax,
            iris_small(),
        )
        .unwrap(),
        Mlp::new(
            vec![2, 6, 1],
            Activation::Tanh,
            OutputKind::Gaussian { noise: 0.7 },
            synthetic_regression(12, 2, 0.1, 4),
        )
        .unwrap(),
        Mlp::new(
            vec![2, 6, 1],
            Activation::Relu,
            OutputKind::Gaussian { noise: 0.7 },
            synthetic_regression(12, 2, 0.1, 4),
        )
        .unwrap(),
    ];
    for (k, net) in nets.iter().enumerate() {
        let theta = net.init(k as u64 + 1);
        let g = net.gradient(&theta);
        let fd = central_grad(|t| net.loss(t), &theta);
        for (i, (a, b)) in g.iter().zip(&fd).enumerate() {
            assert!(
                (a - b).abs() < 1e-6 * (1.0 + b.abs()),
                "net {k}, param {i}: {a} vs {b}"
            );
        }
    }
}

#[test]
fn gaussian_loss_is_the_closed_form_nll() {
    let d = synthetic_regression(7, 2, 0.2, 9);
    let net = Mlp::new(
        vec![2, 1],
        Activation::Tanh,
        OutputKind::Gaussian { noise: 0.5 },
        d.clone(),
    )
    .unwrap();
    let theta = vec![0.3, -0.2, 0.1];
    let y = match &d.targets {
        Targets::Values(y) => y.clone(),
        Targets::Classes { .. } => unreachable!(),
    };
    let mut want = 0.0;
    for i in 0..7 {
        let mu = 0.3 * d.x[(0, i)] - 0.2 * d.x[(1, i)] + 0.1;
        let r = y[(0, i)] - mu;
        want += r * r / (2.0 * 0.25) + 0.5 * (2.0 * std::f64::consts::PI * 0.25).ln();
    }
    assert!((net.loss(&theta) - want / 7.0).abs() < 1e-14);
}

/// −log p(c | xᵢ, θ) of one example, through a one-example network.
fn example_nll(net_sizes: &[usize], x: &DMatrix<f64>, i: usize, c: usize, theta: &[f64]) -> f64 {
    let d = Dataset {
        x: x.columns(i, 1).into_owned(),
        targets: Targets::Classes {
            labels: vec![c],
            names: vec!["a".into(), "b".into(), "c".into()],
        },
        source: String::new(),
    };
    Mlp::new(net_sizes.to_vec(), Activation::Tanh, OutputKind::Softmax, d)
        .unwrap()
        .loss(theta)
}

#[test]
fn softmax_exact_fisher_equals_the_expectation_of_finite_difference_scores() {
    let data = iris_small();
    let sizes = vec![4, 3, 3];
    let net = Mlp::new(
        sizes.clone(),
        Activation::Tanh,
        OutputKind::Softmax,
        data.clone(),
    )
    .unwrap();
    let theta = net.init(7);
    let n = net.dim();
    let p = net.forward(&theta).p;
    let mut want = DMatrix::zeros(n, n);
    let nex = data.len();
    for i in 0..nex {
        for c in 0..3 {
            let s = nalgebra::DVector::from_vec(central_grad(
                |t| example_nll(&sizes, &data.x, i, c, t),
                &theta,
            ));
            want += &s * s.transpose() * (p[(c, i)] / nex as f64);
        }
    }
    let got = net.fisher(&theta);
    assert!(
        (&got - &want).amax() < 1e-7 * want.amax(),
        "max diff {}",
        (&got - &want).amax()
    );
    // The empirical Fisher is the same sum with the observed class only.
    let labels = match &data.targets {
        Targets::Classes { labels, .. } => labels.clone(),
        Targets::Values(_) => unreachable!(),
    };
    let mut emp = DMatrix::zeros(n, n);
    for (i, &c) in labels.iter().enumerate() {
        let s = nalgebra::DVector::from_vec(central_grad(
            |t| example_nll(&sizes, &data.x, i, c, t),
            &theta,
        ));
        emp += &s * s.transpose() / nex as f64;
    }
    let r = net.fisher_factor(&theta, &FisherSource::Empirical).unwrap();
    let got = r.transpose() * &r;
    assert!((&got - &emp).amax() < 1e-7 * emp.amax());
}

#[test]
fn gaussian_exact_fisher_is_jtj_over_sigma_squared() {
    let d = synthetic_regression(9, 2, 0.1, 2);
    let sigma = 0.4;
    let net = Mlp::new(
        vec![2, 4, 1],
        Activation::Tanh,
        OutputKind::Gaussian { noise: sigma },
        d,
    )
    .unwrap();
    let theta = net.init(3);
    let n = net.dim();
    // Jacobian of every output by central differences of the forward pass.
    let h = 1e-6;
    let mut jac = DMatrix::zeros(9, n);
    for k in 0..n {
        let mut p = theta.clone();
        let mut m = theta.clone();
        p[k] += h;
        m[k] -= h;
        let (zp, zm) = (net.forward(&p).z, net.forward(&m).z);
        for i in 0..9 {
            jac[(i, k)] = (zp[(0, i)] - zm[(0, i)]) / (2.0 * h);
        }
    }
    let want = jac.transpose() * &jac / (9.0 * sigma * sigma);
    let got = net.fisher(&theta);
    assert!((&got - &want).amax() < 1e-7 * want.amax());
}

#[test]
fn parameter_names_follow_the_column_major_layout() {
    let net = Mlp::new(
        vec![4, 2, 3],
        Activation::Tanh,
        OutputKind::Softmax,
        iris_small(),
    )
    .unwrap();
    let names = net.param_names();
    assert_eq!(names.len(), 2 * 5 + 3 * 3);
    assert_eq!(&names[..3], &["w1_0_0", "w1_1_0", "w1_0_1"]);
    assert_eq!(names[8], "b1_0");
    assert_eq!(names[10], "w2_0_0");
    assert_eq!(names[18], "b2_2");
}

fn write(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

fn load_err(dir: &Path, toml: &str) -> String {
    let p = write(dir, "m.toml", toml);
    Experiment::load(&p, &Overrides::default())
        .unwrap_err()
        .to_string()
}

const MLP_HEAD: &str = "[model]\nfamily = \"mlp\"\n";

#[test]
fn bad_input_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write(d, "ok.csv", "a,b,species\n1,2,x\n3,4,y\n");
    write(d, "missing.csv", "a,b,species\n1,2,x\n3,,y\n");
    write(d, "short.csv", "a,b,species\n1,2,x\n3,y\n");

    let e = load_err(
        d,
        &format!("{MLP_HEAD}[mlp]\nlayers = [2, 0, 2]\ndata = \"ok.csv\"\n"),
    );
    assert!(e.contains("mlp.layers") && e.contains("is 0"), "{e}");
    let e = load_err(
        d,
        &format!("{MLP_HEAD}[mlp]\nlayers = [2, 3, 2]\ndata = \"missing.csv\"\n"),
    );
    assert!(
        e.contains("missing.csv")
            && e.contains("line 3")
            && e.contains("missing value in column 'b'"),
        "{e}"
    );
    let e = load_err(
        d,
        &format!("{MLP_HEAD}[mlp]\nlayers = [2, 3, 2]\ndata = \"short.csv\"\n"),
    );
    assert!(
        e.contains("short.csv") && e.contains("expected 3 columns, found 2"),
        "{e}"
    );
    let e = load_err(
        d,
        &format!(
            "{MLP_HEAD}[mlp]\nlayers = [2, 3, 2]\ndata = \"ok.csv\"\n[flow]\ndamping = -0.1\n"
        ),
    );
    assert!(e.contains("flow.damping") && e.contains("≥ 0"), "{e}");
    let e = load_err(
        d,
        &format!("{MLP_HEAD}[mlp]\nlayers = [5, 3, 2]\ndata = \"ok.csv\"\n"),
    );
    assert!(e.contains("2 feature columns"), "{e}");
    let e = load_err(
        d,
        &format!(
            "{MLP_HEAD}[mlp]\nlayers = [2, 3, 2]\ndata = \"ok.csv\"\n[metric]\nkfac_damping = \"loose\"\n"
        ),
    );
    assert!(e.contains("metric.kfac_damping"), "{e}");
    let e = load_err(
        d,
        &format!(
            "{MLP_HEAD}[mlp]\nlayers = [2, 3, 2]\ndata = \"ok.csv\"\n[flow]\nmetric = \"block-diagonal\"\n[metric]\nblocks = [[\"nope\"]]\n"
        ),
    );
    assert!(
        e.contains("metric.blocks[0]") && e.contains("'nope'"),
        "{e}"
    );
    let e = load_err(
        d,
        "[model]\nsigma = 1.0\ntarget = [-1.0, 1.0]\n[flow]\nmetric = \"kfac\"\nstarts = [[0.1, 0.2]]\n",
    );
    assert!(e.contains("kfac") && e.contains("dense layers"), "{e}");
    let e = load_err(
        d,
        "[model]\nsigma = 1.0\ntarget = [-1.0, 1.0]\n[flow]\nmetric = \"empirical\"\nstarts = [[0.1, 0.2]]\n",
    );
    assert!(e.contains("loss.kind"), "{e}");
    let e = load_err(d, MLP_HEAD);
    assert!(e.contains("[mlp]"), "{e}");
}

#[test]
fn the_shipped_iris_model_loads_with_every_metric() {
    for m in fisher_flow::metric::MetricKind::NAMES {
        let ov = Overrides {
            metric: Some(m.to_string()),
            ..Overrides::default()
        };
        let exp = Experiment::load(Path::new("models/mlp-iris.toml"), &ov)
            .unwrap_or_else(|e| panic!("{m}: {e}"));
        assert_eq!(exp.model.dim(), 67);
        assert_eq!(exp.starts.len(), 2);
    }
}
