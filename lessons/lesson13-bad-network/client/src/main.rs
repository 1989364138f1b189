//! Lesson 13 client: lesson 04's client, with a time limit on every reply.
//!
//! A server that closes or resets the call is noticed at once. A server
//! (or a network) that simply goes silent is not: nothing arrives, not
//! even a goodbye. Only a clock can tell silence from slowness, so every
//! wait for a reply here has one.

// ANCHOR: imports
use std::io::{self, ErrorKind, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, anyhow};
use clap::Parser;
use clap::builder::RangedU64ValueParser;
// ANCHOR_END: imports

// ANCHOR: args
/// Lesson 13 client: lesson 04's client with a time limit. Sends each line
/// you type and prints the reply; gives up when no reply comes for
/// --timeout seconds. Type q to ask the server to hang up.
#[derive(Parser)]
#[command(version)]
struct Args {
    /// Address of the server (or of lesson13-proxy in front of it): IP:PORT,
    /// [IPv6]:PORT or localhost:PORT
    #[arg(default_value = "127.0.0.1:9013", value_parser = shared::parse_addr)]
    addr: String,

    /// Seconds to wait for a reply before giving up on the server
    #[arg(long, value_name = "SECS", default_value_t = 10,
          value_parser = RangedU64ValueParser::<u64>::new().range(1..))]
    timeout: u64,
}

fn main() -> ExitCode {
    let args: Args = shared::parse_args();
    shared::exit_status(run(&args.addr, Duration::from_secs(args.timeout)))
}
// ANCHOR_END: args

// ANCHOR: connect
fn run(addr: &str, limit: Duration) -> anyhow::Result<()> {
    let server = "lesson13-proxy";
    let mut conn = TcpStream::connect(addr)
        .with_context(|| shared::no_server(addr, server))?;
    // The one new line: every read and write now gives up after `limit`
    // with WouldBlock (TimedOut on Windows), instead of waiting for ever.
    conn.set_read_timeout(Some(limit))?;
    conn.set_write_timeout(Some(limit))?;
    // ANCHOR_END: connect

    // ANCHOR: talk
    let went_away = |err| went_away(err, limit);
    for line in shared::input_lines() {
        let line = line.context("reading standard input failed")?;
        let message = line.trim_ascii();
        if message.is_empty() {
            continue; // zero bytes would send nothing (lesson 02)
        }
        if message.eq_ignore_ascii_case(b"q") {
            // Lesson 04's goodbye: q, a half-close, and read to the end.
            conn.write_all(message).map_err(went_away)?;
            conn.shutdown(Shutdown::Write).map_err(went_away)?;
            let mut rest = Vec::new();
            conn.read_to_end(&mut rest).map_err(went_away)?;
            if !rest.is_empty() {
                println!("{}", String::from_utf8_lossy(&rest));
            }
            println!("server hung up, as asked");
            return Ok(());
        }
        const PIECE: usize = 64 * 1024;
        let mut reply = vec![0u8; message.len()];
        let pieces = message.chunks(PIECE).zip(reply.chunks_mut(PIECE));
        for (piece, answer) in pieces {
            conn.write_all(piece).map_err(went_away)?;
            conn.read_exact(answer).map_err(went_away)?;
        }
        println!("{}", String::from_utf8_lossy(&reply));
    }
    drop(conn); // end of input: hang up
    Ok(())
}
// ANCHOR_END: talk

// ANCHOR: went-away
/// Lesson 04's three endings, and the fourth that only a clock can see.
fn went_away(err: io::Error, limit: Duration) -> anyhow::Error {
    match err.kind() {
        ErrorKind::UnexpectedEof => anyhow!("server closed the connection"),
        ErrorKind::ConnectionReset
        | ErrorKind::ConnectionAborted
        | ErrorKind::BrokenPipe => anyhow!("server reset the connection"),
        // Silence: the server, or the line to it, may be dead. Nothing
        // else would ever tell us, so we hang up.
        ErrorKind::WouldBlock | ErrorKind::TimedOut => anyhow!(
            "no reply within {} s; the server or the line went silent, \
             hanging up",
            limit.as_secs()
        ),
        _ => anyhow::Error::new(err).context("talking to the server failed"),
    }
}
// ANCHOR_END: went-away
