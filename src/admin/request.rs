//! Request parameters for admin handlers: the query string, plus the body of
//! a POST parsed as a form whatever its `Content-Type` (reference §1.4).
//!
//! The body is read bounded by `admin.max_body_bytes`: a `Content-Length`
//! over the bound is refused before anything is read, and a chunked body is
//! cut off as soon as it passes the bound. Parsing itself is
//! `crate::params`'s job; this module only gathers the bytes.

use http_body_util::{BodyExt, LengthLimitError, Limited};
use hyper::body::Incoming;
use hyper::header::CONTENT_LENGTH;
use hyper::{Method, Request};

use super::response::AdminError;
use crate::params::Params;

/// The parameters of the query string alone.
pub fn query(req: &Request<Incoming>) -> Params {
    Params::parse(req.uri().query().unwrap_or("").as_bytes())
}

/// The parameters of the query string and, for POST, of the body, which
/// override query parameters of the same name.
pub async fn query_and_body(req: Request<Incoming>, max_body: usize) -> Result<Params, AdminError> {
    let mut params = query(&req);
    if req.method() != Method::POST {
        return Ok(params);
    }
    let body = body(req, max_body).await?;
    if !body.is_empty() {
        params.prepend_body(&body);
    }
    Ok(params)
}

/// The whole body, refused when larger than `max_body` bytes: a
/// `Content-Length` over the bound before anything is read, a chunked body
/// as soon as it passes the bound.
pub async fn body(req: Request<Incoming>, max_body: usize) -> Result<bytes::Bytes, AdminError> {
    let too_large = || AdminError::TooLarge(format!("request body is larger than {max_body} bytes"));
    let declared = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > max_body as u64) {
        return Err(too_large());
    }
    match Limited::new(req.into_body(), max_body).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => Err(too_large()),
        Err(e) => Err(AdminError::BodyRead(e.to_string())),
    }
}
