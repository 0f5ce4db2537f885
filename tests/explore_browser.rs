//! The `fisher-flow explore` page in a real browser: headless Debian chromium driven over
//! WebDriver (chromedriver) with fantoccini. Ignored by default (it needs the `chromium` and
//! `chromium-driver` packages); `.ci/browser.sh` installs them and runs
//! `cargo test --test explore_browser -- --ignored`.
//!
//! Loads the page, drags the θ handle and a μ handle of the density, moves every slider with
//! the keyboard, clicks a probe, toggles the heat map, flow and Euclidean particles; after each
//! step the panel's κ and the probe's angle label must equal what `/api/metric` answers for the
//! page's own query, and no JS error may have occurred. Saves `assets/explore.png`.

use fantoccini::actions::{InputSource, MOUSE_BUTTON_LEFT, MouseActions, PointerAction};
use fantoccini::{Client, ClientBuilder, Locator};
use fisher_flow::serve::Server;
use fisher_flow::serve::api::Base;
use serde_json::{Value, json};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const CHROMIUM: &str = "/usr/bin/chromium";

fn api_json(addr: SocketAddr, path: &str) -> Value {
    let mut s = TcpStream::connect(addr).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    assert!(raw.starts_with(b"HTTP/1.1 200"), "{path}");
    serde_json::from_slice(&raw[split + 4..]).unwrap()
}

/// chromedriver on a free port; killed on drop.
struct Driver {
    child: Child,
    port: u16,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_driver() -> Driver {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new(CHROMEDRIVER)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromedriver (apt-get install chromium-driver)");
    let t0 = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "chromedriver did not start"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    Driver { child, port }
}

async fn js(c: &Client, script: &str) -> Value {
    c.execute(script, vec![]).await.unwrap()
}

/// Wait until every request the page sent has been answered, twice in a row 150 ms apart.
async fn settle(c: &Client) {
    let t0 = Instant::now();
    let mut quiet = 0;
    while quiet < 2 {
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "the page did not settle"
        );
        tokio::time::sleep(Duration::from_millis(150)).await;
        let d = js(c, "return window.__explore;").await;
        if d["sent"] == d["received"] {
            quiet += 1;
        } else {
            quiet = 0;
        }
    }
}

async fn no_errors(c: &Client, step: &str) {
    let errors = js(c, "return window.__errors;").await;
    assert_eq!(errors, json!([]), "JS errors after {step}");
}

/// The panel's κ equals `/api/metric` for the panel's own query (and the shown text rounds it).
async fn check_panel(c: &Client, addr: SocketAddr, step: &str) -> String {
    let panel = c.find(Locator::Id("kappa-panel")).await.unwrap();
    let query = panel.attr("data-query").await.unwrap().unwrap();
    let shown = panel.attr("data-kappa").await.unwrap().unwrap();
    let api = api_json(addr, &format!("/api/metric?{query}"));
    match api["condition_number"].as_f64() {
        Some(k) => {
            assert_eq!(shown.parse::<f64>().unwrap(), k, "{step}: κ for {query}");
            let text = c
                .find(Locator::Id("kappa-value"))
                .await
                .unwrap()
                .text()
                .await
                .unwrap();
            let v: f64 = text.trim().parse().unwrap();
            assert!(
                (v - k).abs() <= 1e-5 * k,
                "{step}: panel text {text} vs κ {k}"
            );
        }
        None => assert_eq!(shown, "inf", "{step}"),
    }
    query
}

async fn check_angle(c: &Client, addr: SocketAddr, step: &str) -> String {
    let label = c.find(Locator::Id("angle-label")).await.unwrap();
    let query = label.attr("data-query").await.unwrap().unwrap();
    let shown: f64 = label
        .attr("data-angle")
        .await
        .unwrap()
        .unwrap()
        .parse()
        .unwrap();
    let api = api_json(addr, &format!("/api/metric?{query}"));
    let angle = api["angle_deg"].as_f64().unwrap();
    assert_eq!(shown, angle, "{step}: angle for {query}");
    let text = label.text().await.unwrap();
    let v: f64 = text
        .trim_start_matches("Δθ = ")
        .trim_end_matches('°')
        .parse()
        .unwrap();
    assert!((v - angle).abs() < 0.01, "{step}: label {text} vs {angle}");
    query
}

async fn drag(c: &Client, id: &str, dx: f64, dy: f64) {
    let el = c.find(Locator::Id(id)).await.unwrap();
    let mut a = MouseActions::new("mouse".into())
        .then(PointerAction::MoveToElement {
            element: el,
            duration: None,
            x: 0.0,
            y: 0.0,
        })
        .then(PointerAction::Down {
            button: MOUSE_BUTTON_LEFT,
        });
    // many small moves: the page must coalesce the requests they cause
    for _ in 0..10 {
        a = a.then(PointerAction::MoveBy {
            duration: Some(Duration::from_millis(30)),
            x: dx / 10.0,
            y: dy / 10.0,
        });
    }
    let a = a.then(PointerAction::Up {
        button: MOUSE_BUTTON_LEFT,
    });
    c.perform_actions(a).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs chromium and chromium-driver: run by .ci/browser.sh"]
async fn the_page_in_a_real_browser() {
    let srv = Server::start_with(Base::load(None).unwrap(), 0, Duration::from_secs(120)).unwrap();
    let addr = srv.addr();
    let driver = start_driver();
    let profile = tempfile::tempdir().unwrap();
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": CHROMIUM,
            "args": [
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--window-size=1200,1150", "--hide-scrollbars",
                format!("--user-data-dir={}", profile.path().display()),
            ],
        }),
    );
    let c = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{}", driver.port))
        .await
        .expect("a WebDriver session");

    c.goto(&srv.url()).await.unwrap();
    let t0 = Instant::now();
    while js(&c, "return document.body.dataset.ready === '1';").await != json!(true) {
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "the page did not start"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    settle(&c).await;
    let q0 = check_panel(&c, addr, "load").await;
    check_angle(&c, addr, "load").await;
    let ellipses = js(
        &c,
        "return document.querySelectorAll('#plane .ell').length;",
    )
    .await;
    assert_eq!(ellipses, json!(225), "15×15 ellipses");

    // drag the θ handle: the panel follows
    drag(&c, "theta-handle", -120.0, 80.0).await;
    settle(&c).await;
    let q1 = check_panel(&c, addr, "dragging the θ handle").await;
    assert_ne!(q0, q1, "the handle moved");
    // drag μ₂ on the density strip
    drag(&c, "mu2-handle", 90.0, 0.0).await;
    settle(&c).await;
    let q2 = check_panel(&c, addr, "dragging μ₂").await;
    assert_ne!(q1, q2);
    // drag the target θ*: the loss (and the query) change, κ is still the API's
    drag(&c, "target-handle", 60.0, -40.0).await;
    settle(&c).await;
    let q3 = check_panel(&c, addr, "dragging θ*").await;
    assert_ne!(q2, q3, "the target moved");
    assert!(!q3.contains("t1=-1.5&t2=2&"), "{q3}");
    no_errors(&c, "dragging").await;

    // every slider, by keyboard
    // ← or → three times (σ and the ellipse scale down, w and the grid up)
    for (id, key) in [
        ("sigma", "\u{E012}"),
        ("weight", "\u{E014}"),
        ("grid", "\u{E014}"),
        ("ellipse-scale", "\u{E012}"),
    ] {
        let s = c.find(Locator::Id(id)).await.unwrap();
        let before = s.prop("value").await.unwrap();
        // focus without clicking (a click would first jump the thumb to the click point)
        js(
            &c,
            &format!("document.getElementById('{id}').focus(); return 0;"),
        )
        .await;
        s.send_keys(&key.repeat(3)).await.unwrap();
        let after = s.prop("value").await.unwrap();
        assert_ne!(before, after, "slider {id} moved");
        settle(&c).await;
        check_panel(&c, addr, id).await;
        no_errors(&c, id).await;
    }
    let ellipses = js(
        &c,
        "return document.querySelectorAll('#plane .ell').length;",
    )
    .await;
    let grid = js(
        &c,
        "return parseInt(document.getElementById('grid').value, 10);",
    )
    .await;
    let g = grid.as_u64().unwrap();
    assert_eq!(
        ellipses.as_u64(),
        Some(g * g),
        "grid slider redraws the tessellation"
    );

    // a probe: click in the plane (offsets from the centre of the SVG)
    let plane = c.find(Locator::Id("plane")).await.unwrap();
    let a = MouseActions::new("mouse".into())
        .then(PointerAction::MoveToElement {
            element: plane,
            duration: None,
            x: -150.0,
            y: 120.0,
        })
        .then(PointerAction::Down {
            button: MOUSE_BUTTON_LEFT,
        })
        .then(PointerAction::Up {
            button: MOUSE_BUTTON_LEFT,
        });
    c.perform_actions(a).await.unwrap();
    settle(&c).await;
    let qa = check_angle(&c, addr, "probe click").await;
    assert!(qa.contains("sigma="), "{qa}");
    no_errors(&c, "probe").await;

    // heat map: κ → angle
    c.find(Locator::Id("heat-toggle"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    settle(&c).await;
    let legend = c
        .find(Locator::Id("legend"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(legend.contains("angle"), "{legend}");

    // flow, then Euclidean particles beside them
    c.find(Locator::Id("flow-toggle"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    settle(&c).await;
    c.find(Locator::Id("euclid-toggle"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    settle(&c).await;
    tokio::time::sleep(Duration::from_millis(1500)).await; // let the particles move
    let n = js(
        &c,
        "return document.querySelectorAll('#plane .particle').length;",
    )
    .await;
    assert_eq!(n, json!(48), "24 natural + 24 Euclidean particles");
    let moved = js(
        &c,
        "var p = document.querySelector('#plane .particle'); return p.getAttribute('cx') !== null;",
    )
    .await;
    assert_eq!(moved, json!(true));
    let pressed = c
        .find(Locator::Id("flow-toggle"))
        .await
        .unwrap()
        .attr("aria-pressed")
        .await
        .unwrap();
    assert_eq!(pressed.as_deref(), Some("true"));
    check_panel(&c, addr, "flow").await;
    no_errors(&c, "flow").await;

    // the export links carry the view's settings
    let href = c
        .find(Locator::Id("export-svg"))
        .await
        .unwrap()
        .attr("href")
        .await
        .unwrap()
        .unwrap();
    assert!(
        href.contains("heat=angle") && href.contains("probe="),
        "{href}"
    );

    let debug = js(&c, "return window.__explore;").await;
    eprintln!("requests: {debug}");
    js(&c, "window.scrollTo(0, 0); return 0;").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let png = c.screenshot().await.unwrap();
    let out = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("assets/explore.png");
    fisher_flow::export::write_atomic(&out, &png).unwrap();
    c.close().await.unwrap();
    drop(driver);
    srv.stop().unwrap();
}
