//! Lesson 01 client: call the server, say one thing, print the answer.

// ANCHOR: imports
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
// ANCHOR_END: imports

// ANCHOR: args
/// Lesson 01 client: sends one message to lesson01-server and prints the reply.
#[derive(Parser)]
#[command(version)]
struct Args {
    /// Address of the server: IP:PORT, [IPv6]:PORT or localhost:PORT
    #[arg(default_value = "127.0.0.1:9001", value_parser = shared::parse_addr)]
    addr: String,

    /// The text to send (not empty: sending zero bytes sends nothing)
    #[arg(long, default_value = "hello", value_parser = parse_message)]
    message: String,
}

/// Refuses `--message ""`: writing zero bytes sends nothing at all, so the
/// server would wait for a message and we for its reply, for ever.
fn parse_message(text: &str) -> Result<String, String> {
    if text.is_empty() {
        Err("an empty message sends nothing (zero bytes), so no reply would come".to_string())
    } else {
        Ok(text.to_string())
    }
}

fn main() -> ExitCode {
    let args: Args = shared::parse_args();
    shared::exit_status(run(&args))
}
// ANCHOR_END: args

// ANCHOR: connect
fn run(args: &Args) -> anyhow::Result<()> {
    // Buy a phone and dial. `connect` creates the socket and does TCP's
    // three-way handshake with the server (Python: socket(), connect()).
    let addr = &args.addr;
    let mut conn =
        TcpStream::connect(addr).with_context(|| shared::no_server(addr, "lesson01-server"))?;
    // ANCHOR_END: connect

    // ANCHOR: send
    // Talk: send the message as bytes. No newline is added; the server gets
    // exactly these bytes (Python: phone.send(b"hello")).
    conn.write_all(args.message.as_bytes())
        .context("sending the message failed")?;
    // ANCHOR_END: send

    // ANCHOR: recv
    // Listen for the answer: one read of up to 1024 bytes, then show it as
    // text. Invalid UTF-8 is shown as `�` instead of crashing.
    let mut buf = [0u8; 1024];
    let n = conn.read(&mut buf).context("reading the reply failed")?;
    println!("{}", String::from_utf8_lossy(&buf[..n]));
    // ANCHOR_END: recv

    // ANCHOR: close
    // Hang up: dropping the stream closes the connection (Python: phone.close()).
    drop(conn);
    Ok(())
    // ANCHOR_END: close
}
