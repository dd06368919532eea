//! Reads one array field of a JSON object element by element as the body
//! arrives, so a list response of hundreds of megabytes (Periskope's chat pages,
//! each group with all its members) is never held whole: each element's bytes
//! are handed over as soon as it is complete, and the rest of the document (the
//! other fields, with the array left empty) is kept to be parsed at the end.
//!
//! The splitter only tracks strings, escapes and nesting; each element and the
//! rest are then parsed by serde, which reports any malformed JSON.

/// Why a body could not be split.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SplitError {
    #[error("the body ended inside the document")]
    Truncated,
    #[error("an empty element in `{0}`")]
    EmptyElement(String),
    #[error("the body does not start with an object")]
    NotAnObject,
}

impl From<SplitError> for crate::error::AdapterError {
    fn from(e: SplitError) -> Self {
        Self::decode(format!("a list body: {e}"))
    }
}

/// Splits the array under `field` of the top-level object.
pub struct ArraySplitter {
    field: Vec<u8>,
    /// The document without the array's elements (`"field": []`).
    rest: Vec<u8>,
    /// The element being read.
    elem: Vec<u8>,
    depth: u32,
    in_string: bool,
    escaped: bool,
    /// At depth 1: the next string is a key.
    expect_key: bool,
    reading_key: bool,
    key: Vec<u8>,
    /// The last key read is `field` and its value has not started yet.
    at_field: bool,
    /// Inside the field's array (its elements are at depth 2).
    in_array: bool,
    elements: usize,
    started: bool,
}

impl ArraySplitter {
    pub fn new(field: &str) -> Self {
        Self {
            field: field.as_bytes().to_vec(),
            rest: Vec::new(),
            elem: Vec::new(),
            depth: 0,
            in_string: false,
            escaped: false,
            expect_key: false,
            reading_key: false,
            key: Vec::new(),
            at_field: false,
            in_array: false,
            elements: 0,
            started: false,
        }
    }

    /// Takes the next bytes of the body; `each` gets every element completed in
    /// them, in order.
    pub fn push<E: From<SplitError>>(
        &mut self,
        chunk: &[u8],
        each: &mut impl FnMut(&[u8]) -> Result<(), E>,
    ) -> Result<(), E> {
        for &b in chunk {
            if self.in_array {
                self.in_array_byte(b, each)?;
            } else {
                self.outside_byte(b)?;
            }
        }
        Ok(())
    }

    fn in_array_byte<E: From<SplitError>>(
        &mut self,
        b: u8,
        each: &mut impl FnMut(&[u8]) -> Result<(), E>,
    ) -> Result<(), E> {
        if self.in_string {
            self.elem.push(b);
            self.string_byte(b);
            return Ok(());
        }
        match b {
            b'"' => {
                self.in_string = true;
                self.elem.push(b);
            }
            b'{' | b'[' => {
                self.depth += 1;
                self.elem.push(b);
            }
            b'}' | b']' if self.depth > 2 => {
                self.depth -= 1;
                self.elem.push(b);
            }
            b',' if self.depth == 2 => self.emit(each, false)?,
            b']' if self.depth == 2 => {
                self.emit(each, true)?;
                self.in_array = false;
                self.depth = 1;
                self.rest.extend_from_slice(b"[]");
            }
            _ => self.elem.push(b),
        }
        Ok(())
    }

    fn emit<E: From<SplitError>>(
        &mut self,
        each: &mut impl FnMut(&[u8]) -> Result<(), E>,
        closing: bool,
    ) -> Result<(), E> {
        let elem = self.elem.trim_ascii();
        if elem.is_empty() {
            // `[]` has no element; `[,` and `[1,]` have an empty one.
            if closing && self.elements == 0 {
                return Ok(());
            }
            return Err(
                SplitError::EmptyElement(String::from_utf8_lossy(&self.field).into()).into(),
            );
        }
        self.elements += 1;
        each(elem)?;
        self.elem.clear();
        Ok(())
    }

    fn string_byte(&mut self, b: u8) {
        if self.escaped {
            self.escaped = false;
        } else if b == b'\\' {
            self.escaped = true;
        } else if b == b'"' {
            self.in_string = false;
        }
    }

    fn outside_byte(&mut self, b: u8) -> Result<(), SplitError> {
        if !self.started && !b.is_ascii_whitespace() {
            if b != b'{' {
                return Err(SplitError::NotAnObject);
            }
            self.started = true;
        }
        if self.in_string {
            self.rest.push(b);
            self.string_byte(b);
            if self.reading_key {
                if self.in_string {
                    self.key.push(b);
                } else {
                    self.reading_key = false;
                    // Escapes are compared as written: field names have none.
                    self.at_field = self.key == self.field;
                }
            }
            return Ok(());
        }
        match b {
            b'"' => {
                self.in_string = true;
                if self.depth == 1 && self.expect_key {
                    self.expect_key = false;
                    self.reading_key = true;
                    self.key.clear();
                } else if self.depth == 1 {
                    self.at_field = false;
                }
            }
            b'[' if self.depth == 1 && self.at_field => {
                self.at_field = false;
                self.in_array = true;
                self.depth = 2;
                return Ok(());
            }
            b'{' | b'[' => {
                if self.depth == 1 {
                    self.at_field = false;
                }
                self.depth += 1;
                if self.depth == 1 {
                    self.expect_key = true;
                }
            }
            b'}' | b']' => self.depth = self.depth.saturating_sub(1),
            b',' if self.depth == 1 => {
                self.expect_key = true;
                self.at_field = false;
            }
            b':' => {}
            b if b.is_ascii_whitespace() => {}
            _ => {
                if self.depth == 1 {
                    self.at_field = false;
                }
            }
        }
        self.rest.push(b);
        Ok(())
    }

    /// The document without the array's elements, once the body has ended.
    pub fn finish(self) -> Result<Vec<u8>, SplitError> {
        if !self.started || self.in_array || self.in_string || self.depth != 0 {
            return Err(SplitError::Truncated);
        }
        Ok(self.rest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    #[derive(Debug, PartialEq)]
    struct Failed(String);

    impl From<SplitError> for Failed {
        fn from(e: SplitError) -> Self {
            Self(e.to_string())
        }
    }

    /// Splits `body` fed in chunks of `size` bytes: the elements, and the rest.
    fn split(body: &[u8], size: usize) -> Result<(Vec<Value>, Value), String> {
        let mut s = ArraySplitter::new("chats");
        let mut out = Vec::new();
        for chunk in body.chunks(size) {
            s.push(chunk, &mut |e: &[u8]| -> Result<(), Failed> {
                out.push(serde_json::from_slice(e).map_err(|e| Failed(e.to_string()))?);
                Ok(())
            })
            .map_err(|e| e.0)?;
        }
        let rest = s.finish().map_err(|e| e.to_string())?;
        Ok((
            out,
            serde_json::from_slice(&rest).map_err(|e| e.to_string())?,
        ))
    }

    #[test]
    fn elements_and_the_rest_come_out_as_serde_reads_them() {
        let doc = json!({
            "count": 3,
            "other": {"chats": [1, 2], "s": "]},\"["},
            "chats": [
                {"chat_id": "1@g.us", "members": {"a": {"is_admin": true}}, "name": "a \"q\" ] , {"},
                {"chat_id": "2@c.us", "labels": ["x", "y\\"], "n": null},
                7,
                "text, with ] and \\\" inside",
                [1, [2, {"k": "v"}]]
            ],
            "from": 1,
            "to": 3
        });
        let body = serde_json::to_vec_pretty(&doc).expect("json");
        for size in [1, 2, 3, 7, 64, body.len()] {
            let (elements, rest) = split(&body, size).expect("split");
            assert_eq!(&Value::Array(elements), &doc["chats"], "chunks of {size}");
            let mut want = doc.clone();
            want["chats"] = json!([]);
            assert_eq!(rest, want, "chunks of {size}");
        }
    }

    #[test]
    fn an_empty_array_and_a_missing_one() {
        assert_eq!(
            split(br#"{"chats": [], "count": 0}"#, 4),
            Ok((vec![], json!({"chats": [], "count": 0})))
        );
        assert_eq!(
            split(br#"{"count": 0}"#, 4),
            Ok((vec![], json!({"count": 0})))
        );
    }

    #[test]
    fn broken_bodies_are_errors_not_guesses() {
        for body in [
            &br#"{"chats": [{"a": 1}, "#[..],
            br#"{"chats": [{"a": 1},, {"b": 2}]}"#,
            br#"{"chats": [{"a": 1},]}"#,
            br#"{"chats": [{"a": "unterminated}]}"#,
            br#"[{"chats": []}]"#,
            b"",
        ] {
            assert!(split(body, 3).is_err(), "{}", String::from_utf8_lossy(body));
        }
        // A malformed element is serde's to report.
        assert!(split(br#"{"chats": [{"a" 1}]}"#, 5).is_err());
    }
}
