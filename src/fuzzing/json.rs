//! A small strict JSON reader (RFC 8259) for checking what the encoders
//! write. It is independent of `crate::encode` on purpose: the fuzz targets
//! compare the two.

/// A parsed JSON value; numbers are kept as their text.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// `null`, `true` or `false`.
    Literal(&'static str),
    /// A number, as written.
    Number(String),
    /// A string, decoded (a lone surrogate escape decodes to U+FFFD).
    String(String),
    /// An array.
    Array(Vec<Value>),
    /// An object's members in order.
    Object(Vec<(String, Value)>),
}

struct Reader<'a> {
    b: &'a [u8],
    i: usize,
    depth: usize,
}

/// Parses one JSON text (a value with optional surrounding whitespace).
pub fn parse(text: &[u8]) -> Result<Value, String> {
    let mut r = Reader {
        b: text,
        i: 0,
        depth: 0,
    };
    r.ws();
    let v = r.value()?;
    r.ws();
    if r.i != text.len() {
        return Err(format!("trailing bytes at {}", r.i));
    }
    Ok(v)
}

/// Decodes the inside of a JSON string literal (the bytes between the quotes).
pub fn string_content(inner: &[u8]) -> Result<String, String> {
    let mut quoted = Vec::with_capacity(inner.len() + 2);
    quoted.push(b'"');
    quoted.extend_from_slice(inner);
    quoted.push(b'"');
    let mut r = Reader {
        b: &quoted,
        i: 0,
        depth: 0,
    };
    let s = r.string()?;
    if r.i != quoted.len() {
        return Err(format!("the string ends early, at {}", r.i - 1));
    }
    Ok(s)
}

impl Reader<'_> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    fn ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.i += 1;
        }
    }

    fn eat(&mut self, c: u8) -> Result<(), String> {
        if self.peek() == Some(c) {
            self.i += 1;
            Ok(())
        } else {
            Err(format!("expected {:?} at {}", c as char, self.i))
        }
    }

    fn value(&mut self) -> Result<Value, String> {
        self.depth += 1;
        if self.depth > 64 {
            return Err("nested too deeply".into());
        }
        let v = match self.peek() {
            Some(b'{') => self.object(),
            Some(b'[') => self.array(),
            Some(b'"') => self.string().map(Value::String),
            Some(b'-' | b'0'..=b'9') => self.number(),
            _ => ["null", "true", "false"]
                .into_iter()
                .find(|w| self.b[self.i..].starts_with(w.as_bytes()))
                .map(|w| {
                    self.i += w.len();
                    Value::Literal(w)
                })
                .ok_or_else(|| format!("no value at {}", self.i)),
        };
        self.depth -= 1;
        v
    }

    fn object(&mut self) -> Result<Value, String> {
        self.eat(b'{')?;
        let mut members = Vec::new();
        self.ws();
        if self.peek() == Some(b'}') {
            self.i += 1;
            return Ok(Value::Object(members));
        }
        loop {
            self.ws();
            let k = self.string()?;
            self.ws();
            self.eat(b':')?;
            self.ws();
            members.push((k, self.value()?));
            self.ws();
            match self.peek() {
                Some(b',') => self.i += 1,
                Some(b'}') => {
                    self.i += 1;
                    return Ok(Value::Object(members));
                }
                _ => return Err(format!("expected , or }} at {}", self.i)),
            }
        }
    }

    fn array(&mut self) -> Result<Value, String> {
        self.eat(b'[')?;
        let mut items = Vec::new();
        self.ws();
        if self.peek() == Some(b']') {
            self.i += 1;
            return Ok(Value::Array(items));
        }
        loop {
            self.ws();
            items.push(self.value()?);
            self.ws();
            match self.peek() {
                Some(b',') => self.i += 1,
                Some(b']') => {
                    self.i += 1;
                    return Ok(Value::Array(items));
                }
                _ => return Err(format!("expected , or ] at {}", self.i)),
            }
        }
    }

    fn digits(&mut self) -> usize {
        let start = self.i;
        while matches!(self.peek(), Some(b'0'..=b'9')) {
            self.i += 1;
        }
        self.i - start
    }

    fn number(&mut self) -> Result<Value, String> {
        let start = self.i;
        if self.peek() == Some(b'-') {
            self.i += 1;
        }
        match self.peek() {
            Some(b'0') => self.i += 1,
            Some(b'1'..=b'9') => {
                self.digits();
            }
            _ => return Err(format!("bad number at {start}")),
        }
        if self.peek() == Some(b'.') {
            self.i += 1;
            if self.digits() == 0 {
                return Err(format!("bad fraction at {start}"));
            }
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.i += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.i += 1;
            }
            if self.digits() == 0 {
                return Err(format!("bad exponent at {start}"));
            }
        }
        let text = std::str::from_utf8(&self.b[start..self.i]).map_err(|e| e.to_string())?;
        Ok(Value::Number(text.to_string()))
    }

    fn hex4(&mut self) -> Result<u32, String> {
        let h = self.b.get(self.i..self.i + 4).ok_or("truncated \\u escape")?;
        let text = std::str::from_utf8(h).map_err(|_| "bad \\u escape")?;
        if !text.bytes().all(|c| c.is_ascii_hexdigit()) {
            return Err(format!("bad \\u escape at {}", self.i));
        }
        self.i += 4;
        u32::from_str_radix(text, 16).map_err(|e| e.to_string())
    }

    fn string(&mut self) -> Result<String, String> {
        self.eat(b'"')?;
        let mut out = String::new();
        loop {
            let start = self.i;
            while matches!(self.peek(), Some(c) if c != b'"' && c != b'\\' && c >= 0x20) {
                self.i += 1;
            }
            let run = std::str::from_utf8(&self.b[start..self.i]).map_err(|e| format!("not UTF-8: {e}"))?;
            out.push_str(run);
            match self.peek() {
                Some(b'"') => {
                    self.i += 1;
                    return Ok(out);
                }
                Some(b'\\') => {
                    self.i += 1;
                    let c = self.peek().ok_or("truncated escape")?;
                    self.i += 1;
                    match c {
                        b'"' => out.push('"'),
                        b'\\' => out.push('\\'),
                        b'/' => out.push('/'),
                        b'b' => out.push('\u{8}'),
                        b'f' => out.push('\u{c}'),
                        b'n' => out.push('\n'),
                        b'r' => out.push('\r'),
                        b't' => out.push('\t'),
                        b'u' => {
                            let hi = self.hex4()?;
                            let mut code = hi;
                            if (0xd800..0xdc00).contains(&hi) && self.b[self.i..].starts_with(b"\\u") {
                                let save = self.i;
                                self.i += 2;
                                let lo = self.hex4()?;
                                if (0xdc00..0xe000).contains(&lo) {
                                    code = 0x10000 + ((hi - 0xd800) << 10) + (lo - 0xdc00);
                                } else {
                                    self.i = save;
                                }
                            }
                            out.push(char::from_u32(code).unwrap_or('\u{fffd}'));
                        }
                        _ => return Err(format!("bad escape at {}", self.i - 1)),
                    }
                }
                Some(_) => return Err(format!("raw control character at {}", self.i)),
                None => return Err("unterminated string".into()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_what_rfc_8259_allows() {
        let v = parse(br#" {"a":[1,-0.5e+3,true,null],"b":"x\u00e9\ud83d\ude00\n"} "#).expect("valid");
        let want = Value::Object(vec![
            (
                "a".into(),
                Value::Array(vec![
                    Value::Number("1".into()),
                    Value::Number("-0.5e+3".into()),
                    Value::Literal("true"),
                    Value::Literal("null"),
                ]),
            ),
            ("b".into(), Value::String("xé😀\n".into())),
        ]);
        assert_eq!(v, want);
    }

    #[test]
    fn refuses_what_it_does_not() {
        for bad in [
            &b"{'a':1}"[..],
            b"[1,]",
            b"01",
            b"\"a\nb\"",
            b"\"\\x\"",
            b"\"\\u12\"",
            b"1 2",
            b"\"\xff\"",
        ] {
            assert!(parse(bad).is_err(), "{:?}", String::from_utf8_lossy(bad));
        }
        assert!(string_content(b"a\"b").is_err());
        assert_eq!(string_content(br"a\/b\u0041").as_deref(), Ok("a/bA"));
    }
}
