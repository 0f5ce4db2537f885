//! Figures: SVG structure, PNG header and content, determinism, and robustness to bad input.

use fisher_flow::Error;
use fisher_flow::plot::{
    self, Format, LOSS_SIZE, LossFigure, PLANE_SIZE, PlaneFigure, Series, draw_loss_on,
    draw_plane_on, palette,
};
use plotters::prelude::*;
use std::path::{Path, PathBuf};

const TARGET: (f64, f64) = (-1.5, 2.0);
const SWAP: (f64, f64) = (2.0, -1.5);

/// A made-up loss with zeros at the target and its label swap.
fn fake_loss(x: f64, y: f64) -> f64 {
    let a = (x - TARGET.0).powi(2) + (y - TARGET.1).powi(2);
    let b = (x - SWAP.0).powi(2) + (y - SWAP.1).powi(2);
    a * b / (1.0 + a + b)
}

fn grid(n: usize, xr: (f64, f64), yr: (f64, f64)) -> Vec<Vec<f64>> {
    (0..n)
        .map(|j| {
            let y = yr.0 + j as f64 * (yr.1 - yr.0) / (n - 1) as f64;
            (0..n)
                .map(|i| fake_loss(xr.0 + i as f64 * (xr.1 - xr.0) / (n - 1) as f64, y))
                .collect()
        })
        .collect()
}

/// A spiral converging to `centre`.
fn spiral(centre: (f64, f64), r0: f64, phase: f64, n: usize) -> Vec<(f64, f64)> {
    (0..n)
        .map(|k| {
            let s = k as f64 * 6.0 / (n - 1) as f64;
            let r = r0 * (-0.8 * s).exp();
            let a = phase + 2.2 * s;
            (centre.0 + r * a.cos(), centre.1 + r * a.sin())
        })
        .collect()
}

fn plane_figure() -> PlaneFigure {
    let (xr, yr) = ((-4.0, 4.0), (-4.0, 4.0));
    PlaneFigure {
        title: "Natural-gradient flow, σ = 1, w = 0.5, target (−1.5, 2)".into(),
        x_label: "μ₁".into(),
        y_label: "μ₂".into(),
        x_range: xr,
        y_range: yr,
        loss_grid: grid(81, xr, yr),
        targets: vec![TARGET, SWAP],
        singular_line: true,
        trajectories: vec![
            Series {
                label: "start (1.5, 3.5)".into(),
                points: spiral(TARGET, 1.9, 0.3, 300),
            },
            Series {
                label: "start (−3.5, −1)".into(),
                points: spiral(TARGET, 1.9, 3.6, 300),
            },
            Series {
                label: "start (0.5, −3)".into(),
                points: spiral(SWAP, 1.9, 4.2, 300),
            },
        ],
    }
}

fn loss_figure() -> LossFigure {
    let curve = |rate: f64, wiggle: f64| -> Vec<(f64, f64)> {
        (0..400)
            .map(|k| {
                let t = k as f64 * 0.05;
                (
                    t,
                    3.0 * (-rate * t).exp() * (1.0 + wiggle * (3.0 * t).sin().powi(2)),
                )
            })
            .collect()
    };
    LossFigure {
        title: "Loss gap, σ = 1, w = 0.5".into(),
        x_label: "t".into(),
        y_label: "L − L*".into(),
        series: vec![
            Series {
                label: "natural gradient".into(),
                points: curve(1.0, 0.0),
            },
            Series {
                label: "plain gradient".into(),
                points: curve(0.35, 0.5),
            },
        ],
    }
}

fn hex(c: RGBColor) -> String {
    format!("#{:02X}{:02X}{:02X}", c.0, c.1, c.2)
}

/// `<polyline …>` tags whose stroke is `colour`.
fn polylines_with_stroke(svg: &str, colour: &str) -> usize {
    svg.split("<polyline")
        .skip(1)
        .filter(|tag| {
            let tag = &tag[..tag.find('>').unwrap_or(tag.len())];
            tag.contains(&format!("stroke=\"{colour}\""))
        })
        .count()
}

/// Width and height from a PNG's IHDR chunk, after checking the signature.
fn png_size(bytes: &[u8]) -> (u32, u32) {
    assert!(bytes.len() > 33, "PNG too short: {} bytes", bytes.len());
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "PNG signature");
    assert_eq!(&bytes[12..16], b"IHDR");
    let w = u32::from_be_bytes(bytes[16..20].try_into().unwrap());
    let h = u32::from_be_bytes(bytes[20..24].try_into().unwrap());
    (w, h)
}

/// Fraction of pixels that are not white in an RGB buffer.
fn non_white_fraction(buf: &[u8]) -> f64 {
    let px = buf.chunks(3).filter(|p| p != &[255, 255, 255]).count();
    px as f64 / (buf.len() / 3) as f64
}

fn no_temp_files(dir: &Path) {
    let names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        names.iter().all(|n| !n.starts_with('.')),
        "temporary files left: {names:?}"
    );
}

#[test]
fn plane_svg_has_title_and_one_polyline_per_trajectory() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("plane.svg");
    let fig = plane_figure();
    plot::plane(&path, &fig).unwrap();
    let svg = std::fs::read_to_string(&path).unwrap();
    assert!(svg.contains("<svg"));
    assert!(svg.trim_end().ends_with("</svg>"));
    assert!(svg.contains(&fig.title), "title missing");
    assert!(
        svg.contains(">μ₁") || svg.contains("μ₁\n"),
        "x label missing"
    );
    assert!(svg.contains("target θ*") && svg.contains("swap"));
    assert!(svg.contains("singular line μ₁ = μ₂"));
    for (k, t) in fig.trajectories.iter().enumerate() {
        assert_eq!(
            polylines_with_stroke(&svg, &hex(palette(k))),
            1,
            "trajectory {k} ({})",
            t.label
        );
        assert!(svg.contains(&t.label));
    }
    // The heat map is present: many filled rectangles.
    assert!(svg.matches("<rect").count() > 100);
    no_temp_files(dir.path());
}

#[test]
fn plane_png_has_signature_and_size() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("plane.png");
    plot::plane(&path, &plane_figure()).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    assert_eq!(png_size(&bytes), PLANE_SIZE);
    assert_eq!(PLANE_SIZE, (1000, 800));
    no_temp_files(dir.path());
}

#[test]
fn loss_png_has_signature_and_size() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("loss.PNG");
    plot::loss(&path, &loss_figure()).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    assert_eq!(png_size(&bytes), LOSS_SIZE);
    assert_eq!(LOSS_SIZE, (1000, 600));
    no_temp_files(dir.path());
}

#[test]
fn loss_svg_has_log_axis_and_one_polyline_per_series() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("loss.svg");
    let fig = loss_figure();
    plot::loss(&path, &fig).unwrap();
    let svg = std::fs::read_to_string(&path).unwrap();
    assert!(svg.contains("<svg"));
    assert!(svg.contains(&fig.title));
    assert!(svg.contains("L − L*"));
    // Power-of-ten tick labels of the logarithmic axis.
    assert!(svg.contains("10⁻"), "no negative decade labels");
    for k in 0..fig.series.len() {
        assert_eq!(
            polylines_with_stroke(&svg, &hex(palette(k))),
            1,
            "series {k}"
        );
    }
}

#[test]
fn in_memory_renders_are_not_blank() {
    plot::font::register();
    let (w, h) = PLANE_SIZE;
    let mut buf = vec![0u8; (w * h * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut buf, (w, h)).into_drawing_area();
        draw_plane_on(&root, &plane_figure()).unwrap();
        root.present().unwrap();
    }
    let f = non_white_fraction(&buf);
    assert!(f > 0.05, "plane: only {f} non-white");

    let (w, h) = LOSS_SIZE;
    let mut buf = vec![0u8; (w * h * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut buf, (w, h)).into_drawing_area();
        draw_loss_on(&root, &loss_figure()).unwrap();
        root.present().unwrap();
    }
    let f = non_white_fraction(&buf);
    // Mostly white background; the curves, grid and text must still be there.
    assert!(f > 0.02, "loss: only {f} non-white");

    // An empty figure is (nearly) blank: the measure can fail.
    let mut buf = vec![0u8; (w * h * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut buf, (w, h)).into_drawing_area();
        root.fill(&WHITE).unwrap();
        root.present().unwrap();
    }
    assert_eq!(non_white_fraction(&buf), 0.0);
}

#[test]
fn plane_heat_map_covers_the_plot() {
    // With the loss background the plotting area is coloured, so well over half the pixels.
    let (w, h) = PLANE_SIZE;
    let mut buf = vec![0u8; (w * h * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut buf, (w, h)).into_drawing_area();
        draw_plane_on(&root, &plane_figure()).unwrap();
        root.present().unwrap();
    }
    assert!(non_white_fraction(&buf) > 0.5);
}

#[test]
fn rendering_is_deterministic() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let fig = plane_figure();
    let lfig = loss_figure();
    for ext in ["svg", "png"] {
        let (a, b) = (d.join(format!("a.{ext}")), d.join(format!("b.{ext}")));
        plot::plane(&a, &fig).unwrap();
        plot::plane(&b, &fig.clone()).unwrap();
        assert_eq!(
            std::fs::read(&a).unwrap(),
            std::fs::read(&b).unwrap(),
            "plane {ext}"
        );
        let (a, b) = (d.join(format!("la.{ext}")), d.join(format!("lb.{ext}")));
        plot::loss(&a, &lfig).unwrap();
        plot::loss(&b, &lfig.clone()).unwrap();
        assert_eq!(
            std::fs::read(&a).unwrap(),
            std::fs::read(&b).unwrap(),
            "loss {ext}"
        );
    }
}

#[test]
fn unsupported_extension_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    for name in ["plane.jpg", "plane", "plane.svg.bak"] {
        let path = dir.path().join(name);
        match plot::plane(&path, &plane_figure()) {
            Err(Error::Plot { path: p, message }) => {
                assert_eq!(p, path);
                assert!(message.contains(".svg or .png"), "{message}");
            }
            other => panic!("{name}: expected Error::Plot, got {other:?}"),
        }
        assert!(!path.exists());
        assert!(plot::loss(&path, &loss_figure()).is_err());
    }
    let err = Format::from_path(Path::new("x.jpg")).unwrap_err();
    assert!(
        err.to_string().contains("unsupported extension 'jpg'"),
        "{err}"
    );
    assert_eq!(Format::from_path(Path::new("x.Svg")).unwrap(), Format::Svg);
    assert_eq!(Format::from_path(Path::new("x.pNg")).unwrap(), Format::Png);
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

#[test]
fn missing_directory_is_a_write_error() {
    let dir = tempfile::tempdir().unwrap();
    for name in ["plane.svg", "plane.png"] {
        let path: PathBuf = dir.path().join("no/such/dir").join(name);
        let err = plot::plane(&path, &plane_figure()).unwrap_err();
        assert!(matches!(err, Error::Write { .. }), "{err:?}");
    }
}

#[test]
fn bad_values_do_not_panic() {
    let dir = tempfile::tempdir().unwrap();
    let nan = f64::NAN;
    let inf = f64::INFINITY;
    let mut fig = plane_figure();
    fig.trajectories = vec![
        Series {
            label: "with NaN".into(),
            points: vec![
                (0.0, 0.0),
                (nan, 1.0),
                (1.0, nan),
                (inf, 0.0),
                (1.0, 1.0),
                (2.0, 0.5),
            ],
        },
        Series {
            label: "single point".into(),
            points: vec![(0.5, -0.5)],
        },
        Series {
            label: "empty".into(),
            points: vec![],
        },
        Series {
            label: "all NaN".into(),
            points: vec![(nan, nan); 5],
        },
        Series {
            label: "leaves the plot".into(),
            points: vec![(0.0, 0.0), (10.0, 0.0), (10.0, 1.0), (0.0, 1.0)],
        },
    ];
    fig.targets.push((nan, 0.0));
    fig.loss_grid[3][4] = nan;
    fig.loss_grid[10][10] = inf;
    fig.loss_grid[20].truncate(5); // ragged
    for name in ["nan.svg", "nan.png"] {
        plot::plane(&dir.path().join(name), &fig).unwrap();
    }
    // The trajectory that leaves the plot is clipped into two pieces.
    let svg = std::fs::read_to_string(dir.path().join("nan.svg")).unwrap();
    assert_eq!(polylines_with_stroke(&svg, &hex(palette(4))), 2);
    assert_eq!(polylines_with_stroke(&svg, &hex(palette(0))), 1);

    // Degenerate and non-finite ranges, all-NaN and tiny grids, nothing to draw.
    let degenerate = [
        PlaneFigure {
            x_range: (1.0, 1.0),
            y_range: (0.0, 0.0),
            loss_grid: vec![vec![nan; 4]; 4],
            ..PlaneFigure::default()
        },
        PlaneFigure {
            x_range: (nan, inf),
            y_range: (3.0, -3.0),
            loss_grid: vec![vec![1.0]],
            singular_line: true,
            targets: vec![(0.0, 0.0)],
            ..PlaneFigure::default()
        },
        PlaneFigure {
            loss_grid: vec![vec![2.0; 3]; 3], // constant loss
            ..plane_figure()
        },
    ];
    for (k, fig) in degenerate.iter().enumerate() {
        for ext in ["svg", "png"] {
            plot::plane(&dir.path().join(format!("deg{k}.{ext}")), fig).unwrap();
        }
    }

    let loss_cases = [
        LossFigure::default(),
        LossFigure {
            series: vec![
                Series {
                    label: "zeros and negatives".into(),
                    points: vec![
                        (0.0, 1.0),
                        (1.0, 0.0),
                        (2.0, -1e-18),
                        (3.0, nan),
                        (4.0, inf),
                    ],
                },
                Series {
                    label: "single".into(),
                    points: vec![(2.0, 1e-3)],
                },
                Series {
                    label: String::new(),
                    points: vec![],
                },
            ],
            ..loss_figure()
        },
        LossFigure {
            series: vec![Series {
                label: "constant".into(),
                points: vec![(1.0, 0.5); 3],
            }],
            ..loss_figure()
        },
        LossFigure {
            series: vec![Series {
                label: "nothing finite".into(),
                points: vec![(nan, 1.0), (1.0, nan), (inf, inf)],
            }],
            ..loss_figure()
        },
    ];
    for (k, fig) in loss_cases.iter().enumerate() {
        for ext in ["svg", "png"] {
            plot::loss(&dir.path().join(format!("loss{k}.{ext}")), fig).unwrap();
        }
    }
    no_temp_files(dir.path());
}

/// Writes example figures to $PLOTCHECK_DIR (default /tmp/plotcheck) for looking at.
/// Run with `cargo test --test plot -- --ignored`.
#[test]
#[ignore]
fn render_examples_for_inspection() {
    let dir = std::env::var_os("PLOTCHECK_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/tmp/plotcheck"));
    std::fs::create_dir_all(&dir).unwrap();
    let fig = plane_figure();
    plot::plane(&dir.join("plane.svg"), &fig).unwrap();
    plot::plane(&dir.join("plane.png"), &fig).unwrap();
    let lfig = loss_figure();
    plot::loss(&dir.join("loss.svg"), &lfig).unwrap();
    plot::loss(&dir.join("loss.png"), &lfig).unwrap();

    // Many trajectories, no background, legend overflow, one trajectory leaving the plot.
    let many = PlaneFigure {
        title: "Twelve starts, no loss background".into(),
        loss_grid: vec![],
        trajectories: (0..12)
            .map(|k| Series {
                label: format!("trajectory {k}"),
                points: spiral(
                    if k % 2 == 0 { TARGET } else { SWAP },
                    1.2 + 0.2 * k as f64,
                    k as f64,
                    200,
                ),
            })
            .collect(),
        ..plane_figure()
    };
    plot::plane(&dir.join("plane_many.png"), &many).unwrap();

    // A curve that reaches exactly zero (drawn at the 1e-16 floor) and a single point.
    let floor = LossFigure {
        title: "Convergence to machine precision".into(),
        series: vec![
            Series {
                label: "reaches zero".into(),
                points: (0..200)
                    .map(|k| {
                        let t = k as f64 * 0.2;
                        (t, if k < 150 { (-t).exp() } else { 0.0 })
                    })
                    .collect(),
            },
            Series {
                label: "single point".into(),
                points: vec![(10.0, 1e-3)],
            },
        ],
        ..loss_figure()
    };
    plot::loss(&dir.join("loss_floor.png"), &floor).unwrap();
}
