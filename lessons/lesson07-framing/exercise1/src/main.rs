//! Lesson 07, exercise 1: a header (报头) that describes the body.
//!
//! Each message is a frame holding a small JSON object, the header, such as
//! `{"name":"notes.txt","size":11}`, followed by `size` raw bytes, the body.
//! The server answers with a header of its own, `{"ok":true,"name":...,
//! "size":...}`, then the body upper-cased. A header it cannot use gets
//! `{"ok":false,"error":...}`, and the server hangs up: without a size it
//! cannot know where the next message starts.

// ANCHOR: imports
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::ExitCode;
use std::thread;

use anyhow::Context;
use clap::Parser;
use lesson07_frame::{read_frame, write_frame};
use serde::Deserialize;
use serde_json::json;
// ANCHOR_END: imports

// ANCHOR: limits
/// The largest header we read. A header is read whole and parsed in memory,
/// so it gets a small limit of its own, whatever the body's limit is.
const MAX_HEADER: u32 = 8 * 1024;

/// What a header must say. Other fields are allowed and ignored.
#[derive(Deserialize)]
struct Header {
    name: String,
    size: u64,
}
// ANCHOR_END: limits

// ANCHOR: args
/// Lesson 07, exercise 1: reads a JSON header frame, then the body it
/// describes, and answers with a header and the body upper-cased.
#[derive(Parser)]
#[command(version)]
struct Args {
    /// Address to listen on: IP:PORT, [IPv6]:PORT or localhost:PORT (port 0 lets the system pick)
    #[arg(default_value = "127.0.0.1:9007", value_parser = shared::parse_addr)]
    addr: String,

    /// The largest body a header may announce, in bytes
    #[arg(long, value_name = "BYTES", default_value_t = 1024 * 1024)]
    max_body: u64,
}

fn main() -> ExitCode {
    let args: Args = shared::parse_args();
    shared::exit_status(run(&args.addr, args.max_body))
}

fn run(addr: &str, max_body: u64) -> anyhow::Result<()> {
    let listener = TcpListener::bind(addr).with_context(|| shared::cannot_listen(addr))?;
    shared::print_listening(listener.local_addr()?);
    for call in listener.incoming() {
        let Ok(conn) = call else { continue };
        let Ok(peer) = conn.peer_addr() else { continue };
        println!("client {peer} connected");
        thread::spawn(move || {
            let ending = serve(conn, peer, max_body);
            println!("client {peer} {ending}");
        });
    }
    Ok(())
}
// ANCHOR_END: args

// ANCHOR: serve
fn serve(mut conn: TcpStream, peer: SocketAddr, max_body: u64) -> String {
    loop {
        // 1. The header: one frame, small, read whole.
        let raw = match read_frame(&mut conn, MAX_HEADER) {
            Ok(Some(raw)) => raw,
            Ok(None) => return "closed the connection".into(),
            Err(err) => return format!("sent no whole header ({err:?}), hanging up"),
        };
        let header: Header = match serde_json::from_slice(&raw) {
            Ok(header) => header,
            Err(err) => return refuse(&mut conn, &format!("not a header: {err}")),
        };
        if header.size > max_body {
            let why = format!(
                "a body of {} bytes is over the limit of {max_body}",
                header.size
            );
            return refuse(&mut conn, &why);
        }
        // 2. The body: exactly `size` raw bytes, no frame of its own.
        let mut body = Vec::new();
        match (&mut conn).take(header.size).read_to_end(&mut body) {
            Ok(n) if n as u64 == header.size => {}
            Ok(n) => return format!("hung up after {n} of {} body bytes", header.size),
            Err(err) => return format!("error: {err}, hanging up"),
        }
        println!(
            "client {peer} sent {} ({} bytes)",
            shared::show(header.name.as_bytes()),
            body.len()
        );
        // 3. The answer: our own header, then the body upper-cased.
        let answer = json!({"ok": true, "name": header.name, "size": body.len()});
        let sent = write_frame(&mut conn, answer.to_string().as_bytes())
            .and_then(|()| conn.write_all(&shared::upper(&body)));
        if let Err(err) = sent {
            return format!("error: {err}, hanging up");
        }
    }
}

/// Answers `{"ok":false,"error":why}` and ends the call: after a header we
/// cannot use, we do not know where the next message would start.
fn refuse(conn: &mut TcpStream, why: &str) -> String {
    let answer = json!({"ok": false, "error": why});
    let _ = write_frame(conn, answer.to_string().as_bytes());
    format!("was refused: {why}; hanging up")
}
// ANCHOR_END: serve
