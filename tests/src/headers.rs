//! Lesson 08's protocol, spoken by the tests themselves (written again on
//! the test side, not taken from the lesson's code): a request or an
//! answer is a frame holding a JSON header, a 4-byte big-endian length and
//! then the JSON; file bodies follow raw.

use std::io::Write;
use std::net::TcpStream;

use anyhow::{Context, Result, ensure};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::read_exactly;

/// The largest header the servers accept, as the tests read them too.
const MAX_HEADER: usize = 64 * 1024;

/// The SHA-256 of `data` in lower-case hex, as headers carry it.
pub fn sha256_hex(data: &[u8]) -> String {
    format!("{:x}", Sha256::digest(data))
}

/// `header` as one frame (lesson 07's frames: the length, then the JSON).
pub fn frame_of(header: &Value) -> Vec<u8> {
    crate::frames::frame(header.to_string().as_bytes())
}

/// Sends `header` as one frame.
pub fn send_json(conn: &mut TcpStream, header: &Value) -> Result<()> {
    conn.write_all(&frame_of(header))
        .context("sending a header")
}

/// Reads one header, refusing a length over the servers' own limit.
pub fn read_json(conn: &mut TcpStream) -> Result<Value> {
    let len = read_exactly(conn, 4)?;
    let len = u32::from_be_bytes([len[0], len[1], len[2], len[3]]) as usize;
    ensure!(
        len <= MAX_HEADER,
        "the server announced a header of {len} bytes"
    );
    let body = read_exactly(conn, len)?;
    serde_json::from_slice(&body).context("the server's header is not JSON")
}

/// The header of a `put` of `data` as `name`.
pub fn put_header(name: &str, data: &[u8]) -> Value {
    json!({"cmd": "put", "name": name, "size": data.len(), "sha256": sha256_hex(data)})
}

/// A whole `get`: the bytes, checked against the announced size and sha256.
pub fn get(conn: &mut TcpStream, name: &str) -> Result<Vec<u8>> {
    send_json(conn, &json!({"cmd": "get", "name": name}))?;
    let found = read_json(conn)?;
    ensure!(found["ok"] == true, "get {name:?}: {found}");
    let size = found["size"].as_u64().context("no size")? as usize;
    let data = read_exactly(conn, size)?;
    ensure!(
        found["sha256"] == sha256_hex(&data),
        "get {name:?}: bad sha256"
    );
    Ok(data)
}
