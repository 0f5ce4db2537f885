//! `fisher-flow explore`: the seed's interactive page, served by fisher-flow itself.
//!
//! An axum router on a tokio runtime, bound to 127.0.0.1 only: the page (HTML, JS and CSS
//! embedded in the binary, [`page`]) and the JSON API ([`api`]). Each API request is parsed
//! and checked once ([`api::Params`]), then computed on tokio's blocking pool under a
//! per-request timeout ([`REQUEST_TIMEOUT`]); a bad parameter is an HTTP 400 with
//! `{"error": …, "parameter": …}`, a panic in the numerics a 500 — the server keeps serving.

pub mod api;
pub mod page;

use crate::error::{Error, Result};
use api::{ApiError, Base, ExportFormat, Params};
use axum::Router;
use axum::extract::{RawQuery, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// Longest a request may compute before it is answered with 503.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// What every handler sees: the model and the per-request time limit.
pub struct AppState {
    pub base: Base,
    pub timeout: Duration,
}

type Shared = Arc<AppState>;

fn json_response(status: u16, body: &serde_json::Value) -> Response {
    let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (
        code,
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        body.to_string(),
    )
        .into_response()
}

fn error_response(e: &ApiError) -> Response {
    json_response(e.status, &e.body())
}

/// Run `work` on the blocking pool under the timeout; a panic or a timeout is an error
/// response, never a dead server.
async fn compute<T, F>(limit: Duration, work: F) -> std::result::Result<T, ApiError>
where
    T: Send + 'static,
    F: FnOnce() -> std::result::Result<T, ApiError> + Send + 'static,
{
    match tokio::time::timeout(limit, tokio::task::spawn_blocking(work)).await {
        Ok(Ok(r)) => r,
        Ok(Err(join)) => Err(ApiError {
            status: 500,
            message: format!("the computation failed: {join}"),
            parameter: None,
        }),
        Err(_) => Err(ApiError {
            status: 503,
            message: format!(
                "the computation took longer than {:.1} s; ask for less (grid, n, t_end, frames)",
                limit.as_secs_f64()
            ),
            parameter: None,
        }),
    }
}

/// A JSON endpoint: parse with `allowed`, compute `f` off the async threads.
async fn json_endpoint(
    app: Shared,
    query: Option<String>,
    allowed: &'static [&'static str],
    f: fn(&Base, &Params) -> std::result::Result<serde_json::Value, ApiError>,
) -> Response {
    let params = match Params::parse(query.as_deref().unwrap_or(""), allowed) {
        Ok(p) => p,
        Err(e) => return error_response(&e),
    };
    let limit = app.timeout;
    match compute(limit, move || f(&app.base, &params)).await {
        Ok(v) => json_response(200, &v),
        Err(e) => error_response(&e),
    }
}

async fn config(State(b): State<Shared>, RawQuery(q): RawQuery) -> Response {
    json_endpoint(b, q, &[], |b, _| api::config(b)).await
}
async fn metric(State(b): State<Shared>, RawQuery(q): RawQuery) -> Response {
    json_endpoint(b, q, api::METRIC_PARAMS, api::metric).await
}
async fn field(State(b): State<Shared>, RawQuery(q): RawQuery) -> Response {
    json_endpoint(b, q, api::FIELD_PARAMS, api::field).await
}
async fn particles(State(b): State<Shared>, RawQuery(q): RawQuery) -> Response {
    json_endpoint(b, q, api::PARTICLE_PARAMS, api::particles).await
}

async fn export(app: Shared, q: Option<String>, format: ExportFormat) -> Response {
    let params = match Params::parse(q.as_deref().unwrap_or(""), api::EXPORT_PARAMS) {
        Ok(p) => p,
        Err(e) => return error_response(&e),
    };
    let (mime, name) = match format {
        ExportFormat::Svg => ("image/svg+xml", "manifold.svg"),
        ExportFormat::Png => ("image/png", "manifold.png"),
    };
    let limit = app.timeout;
    match compute(limit, move || api::export(&app.base, &params, format)).await {
        Ok(bytes) => (
            [
                (header::CONTENT_TYPE, mime.to_string()),
                (
                    header::CONTENT_DISPOSITION,
                    format!("attachment; filename=\"{name}\""),
                ),
            ],
            bytes,
        )
            .into_response(),
        Err(e) => error_response(&e),
    }
}
async fn export_svg(State(b): State<Shared>, RawQuery(q): RawQuery) -> Response {
    export(b, q, ExportFormat::Svg).await
}
async fn export_png(State(b): State<Shared>, RawQuery(q): RawQuery) -> Response {
    export(b, q, ExportFormat::Png).await
}
async fn model_toml(State(b): State<Shared>, RawQuery(q): RawQuery) -> Response {
    let params = match Params::parse(q.as_deref().unwrap_or(""), api::MODEL_PARAMS) {
        Ok(p) => p,
        Err(e) => return error_response(&e),
    };
    let limit = b.timeout;
    match compute(limit, move || b.base.model_toml(&params)).await {
        Ok(text) => (
            [
                (header::CONTENT_TYPE, "application/toml; charset=utf-8"),
                (
                    header::CONTENT_DISPOSITION,
                    "attachment; filename=\"explore.toml\"",
                ),
            ],
            text,
        )
            .into_response(),
        Err(e) => error_response(&e),
    }
}

async fn not_found() -> Response {
    error_response(&ApiError {
        status: 404,
        message: "no such page or endpoint: see / and /api/config".into(),
        parameter: None,
    })
}

async fn not_allowed() -> Response {
    error_response(&ApiError {
        status: 405,
        message: "only GET is served".into(),
        parameter: None,
    })
}

/// The whole application: page, assets and API.
pub fn router(base: Base, timeout: Duration) -> Router {
    Router::new()
        .route("/", get(page::index))
        .route("/app.js", get(page::script))
        .route("/style.css", get(page::style))
        .route("/api/config", get(config))
        .route("/api/metric", get(metric))
        .route("/api/field", get(field))
        .route("/api/particles", get(particles))
        .route("/api/export.svg", get(export_svg))
        .route("/api/export.png", get(export_png))
        .route("/api/model.toml", get(model_toml))
        .fallback(not_found)
        .method_not_allowed_fallback(not_allowed)
        .with_state(Arc::new(AppState { base, timeout }))
}

/// A running server: its address, and a way to stop it.
pub struct Server {
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<Result<()>>>,
}

impl Server {
    /// Bind 127.0.0.1:`port` (0: an ephemeral port) and serve `base` on a background thread,
    /// each request limited to [`REQUEST_TIMEOUT`].
    pub fn start(base: Base, port: u16) -> Result<Server> {
        Self::start_with(base, port, REQUEST_TIMEOUT)
    }

    /// [`Server::start`] with another per-request time limit (tests of unoptimized builds).
    pub fn start_with(base: Base, port: u16, timeout: Duration) -> Result<Server> {
        let listener = std::net::TcpListener::bind(("127.0.0.1", port)).map_err(|e| {
            Error::invalid(
                "--port",
                port,
                format!("cannot listen on 127.0.0.1:{port}: {e}"),
            )
        })?;
        listener
            .set_nonblocking(true)
            .map_err(|e| Error::invalid("--port", port, e.to_string()))?;
        let addr = listener
            .local_addr()
            .map_err(|e| Error::invalid("--port", port, e.to_string()))?;
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let app = router(base, timeout);
        let thread = std::thread::Builder::new()
            .name("explore-server".into())
            .spawn(move || -> Result<()> {
                let rt = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build()
                    .map_err(|e| {
                        Error::Numerical(format!("cannot start the server runtime: {e}"))
                    })?;
                let served = rt.block_on(async move {
                    let listener = tokio::net::TcpListener::from_std(listener)
                        .map_err(|e| Error::Numerical(format!("cannot listen: {e}")))?;
                    let shutdown = async move {
                        tokio::select! {
                            _ = rx => {}
                            _ = tokio::signal::ctrl_c() => {}
                        }
                    };
                    axum::serve(listener, app)
                        .with_graceful_shutdown(shutdown)
                        .await
                        .map_err(|e| Error::Numerical(format!("the server stopped: {e}")))
                });
                // a computation past its time limit may still run: do not wait for it long
                rt.shutdown_timeout(Duration::from_secs(1));
                served
            })
            .map_err(|e| Error::Numerical(format!("cannot start the server thread: {e}")))?;
        Ok(Server {
            addr,
            stop: Some(tx),
            thread: Some(thread),
        })
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT/`.
    pub fn url(&self) -> String {
        format!("http://{}/", self.addr)
    }

    /// Serve until Ctrl-C (or [`Server::stop`] from another handle).
    pub fn wait(mut self) -> Result<()> {
        match self.thread.take() {
            Some(t) => t
                .join()
                .map_err(|_| Error::Numerical("the server thread panicked".into()))?,
            None => Ok(()),
        }
    }

    /// Stop serving and wait for the thread.
    pub fn stop(mut self) -> Result<()> {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        self.wait()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }
}
