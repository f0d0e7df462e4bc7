//! JSON encoding of subscriber messages, done once per message.
//!
//! A message object is always `{"type":T,"cname":C,"seq":N,"content":X}` with no
//! whitespace (reference §2.1). The channel name is JSON-escaped (icomet
//! inserted it raw, §11.3); `/push` content is escaped completely, every
//! control character included (icomet escaped only four, §11.4). This module
//! builds bytes and nothing else: no I/O, no channel state.

/// Appends `s` JSON-escaped (without quotes) to `out`.
///
/// Escapes `"`, `\`, every control character (C0, DEL and C1), and
/// U+2028/U+2029 (which end a line inside a JavaScript string literal and so
/// would break JSONP).
pub fn escape_json_into(out: &mut Vec<u8>, s: &str) {
    let bytes = s.as_bytes();
    let mut start = 0;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        let replacement: Option<&[u8]> = match b {
            b'"' => Some(b"\\\""),
            b'\\' => Some(b"\\\\"),
            b'\n' => Some(b"\\n"),
            b'\r' => Some(b"\\r"),
            b'\t' => Some(b"\\t"),
            0x08 => Some(b"\\b"),
            0x0c => Some(b"\\f"),
            _ => None,
        };
        let len;
        if let Some(r) = replacement {
            out.extend_from_slice(&bytes[start..i]);
            out.extend_from_slice(r);
            len = 1;
        } else if b < 0x20 || b == 0x7f {
            out.extend_from_slice(&bytes[start..i]);
            out.extend_from_slice(format!("\\u{:04x}", b).as_bytes());
            len = 1;
        } else if b == 0xc2 && matches!(bytes.get(i + 1), Some(0x80..=0x9f)) {
            // U+0080..U+009F, the C1 control characters.
            out.extend_from_slice(&bytes[start..i]);
            out.extend_from_slice(format!("\\u00{:02x}", bytes[i + 1]).as_bytes());
            len = 2;
        } else if b == 0xe2
            && i + 2 < bytes.len()
            && bytes[i + 1] == 0x80
            && (bytes[i + 2] == 0xa8 || bytes[i + 2] == 0xa9)
        {
            out.extend_from_slice(&bytes[start..i]);
            out.extend_from_slice(if bytes[i + 2] == 0xa8 { b"\\u2028" } else { b"\\u2029" });
            len = 3;
        } else {
            i += 1;
            continue;
        }
        i += len;
        start = i;
    }
    out.extend_from_slice(&bytes[start..]);
}

/// Returns `s` JSON-escaped, without quotes.
pub fn escape_json(s: &str) -> String {
    let mut out = Vec::with_capacity(s.len() + 8);
    escape_json_into(&mut out, s);
    String::from_utf8(out).expect("escaping valid UTF-8 yields valid UTF-8")
}

/// Checks that `s` can stand between two `"` as a JSON string literal: what
/// `/pub` requires of its pre-encoded content. Returns the reason if not.
pub fn check_json_string_body(s: &str) -> Result<(), &'static str> {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'"' => return Err("content contains an unescaped '\"'"),
            c if c < 0x20 => return Err("content contains a raw control character"),
            b'\\' => {
                match b.get(i + 1) {
                    Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => i += 2,
                    Some(b'u') => {
                        let hex = b.get(i + 2..i + 6).ok_or("content has a truncated \\u escape")?;
                        if !hex.iter().all(u8::is_ascii_hexdigit) {
                            return Err("content has a bad \\u escape");
                        }
                        i += 6;
                    }
                    _ => return Err("content has a bad backslash escape"),
                }
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    Ok(())
}

/// Appends one message object `{"type":..,"cname":..,"seq":..,"content":..}`
/// built from an already-escaped content.
pub fn message_into(out: &mut Vec<u8>, kind: &str, cname: &str, seq: i32, content_escaped: &str) {
    out.reserve(48 + cname.len() + content_escaped.len());
    out.extend_from_slice(b"{\"type\":\"");
    out.extend_from_slice(kind.as_bytes());
    out.extend_from_slice(b"\",\"cname\":\"");
    escape_json_into(out, cname);
    out.extend_from_slice(b"\",\"seq\":");
    out.extend_from_slice(itoa::Buffer::new().format(seq).as_bytes());
    out.extend_from_slice(b",\"content\":\"");
    out.extend_from_slice(content_escaped.as_bytes());
    out.extend_from_slice(b"\"}");
}

/// Builds one message object from an already-escaped content.
pub fn message(kind: &str, cname: &str, seq: i32, content_escaped: &str) -> Vec<u8> {
    let mut out = Vec::new();
    message_into(&mut out, kind, cname, seq, content_escaped);
    out
}

/// Replaces every `</` with `<\/` so that JSON embedded in an HTML `<script>`
/// element cannot close it. Inside JSON strings `\/` means `/`, and `</` can
/// only occur inside strings, so the JSON value is unchanged.
pub fn script_safe(json: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(json.len() + 4);
    let mut prev = 0u8;
    for &b in json {
        if b == b'/' && prev == b'<' {
            out.push(b'\\');
        }
        out.push(b);
        prev = b;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_every_control_character() {
        assert_eq!(escape_json("hello\"\\\n\r\tend"), "hello\\\"\\\\\\n\\r\\tend");
        assert_eq!(
            escape_json("\u{0}\u{1f}\u{7f}\u{8}\u{c}"),
            "\\u0000\\u001f\\u007f\\b\\f"
        );
        assert_eq!(escape_json("a\u{2028}b\u{2029}"), "a\\u2028b\\u2029");
        // C1 controls (found by the params fuzz target), next to look-alikes that stay.
        assert_eq!(
            escape_json("\u{80}\u{85}\u{9f}\u{a0}\u{100}"),
            "\\u0080\\u0085\\u009f\u{a0}\u{100}"
        );
        assert_eq!(escape_json("héllo €"), "héllo €");
    }

    #[test]
    fn message_has_icomet_member_order() {
        let m = message("data", "abc", 3, "hello");
        assert_eq!(&m[..], br#"{"type":"data","cname":"abc","seq":3,"content":"hello"}"#);
        let m = message("next_seq", "a\"b", -1, "");
        assert_eq!(&m[..], br#"{"type":"next_seq","cname":"a\"b","seq":-1,"content":""}"#);
    }

    #[test]
    fn json_string_body_check() {
        assert!(check_json_string_body(r#"hi \"x\" \\ \/ \n \u00e9"#).is_ok());
        assert!(check_json_string_body("a\"b").is_err());
        assert!(check_json_string_body("a\nb").is_err());
        assert!(check_json_string_body(r"a\x").is_err());
        assert!(check_json_string_body(r"a\u12").is_err());
        assert!(check_json_string_body(r"a\").is_err());
    }

    #[test]
    fn script_safe_breaks_closing_tags() {
        assert_eq!(script_safe(br#"{"c":"</script>"}"#), br#"{"c":"<\/script>"}"#.to_vec());
    }
}
