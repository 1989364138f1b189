//! Lesson 07's wire format as the tests speak it, written here on its own
//! (not with the lesson's code), so that a mistake in the lesson cannot hide
//! behind the same mistake in the test: a 4-byte big-endian length, then
//! that many bytes.

use std::io::Write;
use std::net::TcpStream;

use anyhow::{Context, Result, ensure};

use crate::read_exactly;

/// The largest reply the tests accept before they call it a bug.
const MAX_REPLY: u32 = 16 * 1024 * 1024;

/// One frame: the length of `body` as 4 big-endian bytes, then `body`.
pub fn frame(body: &[u8]) -> Vec<u8> {
    let len = u32::try_from(body.len()).unwrap_or(u32::MAX);
    [&len.to_be_bytes()[..], body].concat()
}

/// Reads one frame with plain reads: 4 bytes of length, then the body.
pub fn reply(stream: &mut TcpStream) -> Result<Vec<u8>> {
    let len = read_exactly(stream, 4).context("reading a frame's length")?;
    let len = u32::from_be_bytes([len[0], len[1], len[2], len[3]]);
    ensure!(len <= MAX_REPLY, "a reply announced {len} bytes");
    read_exactly(stream, len as usize).context("reading a frame's body")
}

/// Sends `body` as one frame and checks that the reply is its upper case.
pub fn ask(stream: &mut TcpStream, body: &[u8]) -> Result<()> {
    stream.write_all(&frame(body)).context("sending a frame")?;
    let got = reply(stream)?;
    ensure!(
        got == body.to_ascii_uppercase(),
        "asked {body:?}, got {got:?}"
    );
    Ok(())
}
