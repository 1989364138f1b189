//! Lesson 01, exercise 1 (a solution): take `--calls N` calls, one after
//! another, then exit. Lesson 01's server with a counted loop around the call.

// ANCHOR: imports
use std::io::{Read, Write};
use std::net::TcpListener;
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
// ANCHOR_END: imports

// ANCHOR: args
/// Lesson 01, exercise 1: answers one message from each of N callers, one
/// after another, then exits.
#[derive(Parser)]
#[command(version)]
struct Args {
    /// Address to listen on: IP:PORT, [IPv6]:PORT or localhost:PORT
    #[arg(default_value = "127.0.0.1:9001", value_parser = shared::parse_addr)]
    addr: String,

    /// How many calls to take before exiting
    #[arg(long, default_value_t = 3)]
    calls: u32,
}

fn main() -> ExitCode {
    let args: Args = shared::parse_args();
    shared::exit_status(run(&args))
}
// ANCHOR_END: args

// ANCHOR: calls
fn run(args: &Args) -> anyhow::Result<()> {
    let listener =
        TcpListener::bind(&args.addr).with_context(|| shared::cannot_listen(&args.addr))?;
    shared::print_listening(listener.local_addr()?);
    // The listener stays open between calls: only `conn` is hung up each time.
    for call in 1..=args.calls {
        let (mut conn, peer) = listener.accept().context("accept failed")?;
        println!("call {call} of {}: client {peer} connected", args.calls);
        let mut buf = [0u8; 1024];
        let n = conn
            .read(&mut buf)
            .with_context(|| format!("reading from client {peer} failed"))?;
        conn.write_all(&shared::upper(&buf[..n]))
            .with_context(|| format!("replying to client {peer} failed"))?;
        println!("hung up on client {peer}");
    }
    Ok(())
}
// ANCHOR_END: calls
