//! `sail serve`: an OpenAI-compatible HTTP server over the sail library, because apps on laptops
//! and boards talk to a local server (through the `openai` packages, Open WebUI, LangChain)
//! rather than shell out to a CLI.
//!
//! HTTP is axum on tokio; generation runs on blocking threads, one per session (see [`pool`]).
//! Every request carries its whole conversation; the library keeps what a session's KV cache
//! already holds of it, so a shared system prompt or an earlier turn is not computed again.
//! Nothing here fetches from the network: images come inline or, when allowed, from one folder.
//!
//! Endpoints: `POST /v1/chat/completions`, `GET /v1/models`, `GET /health`, `GET /metrics`.

mod error;
mod filter;
mod images;
mod metrics;
mod pool;
mod request;

pub use error::ApiError;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use filter::{Delta, Filter};
use futures_util::StreamExt as _;
use metrics::{Gauges, Metrics};
use pool::{Failed, Pool};
use request::ChatRequest;
use sail::session::{split_thinking, GenerateParams, Model, PreparedImage, SailError, Session, SessionParams, StopReason};
use sail::text::Message;
use sail::vision::decode::ImageLimits;
use serde_json::{json, Value};
use std::convert::Infallible;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::mpsc;

const CHAT_PATH: &str = "/v1/chat/completions";

/// What a request may cost; each has a command-line flag (see `sail serve --help`).
#[derive(Debug, Clone)]
pub struct Limits {
    pub max_body_bytes: usize,
    pub max_images: usize,
    /// Decoding budget per image (the CLI's `--max-pixels`).
    pub image: ImageLimits,
    /// Tiles per image (None: the model's).
    pub max_tiles: Option<u32>,
    /// Largest max_tokens, and the default.
    pub max_tokens: usize,
    /// From arrival to the last token, queueing included.
    pub timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_body_bytes: 32 << 20,
            max_images: 8,
            image: ImageLimits::default(),
            max_tiles: None,
            max_tokens: 1024,
            timeout: Duration::from_secs(600),
        }
    }
}

/// How to serve.
#[derive(Debug, Clone)]
pub struct Config {
    pub host: String,
    pub port: u16,
    /// Sessions, i.e. generations at once.
    pub parallel: usize,
    /// Requests that may wait for a session; more are refused with 503.
    pub queue: usize,
    pub api_key: Option<String>,
    /// Folder that `file://` image URLs may point into (None: refused).
    pub allow_local_files: Option<PathBuf>,
    /// The model's name in `/v1/models` and in responses.
    pub model_id: String,
    /// Default for requests that do not say `"think"`.
    pub think: bool,
    /// System prompt for requests without one (None: the model's).
    pub system: Option<String>,
    pub limits: Limits,
}

/// A loaded model and the settings of its sessions.
#[derive(Debug)]
pub struct Loaded {
    pub model: Arc<Model>,
    pub session: SessionParams,
}

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Loads the model; runs on a blocking thread while the server already answers `/health`.
pub type Loader = Box<dyn FnOnce() -> Result<Loaded, BoxError> + Send>;

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: String, source: std::io::Error },
    #[error("--allow-local-files {}: {source}", path.display())]
    LocalFiles { path: PathBuf, source: std::io::Error },
    #[error("{0}")]
    Load(BoxError),
    #[error("server: {0}")]
    Io(#[from] std::io::Error),
}

/// True for addresses only this machine can reach.
pub fn is_local_host(host: &str) -> bool {
    let h = host.trim_start_matches('[').trim_end_matches(']');
    h.eq_ignore_ascii_case("localhost") || h.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// Serves until `stop` is set (graceful: running requests finish) or loading fails.
pub fn run(config: Config, load: Loader, stop: &'static AtomicBool) -> Result<(), ServeError> {
    let mut config = config;
    if let Some(p) = &config.allow_local_files {
        config.allow_local_files = Some(p.canonicalize().map_err(|source| ServeError::LocalFiles { path: p.clone(), source })?);
    }
    if !is_local_host(&config.host) && config.api_key.is_none() {
        eprintln!(
            "sail serve: WARNING: listening on {} without --api-key: ANYONE WHO CAN REACH THIS MACHINE CAN USE THE MODEL \
             (and its CPU/GPU time). Pass --api-key KEY (or --api-key-file), or bind --host 127.0.0.1.",
            config.host
        );
    }
    // few threads: the blocking ones (generations, image decoding) do the heavy allocations, and
    // every extra thread can bring glibc another malloc arena, i.e. resident memory that grows
    let blocking = config.parallel.max(1) + 2;
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).max_blocking_threads(blocking).enable_all().build()?;
    rt.block_on(serve(config, load, stop))
}

async fn serve(config: Config, load: Loader, stop: &'static AtomicBool) -> Result<(), ServeError> {
    let addr = format!("{}:{}", config.host, config.port);
    let listener = tokio::net::TcpListener::bind((config.host.trim_start_matches('[').trim_end_matches(']'), config.port))
        .await
        .map_err(|source| ServeError::Bind { addr: addr.clone(), source })?;
    eprintln!("sail serve: listening on http://{} (loading the model)", listener.local_addr()?);
    let app = Arc::new(App { config, metrics: Metrics::default(), engine: OnceLock::new(), started: unix_now(), ids: AtomicU64::new(0) });
    let failed = Arc::new(tokio::sync::Notify::new());
    let load_error: Arc<Mutex<Option<BoxError>>> = Arc::default();
    {
        let (app, failed, load_error) = (app.clone(), failed.clone(), load_error.clone());
        tokio::task::spawn_blocking(move || match load() {
            Ok(l) => {
                let c = &app.config;
                eprintln!(
                    "sail serve: ready: {} ({} sessions, context {}, queue {})",
                    c.model_id,
                    c.parallel.max(1),
                    l.session.n_ctx,
                    c.queue
                );
                let _ = app.engine.set(Engine { pool: Pool::new(l.model.clone(), l.session, c.parallel, c.queue), model: l.model });
            }
            Err(e) => {
                *load_error.lock().unwrap_or_else(|e| e.into_inner()) = Some(e);
                failed.notify_one();
            }
        });
    }
    let shutdown = async move {
        tokio::select! {
            _ = failed.notified() => {}
            _ = async { while !stop.load(Relaxed) { tokio::time::sleep(Duration::from_millis(100)).await } } => {
                eprintln!("sail serve: stopping (running requests finish first)");
            }
        }
    };
    axum::serve(listener, router(app)).with_graceful_shutdown(shutdown).await?;
    let failure = load_error.lock().unwrap_or_else(|e| e.into_inner()).take();
    match failure {
        Some(e) => Err(ServeError::Load(e)),
        None => Ok(()),
    }
}

#[derive(Debug)]
struct Engine {
    model: Arc<Model>,
    pool: Arc<Pool>,
}

#[derive(Debug)]
struct App {
    config: Config,
    metrics: Metrics,
    engine: OnceLock<Engine>,
    started: u64,
    ids: AtomicU64,
}

impl App {
    fn engine(&self) -> Result<&Engine, ApiError> {
        self.engine.get().ok_or_else(|| {
            ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "the model is still loading; retry when GET /health says ready").code("loading")
        })
    }

    fn completion_id(&self) -> String {
        use std::hash::{BuildHasher, Hasher};
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(self.ids.fetch_add(1, Relaxed));
        format!("chatcmpl-{:016x}{:08x}", h.finish(), self.ids.load(Relaxed))
    }
}

fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

fn router(app: Arc<App>) -> Router {
    let limit = app.config.limits.max_body_bytes;
    let api = Router::new()
        .route(CHAT_PATH, post(chat))
        .route("/v1/models", get(models))
        .route("/metrics", get(metrics))
        .route_layer(middleware::from_fn_with_state(app.clone(), auth));
    Router::new()
        .route("/health", get(health))
        .merge(api)
        .fallback(|| async {
            ApiError::new(StatusCode::NOT_FOUND, "no such endpoint (POST /v1/chat/completions, GET /v1/models, /health, /metrics)")
        })
        .layer(DefaultBodyLimit::max(limit))
        .with_state(app)
}

/// Equal keys, compared in time independent of where they differ.
fn same_key(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn auth(State(app): State<Arc<App>>, req: Request, next: Next) -> Response {
    if let Some(key) = &app.config.api_key {
        let given =
            req.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer ")).map(str::trim);
        if !given.is_some_and(|g| same_key(g.as_bytes(), key.as_bytes())) {
            if req.uri().path() == CHAT_PATH {
                app.metrics.count_status(401);
            }
            let msg = if given.is_some() { "invalid API key" } else { "missing API key: send Authorization: Bearer KEY" };
            return ApiError::new(StatusCode::UNAUTHORIZED, msg).code("invalid_api_key").into_response();
        }
    }
    next.run(req).await
}

async fn health(State(app): State<Arc<App>>) -> Response {
    match app.engine.get() {
        Some(_) => Json(json!({"status": "ready"})).into_response(),
        None => (StatusCode::SERVICE_UNAVAILABLE, Json(json!({"status": "loading"}))).into_response(),
    }
}

async fn models(State(app): State<Arc<App>>) -> Json<Value> {
    Json(json!({"object": "list", "data": [{"id": app.config.model_id, "object": "model", "created": app.started, "owned_by": "sail"}]}))
}

async fn metrics(State(app): State<Arc<App>>) -> Response {
    let (running, queued) = app.engine.get().map(|e| e.pool.load()).unwrap_or((0, 0));
    let sessions = app.engine.get().map(|e| e.pool.parallel).unwrap_or(0);
    let image_cache = app.engine.get().map(|e| e.model.image_cache().stats());
    let text = app.metrics.render(Gauges { ready: app.engine.get().is_some(), sessions, running, queued, image_cache });
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], text).into_response()
}

async fn chat(State(app): State<Arc<App>>, body: Result<Bytes, BytesRejection>) -> Response {
    let resp = match chat_inner(&app, body).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    };
    app.metrics.count_status(resp.status().as_u16());
    resp
}

/// What a generation sends to the request's handler.
#[derive(Debug)]
enum Ev {
    Delta(Delta),
    Done(Box<Outcome>),
    Error(ApiError),
}

/// A finished generation.
#[derive(Debug)]
struct Outcome {
    text: String,
    finish: &'static str,
    prompt_tokens: usize,
    cached_tokens: usize,
    completion_tokens: usize,
    token_ids: Vec<i32>,
    prompt_token_ids: Vec<i32>,
}

impl Outcome {
    fn usage(&self) -> Value {
        json!({
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.prompt_tokens + self.completion_tokens,
            "prompt_tokens_details": {"cached_tokens": self.cached_tokens},
        })
    }
}

async fn chat_inner(app: &Arc<App>, body: Result<Bytes, BytesRejection>) -> Result<Response, ApiError> {
    let arrived = Instant::now();
    let limits = &app.config.limits;
    let body = body.map_err(|e| match e.status() {
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the request body is over this server's limit of {} bytes (--max-body-mb)", limits.max_body_bytes),
        )
        .code("request_too_large"),
        _ => ApiError::bad("body", format!("cannot read the request body: {}", e.body_text())),
    })?;
    let engine = app.engine()?;
    let req = ChatRequest::parse(&body, limits, app.config.think, &engine.model.info.think_prompt)?;
    drop(body);
    let ticket = engine.pool.admit().ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("the server is busy ({} running, {} queued: --parallel, --queue); retry later", engine.pool.parallel, app.config.queue),
        )
        .code("queue_full")
    })?;
    let deadline = arrived + limits.timeout;

    // images are decoded off the async threads, before waiting for a session
    let images = {
        let (model, refs, root) = (engine.model.clone(), req.images.clone(), app.config.allow_local_files.clone());
        let (tiles, budget) = (limits.max_tiles, limits.image);
        tokio::task::spawn_blocking(move || images::prepare(&model, &refs, root.as_deref(), tiles, budget))
            .await
            .map_err(|_| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "image decoding failed unexpectedly"))??
    };
    app.metrics.images.fetch_add(images.len() as u64, Relaxed);

    let (tx, mut rx) = mpsc::unbounded_channel();
    let stream = req.stream;
    let (include_usage, return_ids, think) = (req.include_usage, req.return_token_ids, req.think);
    let job = Job {
        messages: req.messages,
        images,
        gen: req.gen,
        default_max_tokens: req.default_max_tokens,
        filter: Filter::new(req.stops, req.think),
        stream,
        deadline,
        system: app.config.system.clone(),
        tx: tx.clone(),
        app: app.clone(),
    };
    let pool = engine.pool.clone();
    let timeout = limits.timeout;
    let app2 = app.clone();
    tokio::spawn(async move {
        let _ticket = ticket;
        match pool.run(deadline.into(), tx.closed(), move |s| job.run(s)).await {
            Ok(()) => {}
            Err(Failed::TimedOut) => {
                app2.metrics.timed_out.fetch_add(1, Relaxed);
                let _ = tx.send(Ev::Error(timed_out(timeout, "waiting for a free session")));
            }
            Err(Failed::Abandoned) => {
                app2.metrics.cancelled.fetch_add(1, Relaxed);
            }
            Err(Failed::Panicked) => {
                let _ = tx.send(Ev::Error(ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "the generation failed unexpectedly")));
            }
        }
    });

    let chunk = Chunk { id: app.completion_id(), created: unix_now(), model: app.config.model_id.clone(), include_usage, return_ids };
    if stream {
        // the status is decided by the first event: a request the engine refuses still gets
        // its 400 rather than a 200 stream carrying an error
        let first =
            rx.recv().await.ok_or_else(|| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "the generation ended without an answer"))?;
        if let Ev::Error(e) = first {
            return Err(e);
        }
        let head = futures_util::stream::iter(
            std::iter::once(chunk.event(json!({"role": "assistant", "content": ""}), None)).chain(chunk.events(first)),
        );
        let rest =
            tokio_stream::wrappers::UnboundedReceiverStream::new(rx).flat_map(move |ev| futures_util::stream::iter(chunk.events(ev)));
        let sse = Sse::new(head.chain(rest).map(Ok::<Event, Infallible>)).keep_alive(KeepAlive::new().interval(Duration::from_secs(10)));
        return Ok(sse.into_response());
    }
    while let Some(ev) = rx.recv().await {
        match ev {
            Ev::Delta(_) => {}
            Ev::Error(e) => return Err(e),
            Ev::Done(o) => {
                let (reasoning, content) = if think { split_thinking(&o.text) } else { (None, o.text.clone()) };
                let mut message = json!({"role": "assistant", "content": content});
                if let Some(r) = reasoning {
                    message["reasoning_content"] = json!(r);
                }
                let mut choice = json!({"index": 0, "message": message, "logprobs": null, "finish_reason": o.finish});
                let mut body = json!({
                    "id": chunk.id, "object": "chat.completion", "created": chunk.created, "model": chunk.model,
                    "choices": [], "usage": o.usage(),
                });
                if return_ids {
                    choice["token_ids"] = json!(o.token_ids);
                    body["prompt_token_ids"] = json!(o.prompt_token_ids);
                }
                body["choices"] = json!([choice]);
                return Ok(Json(body).into_response());
            }
        }
    }
    Err(ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "the generation ended without an answer"))
}

fn timed_out(timeout: Duration, when: &str) -> ApiError {
    ApiError::new(
        StatusCode::GATEWAY_TIMEOUT,
        format!("the request ran past this server's timeout of {} s ({when}; --timeout)", timeout.as_secs()),
    )
    .code("timeout")
}

/// Builds the stream's `chat.completion.chunk` events.
#[derive(Debug, Clone)]
struct Chunk {
    id: String,
    created: u64,
    model: String,
    include_usage: bool,
    return_ids: bool,
}

impl Chunk {
    fn event(&self, delta: Value, finish: Option<&str>) -> Event {
        self.data(json!({
            "id": self.id, "object": "chat.completion.chunk", "created": self.created, "model": self.model,
            "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}],
        }))
    }

    fn data(&self, v: Value) -> Event {
        Event::default().data(v.to_string())
    }

    fn events(&self, ev: Ev) -> Vec<Event> {
        match ev {
            Ev::Delta(d) => {
                let mut delta = json!({});
                if !d.reasoning.is_empty() {
                    delta["reasoning_content"] = json!(d.reasoning);
                }
                if !d.content.is_empty() {
                    delta["content"] = json!(d.content);
                }
                vec![self.event(delta, None)]
            }
            Ev::Done(o) => {
                let mut last = self.event(json!({}), Some(o.finish));
                if self.return_ids {
                    last = self.data(json!({
                        "id": self.id, "object": "chat.completion.chunk", "created": self.created, "model": self.model,
                        "choices": [{"index": 0, "delta": {}, "logprobs": null, "finish_reason": o.finish, "token_ids": o.token_ids}],
                    }));
                }
                let mut v = vec![last];
                if self.include_usage {
                    v.push(self.data(json!({
                        "id": self.id, "object": "chat.completion.chunk", "created": self.created, "model": self.model,
                        "choices": [], "usage": o.usage(),
                    })));
                }
                v.push(Event::default().data("[DONE]"));
                v
            }
            Ev::Error(e) => vec![self.data(e.body())],
        }
    }
}

/// One generation, run on a session's blocking thread.
struct Job {
    messages: Vec<Message>,
    images: Vec<PreparedImage>,
    gen: GenerateParams,
    default_max_tokens: bool,
    filter: Filter,
    stream: bool,
    deadline: Instant,
    system: Option<String>,
    tx: mpsc::UnboundedSender<Ev>,
    app: Arc<App>,
}

impl Job {
    fn run(mut self, s: &mut Session) {
        let m = &self.app.metrics;
        if self.tx.is_closed() {
            m.cancelled.fetch_add(1, Relaxed);
            return;
        }
        let (mut cancelled, mut timed_out) = (false, false);
        let queued = std::mem::take(&mut self.images);
        let mut result = queued.into_iter().try_for_each(|img| s.add_image(img));
        let mut gen = self.gen.clone();
        let result = loop {
            if let Err(e) = result {
                break Err(e);
            }
            let (filter, tx) = (&mut self.filter, &self.tx);
            let r = s.generate_conversation(self.system.as_deref(), &self.messages, &gen, |_, piece| {
                if tx.is_closed() {
                    cancelled = true;
                    return false;
                }
                if Instant::now() >= self.deadline {
                    timed_out = true;
                    return false;
                }
                let d = filter.push(piece);
                if self.stream && !d.is_empty() {
                    let _ = tx.send(Ev::Delta(d));
                }
                !filter.stopped()
            });
            match r {
                // no max_tokens given: generate what the context has room for (the images
                // are still queued, the refusal comes before any compute)
                Err(SailError::PromptTooLong { prompt, limit, n_predict, .. })
                    if self.default_max_tokens && prompt < limit && n_predict > limit - prompt =>
                {
                    gen.n_predict = limit - prompt;
                    result = Ok(());
                }
                r => break r,
            }
        };
        let g = match result {
            Ok(g) => g,
            Err(e) => {
                s.reset(); // drop queued images; the next request starts clean
                let _ = self.tx.send(Ev::Error(ApiError::from_sail(&e)));
                return;
            }
        };
        let t = &g.timings;
        m.prompt_tokens.fetch_add(g.prompt_token_ids.len() as u64, Relaxed);
        m.cached_tokens.fetch_add(t.reused_tokens as u64, Relaxed);
        m.completion_tokens.fetch_add(g.tokens.len() as u64, Relaxed);
        Metrics::add_ms(&m.vision_us, t.vision_ms);
        Metrics::add_ms(&m.prefill_us, t.prefill_ms);
        Metrics::add_ms(&m.decode_us, t.decode_ms);
        if cancelled {
            m.cancelled.fetch_add(1, Relaxed);
            return;
        }
        if timed_out {
            m.timed_out.fetch_add(1, Relaxed);
            let _ = self.tx.send(Ev::Error(timed_out_error(self.app.config.limits.timeout)));
            return;
        }
        let tail = self.filter.finish();
        if self.stream && !tail.is_empty() {
            let _ = self.tx.send(Ev::Delta(tail));
        }
        let finish = if self.filter.stopped() || g.stop == StopReason::Eos { "stop" } else { "length" };
        let _ = self.tx.send(Ev::Done(Box::new(Outcome {
            text: self.filter.text().to_string(),
            finish,
            prompt_tokens: g.prompt_token_ids.len(),
            cached_tokens: t.reused_tokens,
            completion_tokens: g.tokens.len(),
            token_ids: g.tokens.clone(),
            prompt_token_ids: g.prompt_token_ids.clone(),
        })));
    }
}

fn timed_out_error(timeout: Duration) -> ApiError {
    timed_out(timeout, "while generating")
}

#[cfg(test)]
mod tests {
    //! The HTTP surface without a model: what a client sees before loading finishes, keys, paths
    //! and body limits.
    use super::*;
    use axum::body::Body;
    use tower::ServiceExt as _;

    fn app(key: Option<&str>) -> Router {
        let config = Config {
            host: "127.0.0.1".into(),
            port: 0,
            parallel: 1,
            queue: 0,
            api_key: key.map(String::from),
            allow_local_files: None,
            model_id: "m".into(),
            think: false,
            system: None,
            limits: Limits { max_body_bytes: 1000, ..Limits::default() },
        };
        router(Arc::new(App { config, metrics: Metrics::default(), engine: OnceLock::new(), started: 0, ids: AtomicU64::new(0) }))
    }

    async fn call(app: Router, method: &str, path: &str, key: Option<&str>, body: &str) -> (StatusCode, String) {
        let mut req = Request::builder().method(method).uri(path);
        if let Some(k) = key {
            req = req.header(header::AUTHORIZATION, format!("Bearer {k}"));
        }
        let resp = app.oneshot(req.body(Body::from(body.to_string())).unwrap()).await.unwrap();
        let status = resp.status();
        let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20).await.unwrap();
        (status, String::from_utf8_lossy(&bytes).into_owned())
    }

    fn error_code(body: &str) -> Value {
        serde_json::from_str::<Value>(body).unwrap()["error"]["code"].clone()
    }

    const CHAT: &str = r#"{"messages": [{"role": "user", "content": "hi"}]}"#;

    #[tokio::test]
    async fn while_loading_health_and_chat_say_so() {
        assert_eq!(call(app(None), "GET", "/health", None, "").await, (StatusCode::SERVICE_UNAVAILABLE, r#"{"status":"loading"}"#.into()));
        let (status, body) = call(app(None), "POST", CHAT_PATH, None, CHAT).await;
        assert_eq!((status, error_code(&body)), (StatusCode::SERVICE_UNAVAILABLE, json!("loading")));
        let (status, body) = call(app(None), "GET", "/metrics", None, "").await;
        assert_eq!(status, StatusCode::OK);
        assert!(body.contains("\nsail_model_ready 0\n"), "{body}");
    }

    #[tokio::test]
    async fn key_on_everything_but_health() {
        let (status, body) = call(app(Some("k")), "POST", CHAT_PATH, None, CHAT).await;
        assert_eq!((status, error_code(&body)), (StatusCode::UNAUTHORIZED, json!("invalid_api_key")));
        assert_eq!(call(app(Some("k")), "POST", CHAT_PATH, Some("x"), CHAT).await.0, StatusCode::UNAUTHORIZED);
        assert_eq!(call(app(Some("k")), "GET", "/v1/models", Some("kk"), "").await.0, StatusCode::UNAUTHORIZED);
        assert_eq!(call(app(Some("k")), "GET", "/metrics", None, "").await.0, StatusCode::UNAUTHORIZED);
        let (status, body) = call(app(Some("k")), "GET", "/v1/models", Some("k"), "").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(serde_json::from_str::<Value>(&body).unwrap()["data"][0]["id"], "m");
        assert_eq!(call(app(Some("k")), "GET", "/health", None, "").await.0, StatusCode::SERVICE_UNAVAILABLE);
        assert!(same_key(b"abc", b"abc") && !same_key(b"abc", b"abd") && !same_key(b"abc", b"ab"));
    }

    #[tokio::test]
    async fn unknown_paths_and_big_bodies() {
        let (status, body) = call(app(None), "GET", "/v2/nothing", None, "").await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(serde_json::from_str::<Value>(&body).unwrap()["error"]["type"], "not_found_error");
        let (status, body) = call(app(None), "POST", CHAT_PATH, None, &"x".repeat(2000)).await;
        assert_eq!((status, error_code(&body)), (StatusCode::PAYLOAD_TOO_LARGE, json!("request_too_large")));
    }

    #[test]
    fn local_hosts() {
        for h in ["127.0.0.1", "localhost", "::1", "[::1]", "127.0.0.2"] {
            assert!(is_local_host(h), "{h}");
        }
        for h in ["0.0.0.0", "::", "192.168.1.10", "example.com"] {
            assert!(!is_local_host(h), "{h}");
        }
    }
}
