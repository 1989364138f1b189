//! Lesson 01 server: the smallest complete TCP conversation.
//!
//! A phone that takes exactly one call: it waits for one caller, hears one
//! message, answers it in capitals, hangs up and is switched off.

// ANCHOR: imports
use std::io::{Read, Write};
use std::net::TcpListener;
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
// ANCHOR_END: imports

// ANCHOR: args
/// Lesson 01 server: waits for one caller, answers one message in capitals,
/// hangs up and exits.
#[derive(Parser)]
#[command(version)]
struct Args {
    /// Address to listen on: IP:PORT, [IPv6]:PORT or localhost:PORT (port 0 lets the system pick)
    #[arg(default_value = "127.0.0.1:9001", value_parser = shared::parse_addr)]
    addr: String,
}

fn main() -> ExitCode {
    let args: Args = shared::parse_args();
    shared::exit_status(run(&args.addr))
}
// ANCHOR_END: args

// ANCHOR: bind
fn run(addr: &str) -> anyhow::Result<()> {
    // Buy a phone, insert the SIM card, switch it on: one call does all three.
    // `TcpListener::bind` creates the socket, binds it to the address and
    // starts listening (Python: socket(), bind(), listen()).
    let listener = TcpListener::bind(addr).with_context(|| shared::cannot_listen(addr))?;
    shared::print_listening(listener.local_addr()?);
    // ANCHOR_END: bind

    // ANCHOR: accept
    // Wait for the phone to ring, then pick up. `accept` blocks until a caller
    // arrives and returns a *new* socket for this one conversation, plus the
    // caller's address. The listener itself only ever takes calls.
    let (mut conn, peer) = listener.accept().context("accept failed")?;
    println!("client {peer} connected");
    // ANCHOR_END: accept

    // ANCHOR: read
    // Listen. 1024 is the size of our buffer, not the size of a message:
    // `read` returns the bytes that have arrived so far (1 to 1024 of them),
    // or 0 if the caller has already hung up.
    let mut buf = [0u8; 1024];
    let n = conn
        .read(&mut buf)
        .with_context(|| format!("reading from client {peer} failed"))?;
    if n == 0 {
        println!("client {peer} hung up without saying anything");
        return Ok(());
    }
    let data = &buf[..n];
    println!("client {peer} said {}", shared::show(data));
    // ANCHOR_END: read

    // ANCHOR: reply
    // Talk back: the same bytes in capitals. `write_all` keeps writing until
    // the operating system has taken every byte (Python: sendall).
    conn.write_all(&shared::upper(data))
        .with_context(|| format!("replying to client {peer} failed"))?;
    // ANCHOR_END: reply

    // ANCHOR: close
    // Hang up, then switch the phone off. Dropping a socket closes it
    // (Python: conn.close(), phone.close()); `drop` just makes it visible.
    drop(conn);
    println!("hung up on client {peer}");
    drop(listener);
    Ok(())
    // ANCHOR_END: close
}
