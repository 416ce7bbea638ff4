//! Connect streaming envelopes (`docs/kimi-protocol.md` §4.2): a flags byte, a 4-byte big-endian
//! length, then that many bytes of JSON. Pure and incremental: bytes in as they arrive, whole
//! frames out; a frame may be split anywhere, even inside its 5-byte header.

use std::fmt;
use std::io::{self, Read};

use crate::kimi::read_buffer::ReadBuffer;

/// A data message.
pub const FLAG_DATA: u8 = 0x00;
/// The payload is compressed (never seen from Kimi; refused).
pub const FLAG_COMPRESSED: u8 = 0x01;
/// The end-of-stream message: `{}` or `{"error": {...}}`.
pub const FLAG_END_STREAM: u8 = 0x02;

/// Frames larger than this are refused, so a broken upstream cannot fill memory.
pub const MAX_FRAME_BYTES: usize = 8 * 1024 * 1024;

const HEADER: usize = 5;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub flags: u8,
    pub payload: Vec<u8>,
}

impl Frame {
    pub fn is_end_stream(&self) -> bool {
        self.flags & FLAG_END_STREAM != 0
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EnvelopeError {
    TooLarge(usize),
    Compressed,
}

impl fmt::Display for EnvelopeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EnvelopeError::TooLarge(len) => {
                write!(f, "a Connect frame of {len} bytes exceeds the {MAX_FRAME_BYTES}-byte limit")
            }
            EnvelopeError::Compressed => {
                write!(f, "Kimi sent a compressed Connect frame, which is not supported")
            }
        }
    }
}

/// One envelope around `payload`.
pub fn encode(flags: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER + payload.len());
    out.push(flags);
    out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// Accumulates bytes and yields complete frames.
#[derive(Debug, Default)]
pub struct Decoder {
    buf: ReadBuffer,
}

impl Decoder {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.push(bytes);
    }

    /// Reads up to `max` bytes from `reader` straight into the decoder; returns what `read`
    /// returned, 0 at the end of the stream.
    pub fn read_from(&mut self, reader: &mut impl Read, max: usize) -> io::Result<usize> {
        self.buf.read_from(reader, max)
    }

    /// The next complete frame, if one is complete.
    pub fn next_frame(&mut self) -> Result<Option<Frame>, EnvelopeError> {
        let available = self.buf.unread();
        if available.len() < HEADER {
            return Ok(None);
        }
        let flags = available[0];
        let len = u32::from_be_bytes([available[1], available[2], available[3], available[4]]) as usize;
        if len > MAX_FRAME_BYTES {
            return Err(EnvelopeError::TooLarge(len));
        }
        if flags & FLAG_COMPRESSED != 0 {
            return Err(EnvelopeError::Compressed);
        }
        if available.len() < HEADER + len {
            return Ok(None);
        }
        let payload = available[HEADER..HEADER + len].to_vec();
        self.buf.consume(HEADER + len);
        Ok(Some(Frame { flags, payload }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames_of(stream: &[u8], splits: &[usize]) -> Result<Vec<Frame>, EnvelopeError> {
        let mut decoder = Decoder::new();
        let mut frames = Vec::new();
        let mut from = 0;
        for &to in splits.iter().chain(std::iter::once(&stream.len())) {
            decoder.push(&stream[from..to]);
            from = to;
            while let Some(frame) = decoder.next_frame()? {
                frames.push(frame);
            }
        }
        assert!(decoder.buf.unread().is_empty(), "an incomplete frame is left");
        Ok(frames)
    }

    #[test]
    fn byte_examples_from_the_spec() {
        assert_eq!(encode(FLAG_DATA, br#"{"heartbeat":{}}"#)[..5], [0, 0, 0, 0, 0x10]);
        assert_eq!(encode(FLAG_END_STREAM, b"{}"), [2, 0, 0, 0, 2, b'{', b'}']);
    }

    #[test]
    fn decodes_data_and_end_stream() {
        let mut stream = encode(FLAG_DATA, "{\"text\":\"你好\"}".as_bytes());
        stream.extend(encode(FLAG_DATA, b""));
        stream.extend(encode(FLAG_END_STREAM, b"{}"));
        let frames = frames_of(&stream, &[]).unwrap();
        assert_eq!(frames.len(), 3);
        assert_eq!(frames[0].payload, "{\"text\":\"你好\"}".as_bytes());
        assert!(frames[1].payload.is_empty() && !frames[1].is_end_stream());
        assert!(frames[2].is_end_stream());
    }

    #[test]
    fn random_split_points_give_the_same_frames() {
        let mut stream = Vec::new();
        for i in 0..20 {
            stream.extend(encode(FLAG_DATA, format!("{{\"n\":{i},\"s\":\"{}\"}}", "é".repeat(i)).as_bytes()));
        }
        stream.extend(encode(FLAG_END_STREAM, b"{}"));
        let whole = frames_of(&stream, &[]).unwrap();
        let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
        for _ in 0..500 {
            let mut splits = Vec::new();
            for _ in 0..(seed % 12) {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                splits.push((seed % stream.len() as u64) as usize);
            }
            splits.sort_unstable();
            assert_eq!(frames_of(&stream, &splits).unwrap(), whole, "splits {splits:?}");
        }
        // Every single split point, including each byte of every header.
        for at in 0..stream.len() {
            assert_eq!(frames_of(&stream, &[at]).unwrap(), whole);
        }
    }

    #[test]
    fn reads_straight_from_a_reader() {
        let mut stream = encode(FLAG_DATA, b"{\"a\":1}");
        stream.extend(encode(FLAG_END_STREAM, b"{}"));
        let mut reader = stream.as_slice();
        let mut decoder = Decoder::new();
        let mut frames = Vec::new();
        while decoder.read_from(&mut reader, 3).unwrap() > 0 {
            while let Some(frame) = decoder.next_frame().unwrap() {
                frames.push(frame);
            }
        }
        assert_eq!(frames, frames_of(&stream, &[]).unwrap());
    }

    #[test]
    fn a_frame_of_exactly_the_cap_is_accepted_one_byte_more_is_refused() {
        let header = |len: usize| {
            let mut h = vec![FLAG_DATA];
            h.extend_from_slice(&(len as u32).to_be_bytes());
            h
        };
        let mut decoder = Decoder::new();
        decoder.push(&header(MAX_FRAME_BYTES));
        assert_eq!(decoder.next_frame(), Ok(None), "a frame of MAX_FRAME_BYTES waits for its payload");
        decoder.push(&vec![b'x'; MAX_FRAME_BYTES]);
        let frame = decoder.next_frame().unwrap().unwrap();
        assert_eq!(frame.payload.len(), MAX_FRAME_BYTES);
        let mut decoder = Decoder::new();
        decoder.push(&header(MAX_FRAME_BYTES + 1));
        assert_eq!(decoder.next_frame(), Err(EnvelopeError::TooLarge(MAX_FRAME_BYTES + 1)));
        let message = EnvelopeError::TooLarge(MAX_FRAME_BYTES + 1).to_string();
        assert!(message.contains(&(MAX_FRAME_BYTES + 1).to_string()), "{message}");
        assert_eq!(MAX_FRAME_BYTES, 8 << 20, "the documented cap: 8 MiB");
    }

    #[test]
    fn a_frame_is_complete_at_exactly_its_length() {
        let mut decoder = Decoder::new();
        decoder.push(&[FLAG_DATA, 0, 0, 0]);
        assert_eq!(decoder.next_frame(), Ok(None), "four bytes are not a header");
        decoder.push(&[2, b'{']);
        assert_eq!(decoder.next_frame(), Ok(None), "one payload byte of two");
        decoder.push(b"}");
        assert_eq!(decoder.next_frame(), Ok(Some(Frame { flags: FLAG_DATA, payload: b"{}".to_vec() })));
        decoder.push(&[FLAG_END_STREAM, 0, 0, 0, 0]);
        let end = decoder.next_frame().unwrap().unwrap();
        assert!(end.is_end_stream() && end.payload.is_empty());
        assert_eq!(decoder.next_frame(), Ok(None));
    }

    #[test]
    fn oversized_and_compressed_frames_are_refused() {
        let mut decoder = Decoder::new();
        decoder.push(&[0, 0x7f, 0, 0, 0]);
        assert!(matches!(decoder.next_frame(), Err(EnvelopeError::TooLarge(_))));
        let mut decoder = Decoder::new();
        decoder.push(&encode(FLAG_COMPRESSED, b"x"));
        assert_eq!(decoder.next_frame(), Err(EnvelopeError::Compressed));
        assert!(EnvelopeError::Compressed.to_string().contains("compressed"));
    }
}
