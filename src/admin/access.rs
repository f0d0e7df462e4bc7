//! The admin access log and request durations: one debug line per admin
//! request, with method, target, status, duration and peer, under the
//! target `comet::admin::access` (so `RUST_LOG=comet::admin::access=debug`
//! shows it alone), and, whatever the log level, the duration in
//! `comet_admin_request_duration_seconds` under the request's endpoint
//! label. The duration runs from the request's arrival until the response
//! head is ready: a streaming reply (`/psub`) counts until it starts.
//!
//! Secrets never reach the log: the `key` parameter's value is replaced by
//! `***` (its name matched as `Params` matches it: percent-decoded, any
//! case), the `Authorization` header is not read, and bodies are not logged.
//! This module wraps a request's handling and reads the request line and the
//! status; it never changes a request or a response.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Instant;

use hyper::{Request, Response};

use crate::metrics::Stats;
use crate::params::percent_decode;

/// Longest request target written to the log, in bytes; a longer one is cut
/// and says how long it was.
const MAX_LOGGED_TARGET: usize = 512;

/// Runs `serve` on `req`, which arrived at `arrived`; records its duration
/// in `stats` and, when debug logging is on for this module, logs the
/// request once the response is ready.
pub(super) async fn logged<B, R, F>(
    peer: SocketAddr,
    req: Request<B>,
    arrived: Instant,
    stats: &Stats,
    serve: impl FnOnce(Request<B>) -> F,
) -> Response<R>
where
    F: Future<Output = Response<R>>,
{
    let histogram = &stats.admin_duration[super::endpoint_label(req.uri().path())];
    if !log::log_enabled!(log::Level::Debug) {
        let resp = serve(req).await;
        histogram.observe(arrived.elapsed());
        return resp;
    }
    let method = req.method().clone();
    let target = redacted_target(req.uri().path(), req.uri().query());
    let resp = serve(req).await;
    let elapsed = arrived.elapsed();
    histogram.observe(elapsed);
    let status = resp.status().as_u16();
    // Whole microseconds, so the field prints as a short decimal.
    let duration_ms = elapsed.as_micros() as f64 / 1000.0;
    log::debug!(
        method = method.as_str(),
        path = target.as_str(),
        status = status,
        duration_ms = duration_ms,
        peer:% = peer;
        "{method} {target} {status} {duration_ms:.3}ms {peer}"
    );
    resp
}

/// `path?query` with the value of every `key` parameter replaced by `***`,
/// cut at [`MAX_LOGGED_TARGET`] bytes.
fn redacted_target(path: &str, query: Option<&str>) -> String {
    let mut out = String::with_capacity(path.len() + query.map_or(0, str::len) + 1);
    out.push_str(path);
    if let Some(query) = query {
        out.push('?');
        for (i, piece) in query.split('&').enumerate() {
            if i > 0 {
                out.push('&');
            }
            let name = piece.split('=').next().unwrap_or(piece);
            if piece.len() > name.len() && percent_decode(name.as_bytes()).eq_ignore_ascii_case(b"key") {
                out.push_str(name);
                out.push_str("=***");
            } else {
                out.push_str(piece);
            }
        }
    }
    if out.len() > MAX_LOGGED_TARGET {
        let total = out.len();
        let mut cut = MAX_LOGGED_TARGET;
        while !out.is_char_boundary(cut) {
            cut -= 1;
        }
        out.truncate(cut);
        out.push_str(&format!("...({total} bytes)"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_value_is_masked() {
        let r = |q: &str| redacted_target("/push", Some(q));
        assert_eq!(r("cname=a&key=s3cret&content=x"), "/push?cname=a&key=***&content=x");
        assert_eq!(r("key=s3cret"), "/push?key=***");
        assert_eq!(r("KEY=s3cret&Key=two"), "/push?KEY=***&Key=***");
        assert_eq!(r("%6Bey=s3cret&k%65Y=two"), "/push?%6Bey=***&k%65Y=***");
        assert_eq!(
            r("key=a=b"),
            "/push?key=***",
            "everything after the first = is the value"
        );
        assert_eq!(r("key="), "/push?key=***");
        assert_eq!(
            r("keys=1&monkey=2&key"),
            "/push?keys=1&monkey=2&key",
            "other names and a bare name stay"
        );
        assert_eq!(r(""), "/push?");
        assert_eq!(redacted_target("/info", None), "/info");
    }

    #[test]
    fn a_long_target_is_cut() {
        let content = "x".repeat(2000);
        let got = redacted_target("/push", Some(&format!("key=k&content={content}")));
        assert!(got.starts_with("/push?key=***&content=xxx"), "{got}");
        assert!(got.ends_with("...(2022 bytes)"), "{got}");
        assert_eq!(got.len(), MAX_LOGGED_TARGET + "...(2022 bytes)".len());
    }

    #[test]
    fn the_request_passes_through_unchanged() {
        let req = Request::builder().uri("/info?cname=a").body(7u8).expect("request");
        let peer: SocketAddr = "127.0.0.1:5555".parse().expect("addr");
        let rt = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
        let stats = Stats::default();
        let resp = rt.block_on(logged(
            peer,
            req,
            Instant::now(),
            &stats,
            |req: Request<u8>| async move {
                assert_eq!(req.uri(), "/info?cname=a");
                Response::builder().status(418).body(*req.body()).expect("response")
            },
        ));
        assert_eq!(resp.status(), 418);
        assert_eq!(*resp.body(), 7);
        let info = super::super::ENDPOINT_LABELS
            .iter()
            .position(|l| *l == "info")
            .expect("info");
        for (i, h) in stats.admin_duration.iter().enumerate() {
            assert_eq!(h.snapshot().count(), u64::from(i == info), "label {i}");
        }
    }
}
