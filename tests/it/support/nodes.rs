//! Cluster mode end to end: a real `redis-server` ([`RedisServer`]) and
//! several real `comet` binaries ([`Binary`]) configured to share it, plus
//! subscribers on every transport that read icomet message objects with a
//! deadline ([`Sub`], [`poll`]).
//!
//! Every node is started with short registry, reaper and probe periods so
//! that cluster-wide answers settle in a fraction of a second; tests wait
//! for them with [`super::eventually`], never by sleeping. Nodes and Redis
//! are ended by process id when dropped.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::binary::Binary;
use super::redis::{RedisOptions, RedisServer};
use super::ws::Ws;
use super::{get, json, Client, WAIT};

/// The `/sign` secret every test node shares.
pub const SECRET: &str = "cluster-nodes-secret-0123";

/// How a node is configured beyond the defaults of [`node_yaml`].
#[derive(Debug, Clone, Default)]
pub struct NodeOpts {
    /// Extra lines of the `front:` section (each indented by two spaces).
    pub front: String,
    /// Extra lines of the `cluster:` section (each indented by two spaces).
    pub cluster: String,
}

/// The YAML of node `name` on `redis`: two workers, one admin thread,
/// noops after one silent second, short cluster periods.
pub fn node_yaml(redis: &RedisServer, name: &str, opts: &NodeOpts) -> String {
    format!(
        "workers: 2\n\
         front:\n  listen: \"127.0.0.1:0\"\n  max_connections: 500\n  polling_timeout: 1\n{}\
         admin:\n  listen: \"127.0.0.1:0\"\n  threads: 1\n\
         cluster:\n  redis: \"{}\"\n  hmac_secret: \"{SECRET}\"\n  node_id: \"{name}\"\n  \
         call_timeout_ms: 300\n  reconnect_max_ms: 300\n  node_report_interval_ms: 100\n  \
         node_stale_ms: 1000\n  reaper_interval_ms: 100\n  index_refresh_interval_ms: 200\n  \
         survey_timeout_ms: 1000\n{}",
        opts.front,
        redis.url(),
        opts.cluster
    )
}

/// Redis plus `n` nodes named `n0`, `n1`, ...
pub struct Nodes {
    /// The shared Redis.
    pub redis: RedisServer,
    /// The nodes, by index (`None` while one is down).
    nodes: Vec<Option<Binary>>,
    opts: NodeOpts,
}

impl Nodes {
    /// Starts Redis and `n` nodes with default options, each connected.
    pub fn start(n: usize) -> Nodes {
        Nodes::start_with(n, NodeOpts::default(), RedisOptions::default())
    }

    /// Starts Redis (with `redis`) and `n` nodes with `opts`, each connected.
    pub fn start_with(n: usize, opts: NodeOpts, redis: RedisOptions) -> Nodes {
        let redis = RedisServer::start_with(redis);
        let mut nodes = Nodes {
            redis,
            nodes: Vec::new(),
            opts,
        };
        for i in 0..n {
            let b = nodes.launch(i);
            nodes.nodes.push(Some(b));
        }
        nodes
    }

    fn launch(&self, i: usize) -> Binary {
        let b = Binary::start(&node_yaml(&self.redis, &format!("n{i}"), &self.opts));
        connected(&b);
        b
    }

    /// Node `i` (panics when it is down).
    pub fn node(&self, i: usize) -> &Binary {
        self.nodes[i].as_ref().expect("the node is running")
    }

    /// Node `i`'s front listener.
    pub fn front(&self, i: usize) -> SocketAddr {
        self.node(i).front()
    }

    /// One admin GET on node `i`: (status code, body).
    pub fn admin(&self, i: usize, target: &str) -> (u16, String) {
        let (status, _, body) = get(self.node(i).admin(), target);
        let code = status
            .split(' ')
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or_else(|| panic!("no status code in {status:?}"));
        (code, body)
    }

    /// `/pub` on node `i`, which must answer 200 `{"type":"ok"}`.
    pub fn publish(&self, i: usize, cname: &str, content: &str) {
        let r = self.admin(i, &format!("/pub?cname={cname}&content={content}"));
        assert_eq!(r, (200, "{\"type\":\"ok\"}\n".to_string()), "/pub on n{i}");
    }

    /// `POST /pub_batch` on node `i` with `body`: (status code, body).
    pub fn batch(&self, i: usize, body: &str) -> (u16, String) {
        let mut c = Client::connect(self.node(i).admin());
        c.send(
            format!(
                "POST /pub_batch HTTP/1.1\r\nHost: t\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            )
            .as_bytes(),
        );
        let r = c.read_response(false);
        (r.code(), r.body().to_string())
    }

    /// Kills node `i` with SIGKILL (no goodbye to Redis) and reaps it.
    pub fn kill(&mut self, i: usize) {
        let mut b = self.nodes[i].take().expect("the node is running");
        b.signal(libc::SIGKILL);
        assert!(b.wait_exit(WAIT).is_some(), "n{i} did not die of SIGKILL");
    }

    /// Starts node `i` again (new ports), connected.
    pub fn restart(&mut self, i: usize) {
        assert!(self.nodes[i].is_none(), "n{i} is still running");
        let b = self.launch(i);
        self.nodes[i] = Some(b);
    }

    /// The value of the `/metrics` sample `name` (with its labels, if any)
    /// on node `i`; 0 when absent.
    pub fn metric(&self, i: usize, name: &str) -> u64 {
        let (code, body) = self.admin(i, "/metrics");
        assert_eq!(code, 200);
        metric(&body, name)
    }
}

/// The value of sample `name` (exactly, labels included) in a `/metrics` text.
pub fn metric(text: &str, name: &str) -> u64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| {
            let (n, v) = l.rsplit_once(' ')?;
            (n == name).then(|| v.parse().expect("a numeric sample"))
        })
        .unwrap_or(0)
}

/// Waits until `node` logged that both its PUB/SUB connections are up.
pub fn connected(node: &Binary) {
    reconnected(node, 1);
}

/// Waits until `node` logged that both its PUB/SUB connections came up
/// (and resubscribed everything) `times` times in all.
pub fn reconnected(node: &Binary, times: usize) {
    for pat in ["cluster: data connection 0: ", "cluster: control connection: "] {
        wait_for(&format!("{pat:?} logged {times} times"), || {
            (node.log_lines(pat).len() >= times).then_some(())
        });
    }
}

/// One icomet message object, as comet writes it.
pub fn msg(kind: &str, cname: &str, seq: i32, content: &str) -> String {
    format!(r#"{{"type":"{kind}","cname":"{cname}","seq":{seq},"content":"{content}"}}"#)
}

/// A message as a tuple, for comparing sequences.
pub fn tuple(v: &Value) -> (String, i64, String) {
    (
        v["type"].as_str().expect("type").to_string(),
        v["seq"].as_i64().expect("seq"),
        v["content"].as_str().expect("content").to_string(),
    )
}

/// The streaming transports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `/stream`: one JSON object per line.
    Stream,
    /// `/sse`: `id:` and `data:` lines.
    Sse,
    /// `/ws`: one text frame per object.
    Ws,
}

/// A streaming subscriber.
pub enum Sub {
    /// `/stream` or `/sse`, with the text received and not consumed yet.
    Http(Kind, Client, String),
    /// `/ws`.
    Ws(Ws),
}

impl Sub {
    /// Subscribes to `cname` from `seq` on `front` with `kind`; returns once
    /// the response head (or the upgrade) was read.
    pub fn open(front: SocketAddr, kind: Kind, cname: &str, seq: i32) -> Sub {
        Sub::open_target(front, kind, &format!("cname={cname}&seq={seq}"))
    }

    /// Like [`Sub::open`] with the query string given whole.
    pub fn open_target(front: SocketAddr, kind: Kind, query: &str) -> Sub {
        match kind {
            Kind::Ws => Sub::Ws(Ws::connect(front, &format!("/ws?{query}"))),
            Kind::Stream | Kind::Sse => {
                let path = if kind == Kind::Stream { "/stream" } else { "/sse" };
                let mut c = Client::connect(front);
                c.send(format!("GET {path}?{query} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes());
                let head = c.head();
                assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
                Sub::Http(kind, c, String::new())
            }
        }
    }

    /// The next message object, noops included.
    pub fn next_any(&mut self) -> Value {
        match self {
            Sub::Ws(ws) => json(&ws.text()),
            Sub::Http(kind, c, pending) => loop {
                let sep = if *kind == Kind::Stream { "\n" } else { "\n\n" };
                if let Some(i) = pending.find(sep) {
                    let unit: String = pending.drain(..i + sep.len()).collect();
                    if *kind == Kind::Stream {
                        return json(unit.trim_end());
                    }
                    if let Some(data) = unit.lines().find_map(|l| l.strip_prefix("data: ")) {
                        return json(data);
                    }
                    // `retry:` and other lines without data.
                    continue;
                }
                let chunk = c.chunk_str();
                assert!(!chunk.is_empty(), "the stream ended; have {pending:?}");
                pending.push_str(&chunk);
            },
        }
    }

    /// The next message object that is not a noop, within [`WAIT`]
    /// (noops keep coming every second: they must not extend it).
    pub fn next(&mut self) -> Value {
        let deadline = Instant::now() + WAIT;
        loop {
            let v = self.next_any();
            if v["type"] != "noop" {
                return v;
            }
            assert!(Instant::now() < deadline, "only noops for {WAIT:?}");
        }
    }

    /// The next `n` objects that are not noops, as tuples.
    pub fn take(&mut self, n: usize) -> Vec<(String, i64, String)> {
        (0..n).map(|_| tuple(&self.next())).collect()
    }

    /// Whether the server ended the subscription (stream end or WebSocket
    /// close) before any other object arrived.
    pub fn expect_end(&mut self) {
        match self {
            Sub::Ws(ws) => ws.expect_close(1000),
            Sub::Http(_, c, pending) => {
                assert!(pending.is_empty(), "unread: {pending:?}");
                assert_eq!(c.chunk_str(), "", "expected the last chunk");
            }
        }
    }
}

/// One long poll (`/sub`, JSONP with `cb` when given) from `seq`: the
/// objects of its one response, in order. Waits up to `WAIT`.
pub fn poll(front: SocketAddr, cname: &str, seq: i32, cb: Option<&str>) -> Vec<Value> {
    let mut c = Client::connect(front);
    let cbq = cb.map(|cb| format!("&cb={cb}")).unwrap_or_default();
    c.send(
        format!("GET /sub?cname={cname}&seq={seq}{cbq} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n").as_bytes(),
    );
    let r = c.read_response(false);
    assert_eq!(r.code(), 200, "{r:?}");
    let body = r.body().trim_end();
    let body = match cb {
        Some(cb) => body
            .strip_prefix(&format!("{cb}("))
            .and_then(|b| b.strip_suffix(");"))
            .unwrap_or_else(|| panic!("not JSONP for {cb}: {body:?}")),
        None => body,
    };
    match json(body) {
        Value::Array(a) => a,
        one => vec![one],
    }
}

/// Like [`poll_until`], each poll on the next of `fronts` in turn (a
/// round-robin load balancer in front of the nodes).
pub fn poll_round_robin(fronts: &[SocketAddr], cname: &str, mut seq: i32, n: usize) -> Vec<(String, i64, String)> {
    let deadline = Instant::now() + WAIT * 2;
    let mut out = Vec::new();
    let mut turn = 0;
    while out.len() < n {
        assert!(Instant::now() < deadline, "long poll: only {out:?} after the deadline");
        for v in poll(fronts[turn % fronts.len()], cname, seq, None) {
            let t = tuple(&v);
            match t.0.as_str() {
                "noop" => {}
                "next_seq" => seq = t.1 as i32,
                _ => {
                    seq = t.1 as i32 + 1;
                    out.push(t);
                }
            }
        }
        turn += 1;
    }
    out
}

/// Long-polls from `seq` until `n` data objects arrived (noops re-poll with
/// the seq they carry, as icomet.js does); the data objects as tuples.
pub fn poll_until(
    front: SocketAddr,
    cname: &str,
    mut seq: i32,
    n: usize,
    cb: Option<&str>,
) -> Vec<(String, i64, String)> {
    let deadline = Instant::now() + WAIT * 2;
    let mut out = Vec::new();
    while out.len() < n {
        assert!(Instant::now() < deadline, "long poll: only {out:?} after the deadline");
        for v in poll(front, cname, seq, cb) {
            let t = tuple(&v);
            match t.0.as_str() {
                "noop" => {}
                "next_seq" => seq = t.1 as i32,
                _ => {
                    seq = t.1 as i32 + 1;
                    out.push(t);
                }
            }
        }
    }
    out
}

/// `n` data tuples of `cname` with contents `m1`.. and seqs `first`..
pub fn data(first: i64, contents: &[&str]) -> Vec<(String, i64, String)> {
    contents
        .iter()
        .enumerate()
        .map(|(i, c)| ("data".to_string(), first + i as i64, c.to_string()))
        .collect()
}

/// Polls `f` with a deadline of `WAIT`, returning its value once `Some`.
pub fn wait_for<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}
