//! The small matchers every form's reader shares. Each reads a text that is still growing, so
//! each can answer "not yet": `<tool_ca` is [`Seen::Partial`] of `<tool_calls>`, where `<b>` is
//! [`Seen::NoMatch`]. They own no form of their own.

/// How a text's start compares with what is looked for.
/// How a text's start compares with what is looked for.
pub(super) enum Seen<T> {
    Match(T),
    /// The text ends before it can tell: it is the start of what is looked for.
    Partial,
    NoMatch,
}

/// Whether `text` starts with `word` (and its length).
pub(super) fn literal(text: &str, word: &str) -> Seen<usize> {
    if text.starts_with(word) {
        Seen::Match(word.len())
    } else if word.starts_with(text) {
        Seen::Partial
    } else {
        Seen::NoMatch
    }
}

pub(super) fn skip_whitespace(text: &str, at: usize) -> usize {
    at + text[at..].bytes().take_while(u8::is_ascii_whitespace).count()
}

/// Where `needle` (ASCII) first occurs in `text` from `from` on, or else where to search again
/// once more text has come: before the tail that may be its start.
pub(super) fn find_from(text: &str, from: usize, needle: &str) -> Result<usize, usize> {
    match text[from..].find(needle) {
        Some(found) => Ok(from + found),
        None => Err(text.floor_char_boundary(text.len().saturating_sub(needle.len() - 1).max(from))),
    }
}

/// The first `max` bytes of `text`, or fewer so as to end on a character.
pub(super) fn bounded(text: &str, max: usize) -> &str {
    &text[..text.floor_char_boundary(max)]
}
