//! An agent session's history as bytes, so that a turn need not parse what the session's chat
//! already holds. A client sends its whole history every turn, byte for byte as before plus
//! the new messages; the session keeps a [`Mark`] of its last request (where the history array
//! opens, where its last message ends, keyed digests of the bytes up to there and of the bytes
//! after the array) and the next body is checked against it. When the body begins with those
//! very bytes, continues the array after them and ends with the same bytes after it, only the
//! new messages and the members around the array are parsed ([`elide`]); any other body is
//! parsed whole, as before. Pure, tested at every split.

use std::borrow::Cow;

use serde::Deserialize;

use super::siphash::Keyed;

/// Nesting deeper than this is not followed (the body is then parsed whole).
const MAX_DEPTH: usize = 128;

/// Where a body's history array lies: the index after its `[`, each message's first and
/// past-the-end index, and the index of its `]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Span {
    pub open: usize,
    pub items: Vec<(usize, usize)>,
    pub close: usize,
}

/// What a session keeps of its last request's body (digests, never the bytes).
#[derive(Debug, Clone, PartialEq)]
pub struct Mark {
    open: usize,
    cut: usize,
    prefix: u64,
    trailer: u64,
}

/// The array member `key` of a JSON object `body`, when the object has exactly one member of
/// that name and no member name with an escape in it.
pub fn history_span(body: &[u8], key: &str) -> Option<Span> {
    let mut at = ws(body, 0);
    expect(body, at, b'{')?;
    at = ws(body, at + 1);
    if body.get(at) == Some(&b'}') {
        return None;
    }
    let mut span = None;
    loop {
        let name_end = string_end(body, at)?;
        let name = &body[at + 1..name_end - 1];
        if name.contains(&b'\\') {
            return None;
        }
        at = ws(body, name_end);
        expect(body, at, b':')?;
        at = ws(body, at + 1);
        let value_end = value_end(body, at, 1)?;
        if name == key.as_bytes() {
            if span.is_some() {
                return None;
            }
            span = Some(array_span(body, at, 1)?);
        }
        at = ws(body, value_end);
        match body.get(at)? {
            b',' => at = ws(body, at + 1),
            b'}' => break,
            _ => return None,
        }
    }
    (ws(body, at + 1) == body.len()).then_some(span?)
}

impl Mark {
    /// The mark of a body whose history is `span` (none for an empty history).
    pub fn of(body: &[u8], span: &Span) -> Option<Mark> {
        let cut = span.items.last()?.1;
        Some(Mark {
            open: span.open,
            cut,
            prefix: digest(&body[..cut]),
            trailer: digest(&body[span.close..]),
        })
    }
}

/// The body without the messages one of `marks` covers, when it is their continuation (see
/// the module doc) and none of the new messages is a system or developer message (those change
/// what a session's chat was started with); with the index of that mark and the mark of the
/// whole body. The body is hashed once, however many marks (a caller's other sessions).
pub fn elide(body: &[u8], key: &str, marks: &[Mark]) -> Option<(usize, Vec<u8>, Mark)> {
    let mut order: Vec<usize> = (0..marks.len()).filter(|&i| marks[i].cut < body.len()).collect();
    order.sort_by_key(|&i| marks[i].cut);
    let (mut hasher, mut hashed) = (Keyed::keyed(), 0);
    for index in order {
        let mark = &marks[index];
        hasher.update(&body[hashed..mark.cut]);
        hashed = mark.cut;
        if hasher.clone().finish() != mark.prefix {
            continue;
        }
        if let Some((elided, next)) = go_on(body, key, mark, hasher.clone()) {
            return Some((index, elided, next));
        }
    }
    None
}

/// [`elide`] once the bytes up to a mark's cut are known to be the same (`hasher` has them).
fn go_on(body: &[u8], key: &str, mark: &Mark, mut hasher: Keyed) -> Option<(Vec<u8>, Mark)> {
    let comma = ws(body, mark.cut);
    expect(body, comma, b',')?;
    let rest = comma + 1;
    let mut elided = Vec::with_capacity(mark.open + body.len() - rest);
    elided.extend_from_slice(&body[..mark.open]);
    elided.extend_from_slice(&body[rest..]);
    let span = history_span(&elided, key)?;
    if span.open != mark.open || span.items.iter().any(|&(start, end)| sets_the_frame(&elided[start..end])) {
        return None;
    }
    let shift = |at: usize| at - mark.open + rest;
    let close = shift(span.close);
    if digest(&body[close..]) != mark.trailer {
        return None;
    }
    let cut = shift(span.items.last()?.1);
    hasher.update(&body[mark.cut..cut]);
    let mark = Mark { open: mark.open, cut, prefix: hasher.finish(), trailer: mark.trailer };
    Some((elided, mark))
}

/// Whether a message is a system or developer one (or cannot be read as a message at all).
fn sets_the_frame(item: &[u8]) -> bool {
    #[derive(Deserialize)]
    struct Role<'a> {
        #[serde(borrow, default)]
        role: Option<Cow<'a, str>>,
    }
    match serde_json::from_slice::<Role>(item) {
        Ok(message) => matches!(message.role.as_deref(), Some("system" | "developer")),
        Err(_) => true,
    }
}

fn digest(bytes: &[u8]) -> u64 {
    let mut hasher = Keyed::keyed();
    hasher.update(bytes);
    hasher.finish()
}

fn expect(body: &[u8], at: usize, byte: u8) -> Option<()> {
    (body.get(at) == Some(&byte)).then_some(())
}

/// The index of the first byte at or after `at` that is not JSON white space.
fn ws(body: &[u8], at: usize) -> usize {
    let skipped = body.get(at..).unwrap_or_default().iter().take_while(|b| b" \t\r\n".contains(b)).count();
    at + skipped
}

/// The index after the string that opens at `at`.
fn string_end(body: &[u8], at: usize) -> Option<usize> {
    expect(body, at, b'"')?;
    let mut i = at + 1;
    loop {
        i += body.get(i..)?.iter().position(|&b| b == b'"' || b == b'\\')?;
        if body[i] == b'"' {
            return Some(i + 1);
        }
        i += 2;
    }
}

/// The index after the JSON value that starts at `at`.
fn value_end(body: &[u8], at: usize, depth: usize) -> Option<usize> {
    if depth > MAX_DEPTH {
        return None;
    }
    match *body.get(at)? {
        b'"' => string_end(body, at),
        b'[' => array_close(body, at, depth, |_| {}).map(|close| close + 1),
        b'{' => object_end(body, at, depth),
        _ => {
            let len = body[at..].iter().take_while(|b| !b",]} \t\r\n".contains(b)).count();
            (len > 0).then_some(at + len)
        }
    }
}

fn object_end(body: &[u8], at: usize, depth: usize) -> Option<usize> {
    let mut i = ws(body, at + 1);
    if body.get(i) == Some(&b'}') {
        return Some(i + 1);
    }
    loop {
        i = ws(body, string_end(body, i)?);
        expect(body, i, b':')?;
        i = ws(body, value_end(body, ws(body, i + 1), depth + 1)?);
        match body.get(i)? {
            b',' => i = ws(body, i + 1),
            b'}' => return Some(i + 1),
            _ => return None,
        }
    }
}

/// The span of the array that opens at `at`, `depth` deep.
fn array_span(body: &[u8], at: usize, depth: usize) -> Option<Span> {
    let mut items = Vec::new();
    let close = array_close(body, at, depth, |item| items.push(item))?;
    Some(Span { open: at + 1, items, close })
}

/// The index of the `]` of the array that opens at `at`, `depth` deep; each item's first and
/// past-the-end index go to `item` (nested arrays are only skipped: nothing is collected).
fn array_close(body: &[u8], at: usize, depth: usize, mut item: impl FnMut((usize, usize))) -> Option<usize> {
    expect(body, at, b'[')?;
    let mut i = ws(body, at + 1);
    if body.get(i) == Some(&b']') {
        return Some(i);
    }
    loop {
        let end = value_end(body, i, depth + 1)?;
        item((i, end));
        i = ws(body, end);
        match body.get(i)? {
            b',' => i = ws(body, i + 1),
            b']' => return Some(i),
            _ => return None,
        }
    }
}

#[cfg(test)]
#[path = "prefix_tests.rs"]
mod tests;
