//! Lesson 02, exercise 1 (a solution): lesson 02's server, counting what it
//! answered. It can count reads and bytes, not messages: nothing in the
//! stream marks where one message ends, and one read is not one message.

// ANCHOR: imports
use std::io::{Read, Write};
use std::net::TcpListener;
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
// ANCHOR_END: imports

// ANCHOR: args
/// Lesson 02, exercise 1: lesson 02's server that, when the caller hangs up,
/// says how many reads it answered and how many bytes they held.
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

// ANCHOR: count
fn run(addr: &str) -> anyhow::Result<()> {
    let listener = TcpListener::bind(addr).with_context(|| shared::cannot_listen(addr))?;
    shared::print_listening(listener.local_addr()?);
    let (mut conn, peer) = listener.accept().context("accept failed")?;
    println!("client {peer} connected");
    let mut buf = [0u8; 1024];
    // Two counters: one per answered read, and the bytes those reads held.
    let mut reads = 0u64;
    let mut bytes = 0u64;
    loop {
        let n = conn
            .read(&mut buf)
            .with_context(|| format!("reading from client {peer} failed"))?;
        if n == 0 {
            break;
        }
        reads += 1;
        bytes += n as u64;
        let data = &buf[..n];
        println!("client {peer} said {}", shared::show(data));
        conn.write_all(&shared::upper(data))
            .with_context(|| format!("replying to client {peer} failed"))?;
    }
    println!("client {peer} disconnected after {reads} reads ({bytes} bytes)");
    Ok(())
}
// ANCHOR_END: count
