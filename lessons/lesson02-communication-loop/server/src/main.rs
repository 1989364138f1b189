//! Lesson 02 server: the communication loop (通信循环).
//!
//! Lesson 01 hung up after one message. This server keeps the line open: it
//! answers message after message from one caller until the caller hangs up.

// ANCHOR: imports
use std::io::{Read, Write};
use std::net::TcpListener;
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
// ANCHOR_END: imports

// ANCHOR: args
/// Lesson 02 server: talks with one caller, answering every message in
/// capitals, until the caller hangs up; then exits.
#[derive(Parser)]
#[command(version)]
struct Args {
    /// Address to listen on: IP:PORT, [IPv6]:PORT or localhost:PORT (port 0 lets the system pick)
    #[arg(default_value = "127.0.0.1:9002", value_parser = shared::parse_addr)]
    addr: String,
}

fn main() -> ExitCode {
    let args: Args = shared::parse_args();
    shared::exit_status(run(&args.addr))
}
// ANCHOR_END: args

// ANCHOR: bind-accept
fn run(addr: &str) -> anyhow::Result<()> {
    // Same as lesson 01: socket + bind + listen in one call, then pick up.
    let listener = TcpListener::bind(addr).with_context(|| shared::cannot_listen(addr))?;
    shared::print_listening(listener.local_addr()?);
    let (mut conn, peer) = listener.accept().context("accept failed")?;
    println!("client {peer} connected");
    // ANCHOR_END: bind-accept

    // ANCHOR: loop
    // The communication loop: read whatever has arrived, answer it, repeat.
    let mut buf = [0u8; 1024];
    loop {
        let n = conn
            .read(&mut buf)
            .with_context(|| format!("reading from client {peer} failed"))?;
        // ANCHOR: eof
        // `Ok(0)` is how the other side says "I hung up": end of stream.
        // It will never be followed by more data, so we must leave the loop;
        // calling `read` again would return 0 again, for ever (a busy spin).
        if n == 0 {
            println!("client {peer} disconnected");
            break;
        }
        // ANCHOR_END: eof
        let data = &buf[..n];
        println!("client {peer} said {}", shared::show(data));
        conn.write_all(&shared::upper(data))
            .with_context(|| format!("replying to client {peer} failed"))?;
    }
    // ANCHOR_END: loop

    // ANCHOR: close
    // Hang up our side too, switch the phone off, and end the program.
    drop(conn);
    drop(listener);
    Ok(())
    // ANCHOR_END: close
}
