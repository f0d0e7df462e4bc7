//! The HTTP client both hooks use: JSON POSTs to one parsed URL over
//! keep-alive connections (hyper-util's pooled client over hyper's http1).
//!
//! It must run inside a tokio runtime (its connections are tasks of the
//! runtime that opened them); the hooks keep it on the runtime handed to
//! them. It knows nothing of what it sends.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::header::{CONTENT_TYPE, USER_AGENT};
use hyper::{Request, StatusCode, Uri};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

/// Most bytes of an answer's body that are read (and thrown away) so the
/// connection can be reused; a longer body fails the call.
const MAX_ANSWER_BYTES: usize = 64 * 1024;

/// Seconds an idle pooled connection is kept.
const POOL_IDLE_SECS: u64 = 30;

/// Why a POST got no HTTP answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PostError {
    /// No complete answer within the time allowed.
    #[error("timed out")]
    Timeout,
    /// The connection could not be made (refused, unreachable, DNS).
    #[error("cannot connect")]
    Connect,
    /// The connection broke or the answer was not valid HTTP.
    #[error("connection or protocol error")]
    Http,
}

impl PostError {
    /// A fixed label for metrics: `timeout`, `connect` or `http`.
    pub fn kind(self) -> &'static str {
        match self {
            PostError::Timeout => "timeout",
            PostError::Connect => "connect",
            PostError::Http => "http",
        }
    }
}

/// POSTs JSON bodies to one URL, reusing connections.
pub(crate) struct HookClient {
    client: Client<HttpConnector, Full<Bytes>>,
    uri: Uri,
}

impl HookClient {
    /// A client for `uri` keeping at most `max_idle` idle connections.
    pub fn new(uri: Uri, max_idle: usize) -> HookClient {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(POOL_IDLE_SECS))
            .pool_max_idle_per_host(max_idle)
            .build(connector);
        HookClient { client, uri }
    }

    /// POSTs `body` as `application/json` and returns the answer's status
    /// once its body has been read, all within `timeout`.
    pub async fn post(&self, body: Bytes, timeout: Duration) -> Result<StatusCode, PostError> {
        let request = Request::post(self.uri.clone())
            .header(CONTENT_TYPE, "application/json")
            .header(USER_AGENT, concat!("comet/", env!("CARGO_PKG_VERSION")))
            .body(Full::new(body))
            .expect("a parsed URI and constant headers make a valid request");
        let exchange = async {
            let response = self.client.request(request).await.map_err(|e| {
                if e.is_connect() {
                    PostError::Connect
                } else {
                    PostError::Http
                }
            })?;
            let status = response.status();
            Limited::new(response.into_body(), MAX_ANSWER_BYTES)
                .collect()
                .await
                .map_err(|_| PostError::Http)?;
            Ok(status)
        };
        tokio::time::timeout(timeout, exchange)
            .await
            .unwrap_or(Err(PostError::Timeout))
    }
}
