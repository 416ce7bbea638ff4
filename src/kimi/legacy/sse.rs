//! An incremental Server-Sent Events decoder: bytes in as they arrive, complete events out.
//!
//! Pure (no I/O) so it is tested without sockets. Text is decoded only from complete lines,
//! so a UTF-8 character split across two reads is never lost or mangled.

use std::fmt;
use std::io::{self, Read};

use crate::kimi::read_buffer::ReadBuffer;

/// The decoder refuses an event larger than this, so a broken upstream cannot fill memory.
pub const MAX_EVENT_BYTES: usize = 8 * 1024 * 1024;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SseError {
    /// One event grew past [`MAX_EVENT_BYTES`] without ending.
    TooLarge,
}

impl fmt::Display for SseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SseError::TooLarge => write!(f, "an upstream event exceeds {MAX_EVENT_BYTES} bytes"),
        }
    }
}

/// Accumulates bytes and yields the `data` of each complete event.
#[derive(Debug, Default)]
pub struct SseDecoder {
    /// Bytes read and not yet consumed; they start with the line not yet complete.
    pending: ReadBuffer,
    /// How far into the unread bytes no line break was found.
    scanned: usize,
    /// `data` lines of the event being assembled.
    data: Option<String>,
}

impl SseDecoder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds bytes read from the stream.
    pub fn push(&mut self, bytes: &[u8]) {
        self.pending.push(bytes);
    }

    /// Reads up to `max` bytes from `reader` straight into the decoder; returns what `read`
    /// returned, 0 at the end of the stream.
    pub fn read_from(&mut self, reader: &mut impl Read, max: usize) -> io::Result<usize> {
        self.pending.read_from(reader, max)
    }

    /// The next complete event's data, if one is complete. Comments, `event:`, `id:` and
    /// `retry:` lines are skipped; several `data:` lines of one event are joined with `\n`.
    pub fn next_event(&mut self) -> Result<Option<String>, SseError> {
        loop {
            let unread = self.pending.unread();
            let Some(offset) = unread[self.scanned..].iter().position(|&b| b == b'\n') else {
                self.scanned = unread.len();
                let buffered = unread.len() + self.data.as_ref().map_or(0, String::len);
                return if buffered > MAX_EVENT_BYTES { Err(SseError::TooLarge) } else { Ok(None) };
            };
            let end = self.scanned + offset;
            let mut line = &unread[..end];
            if line.last() == Some(&b'\r') {
                line = &line[..line.len() - 1];
            }
            let event = if line.is_empty() {
                self.data.take()
            } else {
                if let Some(value) = line.strip_prefix(b"data:") {
                    let value = value.strip_prefix(b" ").unwrap_or(value);
                    let text = String::from_utf8_lossy(value);
                    match &mut self.data {
                        Some(data) => {
                            data.push('\n');
                            data.push_str(&text);
                        }
                        None => self.data = Some(text.into_owned()),
                    }
                }
                None
            };
            self.pending.consume(end + 1);
            self.scanned = 0;
            if event.is_some() {
                return Ok(event);
            }
        }
    }

    /// The data of an event the stream ended in the middle of (no closing blank line).
    pub fn finish(&mut self) -> Option<String> {
        if !self.pending.unread().is_empty() {
            self.push(b"\n\n");
            return self.next_event().ok().flatten();
        }
        self.data.take()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(chunks: &[&[u8]]) -> Vec<String> {
        let mut decoder = SseDecoder::new();
        let mut events = Vec::new();
        for chunk in chunks {
            decoder.push(chunk);
            while let Some(event) = decoder.next_event().unwrap() {
                events.push(event);
            }
        }
        events
    }

    #[test]
    fn decodes_events_and_skips_other_lines() {
        let stream = b": keep-alive\nevent: x\nid: 3\ndata: {\"a\":1}\n\ndata:two\r\ndata: lines\r\n\r\n";
        assert_eq!(decode_all(&[stream]), vec!["{\"a\":1}".to_string(), "two\nlines".to_string()]);
    }

    #[test]
    fn every_split_point_gives_the_same_events() {
        let stream = "data: {\"text\":\"你好，世界\"}\n\ndata: {\"text\":\"🎉 done\"}\n\n".as_bytes();
        let whole = decode_all(&[stream]);
        assert_eq!(whole.len(), 2);
        for a in 0..stream.len() {
            for b in a..stream.len() {
                let parts = [&stream[..a], &stream[a..b], &stream[b..]];
                assert_eq!(decode_all(&parts), whole, "split at {a},{b}");
            }
        }
    }

    #[test]
    fn reads_straight_from_a_reader() {
        let stream = "data: {\"text\":\"你好\"}\n\ndata: two\n\n".as_bytes();
        let mut reader = stream;
        let mut decoder = SseDecoder::new();
        let mut events = Vec::new();
        while decoder.read_from(&mut reader, 5).unwrap() > 0 {
            while let Some(event) = decoder.next_event().unwrap() {
                events.push(event);
            }
        }
        assert_eq!(events, ["{\"text\":\"你好\"}", "two"]);
    }

    #[test]
    fn byte_at_a_time() {
        let stream = "data: ñandú\n\n".as_bytes();
        let chunks: Vec<&[u8]> = stream.chunks(1).collect();
        assert_eq!(decode_all(&chunks), vec!["ñandú".to_string()]);
    }

    #[test]
    fn unfinished_event_is_returned_by_finish() {
        let mut decoder = SseDecoder::new();
        decoder.push(b"data: {\"event\":\"all_done\"}");
        assert_eq!(decoder.next_event().unwrap(), None);
        assert_eq!(decoder.finish().as_deref(), Some("{\"event\":\"all_done\"}"));
        assert_eq!(decoder.finish(), None);
    }

    #[test]
    fn oversized_event_is_refused() {
        let mut decoder = SseDecoder::new();
        decoder.push(b"data: ");
        decoder.push(&vec![b'a'; MAX_EVENT_BYTES + 1]);
        assert_eq!(decoder.next_event(), Err(SseError::TooLarge));
        assert_eq!(SseError::TooLarge.to_string(), "an upstream event exceeds 8388608 bytes");
        assert_eq!(MAX_EVENT_BYTES, 8 << 20, "the documented cap: 8 MiB");
    }

    #[test]
    fn an_unfinished_line_of_exactly_the_cap_waits_one_more_byte_is_refused() {
        let mut decoder = SseDecoder::new();
        decoder.push(b"data: ");
        decoder.push(&vec![b'a'; MAX_EVENT_BYTES - 6]);
        assert_eq!(decoder.next_event(), Ok(None), "exactly MAX_EVENT_BYTES buffered is allowed");
        decoder.push(b"a");
        assert_eq!(decoder.next_event(), Err(SseError::TooLarge));
    }

    #[test]
    fn the_cap_counts_the_data_lines_already_joined() {
        // An event of many data lines is as large as all of them: 10 joined bytes, then an
        // unfinished line that brings the total to the cap exactly, then one byte over it.
        let mut decoder = SseDecoder::new();
        decoder.push(b"data: 0123456789\n");
        assert_eq!(decoder.next_event(), Ok(None));
        decoder.push(&vec![b'b'; MAX_EVENT_BYTES - 10]);
        assert_eq!(decoder.next_event(), Ok(None));
        decoder.push(b"b");
        assert_eq!(decoder.next_event(), Err(SseError::TooLarge));
    }

    #[test]
    fn a_line_break_far_into_a_long_buffer_is_found() {
        // The scan resumes where it stopped: a line completed by a later push is still read.
        let mut decoder = SseDecoder::new();
        decoder.push(b"data: abc");
        assert_eq!(decoder.next_event(), Ok(None));
        decoder.push(b"def\r\n\r\ndata: x\n\n");
        assert_eq!(decoder.next_event(), Ok(Some("abcdef".into())));
        assert_eq!(decoder.next_event(), Ok(Some("x".into())));
        assert_eq!(decoder.next_event(), Ok(None));
    }
}
