//! The Fisher-manifold figure: SVG structure, probe angles against `metric --at`, PNG and GIF
//! output, byte-identical re-runs, and one-line errors.

use assert_cmd::Command;
use fisher_flow::config::{Experiment, Overrides};
use fisher_flow::manifold::{ManifoldOptions, build};
use fisher_flow::plot::manifold::{MANIFOLD_SIZE, draw_manifold_on};
use plotters::prelude::*;
use std::path::Path;

const DEMO: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/models/gmm-seed.toml");

fn ff() -> Command {
    Command::cargo_bin("fisher-flow").expect("binary built")
}

/// `<polyline>` elements drawn in colour `hex` and their point counts.
fn polylines(svg: &str, hex: &str) -> Vec<usize> {
    svg.split("<polyline")
        .skip(1)
        .filter(|e| {
            e.split('>')
                .next()
                .is_some_and(|head| head.contains(&format!("stroke=\"#{hex}\"")))
        })
        .map(|e| {
            let pts = e
                .split("points=\"")
                .nth(1)
                .and_then(|p| p.split('"').next())
                .unwrap_or("");
            pts.split_whitespace().count()
        })
        .collect()
}

/// Every point of the `<polyline>` elements drawn in colour `hex`.
fn polyline_points(svg: &str, hex: &str) -> Vec<(i32, i32)> {
    svg.split("<polyline")
        .skip(1)
        .filter(|e| {
            e.split('>')
                .next()
                .is_some_and(|head| head.contains(&format!("stroke=\"#{hex}\"")))
        })
        .flat_map(|e| {
            let pts = e
                .split("points=\"")
                .nth(1)
                .and_then(|p| p.split('"').next())
                .unwrap_or("")
                .to_string();
            pts.split_whitespace()
                .filter_map(|p| {
                    let (x, y) = p.split_once(',')?;
                    Some((x.parse().ok()?, y.parse().ok()?))
                })
                .collect::<Vec<(i32, i32)>>()
        })
        .collect()
}

fn manifold(dir: &Path, name: &str, extra: &[&str]) -> (std::process::Output, std::path::PathBuf) {
    let out = dir.join(name);
    let o = ff()
        .args(["manifold", DEMO, "--out"])
        .arg(&out)
        .args(extra)
        .output()
        .expect("runs");
    (o, out)
}

#[test]
fn svg_has_one_ellipse_per_cell_and_two_arrows_per_probe() {
    let dir = tempfile::tempdir().expect("tempdir");
    for (grid, probes) in [(15usize, vec!["1.5,1", "-3,3.2"]), (6, vec!["0.2,0.3"])] {
        let mut args = vec![
            "--grid".to_string(),
            grid.to_string(),
            "--particles".into(),
            "4".into(),
        ];
        for p in &probes {
            args.push("--probe".into());
            args.push(p.to_string());
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let (o, out) = manifold(dir.path(), &format!("m{grid}.svg"), &args);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let svg = std::fs::read_to_string(&out).expect("svg");
        let full = fisher_flow::plot::manifold::ELLIPSE_POINTS;
        // Whole outlines have ELLIPSE_POINTS points; the clipped ones carry 2-point caps;
        // outlines of border cells that reach past the frame are cut into shorter pieces.
        let plain = polylines(&svg, "202020")
            .iter()
            .filter(|&&n| n == full)
            .count();
        let clipped_lines = polylines(&svg, "006D2C");
        let clipped = clipped_lines.iter().filter(|&&n| n == full).count();
        let caps = clipped_lines.iter().filter(|&&n| n == 2).count();
        // one legend sample of each kind
        let (plain, clipped, caps) = (plain - 1, clipped.saturating_sub(1), caps.saturating_sub(2));
        let border = 4 * (grid - 1);
        assert!(
            plain + clipped <= grid * grid && plain + clipped >= grid * grid - border,
            "grid {grid}: {plain} + {clipped}"
        );
        assert!(
            caps >= 2 * clipped,
            "every clipped ellipse is marked by two caps"
        );
        assert!(clipped > 0, "cells on the singular line must be clipped");
        // Nothing of an ellipse lies outside the frame (the legend samples are right of it).
        let (x0, y0, side) = fisher_flow::plot::manifold::PLOT_BOX;
        for hex in ["202020", "006D2C"] {
            for (x, y) in polyline_points(&svg, hex) {
                if x > x0 + side + 20 {
                    continue; // legend
                }
                assert!(
                    x >= x0 && x <= x0 + side && y >= y0 && y <= y0 + side,
                    "grid {grid}: ellipse point ({x}, {y}) outside the frame"
                );
            }
        }
        // Every clipped ellipse the run reports has its two caps; those of border cells may be
        // cut by the frame into shorter pieces.
        let stdout = String::from_utf8_lossy(&o.stdout);
        let reported: usize = stdout
            .split(" clipped")
            .next()
            .and_then(|s| s.rsplit(' ').next())
            .and_then(|n| n.parse().ok())
            .expect("clipped count");
        assert!(
            clipped <= reported && reported <= clipped + border,
            "{stdout}"
        );
        // (a 2-point polyline may also be a short piece of an outline cut by the frame)
        assert!(
            caps >= 2 * reported && caps <= 2 * reported + 2 * border,
            "two caps per clipped ellipse: {caps} for {reported}"
        );
        // one red and one cyan arrow (shaft + head) per probe, plus the legend sample
        for hex in ["E41A1C", "00CFEF"] {
            assert_eq!(polylines(&svg, hex).len(), probes.len() + 1, "{hex}");
            let heads = svg
                .split("<polygon")
                .skip(1)
                .filter(|e| {
                    e.split('>')
                        .next()
                        .is_some_and(|h| h.contains(&format!("fill=\"#{hex}\"")))
                })
                .count();
            assert_eq!(heads, probes.len() + 1, "{hex} arrowheads");
        }
        assert_eq!(svg.matches("Δθ = ").count(), probes.len());
        assert!(svg.contains("σ = 1") && svg.contains("w = 0.5"));
    }
}

#[test]
fn probe_angles_equal_the_metric_subcommand() {
    let dir = tempfile::tempdir().expect("tempdir");
    let probes = ["1.5,1", "0.3,0.45", "-2,3"];
    let mut args = vec!["--particles", "2", "--grid", "4"];
    for p in &probes {
        args.extend(["--probe", p]);
    }
    let (o, out) = manifold(dir.path(), "p.svg", &args);
    assert!(o.status.success());
    let svg = std::fs::read_to_string(&out).expect("svg");
    let drawn: Vec<f64> = svg
        .split("Δθ = ")
        .skip(1)
        .map(|s| {
            s.split('°')
                .next()
                .expect("degree sign")
                .trim()
                .parse()
                .expect("number")
        })
        .collect();
    assert_eq!(drawn.len(), probes.len());
    for (p, d) in probes.iter().zip(&drawn) {
        let m = ff()
            .args(["metric", DEMO, "--json", &format!("--at={p}")])
            .output()
            .expect("runs");
        let v: serde_json::Value = serde_json::from_slice(&m.stdout).expect("json");
        let a = v["angle_deg"].as_f64().expect("angle");
        assert!((a - d).abs() <= 0.1, "probe {p}: figure {d}°, metric {a}°");
    }
    // one of them, close to the singular line, shows a large angle
    assert!(drawn.iter().any(|&d| d > 30.0), "{drawn:?}");
}

#[test]
fn a_stationary_probe_has_no_arrows_and_particles_are_coloured_by_destination() {
    let dir = tempfile::tempdir().expect("tempdir");
    // θ* itself: ∇L is round-off (≈ 1e-16), so no direction may be drawn.
    let (o, out) = manifold(
        dir.path(),
        "s.svg",
        &["--probe=-1.5,2", "--particles", "6", "--grid", "4"],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let svg = std::fs::read_to_string(&out).expect("svg");
    for hex in ["E41A1C", "00CFEF"] {
        assert_eq!(
            polylines(&svg, hex).len(),
            1,
            "{hex}: only the legend sample"
        );
    }
    assert!(svg.contains("∇L ≈ 0 (stationary)"));
    assert!(!svg.contains("Δθ = "));
    // Particles: one colour per destination, each listed in the legend; no time colour bar.
    let ends = [
        ("1F4EA0", "natural flow ending at θ*"),
        ("D95F02", "natural flow ending at the swap"),
    ];
    assert!(
        ends.iter()
            .any(|(hex, label)| !polylines(&svg, hex).is_empty() && svg.contains(label)),
        "no particle coloured by destination"
    );
    assert!(!svg.contains("particle time t"));
}

#[test]
fn png_has_the_documented_size_and_is_not_blank() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (o, out) = manifold(dir.path(), "m.png", &["--particles", "6"]);
    assert!(o.status.success());
    let bytes = std::fs::read(&out).expect("png");
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
    let w = u32::from_be_bytes([bytes[16], bytes[17], bytes[18], bytes[19]]);
    let h = u32::from_be_bytes([bytes[20], bytes[21], bytes[22], bytes[23]]);
    assert_eq!((w, h), MANIFOLD_SIZE);
    // the same figure drawn into memory: most pixels are painted
    let exp = Experiment::load(Path::new(DEMO), &Overrides::default()).expect("model");
    let opts = ManifoldOptions {
        particles: 6,
        ..ManifoldOptions::default()
    };
    let (fig, _) = build(&exp, &opts).expect("figure");
    let (w, h) = MANIFOLD_SIZE;
    let mut buf = vec![0u8; (w * h * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut buf, (w, h)).into_drawing_area();
        draw_manifold_on(&root, &fig, None).expect("draws");
        root.present().expect("present");
    }
    let painted = buf.chunks(3).filter(|p| p.iter().any(|&c| c < 245)).count();
    let frac = painted as f64 / (w * h) as f64;
    assert!(frac > 0.4, "non-white fraction {frac}");
}

#[test]
fn reruns_are_byte_identical_and_the_gif_is_written() {
    let dir = tempfile::tempdir().expect("tempdir");
    for ext in ["svg", "png"] {
        let args = ["--particles", "5", "--seed", "7", "--grid", "8"];
        let (o1, a) = manifold(dir.path(), &format!("a.{ext}"), &args);
        let (o2, b) = manifold(dir.path(), &format!("b.{ext}"), &args);
        assert!(o1.status.success() && o2.status.success());
        assert_eq!(
            std::fs::read(a).expect("a"),
            std::fs::read(b).expect("b"),
            "{ext}"
        );
        assert!(String::from_utf8_lossy(&o1.stdout).contains("seed 7"));
    }
    let gif = dir.path().join("flow.gif");
    let o = ff()
        .args([
            "manifold",
            DEMO,
            "--particles",
            "3",
            "--grid",
            "5",
            "--frames",
            "4",
            "--out",
        ])
        .arg(dir.path().join("g.svg"))
        .arg("--animate")
        .arg(&gif)
        .output()
        .expect("runs");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let bytes = std::fs::read(&gif).expect("gif");
    assert_eq!(&bytes[..6], b"GIF89a");
    let (w, h) = (
        u16::from_le_bytes([bytes[6], bytes[7]]),
        u16::from_le_bytes([bytes[8], bytes[9]]),
    );
    assert_eq!((w as u32, h as u32), MANIFOLD_SIZE);
    assert!(String::from_utf8_lossy(&o.stdout).contains("4 frames"));
    // Frame 1 is the whole figure; the others only the rectangle that changed, with the
    // unchanged pixels transparent (this keeps the demo's 60-frame GIF under 3 MB).
    let mut opts = gif::DecodeOptions::new();
    opts.set_color_output(gif::ColorOutput::Indexed);
    let mut dec = opts.read_info(bytes.as_slice()).expect("decodes");
    let mut frames = Vec::new();
    while let Some(f) = dec.read_next_frame().expect("frame") {
        frames.push((f.width, f.height, f.transparent));
    }
    assert_eq!(frames.len(), 4);
    assert_eq!(
        (u32::from(frames[0].0), u32::from(frames[0].1)),
        MANIFOLD_SIZE
    );
    for f in &frames[1..] {
        assert!(
            f.2.is_some(),
            "later frames are transparent where unchanged"
        );
        assert!(
            u32::from(f.0) * u32::from(f.1) < MANIFOLD_SIZE.0 * MANIFOLD_SIZE.1,
            "frame {f:?} is not a sub-rectangle"
        );
    }
}

#[test]
fn the_demo_run_writes_the_manifold_figure() {
    let dir = tempfile::tempdir().expect("tempdir");
    let o = ff()
        .args([
            "run",
            DEMO,
            "--manifold",
            "--t-end",
            "2",
            "--start",
            "0.5,1",
            "--out",
        ])
        .arg(dir.path())
        .output()
        .expect("runs");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    for f in ["manifold.svg", "manifold.png"] {
        assert!(
            dir.path()
                .join(f)
                .metadata()
                .map(|m| m.len() > 10_000)
                .unwrap_or(false),
            "{f}"
        );
    }
}

#[test]
fn bad_views_are_one_line_errors() {
    let dir = tempfile::tempdir().expect("tempdir");
    for (args, needle) in [
        (vec!["--range", "2,2"], "--range"),
        (vec!["--range", "3,1"], "--range"),
        (vec!["--grid", "0"], "--grid"),
        (vec!["--probe", "10,10"], "--probe"),
        (vec!["--heatmap", "rainbow"], "--heatmap"),
        (vec!["--sigma", "-1"], "sigma"),
    ] {
        let (o, out) = manifold(dir.path(), "bad.svg", &args);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{err}");
        assert!(err.contains(needle), "{args:?}: {err}");
        assert!(!out.exists());
    }
    let (o, out) = manifold(dir.path(), "bad.jpg", &[]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("jpg"));
    assert!(!out.exists());
}
