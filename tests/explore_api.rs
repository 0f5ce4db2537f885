//! `fisher-flow explore`'s JSON API against a server on an ephemeral port (in-process), and the
//! binary itself: `/api/metric` equals `fisher-flow metric --json`, bad parameters are 400s
//! naming the parameter, limits hold, several clients are served at once, the exports equal
//! what `fisher-flow manifold` writes and the model file loads.

use assert_cmd::Command;
use fisher_flow::serve::Server;
use fisher_flow::serve::api::{self, Base};
use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::time::Duration;

fn model() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("models/gmm-seed.toml")
}

fn server() -> Server {
    // unoptimized test builds are slow: a generous limit (the binary uses 10 s)
    Server::start_with(
        Base::load(Some(&model())).unwrap(),
        0,
        Duration::from_secs(120),
    )
    .unwrap()
}

/// One HTTP/1.1 GET: (status, content type, body).
fn get(addr: SocketAddr, path: &str) -> (u16, String, Vec<u8>) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a header block");
    let head = String::from_utf8_lossy(&raw[..split]).to_string();
    let body = raw[split + 4..].to_vec();
    let status: u16 = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    let ctype = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-type")
                .then(|| v.trim().to_string())
        })
        .unwrap_or_default();
    assert!(
        !head
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked"),
        "bodies are sent whole"
    );
    (status, ctype, body)
}

fn get_json(addr: SocketAddr, path: &str) -> (u16, Value) {
    let (status, ctype, body) = get(addr, path);
    assert!(ctype.starts_with("application/json"), "{path}: {ctype}");
    (status, serde_json::from_slice(&body).unwrap())
}

fn cli_metric(model: &std::path::Path, at: &str) -> Value {
    let out = Command::cargo_bin("fisher-flow")
        .unwrap()
        .args(["metric"])
        .arg(model)
        .args(["--at", at, "--json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn metric_equals_the_command_line_including_overrides() {
    let srv = server();
    let addr = srv.addr();
    // the model file as it is, at three points (one on the singular line: κ = null)
    for (mu1, mu2) in [("1.5", "1"), ("-2.25", "0.5"), ("0.3", "0.3")] {
        let (status, api) = get_json(addr, &format!("/api/metric?mu1={mu1}&mu2={mu2}"));
        assert_eq!(status, 200);
        let cli = cli_metric(&model(), &format!("{mu1},{mu2}"));
        assert_eq!(api, cli, "at ({mu1}, {mu2})");
    }
    // quad=K is --nodes K
    let (_, api) = get_json(addr, "/api/metric?mu1=0.5&mu2=-0.25&quad=16");
    let out = Command::cargo_bin("fisher-flow")
        .unwrap()
        .arg("metric")
        .arg(model())
        .args(["--at", "0.5,-0.25", "--nodes", "16", "--json"])
        .output()
        .unwrap();
    assert_eq!(api, serde_json::from_slice::<Value>(&out.stdout).unwrap());
    assert_ne!(api, cli_metric(&model(), "0.5,-0.25"));
    // overrides: the exported model file (σ, w, θ*) given to `metric` gives the API's numbers
    let q = "sigma=0.7&w=0.3&t1=-1&t2=2.5";
    let (status, _, toml) = get(addr, &format!("/api/model.toml?{q}"));
    assert_eq!(status, 200);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("view.toml");
    std::fs::write(&file, &toml).unwrap();
    let (_, api) = get_json(addr, &format!("/api/metric?mu1=0.4&mu2=-1.2&{q}"));
    assert_eq!(api, cli_metric(&file, "0.4,-1.2"));
    // and the overrides did change the numbers
    let (_, plain) = get_json(addr, "/api/metric?mu1=0.4&mu2=-1.2");
    assert_ne!(api["loss"], plain["loss"]);
    // the model file has the overrides and `run` accepts it (short horizon)
    let text = String::from_utf8(toml).unwrap();
    assert!(
        text.contains("sigma = 0.7") && text.contains("weight = 0.3"),
        "{text}"
    );
    Command::cargo_bin("fisher-flow")
        .unwrap()
        .arg("run")
        .arg(&file)
        .args(["--t-end", "0.5", "--out"])
        .arg(dir.path().join("run"))
        .assert()
        .success();
    srv.stop().unwrap();
}

#[test]
fn bad_parameters_are_400s_naming_the_parameter() {
    let srv = server();
    let addr = srv.addr();
    let cases = [
        ("/api/metric?mu1=1", "mu2"),
        ("/api/metric?mu1=NaN&mu2=1", "mu1"),
        ("/api/metric?mu1=1&mu2=inf", "mu2"),
        ("/api/metric?mu1=1&mu2=x", "mu2"),
        ("/api/metric?mu1=1&mu2=1&sigma=0", "sigma"),
        ("/api/metric?mu1=1&mu2=1&sigma=-1", "sigma"),
        ("/api/metric?mu1=1&mu2=1&sigma=", "sigma"),
        ("/api/metric?mu1=1&mu2=1&w=1", "w"),
        ("/api/metric?mu1=1&mu2=1&w=0", "w"),
        ("/api/metric?mu1=1&mu2=1&t2=1e300", "t2"),
        ("/api/metric?mu1=1e300&mu2=1", "mu1"),
        ("/api/metric?mu1=1&mu2=1&bogus=3", "bogus"),
        ("/api/metric?mu1=1&mu2=1&mu1=2", "mu1"),
        ("/api/metric?mu1=1&mu2=1&grid=3", "grid"),
        ("/api/field?grid=0", "grid"),
        ("/api/field?grid=42", "grid"),
        ("/api/field?scale=0", "scale"),
        ("/api/field?scale=11", "scale"),
        ("/api/field?heat=hot", "heat"),
        ("/api/field?nodes=102", "nodes"),
        ("/api/particles?n=201", "n"),
        ("/api/particles?t_end=101", "t_end"),
        ("/api/particles?t_end=-1", "t_end"),
        ("/api/particles?frames=1", "frames"),
        ("/api/particles?euclid=yes", "euclid"),
        ("/api/particles?seed=-1", "seed"),
        ("/api/particles?rtol=2", "rtol"),
        ("/api/particles?rtol=0", "rtol"),
        ("/api/field?quad=0", "quad"),
        ("/api/metric?mu1=1&mu2=1&quad=100000", "quad"),
        ("/api/export.svg?probe=1", "probe"),
        ("/api/export.svg?probe=9,9", "--probe"),
        ("/api/model.toml?sigma=1e-200", "sigma"),
        ("/api/config?x=1", "x"),
    ];
    for (path, parameter) in cases {
        let (status, body) = get_json(addr, path);
        assert_eq!(status, 400, "{path}: {body}");
        assert_eq!(body["parameter"], parameter, "{path}: {body}");
        assert!(
            body["error"].as_str().is_some_and(|e| e.len() > 10),
            "{path}: {body}"
        );
    }
    let long = format!("/api/field?grid={}", "1".repeat(api::MAX_QUERY + 1));
    let (status, body) = get_json(addr, &long);
    assert_eq!((status, body["parameter"].as_str()), (400, Some("query")));
    let (status, body) = get_json(addr, "/nope");
    assert_eq!(status, 404, "{body}");
    // not HTTP at all, and a POST
    {
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.write_all(b"\x00\x01garbage \xff\r\n\r\n").unwrap();
        let mut sink = Vec::new();
        let _ = s.read_to_end(&mut sink);
    }
    {
        let mut s = TcpStream::connect(addr).unwrap();
        write!(
            s,
            "POST /api/metric?mu1=1&mu2=1 HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut raw = Vec::new();
        s.read_to_end(&mut raw).unwrap();
        assert!(
            raw.starts_with(b"HTTP/1.1 405"),
            "{}",
            String::from_utf8_lossy(&raw)
        );
    }
    // after all that the server still answers
    let (status, _) = get_json(addr, "/api/metric?mu1=1&mu2=2");
    assert_eq!(status, 200);
    srv.stop().unwrap();
}

/// The Fisher ellipse of every cell is the level set vᵀI(θ₀)v = ε of the metric the
/// /api/metric endpoint reports at the cell centre (unless clipped to the cell).
#[test]
fn field_ellipses_are_level_sets_of_the_reported_metric() {
    let srv = server();
    let addr = srv.addr();
    let (status, f) = get_json(
        addr,
        "/api/field?grid=5&scale=0.8&sigma=1.3&heat=angle&nodes=9",
    );
    assert_eq!(status, 200);
    let eps = f["epsilon"].as_f64().unwrap();
    let ellipses = f["ellipses"].as_array().unwrap();
    assert_eq!(ellipses.len(), 25);
    let mut checked = 0;
    for e in ellipses.iter().step_by(4) {
        let c = [e["c"][0].as_f64().unwrap(), e["c"][1].as_f64().unwrap()];
        let (_, m) = get_json(
            addr,
            &format!("/api/metric?mu1={}&mu2={}&sigma=1.3", c[0], c[1]),
        );
        let i = |r: usize, k: usize| m["fisher"][r][k].as_f64().unwrap();
        for k in 0..2 {
            if e["clipped"][k].as_bool().unwrap() {
                continue;
            }
            let v = [
                e["a"][k][0].as_f64().unwrap(),
                e["a"][k][1].as_f64().unwrap(),
            ];
            let q =
                v[0] * (i(0, 0) * v[0] + i(0, 1) * v[1]) + v[1] * (i(1, 0) * v[0] + i(1, 1) * v[1]);
            assert!((q - eps).abs() < 1e-9 * eps, "q = {q}, ε = {eps}");
            checked += 1;
        }
    }
    assert!(checked >= 8);
    // the angle heat map at node (0, 0) is the angle /api/metric reports there
    let heat = &f["heat"];
    assert_eq!(heat["kind"], "angle");
    assert_eq!(heat["z"].as_array().unwrap().len(), 81);
    let (_, m) = get_json(addr, "/api/metric?mu1=-4&mu2=-4&sigma=1.3");
    let z0 = heat["z"][0].as_f64();
    let a0 = m["angle_deg"].as_f64();
    assert_eq!(z0, a0);
    srv.stop().unwrap();
}

/// Particles descend the loss and end near θ* or its swap; dense output puts the frames at
/// the requested equally spaced times.
#[test]
fn particles_descend_and_sample_the_requested_times() {
    let srv = server();
    let addr = srv.addr();
    let (status, d) = get_json(addr, "/api/particles?n=3&seed=7&t_end=4&frames=9&euclid=1");
    assert_eq!(status, 200, "{d}");
    for set in ["natural", "euclidean"] {
        let ps = d[set].as_array().unwrap();
        assert_eq!(ps.len(), 3);
        for p in ps {
            let t: Vec<f64> = p["t"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap())
                .collect();
            // start, the 8 times 0.5, 1, …, 4 (the last is the end)
            assert_eq!(t.len(), 9, "{set}: {t:?}");
            for (k, tk) in t.iter().enumerate() {
                assert!((tk - 0.5 * k as f64).abs() < 1e-12, "{set}: {t:?}");
            }
            // the loss at the last point is below the loss at the start
            let pt = |k: usize| {
                (
                    p["p"][k][0].as_f64().unwrap(),
                    p["p"][k][1].as_f64().unwrap(),
                )
            };
            let loss = |q: (f64, f64)| {
                get_json(addr, &format!("/api/metric?mu1={}&mu2={}", q.0, q.1)).1["loss"]
                    .as_f64()
                    .unwrap()
            };
            assert!(loss(pt(8)) < loss(pt(0)), "{set}: {p}");
        }
    }
    // the same starts as `manifold --particles 3 --seed 7`: the starts are inside the window
    let p0 = &d["natural"][0]["p"][0];
    assert!(p0[0].as_f64().unwrap().abs() <= 4.0 && p0[1].as_f64().unwrap().abs() <= 4.0);
    srv.stop().unwrap();
}

#[test]
fn exports_equal_what_manifold_writes() {
    let srv = server();
    let addr = srv.addr();
    let q = "sigma=0.8&w=0.4&grid=6&scale=1.2&heat=none&n=3&seed=5&t_end=2&probe=1,-0.5";
    let dir = tempfile::tempdir().unwrap();
    let (_, _, toml) = get(addr, "/api/model.toml?sigma=0.8&w=0.4");
    let file = dir.path().join("view.toml");
    std::fs::write(&file, &toml).unwrap();
    for ext in ["svg", "png"] {
        let (status, ctype, body) = get(addr, &format!("/api/export.{ext}?{q}"));
        assert_eq!(status, 200);
        assert!(ctype.starts_with("image/"), "{ctype}");
        let out = dir.path().join(format!("m.{ext}"));
        Command::cargo_bin("fisher-flow")
            .unwrap()
            .arg("manifold")
            .arg(&file)
            .args([
                "--grid",
                "6",
                "--ellipse-scale",
                "1.2",
                "--heatmap",
                "none",
                "--particles",
                "3",
                "--seed",
                "5",
                "--t-end",
                "2",
                "--probe",
                "1,-0.5",
                "--out",
            ])
            .arg(&out)
            .assert()
            .success();
        assert!(
            body == std::fs::read(&out).unwrap(),
            "{ext} differs from manifold's"
        );
    }
    srv.stop().unwrap();
}

#[test]
fn several_clients_at_once() {
    let srv = server();
    let addr = srv.addr();
    let handles: Vec<_> = (0..6)
        .map(|k| {
            std::thread::spawn(move || {
                let mu1 = -2.0 + k as f64 * 0.5;
                let (s1, m) = get_json(addr, &format!("/api/metric?mu1={mu1}&mu2=1"));
                let (s2, f) = get_json(addr, "/api/field?grid=7&nodes=11");
                let (s3, _) = get_json(addr, "/api/metric?mu1=1&mu2=1&sigma=nan");
                (
                    s1,
                    s2,
                    s3,
                    m["loss"].as_f64(),
                    f["ellipses"].as_array().map(Vec::len),
                )
            })
        })
        .collect();
    let results: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    for (k, r) in results.iter().enumerate() {
        assert_eq!((r.0, r.1, r.2), (200, 200, 400));
        assert_eq!(r.4, Some(49));
        // each client got the answer for its own point
        let mu1 = -2.0 + k as f64 * 0.5;
        let (_, m) = get_json(addr, &format!("/api/metric?mu1={mu1}&mu2=1"));
        assert_eq!(r.3, m["loss"].as_f64());
    }
    srv.stop().unwrap();
}

#[test]
fn the_binary_serves_on_an_ephemeral_port_and_prints_the_url() {
    let bin = assert_cmd::cargo::cargo_bin("fisher-flow");
    let mut child = std::process::Command::new(bin)
        .args(["explore"])
        .arg(model())
        .args(["--port", "0", "--no-open"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let url = line
        .split_whitespace()
        .find(|w| w.starts_with("http://127.0.0.1:"))
        .unwrap_or_else(|| panic!("no URL in {line:?}"))
        .to_string();
    let addr: SocketAddr = url
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .parse()
        .unwrap();
    let (status, ctype, body) = get(addr, "/");
    let page = String::from_utf8(body).unwrap();
    for id in [
        "kappa-panel",
        "angle-label",
        "flow-toggle",
        "sigma",
        "grid",
        "ellipse-scale",
        "weight",
    ] {
        assert!(
            page.contains(&format!("id=\"{id}\"")) || id == "angle-label",
            "{id}"
        );
    }
    assert_eq!((status, ctype.starts_with("text/html")), (200, true));
    let (status, _, js) = get(addr, "/app.js");
    assert_eq!(status, 200);
    assert!(String::from_utf8(js).unwrap().contains("angle-label"));
    // no network: the page loads nothing from another host
    assert!(!page.contains("http://") && !page.contains("https://"));
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn a_port_in_use_is_a_bad_input_error() {
    let srv = server();
    let port = srv.addr().port();
    Command::cargo_bin("fisher-flow")
        .unwrap()
        .args(["explore", "--no-open", "--port", &port.to_string()])
        .assert()
        .code(2)
        .stderr(predicates::str::contains("--port"));
    srv.stop().unwrap();
}

#[test]
fn a_request_over_the_time_limit_is_a_503_and_the_server_goes_on() {
    let srv = Server::start_with(
        Base::load(Some(&model())).unwrap(),
        0,
        Duration::from_millis(1),
    )
    .unwrap();
    let addr = srv.addr();
    let (status, body) = get_json(addr, "/api/field?grid=15&nodes=61");
    assert_eq!(status, 503, "{body}");
    assert!(body["error"].as_str().unwrap().contains("longer than"));
    // parameters are checked before any work: still a 400
    let (status, _) = get_json(addr, "/api/particles?n=201");
    assert_eq!(status, 400);
    srv.stop().unwrap();
}
