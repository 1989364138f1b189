//! Lesson 04 client: lesson 02's client, plus a polite goodbye and one clear
//! line when the server goes away.
//!
//! Each line typed (or piped in) is one message. `q` asks the server to hang
//! up; the client waits until it has, and exits 0. If the server closes or
//! resets the connection while we are still talking, the client says which
//! in one line and exits 1.

// ANCHOR: imports
use std::io::{self, ErrorKind, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::process::ExitCode;

use anyhow::{Context, anyhow};
use clap::Parser;
// ANCHOR_END: imports

// ANCHOR: args
/// Lesson 04 client: sends each line you type to lesson04-server and prints
/// the reply. Type q to ask the server to hang up, or end the input (Ctrl-D,
/// or Ctrl-Z Enter on Windows).
#[derive(Parser)]
#[command(version)]
struct Args {
    /// Address of the server: IP:PORT, [IPv6]:PORT or localhost:PORT
    #[arg(default_value = "127.0.0.1:9004", value_parser = shared::parse_addr)]
    addr: String,
}

fn main() -> ExitCode {
    let args: Args = shared::parse_args();
    shared::exit_status(run(&args.addr))
}
// ANCHOR_END: args

// ANCHOR: connect
fn run(addr: &str) -> anyhow::Result<()> {
    let mut conn =
        TcpStream::connect(addr).with_context(|| shared::no_server(addr, "lesson04-server"))?;
    // ANCHOR_END: connect

    // ANCHOR: input
    for line in shared::input_lines() {
        let line = line.context("reading standard input failed")?;
        let message = line.trim_ascii();
        if message.is_empty() {
            continue; // zero bytes would send nothing (lesson 02)
        }
        // ANCHOR_END: input

        // ANCHOR: quit
        if message.eq_ignore_ascii_case(b"q") {
            // Send `q` like any message, then half-close: "I have nothing
            // more to say, but I am still listening". Our FIN also means a
            // server that does not know `q` sees end of stream and hangs up,
            // so we can never wait here for ever.
            conn.write_all(message).map_err(went_away)?;
            conn.shutdown(Shutdown::Write).map_err(went_away)?;
            // Read until the server hangs up: `read_to_end` returns when
            // `read` returns 0. Our server sends nothing more; another
            // server might, so show whatever came.
            let mut rest = Vec::new();
            conn.read_to_end(&mut rest).map_err(went_away)?;
            if !rest.is_empty() {
                println!("{}", String::from_utf8_lossy(&rest));
            }
            println!("server hung up, as asked");
            return Ok(());
        }
        // ANCHOR_END: quit

        // ANCHOR: exchange
        // Lesson 02's exchange: send in pieces, read each piece's reply in
        // full. Any failure now means the server went away mid-call.
        const PIECE: usize = 64 * 1024;
        let mut reply = vec![0u8; message.len()];
        for (piece, answer) in message.chunks(PIECE).zip(reply.chunks_mut(PIECE)) {
            conn.write_all(piece).map_err(went_away)?;
            conn.read_exact(answer).map_err(went_away)?;
        }
        println!("{}", String::from_utf8_lossy(&reply));
        // ANCHOR_END: exchange
    }

    // ANCHOR: close
    // End of input: hang up. The server's `read` returns 0 and it knows.
    drop(conn);
    Ok(())
    // ANCHOR_END: close
}

// ANCHOR: went-away
/// Turns a failed read or write into one line saying what the server did.
/// `main` prints it on stderr as `error: ...` and exits 1.
fn went_away(err: io::Error) -> anyhow::Error {
    match err.kind() {
        // `read_exact` got end of stream before the whole reply: the server
        // closed its side (a FIN), e.g. it timed us out or was stopped.
        ErrorKind::UnexpectedEof => anyhow!("server closed the connection"),
        // The server's kernel sent a reset (an RST); writing after one is
        // BrokenPipe (not a SIGPIPE death: Rust ignores that signal).
        ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted | ErrorKind::BrokenPipe => {
            anyhow!("server reset the connection")
        }
        _ => anyhow::Error::new(err).context("talking to the server failed"),
    }
}
// ANCHOR_END: went-away
