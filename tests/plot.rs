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
        ..PlaneFigure::default()
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
        ..LossFigure::default()
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
    // One polyline per trajectory and its legend sample.
    for (k, t) in fig.trajectories.iter().enumerate() {
        assert_eq!(
            polylines_with_stroke(&svg, &hex(palette(k))),
            2,
            "trajectory {k} ({})",
            t.label
        );
        assert!(svg.contains(&t.label));
    }
    // The heat map is one embedded PNG, not thousands of rectangles.
    assert_eq!(svg.matches("<image").count(), 1);
    assert!(svg.contains("data:image/png;base64,"));
    assert!(
        svg.matches("<rect").count() < 100,
        "{}",
        svg.matches("<rect").count()
    );
    // The bundled font is embedded and named.
    assert!(svg.contains("@font-face") && svg.contains("font-family=\"DejaVu Sans, sans-serif\""));
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
    // One polyline per curve and one legend sample.
    for k in 0..fig.series.len() {
        assert_eq!(
            polylines_with_stroke(&svg, &hex(palette(k))),
            2,
            "series {k}"
        );
    }
}

/// The points of every `<polyline>` with stroke `colour`, one Vec per polyline.
fn polyline_points(svg: &str, colour: &str) -> Vec<Vec<(f64, f64)>> {
    svg.split("<polyline")
        .skip(1)
        .filter(|tag| {
            let tag = &tag[..tag.find('>').unwrap_or(tag.len())];
            tag.contains(&format!("stroke=\"{colour}\""))
        })
        .map(|e| {
            let pts = e
                .split("points=\"")
                .nth(1)
                .and_then(|p| p.split('"').next())
                .unwrap_or("");
            pts.split_whitespace()
                .filter_map(|p| {
                    let (x, y) = p.split_once(',')?;
                    Some((x.parse().ok()?, y.parse().ok()?))
                })
                .collect()
        })
        .collect()
}

#[test]
fn loss_curves_stop_at_the_noise_floor_band() {
    // The demo's case: the gap falls exponentially, then round-off makes it 0 and −2.66e-15.
    let mut pts: Vec<(f64, f64)> = (0..200)
        .map(|k| (k as f64 * 0.1, (-1.5 * k as f64 * 0.1).exp()))
        .collect();
    pts.push((20.0, 0.0));
    pts.push((20.1, -2.66e-15));
    let floor = 2e-13;
    let fig = LossFigure {
        title: "noise floor".into(),
        series: vec![Series {
            label: "gap".into(),
            points: pts,
        }],
        noise_floor: Some(floor),
        noise_label: "noise floor".into(),
        ..LossFigure::default()
    };
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("floor.svg");
    plot::loss(&path, &fig).unwrap();
    let svg = std::fs::read_to_string(&path).unwrap();
    assert!(svg.contains("noise floor"));
    // The band's top edge: the widest horizontal grey line.
    let band_top = polyline_points(&svg, &hex(plot::loss::BAND_GREY))
        .into_iter()
        .filter(|l| l.len() == 2 && l[0].1 == l[1].1)
        .max_by(|a, b| (a[1].0 - a[0].0).total_cmp(&(b[1].0 - b[0].0)))
        .map(|l| l[0].1)
        .expect("band edge");
    let curve = polyline_points(&svg, &hex(palette(0)))
        .into_iter()
        .max_by_key(Vec::len)
        .expect("curve");
    let lowest = curve.iter().map(|p| p.1).fold(f64::MIN, f64::max);
    // Pixel y grows downwards: the curve ends on the band's edge, never inside the band
    // (clamped to 1e-16 it would plunge to the bottom of the axis).
    assert!(
        (lowest - band_top).abs() <= 1.0,
        "curve reaches y = {lowest}, band top {band_top}"
    );
    // It ends where the exponential crosses 2e-13: t = ln(1/2e-13)/1.5 ≈ 19.4, near the right.
    let rightmost = curve.iter().map(|p| p.0).fold(f64::MIN, f64::max);
    let leftmost = curve.iter().map(|p| p.0).fold(f64::MAX, f64::min);
    assert!(rightmost > leftmost + 0.9 * (rightmost - leftmost));
}

#[test]
fn huge_loss_ranges_draw_and_terminate() {
    // A diverging run: 1 → 3e307, then +∞ and NaN (plotters' log key points used to hang).
    let fig = LossFigure {
        title: "divergence".into(),
        series: vec![Series {
            label: "gd lr 50".into(),
            points: (0..200)
                .map(|k| {
                    (
                        k as f64,
                        if k < 180 {
                            10f64.powf(1.71 * k as f64)
                        } else {
                            f64::INFINITY
                        },
                    )
                })
                .chain([
                    (200.0, f64::NAN),
                    (201.0, 1e-300),
                    (202.0, f64::MIN_POSITIVE),
                ])
                .collect(),
        }],
        noise_floor: Some(2e-13),
        ..LossFigure::default()
    };
    let dir = tempfile::tempdir().unwrap();
    for ext in ["svg", "png"] {
        plot::loss(&dir.path().join(format!("huge.{ext}")), &fig).unwrap();
    }
    let svg = std::fs::read_to_string(dir.path().join("huge.svg")).unwrap();
    assert!(
        svg.contains("10³⁰⁰") || svg.contains("10²"),
        "decade labels"
    );
}

#[test]
fn linear_axes_and_grouped_legends_outside_the_data() {
    use fisher_flow::plot::{Dash, LegendEntry, LegendGlyph, SeriesStyle};
    // 3 starts × 3 configurations: colour by start, pattern by configuration.
    let mut series = Vec::new();
    let mut styles = Vec::new();
    for c in 0..3 {
        for k in 0..3 {
            series.push(Series {
                label: String::new(),
                points: (0..50)
                    .map(|i| {
                        (
                            i as f64,
                            90.0 * (-(i as f64) / (5.0 + 3.0 * (c * 3 + k) as f64)).exp(),
                        )
                    })
                    .collect(),
            });
            styles.push(SeriesStyle {
                colour: k,
                dash: Dash::nth(c),
            });
        }
    }
    let mut legend: Vec<LegendEntry> = (0..3)
        .map(|k| LegendEntry {
            label: format!("start {k}"),
            glyph: LegendGlyph::Line(Some(k), Dash::Solid),
        })
        .collect();
    legend.extend((0..3).map(|c| LegendEntry {
        label: format!("config {c}"),
        glyph: LegendGlyph::Line(None, Dash::nth(c)),
    }));
    legend.push(LegendEntry {
        label: "one more".into(),
        glyph: LegendGlyph::Line(None, Dash::Solid),
    });
    let fig = LossFigure {
        title: "angles".into(),
        y_label: "angle (degrees)".into(),
        series,
        styles,
        legend,
        linear_y: true,
        y_range: Some((0.0, 90.0)),
        ..LossFigure::default()
    };
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("lin.svg");
    plot::loss(&path, &fig).unwrap();
    let svg = std::fs::read_to_string(&path).unwrap();
    // Linear degree ticks, no "9·10¹".
    assert!(
        svg.contains("\n90\n") && svg.contains("\n0\n"),
        "linear ticks"
    );
    assert!(!svg.contains("·10"), "no log-axis labels on a linear axis");
    // Seven entries: the legend sits right of every data point.
    let label_x: f64 = svg
        .split("<text")
        .skip(1)
        .find(|t| t.contains(">start 0<") || t.contains("start 0\n"))
        .and_then(|t| t.split("x=\"").nth(1))
        .and_then(|x| x.split('"').next())
        .and_then(|x| x.parse().ok())
        .expect("legend label");
    for k in 0..3 {
        for line in polyline_points(&svg, &hex(palette(k))) {
            for p in line {
                if (p.0 - label_x).abs() < 40.0 && line_is_legend_sample(p, label_x) {
                    continue;
                }
                assert!(
                    p.0 < label_x - 40.0,
                    "data point at x = {} under the legend (x = {label_x})",
                    p.0
                );
            }
        }
    }
    // Dashed configurations are drawn as several pieces.
    assert!(polylines_with_stroke(&svg, &hex(palette(0))) > 3);
}

/// A legend sample lies just left of its label.
fn line_is_legend_sample(p: (f64, f64), label_x: f64) -> bool {
    p.0 < label_x && p.0 > label_x - 40.0
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
    // (plus one legend sample each)
    assert_eq!(polylines_with_stroke(&svg, &hex(palette(4))), 3);
    assert_eq!(polylines_with_stroke(&svg, &hex(palette(0))), 2);

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

/// RGB pixels and size of a PNG.
fn decode_png(path: &Path) -> (Vec<u8>, (u32, u32)) {
    let decoder = png::Decoder::new(std::fs::File::open(path).unwrap());
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).unwrap();
    assert_eq!(info.color_type, png::ColorType::Rgb, "{}", path.display());
    buf.truncate(info.buffer_size());
    (buf, (info.width, info.height))
}

/// The README's images are what the binary draws for the demo (`run models/gmm-seed.toml
/// --manifold`), pixel by pixel: at most 0.5 % of the pixels may differ by more than 48 levels
/// in a channel (a change of the numerics moves a curve by a fraction of a pixel; a change of
/// a figure fails). Refresh them with `UPDATE_README_ASSETS=1 cargo test --test plot readme`.
/// The same run checks that the SVG font subset covers every character the figures write.
#[test]
fn readme_images_are_what_the_demo_draws() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = tempfile::tempdir().unwrap();
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_fisher-flow"))
        .current_dir(root)
        .args(["run", "models/gmm-seed.toml", "--manifold", "-q", "--out"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let update = std::env::var_os("UPDATE_README_ASSETS").is_some();
    for name in ["loss.png", "trajectory.png", "manifold.png"] {
        let fresh = dir.path().join(name);
        let committed = root.join("assets/readme").join(name);
        if update {
            std::fs::copy(&fresh, &committed).unwrap();
            continue;
        }
        let (a, sa) = decode_png(&fresh);
        let (b, sb) = decode_png(&committed);
        assert_eq!(sa, sb, "{name}: size");
        let differ = a
            .chunks(3)
            .zip(b.chunks(3))
            .filter(|(p, q)| p.iter().zip(q.iter()).any(|(x, y)| x.abs_diff(*y) > 48))
            .count();
        assert!(
            differ * 200 <= a.len() / 3,
            "{name}: {differ} pixels differ from assets/readme/{name}: \
             refresh with UPDATE_README_ASSETS=1 cargo test --test plot readme"
        );
    }

    use ab_glyph::Font;
    let font = ab_glyph::FontRef::try_from_slice(plot::font::DEJAVU_SANS_SUBSET).unwrap();
    for name in ["loss.svg", "trajectory.svg", "manifold.svg"] {
        let svg = std::fs::read_to_string(dir.path().join(name)).unwrap();
        for text in svg.split("<text").skip(1) {
            let body = text.split_once('>').map(|x| x.1).unwrap_or("");
            let body = body.split("</text>").next().unwrap_or("");
            for c in body
                .chars()
                .filter(|c| !c.is_whitespace() && *c != '&' && *c != ';')
            {
                assert_ne!(
                    font.glyph_id(c).0,
                    0,
                    "{name}: '{c}' (U+{:04X}) not in the SVG font subset",
                    c as u32
                );
            }
        }
    }
}

fn fisher_flow(args: &[&str], out: &Path) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_fisher-flow"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(args)
        .arg("--out")
        .arg(out)
        .output()
        .unwrap()
}

/// `compare` on the MLP: the Markdown table stays a table (`|` in "|θ|" escaped), the loss
/// figure shows L itself without a reference L* and L − L* with `--l-star`; a bad `--l-star`
/// is a one-line error with exit 2.
#[test]
fn compare_on_the_mlp_keeps_the_table_and_names_its_loss() {
    let dir = tempfile::tempdir().unwrap();
    let base = [
        "compare",
        "models/mlp-iris.toml",
        "--metrics",
        "euclidean",
        "--t-end",
        "0.05",
    ];
    let o = fisher_flow(&base, &dir.path().join("a"));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let md = std::fs::read_to_string(dir.path().join("a/compare.md")).unwrap();
    let cells = |line: &str| line.replace("\\|", "").matches('|').count();
    let header = cells(md.lines().next().unwrap());
    assert!(md.contains("\\|θ\\|"), "{md}");
    for line in md.lines() {
        assert_eq!(cells(line), header, "row breaks the table: {line}");
    }
    let svg = std::fs::read_to_string(dir.path().join("a/compare-loss.svg")).unwrap();
    assert!(
        svg.contains("Loss L (no reference L*"),
        "no reference: L itself"
    );
    let mut with = base.to_vec();
    with.extend(["--l-star", "0.01"]);
    let o = fisher_flow(&with, &dir.path().join("b"));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let svg = std::fs::read_to_string(dir.path().join("b/compare-loss.svg")).unwrap();
    assert!(svg.contains("Loss gap L − L*") && svg.contains("noise floor"));
    let json = std::fs::read_to_string(dir.path().join("b/compare.json")).unwrap();
    assert!(json.contains("\"--l-star\""), "{json}");
    // 1 − accuracy on a linear axis: no log-axis labels.
    let err = std::fs::read_to_string(dir.path().join("b/compare-error.svg")).unwrap();
    assert!(!err.contains("10⁻"));

    let o = fisher_flow(
        &["run", "models/gmm-seed.toml", "--l-star", "nan"],
        &dir.path().join("c"),
    );
    assert_eq!(o.status.code(), Some(2));
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(
        e.contains("--l-star") && e.trim_end().lines().count() == 1,
        "{e}"
    );
}

/// Titles name the metric or method that produced the figure.
#[test]
fn titles_name_the_metric_and_the_method() {
    let dir = tempfile::tempdir().unwrap();
    let o = fisher_flow(
        &[
            "run",
            "models/gmm-seed.toml",
            "--metric",
            "diagonal",
            "--t-end",
            "0.5",
            "-q",
        ],
        &dir.path().join("r"),
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let svg = std::fs::read_to_string(dir.path().join("r/trajectory.svg")).unwrap();
    assert!(svg.contains("Natural-gradient flow (diagonal Fisher)"));
    assert!(!svg.contains("Euclidean-gradient"));
    let o = fisher_flow(
        &[
            "optimize",
            "models/gmm-seed.toml",
            "--method",
            "gd",
            "--iters",
            "5",
            "-q",
        ],
        &dir.path().join("o"),
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let svg = std::fs::read_to_string(dir.path().join("o/trajectory.svg")).unwrap();
    assert!(
        svg.contains("Gradient descent (lr 0.1)"),
        "optimize plane title"
    );
    assert!(!svg.contains("Natural-gradient flow"));
    let svg = std::fs::read_to_string(dir.path().join("o/loss.svg")).unwrap();
    assert!(svg.contains("Loss gap of gradient descent (lr 0.1)"));
}

/// The issue's hang: gradient descent with lr 50 diverges to a loss of 3e307; plotting its
/// loss must finish (it used to loop forever in plotters' log-axis key points).
#[test]
fn a_diverging_optimize_run_still_plots() {
    let dir = tempfile::tempdir().unwrap();
    let o = fisher_flow(
        &[
            "optimize",
            "models/gmm-seed.toml",
            "--method",
            "gd",
            "--lr",
            "50",
            "--iters",
            "200",
            "--start",
            "0.1,0.15",
            "-q",
        ],
        dir.path(),
    );
    // Divergence may be reported as a failure (exit 1), but the figures are written.
    assert!(
        matches!(o.status.code(), Some(0 | 1)),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    for f in ["loss.svg", "loss.png"] {
        assert!(dir.path().join(f).exists(), "{f}");
    }
}
