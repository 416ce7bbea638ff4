//! Bytes read from an upstream stream and not yet consumed by a decoder: the buffer both the
//! SSE decoder and the Connect envelope decoder read into.

use std::io::{self, Read};

#[derive(Debug, Default)]
pub struct ReadBuffer {
    bytes: Vec<u8>,
    /// Bytes before this index are consumed.
    start: usize,
}

impl ReadBuffer {
    /// Appends bytes.
    pub fn push(&mut self, bytes: &[u8]) {
        self.compact();
        self.bytes.extend_from_slice(bytes);
    }

    /// Reads up to `max` bytes from `reader` straight into the buffer (so a stream needs no
    /// other read buffer); returns what `read` returned, 0 at the end of the stream.
    pub fn read_from(&mut self, reader: &mut impl Read, max: usize) -> io::Result<usize> {
        self.compact();
        let filled = self.bytes.len();
        self.bytes.resize(filled + max, 0);
        let read = reader.read(&mut self.bytes[filled..]);
        self.bytes.truncate(filled + *read.as_ref().unwrap_or(&0));
        read
    }

    /// The bytes not yet consumed.
    pub fn unread(&self) -> &[u8] {
        &self.bytes[self.start..]
    }

    /// Marks the first `n` unread bytes consumed.
    pub fn consume(&mut self, n: usize) {
        self.start = (self.start + n).min(self.bytes.len());
    }

    /// Drops consumed bytes: once per read, not once per line or frame.
    fn compact(&mut self) {
        if self.start > 0 {
            self.bytes.drain(..self.start);
            self.start = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_pushes_and_consumes() {
        let mut buffer = ReadBuffer::default();
        buffer.push(b"abc");
        buffer.consume(1);
        assert_eq!(buffer.unread(), b"bc");
        let mut reader: &[u8] = b"defgh";
        assert_eq!(buffer.read_from(&mut reader, 3).unwrap(), 3);
        assert_eq!(buffer.unread(), b"bcdef");
        assert_eq!(buffer.read_from(&mut reader, 8).unwrap(), 2);
        assert_eq!(buffer.read_from(&mut reader, 8).unwrap(), 0);
        buffer.consume(100);
        assert_eq!(buffer.unread(), b"");
    }
}
