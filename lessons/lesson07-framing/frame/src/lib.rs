//! Lesson 07's framing: how to send whole messages over a byte stream.
//!
//! TCP delivers bytes, not messages: two `write`s may arrive in one `read`,
//! and one `write` in several (粘包, "sticky packets"). So every message
//! travels as a *frame*: a 4-byte length N, most significant byte first
//! ("big-endian", or "network byte order": Python's `struct.pack('!I', n)`),
//! then exactly N bytes. The reader reads the 4 bytes, then exactly N more,
//! however the bytes happen to arrive.
//!
//! The server, the client and the exercise of lesson 07 all use these two
//! functions, so the wire format is written down once.

// ANCHOR: imports
use std::io::{self, ErrorKind, Read, Write};
// ANCHOR_END: imports

// ANCHOR: write-frame
/// Sends `body` as one frame: its length as 4 big-endian bytes, then the body.
///
/// The length and the body go out in one `write_all`. Two small writes, the
/// length and then the body, would meet Nagle's algorithm: the kernel holds
/// the second small write back until the first is acknowledged, and the
/// other side may delay that acknowledgement by up to 40 ms.
pub fn write_frame(conn: &mut impl Write, body: &[u8]) -> io::Result<()> {
    let len = u32::try_from(body.len())
        .map_err(|_| io::Error::new(ErrorKind::InvalidInput, "a frame holds at most 4 GiB - 1"))?;
    let mut frame = Vec::with_capacity(4 + body.len());
    frame.extend_from_slice(&len.to_be_bytes());
    frame.extend_from_slice(body);
    conn.write_all(&frame)
}
// ANCHOR_END: write-frame

// ANCHOR: frame-error
/// Why no whole frame could be read.
#[derive(Debug)]
pub enum FrameError {
    /// The peer announced more bytes than we accept. Nothing of the body has
    /// been read, so the stream cannot be trusted any more: hang up.
    TooLong { announced: u32, limit: u32 },
    /// The stream ended inside a frame: `got` of the `expected` bytes of the
    /// length or of the body had arrived.
    CutOff { got: usize, expected: usize },
    /// The socket itself failed (a reset, a timeout, ...).
    Io(io::Error),
}
// ANCHOR_END: frame-error

// ANCHOR: read-frame
/// Reads one whole frame of at most `limit` bytes.
///
/// `Ok(None)` means the peer closed the connection cleanly, *between* frames:
/// the polite end of a conversation.
pub fn read_frame(conn: &mut impl Read, limit: u32) -> Result<Option<Vec<u8>>, FrameError> {
    // The length: exactly 4 bytes, however many reads that takes.
    let mut header = [0u8; 4];
    let got = read_fully(conn, &mut header).map_err(FrameError::Io)?;
    if got == 0 {
        return Ok(None);
    }
    if got < header.len() {
        return Err(FrameError::CutOff { got, expected: 4 });
    }
    let announced = u32::from_be_bytes(header);
    // Check the length *before* reading the body: a hostile peer can announce
    // 4 GiB in four bytes, and we must not believe it.
    if announced > limit {
        return Err(FrameError::TooLong { announced, limit });
    }
    // The body. `take` stops after `announced` bytes; `read_to_end` grows the
    // buffer only as bytes really arrive, so an announcement alone makes us
    // allocate nothing.
    let mut body = Vec::new();
    conn.take(u64::from(announced))
        .read_to_end(&mut body)
        .map_err(FrameError::Io)?;
    if body.len() < announced as usize {
        return Err(FrameError::CutOff {
            got: body.len(),
            expected: announced as usize,
        });
    }
    Ok(Some(body))
}

/// Fills `buf` unless the stream ends first; returns how many bytes arrived.
/// (`read_exact` cannot tell "nothing came" from "only half came".)
fn read_fully(conn: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match conn.read(&mut buf[got..]) {
            Ok(0) => break, // end of stream
            Ok(n) => got += n,
            Err(err) if err.kind() == ErrorKind::Interrupted => continue,
            Err(err) => return Err(err),
        }
    }
    Ok(got)
}
// ANCHOR_END: read-frame
