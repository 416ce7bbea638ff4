//! The model's own notes, `<antThinking>…</antThinking>`, which Kimi's model was seen writing
//! before a shell shorthand (`shell.rs`):
//!
//! ```text
//! <antThinking>The user wants the date, bash can tell.</antThinking>
//! <bash>date</bash>
//! ```
//!
//! They are for no one to read: a block that closes within [`MAX_FENCE`] bytes of its opening is
//! dropped, wherever it is in the answer (outside code blocks), and what it holds is never a
//! call. One that does not close, or not within the bound, is text: its opening tag goes out and
//! what follows is read as ever. The front door finds the opening and holds the block meanwhile.

use super::MAX_FENCE;
use super::scan::{bounded, find_from};

pub(super) const NOTES: &str = "<antThinking>";
const NOTES_END: &str = "</antThinking>";

/// What the notes held from the start of `text` came to.
pub(super) enum Notes {
    /// Not closed yet: search again from here.
    Wait(usize),
    /// Closed: drop this many bytes.
    Dropped(usize),
    /// No notes: the opening tag is text.
    Text(usize),
}

/// Reads the notes that open at the start of `text`, searched for their end from `scan` on.
pub(super) fn read_notes(text: &str, scan: usize, at_end: bool) -> Notes {
    let view = bounded(text, MAX_FENCE + NOTES_END.len());
    match find_from(view, scan, NOTES_END) {
        Ok(end) => Notes::Dropped(end + NOTES_END.len()),
        Err(scan) if !at_end && view.len() == text.len() => Notes::Wait(scan),
        Err(_) => Notes::Text(NOTES.len()),
    }
}
