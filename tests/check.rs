//! The theory property suite (`fisher-flow check`), one test per property so that a failure
//! names the property and prints what was measured against which tolerance.

use fisher_flow::checks;

fn assert_holds(name: &str) {
    let o = checks::run_one(name).expect("known property");
    assert_eq!(o.name, name);
    assert!(
        o.pass,
        "{}: {} [tolerance {}]",
        o.name, o.measured, o.tolerance
    );
}

macro_rules! property {
    ($($f:ident => $name:literal),* $(,)?) => {
        $(
            #[test]
            fn $f() {
                assert_holds($name);
            }
        )*
        const TESTED: &[&str] = &[$($name),*];
    };
}

property! {
    fisher_forms_mixture => "fisher-forms-mixture",
    fisher_forms_normal => "fisher-forms-normal",
    kl_quadratic => "kl-quadratic",
    mixture_separated_limit => "mixture-separated-limit",
    mixture_rank_one => "mixture-rank-one",
    mixture_kappa_exponent => "mixture-kappa-exponent",
    normal_fisher_charts => "normal-fisher-charts",
    one_parameter_fisher => "one-parameter-fisher",
    rate_along_trajectory => "rate-along-trajectory",
    certificate_verifies => "certificate-verifies",
    reparam_invariance_linear => "reparam-invariance-linear",
    reparam_invariance_nonlinear => "reparam-invariance-nonlinear",
    reparam_euclidean_control => "reparam-euclidean-control",
    normal_exact_flow => "normal-exact-flow",
    local_rate_natural => "local-rate-natural",
    local_rate_euclidean => "local-rate-euclidean",
    escape_natural => "escape-natural",
    escape_euclidean => "escape-euclidean",
    kl_ball_steepest_descent => "kl-ball-steepest-descent",
    angle_separated => "angle-separated",
    angle_near_singular_line => "angle-near-singular-line",
    fisher_rao_normal => "fisher-rao-normal",
    fisher_rao_one_parameter => "fisher-rao-one-parameter",
    vi_conjugate_natural_params => "vi-conjugate-natural-params",
    vi_chart_invariance => "vi-chart-invariance",
    vi_logistic_vs_exact_posterior => "vi-logistic-vs-exact-posterior",
    density_fisher_rao_closed_form => "density-fisher-rao-closed-form",
    density_mass_positivity => "density-mass-positivity",
    density_fisher_rao_vs_wasserstein_bimodal => "density-fisher-rao-vs-wasserstein-bimodal",
    amari_chentsov_symmetric => "amari-chentsov-symmetric",
    dual_connections_identity => "dual-connections-identity",
    normal_skewness_closed_form => "normal-skewness-closed-form",
    levi_civita_is_alpha_zero => "levi-civita-is-alpha-zero",
    saddle_escape_third_order => "saddle-escape-third-order",
    plateau_escape_third_order => "plateau-escape-third-order",
}

#[test]
fn every_property_of_the_suite_has_a_test_here() {
    let mut a: Vec<&str> = checks::names();
    let mut b: Vec<&str> = TESTED.to_vec();
    a.sort_unstable();
    b.sort_unstable();
    assert_eq!(a, b);
}

#[test]
fn unknown_property_is_an_input_error() {
    let e = checks::run(Some("no-such-property")).expect_err("must fail");
    assert_eq!(e.exit_code(), 2);
}

#[test]
fn check_cli_runs_one_property_and_reports_json() {
    let out = assert_cmd::Command::cargo_bin("fisher-flow")
        .expect("binary")
        .args(["check", "--json", "--only", "mixture-rank-one"])
        .assert()
        .code(0)
        .get_output()
        .stdout
        .clone();
    let v: serde_json::Value = serde_json::from_slice(&out).expect("json");
    assert_eq!(v[0]["name"], "mixture-rank-one");
    assert_eq!(v[0]["pass"], true);
    assert_cmd::Command::cargo_bin("fisher-flow")
        .expect("binary")
        .args(["check", "--only", "nonsense"])
        .assert()
        .code(2);
}
