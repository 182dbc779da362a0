//! The JSON path of a config parse error, recovered from serde_json's
//! position (`rules[1].match.prefx`).
//!
//! The config is decoded by serde_json alone. Tracking the path while
//! decoding (serde_path_to_error) wraps every config type's deserializer in a
//! generic layer: ≈ 160 KB of scopegate.wasm and ≈ 8% of a big config's
//! configure. An error carries the line and column where serde_json stopped,
//! and the JSON before that point is well formed, so re-reading that prefix
//! gives the same path, built by the same rules (checked against
//! serde_path_to_error in `tests/json_path.rs`):
//!
//! - a member's value is `parent.name`, an array element `parent[i]`;
//! - the error of a member name that is not yet read, or of what follows a
//!   member's value (a missing `,`), is at `parent.?`;
//! - the error of what follows an element, or of a trailing comma, is at the
//!   array itself;
//! - an unknown field is at `parent.name`, a duplicate field at `parent`,
//!   and so is an enum's unknown variant in the `{"variant": ...}` form.
//!
//! Runs only on an error, over at most the config's bytes; never panics.

use serde_json::error::Category;

/// Where an error leaves the innermost open object or array.
#[derive(Clone, Copy, PartialEq, Eq)]
enum State {
    /// After `{` or `[` (`first`), or after a `,`.
    Start,
    /// An object member's name is read (`key`), its `:` not yet.
    AfterKey,
    /// After an object member's `:`.
    AfterColon,
    /// A member's or element's value is complete.
    AfterValue,
}

struct Frame {
    object: bool,
    state: State,
    /// The byte range of the current member's name, quotes included.
    key: Option<(usize, usize)>,
    /// The current element's index.
    index: usize,
    /// No member or element started yet: `}` or `]` may close it.
    empty: bool,
}

/// A scalar being read.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Scalar {
    /// A string from byte `start` (its opening quote); `escape`: the bytes
    /// of an escape still to read after its `\\` (`u`: the 4 hex digits that
    /// serde_json reads whatever they are).
    Str { start: usize, escape: u8, key: bool },
    /// A number; `complete`: could end here.
    Num(Num),
    /// `true`, `false` or `null`: the bytes still expected.
    Lit(&'static [u8]),
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Num {
    Minus,
    Zero,
    Int,
    Dot,
    Frac,
    E,
    ESign,
    Exp,
}

impl Num {
    fn complete(self) -> bool {
        matches!(self, Num::Zero | Num::Int | Num::Frac | Num::Exp)
    }

    /// The state after `b`, or `None` if `b` does not continue the number.
    fn next(self, b: u8) -> Option<Num> {
        Some(match (self, b) {
            (Num::Minus, b'0') => Num::Zero,
            (Num::Minus, b'1'..=b'9') => Num::Int,
            (Num::Int, b'0'..=b'9') => Num::Int,
            (Num::Zero | Num::Int, b'.') => Num::Dot,
            (Num::Dot | Num::Frac, b'0'..=b'9') => Num::Frac,
            (Num::Zero | Num::Int | Num::Frac, b'e' | b'E') => Num::E,
            (Num::E, b'+' | b'-') => Num::ESign,
            (Num::E | Num::ESign | Num::Exp, b'0'..=b'9') => Num::Exp,
            _ => return None,
        })
    }
}

/// The path (as serde_path_to_error prints it, `.` for the root) of `err`,
/// an error of `serde_json::from_slice(bytes)`.
pub(crate) fn error_path(bytes: &[u8], err: &serde_json::Error) -> String {
    let offset = byte_offset(bytes, err.line(), err.column());
    let category = err.classify();
    // A syntax error's position is one past the byte that broke the grammar
    // (serde_json peeks it), or inside a string, number or literal: the
    // prefix before that byte has the same path. A data error's is the read
    // position: what serde_json consumed. At the end of the input, all.
    let end = match category {
        Category::Eof => bytes.len(),
        Category::Syntax => offset.saturating_sub(1),
        Category::Data | Category::Io => offset,
    }
    .min(bytes.len());
    let data = matches!(category, Category::Data | Category::Io);
    // Errors about a member name that serde raises after reading it: a
    // duplicate field, an enum's unknown variant (`{"name": ...}` form).
    // They are at the object (the enum), not at the member.
    let message = if data { err.to_string() } else { String::new() };
    let duplicate =
        message.starts_with("duplicate field `") || message.starts_with("unknown variant `");
    let (mut stack, mut scalar, stop, next) = scan(bytes, end);
    // A number that reading stopped in is complete if the byte where it
    // stopped (or the end of the input) cannot continue it.
    if let Some(Scalar::Num(n)) = scalar {
        let ends = bytes
            .get(stop)
            .is_none_or(|&b| n.next(b).is_none() && !b.is_ascii_digit());
        if n.complete() && ends {
            scalar = None;
            if let Some(top) = stack.last_mut() {
                top.state = State::AfterValue;
            }
        }
    }
    let mut out = String::new();
    let Some((top, outer)) = stack.split_last() else {
        return ".".into();
    };
    for f in outer {
        push_slot(&mut out, bytes, f);
    }
    let in_key = matches!(scalar, Some(Scalar::Str { key: true, .. }));
    let in_value = scalar.is_some() && !in_key;
    if top.object {
        match top.state {
            State::AfterColon => push_slot(&mut out, bytes, top),
            _ if in_value => push_slot(&mut out, bytes, top),
            State::AfterKey if data && !duplicate => push_slot(&mut out, bytes, top),
            State::AfterKey => {}
            State::AfterValue if data => push_slot(&mut out, bytes, top),
            State::Start | State::AfterValue => push_segment(&mut out, "?"),
        }
    } else {
        let element = match top.state {
            _ if in_value => true,
            State::AfterValue => data,
            // serde_json starts reading an element at any byte but `]`.
            State::Start => next.is_some_and(|b| b != b']'),
            State::AfterKey | State::AfterColon => false,
        };
        if element {
            push_slot(&mut out, bytes, top);
        }
    }
    if out.is_empty() { ".".into() } else { out }
}

/// The byte offset of serde_json's (1-based line, 0-based column) position.
fn byte_offset(bytes: &[u8], line: usize, column: usize) -> usize {
    let mut start = 0;
    if line > 1 {
        let mut newlines = 0;
        for (i, &b) in bytes.iter().enumerate() {
            if b == b'\n' {
                newlines += 1;
                if newlines == line - 1 {
                    start = i + 1;
                    break;
                }
            }
        }
    }
    start.saturating_add(column)
}

fn push_segment(out: &mut String, name: &str) {
    if !out.is_empty() {
        out.push('.');
    }
    out.push_str(name);
}

/// The segment of `f`'s current member or element.
fn push_slot(out: &mut String, bytes: &[u8], f: &Frame) {
    if f.object {
        let name = f
            .key
            .and_then(|(s, e)| bytes.get(s..e))
            .and_then(|quoted| serde_json::from_slice::<String>(quoted).ok());
        push_segment(out, name.as_deref().unwrap_or("?"));
    } else {
        out.push('[');
        out.push_str(&f.index.to_string());
        out.push(']');
    }
}

/// Reads `bytes[..end]` as the start of a JSON document: the open objects
/// and arrays, the scalar being read, and the first byte that is not
/// where reading stopped (where `end` was reached, or at a byte that does
/// not fit the grammar), and the first byte that is not whitespace from
/// there.
fn scan(bytes: &[u8], end: usize) -> (Vec<Frame>, Option<Scalar>, usize, Option<u8>) {
    let mut stack: Vec<Frame> = Vec::new();
    let mut scalar: Option<Scalar> = None;
    let mut rooted = false;
    let mut i = 0;
    'bytes: while i < end {
        let Some(&b) = bytes.get(i) else { break };
        if let Some(s) = scalar {
            match s {
                Scalar::Str { start, escape, key } => {
                    scalar = match (escape, b) {
                        (1, b'u') => Some(Scalar::Str {
                            start,
                            escape: 4,
                            key,
                        }),
                        (1.., _) => Some(Scalar::Str {
                            start,
                            escape: escape - 1,
                            key,
                        }),
                        (0, b'\\') => Some(Scalar::Str {
                            start,
                            escape: 1,
                            key,
                        }),
                        (0, b'"') => {
                            if let Some(top) = stack.last_mut() {
                                if key {
                                    top.key = Some((start, i + 1));
                                    top.state = State::AfterKey;
                                } else {
                                    top.state = State::AfterValue;
                                }
                            }
                            None
                        }
                        _ => Some(s),
                    };
                    i += 1;
                    continue;
                }
                Scalar::Lit(rest) => {
                    match rest.split_first() {
                        Some((&want, more)) if want == b => {
                            scalar = if more.is_empty() {
                                if let Some(top) = stack.last_mut() {
                                    top.state = State::AfterValue;
                                }
                                None
                            } else {
                                Some(Scalar::Lit(more))
                            };
                        }
                        _ => break 'bytes,
                    }
                    i += 1;
                    continue;
                }
                Scalar::Num(n) => match n.next(b) {
                    Some(n) => {
                        scalar = Some(Scalar::Num(n));
                        i += 1;
                        continue;
                    }
                    None if n.complete() && !b.is_ascii_digit() => {
                        scalar = None;
                        if let Some(top) = stack.last_mut() {
                            top.state = State::AfterValue;
                        }
                        // `b` is read below, after the number.
                    }
                    None => break 'bytes,
                },
            }
        }
        if matches!(b, b' ' | b'\t' | b'\n' | b'\r') {
            i += 1;
            continue;
        }
        let Some(top) = stack.last_mut() else {
            // The root value (an object: compile_json checked), once.
            if rooted || !start_value(&mut stack, &mut scalar, b, i) {
                break;
            }
            rooted = true;
            i += 1;
            continue;
        };
        match (top.object, top.state, b) {
            (true, State::Start, b'"') => {
                top.key = None;
                top.empty = false;
                scalar = Some(Scalar::Str {
                    start: i,
                    escape: 0,
                    key: true,
                });
            }
            (_, State::Start, b'}' | b']') if top.empty && (b == b'}') == top.object => {
                close(&mut stack)
            }
            (true, State::AfterKey, b':') => top.state = State::AfterColon,
            (true, State::AfterValue, b',') => {
                top.key = None;
                top.state = State::Start;
            }
            (false, State::AfterValue, b',') => {
                top.index += 1;
                top.state = State::Start;
            }
            (_, State::AfterValue, b'}' | b']') if (b == b'}') == top.object => close(&mut stack),
            (true, State::AfterColon, _) | (false, State::Start, _) => {
                top.empty = false;
                if !start_value(&mut stack, &mut scalar, b, i) {
                    break;
                }
            }
            _ => break,
        }
        i += 1;
    }
    let next = bytes.get(i.min(bytes.len())..).and_then(|rest| {
        rest.iter()
            .copied()
            .find(|b| !matches!(b, b' ' | b'\t' | b'\n' | b'\r'))
    });
    (stack, scalar, i, next)
}

/// Starts the value whose first byte is `b`; false if no value starts so.
fn start_value(stack: &mut Vec<Frame>, scalar: &mut Option<Scalar>, b: u8, i: usize) -> bool {
    // serde_json refuses the 128th nested object or array (its recursion
    // limit) at its opening byte, which a syntax error's end excludes.
    match b {
        b'{' | b'[' => stack.push(Frame {
            object: b == b'{',
            state: State::Start,
            key: None,
            index: 0,
            empty: true,
        }),
        b'"' => {
            *scalar = Some(Scalar::Str {
                start: i,
                escape: 0,
                key: false,
            })
        }
        b'-' => *scalar = Some(Scalar::Num(Num::Minus)),
        b'0' => *scalar = Some(Scalar::Num(Num::Zero)),
        b'1'..=b'9' => *scalar = Some(Scalar::Num(Num::Int)),
        b't' => *scalar = Some(Scalar::Lit(b"rue")),
        b'f' => *scalar = Some(Scalar::Lit(b"alse")),
        b'n' => *scalar = Some(Scalar::Lit(b"ull")),
        _ => return false,
    }
    true
}

/// Closes the innermost object or array: its parent's value is complete.
fn close(stack: &mut Vec<Frame>) {
    stack.pop();
    if let Some(top) = stack.last_mut() {
        top.state = State::AfterValue;
    }
}
