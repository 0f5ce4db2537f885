//! `fisher-flow manifold`: the seed's Fisher-manifold figure (SVG/PNG) and the animated flow (GIF).

use clap::Args;
use fisher_flow::config::{Experiment, Overrides, parse_pair};
use fisher_flow::manifold::{Background, ManifoldOptions, StartLayout, ViewReport, build};
use fisher_flow::plot::Format;
use fisher_flow::plot::animation::animate;
use fisher_flow::plot::manifold::{ManifoldFigure, manifold as draw_manifold};
use fisher_flow::{Error, Result};
use std::path::{Path, PathBuf};

#[derive(Args, Debug, Clone)]
pub struct ManifoldArgs {
    /// Model file (TOML)
    #[arg(default_value = "models/gmm-seed.toml")]
    pub model: PathBuf,
    /// Output figure, .svg or .png
    #[arg(long, default_value = "output/manifold.svg")]
    pub out: PathBuf,
    /// Shared standard deviation σ > 0 [default: the model file's model.sigma]
    #[arg(long, allow_hyphen_values = true)]
    pub sigma: Option<f64>,
    /// Ellipses per axis N (N×N cells)
    #[arg(long, default_value_t = 15)]
    pub grid: usize,
    /// Display scale C of the ellipses (the far-field radius is 0.42·C·cell)
    #[arg(long = "ellipse-scale", default_value_t = 1.0)]
    pub ellipse_scale: f64,
    /// Window A,B of both axes [default: the file's plot.range, else -4,4]
    #[arg(long, value_name = "A,B", allow_hyphen_values = true)]
    pub range: Option<String>,
    /// Probe point MU1,MU2 with the red −∇L and cyan −I⁻¹∇L arrows; repeat for several
    /// [default: one probe at 1.5,1 near the singular line]
    #[arg(long = "probe", value_name = "MU1,MU2", allow_hyphen_values = true)]
    pub probes: Vec<String>,
    /// Do not draw any probe [default: off]
    #[arg(long = "no-probe", conflicts_with = "probes")]
    pub no_probe: bool,
    /// Number of particles integrated along the natural-gradient flow
    #[arg(long, default_value_t = 24)]
    pub particles: usize,
    /// Particle starts: random (uniform, seeded) | grid
    #[arg(long, default_value = "random")]
    pub layout: String,
    /// Seed of the random particle starts
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Background heat map: kappa (log₁₀ κ(I)) | angle (∠(∇L, I⁻¹∇L)) | none
    #[arg(long, default_value = "kappa")]
    pub heatmap: String,
    /// Flow horizon of the particles [default: the file's flow.t_end, else 20]
    #[arg(long = "t-end")]
    pub t_end: Option<f64>,
    /// Also write the animated flow to FILE.gif [default: no animation]
    #[arg(long, value_name = "FILE.gif")]
    pub animate: Option<PathBuf>,
    /// Frames of the animation, at equal time steps
    #[arg(long, default_value_t = 60)]
    pub frames: usize,
    /// Time span of the animation [default: the time by which every particle has covered 99 %
    /// of its path]
    #[arg(long = "anim-t-end")]
    pub anim_t_end: Option<f64>,
    /// Milliseconds per animation frame
    #[arg(long = "frame-ms", default_value_t = 80)]
    pub frame_ms: u32,
}

/// Check that `path` names a supported figure format; a bad extension is bad input (exit 2).
fn check_extension(flag: &str, path: &Path, allowed: &[&str]) -> Result<()> {
    let ext = path
        .extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    if allowed.contains(&ext.as_str()) {
        Ok(())
    } else {
        Err(Error::invalid(
            flag,
            path.display(),
            format!(
                "unsupported extension '{ext}': use {}",
                allowed
                    .iter()
                    .map(|e| format!(".{e}"))
                    .collect::<Vec<_>>()
                    .join(" or ")
            ),
        ))
    }
}

/// Create the parent directory of an output file.
fn ensure_parent(path: &Path) -> Result<()> {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => {
            std::fs::create_dir_all(dir).map_err(|source| Error::Write {
                path: dir.to_path_buf(),
                source,
            })
        }
        _ => Ok(()),
    }
}

/// Parse the flags into options (errors name the flag).
pub fn options(args: &ManifoldArgs) -> Result<ManifoldOptions> {
    let range = match &args.range {
        None => None,
        Some(s) => {
            let r = parse_pair("--range", s)?;
            Some((r[0], r[1]))
        }
    };
    let mut probes = Vec::new();
    for p in &args.probes {
        let v = parse_pair("--probe", p)?;
        probes.push([v[0], v[1]]);
    }
    let d = ManifoldOptions::default();
    Ok(ManifoldOptions {
        sigma: args.sigma,
        grid: args.grid,
        ellipse_scale: args.ellipse_scale,
        range,
        probes: if args.no_probe {
            Vec::new()
        } else if probes.is_empty() {
            d.probes
        } else {
            probes
        },
        particles: args.particles,
        layout: StartLayout::parse("--layout", &args.layout)?,
        seed: args.seed,
        background: Background::parse("--heatmap", &args.heatmap)?,
        t_end: args.t_end,
        heat_nodes: d.heat_nodes,
    })
}

/// Print what the figure shows (the probe numbers are those of `fisher-flow metric --at`).
fn describe(fig: &ManifoldFigure, rep: &ViewReport) {
    crate::cli::say(format!(
        "ellipses: {} cells, ε = {:.6e}, {} clipped to their cell (λ_min → 0 near μ₁ = μ₂)",
        rep.cells, rep.epsilon, rep.clipped
    ));
    crate::cli::say(format!(
        "particles: {} (exact metric, tsit45, t_end {})",
        rep.starts_text, rep.t_end
    ));
    for p in &fig.probes {
        crate::cli::say(format!(
            "probe ({}, {}): angle between -grad L and -I^-1 grad L = {:.4} deg",
            p.at.0, p.at.1, p.angle_deg
        ));
    }
}

pub fn manifold(args: &ManifoldArgs) -> Result<()> {
    check_extension("--out", &args.out, &["svg", "png"])?;
    if let Some(g) = &args.animate {
        check_extension("--animate", g, &["gif"])?;
        if args.frames == 0 {
            return Err(Error::invalid("--frames", 0, "must be ≥ 1"));
        }
        if let Some(t) = args.anim_t_end
            && !(t.is_finite() && t > 0.0)
        {
            return Err(Error::invalid(
                "--anim-t-end",
                t,
                "must be a finite number > 0",
            ));
        }
    }
    let opts = options(args)?;
    let exp = Experiment::load(&args.model, &Overrides::default())?;
    opts.validate(&exp)?;
    if let Some(s) = opts.sigma {
        exp.check_sigma_override("--sigma", s)?;
    }
    if let Some((a, b)) = opts.range {
        match opts.sigma {
            Some(s) => fisher_flow::config::check_window_for("--range", a, b, s)?,
            None => exp.check_window("--range", a, b)?,
        }
    }
    let (fig, rep) = build(&exp, &opts)?;
    describe(&fig, &rep);
    ensure_parent(&args.out)?;
    Format::from_path(&args.out)?;
    draw_manifold(&args.out, &fig)?;
    println!("wrote {}", args.out.display());
    if let Some(g) = &args.animate {
        ensure_parent(g)?;
        let t_end = args.anim_t_end.unwrap_or(fig.t_colour);
        animate(g, &fig, args.frames, t_end, args.frame_ms)?;
        println!(
            "wrote {} ({} frames over t ∈ [0, {:.3}])",
            g.display(),
            args.frames,
            t_end
        );
    }
    Ok(())
}

/// The demo's manifold figures: the default view of `exp` as `out_dir/manifold.svg` and `.png`.
pub fn write_default_manifold(exp: &Experiment, out_dir: &Path) -> Result<()> {
    let opts = ManifoldOptions::default();
    let (fig, rep) = build(exp, &opts)?;
    describe(&fig, &rep);
    for ext in ["svg", "png"] {
        draw_manifold(&out_dir.join(format!("manifold.{ext}")), &fig)?;
    }
    Ok(())
}
