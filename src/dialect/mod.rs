//! Client dialects: each turns its JSON into a [`chat::Request`](crate::chat::Request) and
//! renders [`chat::Event`](crate::chat::Event)s back in its own wire format, streamed or
//! aggregated. No dialect knows a Kimi type.

pub mod openai;

use crate::chat::{self, Event};

/// Renders a live stream: bytes to write for each event, flushed by the server at once.
pub trait StreamRenderer {
    /// Appends to `out` what `event` becomes on the wire (possibly nothing).
    fn event(&mut self, event: Event, out: &mut Vec<u8>);
    /// Appends the frames that end a stream which failed after it began.
    fn error(&mut self, error: &chat::Error, out: &mut Vec<u8>);
}

/// Collects a whole answer for a non-streaming response.
pub trait Aggregator {
    fn event(&mut self, event: Event);
    /// The response body once the answer is complete.
    fn body(&self) -> Vec<u8>;
}

/// Seconds since the Unix epoch, for `created` fields.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}
