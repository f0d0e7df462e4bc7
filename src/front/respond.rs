//! The small fixed responses of the front listener, and the `Date:` line.

/// A complete response with a `Content-Length` body.
#[derive(Debug, Clone, Copy)]
pub struct Simple<'a> {
    /// Answer as HTTP/1.0.
    pub http10: bool,
    /// Status code and reason, e.g. `200 OK`.
    pub status: &'a str,
    /// The `Content-Type` value.
    pub content_type: &'a str,
    /// Send `Connection: close` (the caller closes after it).
    pub close: bool,
    /// A HEAD request: headers only.
    pub head_only: bool,
}

impl Simple<'_> {
    /// Appends the response with `body` to `out`.
    pub fn write(&self, out: &mut Vec<u8>, body: &[u8], date: &[u8]) {
        out.extend_from_slice(if self.http10 { b"HTTP/1.0 " } else { b"HTTP/1.1 " });
        out.extend_from_slice(self.status.as_bytes());
        out.extend_from_slice(b"\r\nContent-Type: ");
        out.extend_from_slice(self.content_type.as_bytes());
        out.extend_from_slice(b"\r\nContent-Length: ");
        out.extend_from_slice(body.len().to_string().as_bytes());
        out.extend_from_slice(b"\r\n");
        if self.close {
            out.extend_from_slice(b"Connection: close\r\n");
        }
        if !self.http10 {
            out.extend_from_slice(date);
        }
        out.extend_from_slice(b"\r\n");
        if !self.head_only {
            out.extend_from_slice(body);
        }
    }
}

/// The default content type libevent adds (reference §1.3).
pub const DEFAULT_TYPE: &str = "text/html; charset=ISO-8859-1";

/// Escapes text for an HTML page.
pub fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#039;"),
            c => out.push(c),
        }
    }
    out
}

/// The body of libevent's 404 page for a request target (both listeners).
pub fn not_found_page(target: &str) -> String {
    format!(
        "<html><head><title>404 Not Found</title></head><body><h1>Not Found</h1>\
         <p>The requested URL {} was not found on this server.</p></body></html>\n",
        html_escape(target)
    )
}

/// The body of libevent's 501 page (both listeners).
pub const NOT_IMPLEMENTED_PAGE: &str =
    "<HTML><HEAD>\n<TITLE>501 Not Implemented</TITLE>\n</HEAD><BODY>\n<H1>Not Implemented</H1>\n</BODY></HTML>\n";

/// The `Date:` header line, kept inline: each worker renews it every second,
/// and a heap block reallocated that often by dozens of threads ends up
/// pinning pages all over the heap after a burst.
#[derive(Debug, Clone, Copy)]
pub struct DateLine {
    buf: [u8; 40],
    len: u8,
}

impl std::ops::Deref for DateLine {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        &self.buf[..usize::from(self.len)]
    }
}

/// Formats the `Date:` header line for now.
pub fn date_line() -> DateLine {
    use std::io::Write;
    let mut buf = [0u8; 40];
    let mut w = &mut buf[..];
    let date = httpdate::HttpDate::from(std::time::SystemTime::now());
    // An IMF-fixdate is always 29 bytes: the line (37) always fits.
    let _ = write!(w, "Date: {date}\r\n");
    let len = (40 - w.len()) as u8;
    DateLine { buf, len }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn date_line_is_a_complete_header() {
        let line = String::from_utf8(date_line().to_vec()).expect("ascii");
        assert!(line.starts_with("Date: ") && line.ends_with(" GMT\r\n"), "{line:?}");
        assert_eq!(line.len(), 37);
        assert!(httpdate::parse_http_date(&line[6..35]).is_ok(), "{line:?}");
    }
}
