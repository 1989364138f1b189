//! Lesson 03 client: lesson 02's client, pointed at lesson 03's server.
//!
//! Each line typed (or piped in) is one message. The client sends it, waits
//! for exactly as many bytes to come back, prints them, and asks again.

// ANCHOR: imports
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
// ANCHOR_END: imports

// ANCHOR: args
/// Lesson 03 client: the same as lesson 02's. Sends each line you type to lesson03-server and prints
/// the reply. End the input (Ctrl-D, or Ctrl-Z Enter on Windows) to hang up.
#[derive(Parser)]
#[command(version)]
struct Args {
    /// Address of the server: IP:PORT, [IPv6]:PORT or localhost:PORT
    #[arg(default_value = "127.0.0.1:9003", value_parser = shared::parse_addr)]
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
        TcpStream::connect(addr).with_context(|| shared::no_server(addr, "lesson03-server"))?;
    // ANCHOR_END: connect

    // ANCHOR: input
    for line in shared::input_lines() {
        let line = line.context("reading standard input failed")?;
        // Sending zero bytes sends nothing at all: the server would never
        // hear a message, never reply, and we would wait for ever. So blank
        // lines are skipped instead of sent.
        let message = line.trim_ascii();
        if message.is_empty() {
            continue;
        }
        // ANCHOR_END: input

        // ANCHOR: exchange
        // The reply is the message upper-cased, so it has the same length.
        // But it may arrive in many pieces: one `read` returns only what has
        // arrived so far. `read_exact` keeps reading until the buffer is full.
        //
        // We send in pieces too, and read each piece's reply before sending
        // the next. With one big `write_all` of a large message, we would not
        // read while writing, the replies would fill every buffer between us,
        // the server would stop reading to wait for us, and both of us would
        // wait for ever.
        const PIECE: usize = 64 * 1024;
        let mut reply = vec![0u8; message.len()];
        for (piece, answer) in message.chunks(PIECE).zip(reply.chunks_mut(PIECE)) {
            conn.write_all(piece)
                .context("sending to the server failed")?;
            conn.read_exact(answer)
                .context("the server closed the connection before it replied")?;
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
