//! Lesson 07, exercise 1: a header (报头) that describes the body.
//!
//! Each message is a frame holding a small JSON object, the header, such as
//! `{"name":"notes.txt","size":11}`, followed by `size` raw bytes, the body.
//! The server answers with a header of its own, `{"ok":true,"name":...,
//! "size":...}`, then the body upper-cased. A header it cannot use gets
//! `{"ok":false,"error":...}`, and the server hangs up: without a size it
//! cannot know where the next message starts.

// ANCHOR: imports
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::process::ExitCode;
use std::thread;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use clap::builder::RangedU64ValueParser;
use lesson07_frame::{FrameError, read_frame, write_frame};
use serde::Deserialize;
use serde_json::json;
use shared::Seats;
// ANCHOR_END: imports

// ANCHOR: limits
/// The largest header we read. A header is read whole and parsed in memory,
/// so it gets a small limit of its own, whatever the body's limit is.
const MAX_HEADER: u32 = 8 * 1024;

/// How long a caller may stay silent, or not read, as in lesson 04.
const IDLE: Duration = Duration::from_secs(60);

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
    /// Address to listen on: IP:PORT, [IPv6]:PORT or localhost:PORT
    /// (port 0 lets the system pick)
    #[arg(default_value = "127.0.0.1:9007", value_parser = shared::parse_addr)]
    addr: String,

    /// The largest body a header may announce, in bytes
    #[arg(long, value_name = "BYTES", default_value_t = 1024 * 1024)]
    max_body: u64,

    /// Serve at most this many clients at once; the next one gets
    /// `{"ok":false,...}` saying the server is full
    #[arg(long, value_name = "N", default_value_t = 100,
          value_parser = RangedU64ValueParser::<usize>::new().range(1..))]
    max_clients: usize,
}

fn main() -> ExitCode {
    let args: Args = shared::parse_args();
    let seats = Seats::new(args.max_clients);
    shared::exit_status(run(&args.addr, args.max_body, seats))
}

/// The lesson's connection loop: a thread per caller, a seat each, and
/// an accept that fails is said once and tried again every 100 ms.
fn run(addr: &str, max_body: u64, seats: Seats) -> anyhow::Result<()> {
    let listener =
        TcpListener::bind(addr).with_context(|| shared::cannot_listen(addr))?;
    shared::print_listening(listener.local_addr()?);
    let mut failures = shared::AcceptLog::default();
    loop {
        let (mut conn, peer) = match listener.accept() {
            Ok(call) => call,
            Err(err) => {
                failures.failed(&err);
                thread::sleep(shared::ACCEPT_RETRY);
                continue;
            }
        };
        failures.worked();
        let Some(seat) = seats.take() else {
            // The protocol's own refusal, as for a bad header.
            let max = seats.max();
            let why = format!(
                "server full: {max} clients are being served, try again later"
            );
            let answer = json!({"ok": false, "error": why});
            let _ = write_frame(&mut conn, answer.to_string().as_bytes());
            println!(
                "client {peer} turned away: the server is full ({max} clients)"
            );
            continue;
        };
        println!("client {peer} connected");
        let talk = move || {
            let ending = serve(conn, peer, max_body);
            drop(seat);
            println!("client {peer} {ending}");
        };
        if let Err(err) = thread::Builder::new().spawn(talk) {
            println!("client {peer} could not be served: {err}; hanging up");
        }
    }
}
// ANCHOR_END: args

// ANCHOR: serve
fn serve(mut conn: TcpStream, peer: SocketAddr, max_body: u64) -> String {
    if let Err(err) = conn
        .set_read_timeout(Some(IDLE))
        .and_then(|()| conn.set_write_timeout(Some(IDLE)))
    {
        return format!("could not be served: {err}");
    }
    loop {
        // 1. The header: one frame, small, read whole.
        let raw = match read_frame(&mut conn, MAX_HEADER) {
            Ok(Some(raw)) => raw,
            Ok(None) => return "closed the connection".into(),
            // A header over the limit is refused in words, like a bad one;
            // a length read backwards (`struct.pack('i')` instead of
            // `'!I'`) gets a hint.
            Err(FrameError::TooLong { announced, limit }) => {
                let back = announced.swap_bytes();
                let hint = if back <= limit {
                    format!(" (backwards it reads {back}: use '!I')")
                } else {
                    String::new()
                };
                let why = format!(
                    "a header of {announced} bytes is over the limit \
                     of {limit}{hint}"
                );
                return refuse(&mut conn, &why);
            }
            Err(err) => return format!("sent no whole header: {err}"),
        };
        let header: Header = match serde_json::from_slice(&raw) {
            Ok(header) => header,
            Err(err) => {
                return refuse(&mut conn, &format!("not a header: {err}"));
            }
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
            Ok(n) => {
                return format!(
                    "hung up after {n} of {} body bytes",
                    header.size
                );
            }
            Err(err) => return format!("error: {err}, hanging up"),
        }
        println!(
            "client {peer} sent {} ({} bytes)",
            shared::show(header.name.as_bytes()),
            body.len()
        );
        // 3. The answer: our own header, then the body upper-cased.
        let answer =
            json!({"ok": true, "name": header.name, "size": body.len()});
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
    // The caller may have sent its body right behind the header. Closing
    // with those bytes unread would send a reset, and a reset can destroy
    // our answer before the caller reads it (Windows does). So: say we are
    // done, then read and drop what still comes, for a moment.
    let _ = conn.shutdown(Shutdown::Write);
    let _ = conn.set_read_timeout(Some(Duration::from_secs(1)));
    let _ = io::copy(&mut conn.take(16 * 1024 * 1024), &mut io::sink());
    format!("was refused: {why}; hanging up")
}
// ANCHOR_END: serve
