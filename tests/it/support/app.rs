//! A small HTTP application for the tests of the hooks: hyper on
//! 127.0.0.1:0 that records every request in arrival order and answers as
//! the test scripts it (a status at once, never, or once the test releases
//! a gate). [`App`] lives on the caller's tokio runtime; [`AppThread`]
//! brings its own, for the tests that drive the real server with blocking
//! clients.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpSocket;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

/// How the application answers one request.
#[derive(Clone)]
pub enum Answer {
    /// At once, with this status.
    Status(u16),
    /// Never (the connection stays open).
    Never,
    /// With this status once the test adds a permit to the gate.
    Gated(Arc<Semaphore>, u16),
}

/// One request the application received.
#[derive(Debug, Clone)]
pub struct Hit {
    /// The request path.
    pub path: String,
    /// Its `Content-Type`.
    pub content_type: String,
    /// Its body.
    pub body: Vec<u8>,
}

pub type Script = Arc<dyn Fn(usize, &Hit) -> Answer + Send + Sync>;

/// A scripted application: it records requests in arrival order.
pub struct App {
    pub addr: SocketAddr,
    hits: Arc<Mutex<Vec<Hit>>>,
    /// The most requests that were being answered at once.
    pub max_in_flight: Arc<AtomicUsize>,
    /// The accept loop and every connection: aborted to make the app go away.
    tasks: JoinSet<()>,
}

impl App {
    pub async fn start(script: impl Fn(usize, &Hit) -> Answer + Send + Sync + 'static) -> App {
        App::start_on("127.0.0.1:0".parse().expect("addr"), Arc::new(script)).await
    }

    /// Listens on `addr` (SO_REUSEADDR, so a port just given up can be taken again).
    pub async fn start_on(addr: SocketAddr, script: Script) -> App {
        let socket = TcpSocket::new_v4().expect("socket");
        socket.set_reuseaddr(true).expect("SO_REUSEADDR");
        socket.bind(addr).expect("bind");
        let listener = socket.listen(64).expect("listen");
        let addr = listener.local_addr().expect("addr");
        let hits = Arc::new(Mutex::new(Vec::new()));
        let in_flight = Arc::new(AtomicUsize::new(0));
        let max_in_flight = Arc::new(AtomicUsize::new(0));
        let mut tasks = JoinSet::new();
        let (h, f, m) = (hits.clone(), in_flight.clone(), max_in_flight.clone());
        tasks.spawn(async move {
            let mut conns = JoinSet::new();
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let (h, f, m, script) = (h.clone(), f.clone(), m.clone(), script.clone());
                let service = service_fn(move |req: Request<Incoming>| {
                    let (h, f, m, script) = (h.clone(), f.clone(), m.clone(), script.clone());
                    async move {
                        let now = f.fetch_add(1, Ordering::SeqCst) + 1;
                        m.fetch_max(now, Ordering::SeqCst);
                        let path = req.uri().path().to_string();
                        let content_type = req
                            .headers()
                            .get("content-type")
                            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
                            .unwrap_or_default();
                        let body = req.into_body().collect().await.map(|b| b.to_bytes().to_vec());
                        let hit = Hit {
                            path,
                            content_type,
                            body: body.unwrap_or_default(),
                        };
                        let answer = {
                            let mut hits = h.lock().expect("hits");
                            let answer = script(hits.len(), &hit);
                            hits.push(hit);
                            answer
                        };
                        let status = match answer {
                            Answer::Status(s) => s,
                            Answer::Never => std::future::pending().await,
                            Answer::Gated(gate, s) => {
                                gate.acquire().await.expect("gate open").forget();
                                s
                            }
                        };
                        f.fetch_sub(1, Ordering::SeqCst);
                        let mut resp = Response::new(Full::new(Bytes::from_static(b"ok")));
                        *resp.status_mut() = StatusCode::from_u16(status).expect("status");
                        Ok::<_, Infallible>(resp)
                    }
                });
                conns.spawn(async move {
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        App {
            addr,
            hits,
            max_in_flight,
            tasks,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    pub fn hits(&self) -> Vec<Hit> {
        self.hits.lock().expect("hits").clone()
    }

    pub fn count(&self) -> usize {
        self.hits.lock().expect("hits").len()
    }

    /// Stops accepting and drops every connection: the application is gone.
    pub async fn go_away(mut self) -> SocketAddr {
        self.tasks.abort_all();
        while self.tasks.join_next().await.is_some() {}
        self.addr
    }
}

/// An [`App`] on a runtime of its own (one thread), for blocking tests.
pub struct AppThread {
    app: App,
    /// Keeps the application running; dropped last.
    _rt: tokio::runtime::Runtime,
}

impl AppThread {
    /// Starts the application with `script` (see [`App::start`]).
    pub fn start(script: impl Fn(usize, &Hit) -> Answer + Send + Sync + 'static) -> AppThread {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("the application's runtime");
        let app = rt.block_on(App::start(script));
        AppThread { app, _rt: rt }
    }

    /// `http://127.0.0.1:PORT/PATH`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.app.addr)
    }

    /// Every request so far, in arrival order.
    pub fn hits(&self) -> Vec<Hit> {
        self.app.hits()
    }

    /// How many requests came.
    pub fn count(&self) -> usize {
        self.app.count()
    }
}
