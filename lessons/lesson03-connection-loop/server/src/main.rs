//! Lesson 03 server: the connection loop (链接循环).
//!
//! Lesson 02 served one caller and exited. This server puts lesson 02's
//! communication loop inside a second loop, so when one caller hangs up it
//! picks up the next one: for ever, one caller at a time.

// ANCHOR: imports
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use socket2::{Domain, Protocol, Socket, Type};
// ANCHOR_END: imports

// ANCHOR: args
/// Lesson 03 server: serves callers one after another, for ever. While it
/// talks with one, the next waits in the queue. Stop it with Ctrl-C.
#[derive(Parser)]
#[command(version)]
struct Args {
    /// Address to listen on: IP:PORT, [IPv6]:PORT or localhost:PORT (port 0 lets the system pick)
    #[arg(default_value = "127.0.0.1:9003", value_parser = shared::parse_addr)]
    addr: String,
}

fn main() -> ExitCode {
    let args: Args = shared::parse_args();
    shared::exit_status(run(&args.addr))
}
// ANCHOR_END: args

// ANCHOR: socket
fn run(addr: &str) -> anyhow::Result<()> {
    // Buy the phone. This time we make each call ourselves, as Python does,
    // because std's `TcpListener::bind` always listens with a backlog of 128
    // and we want to choose ours. The `socket2` crate exposes the plain calls.
    let address = shared::resolve(addr).with_context(|| shared::cannot_listen(addr))?;
    let socket = Socket::new(
        Domain::for_address(address),
        Type::STREAM,
        Some(Protocol::TCP),
    )
    .context("could not create a socket")?;
    // ANCHOR_END: socket

    // ANCHOR: reuseaddr
    // Let a restarted server take its port back at once, even while the
    // last conversation is still winding down in TIME_WAIT (Python:
    // `setsockopt(SOL_SOCKET, SO_REUSEADDR, 1)`). `TcpListener::bind` does
    // this for us on Unix; with a hand-made socket we must ask. On Windows
    // the option means "let another program share this port", which we do
    // not want, and restarts work there without it: so Unix only.
    #[cfg(unix)]
    socket
        .set_reuse_address(true)
        .context("could not set SO_REUSEADDR")?;
    // ANCHOR_END: reuseaddr

    // ANCHOR: bind-listen
    // Insert the SIM card, then switch the phone on. `listen(5)`: up to about
    // five callers whose connection the kernel has completed may wait in
    // the queue for `accept`.
    socket
        .bind(&address.into())
        .with_context(|| shared::cannot_listen(addr))?;
    socket
        .listen(5)
        .with_context(|| shared::cannot_listen(addr))?;
    // From here on it is an ordinary std listener.
    let listener: TcpListener = socket.into();
    shared::print_listening(listener.local_addr()?);
    // ANCHOR_END: bind-listen

    // ANCHOR: connection-loop
    // The connection loop: pick up, talk until that caller hangs up, repeat.
    // Whatever goes wrong with one caller is logged, and we pick up the next.
    loop {
        let (conn, peer) = match listener.accept() {
            Ok(call) => call,
            Err(err) => {
                println!("accept failed: {err}; waiting for the next client");
                continue;
            }
        };
        println!("client {peer} connected");
        match serve(conn, peer) {
            Ok(()) => println!("client {peer} disconnected"),
            Err(err) => println!("client {peer} disconnected with an error: {err}"),
        }
    }
    // ANCHOR_END: connection-loop
}

// ANCHOR: serve
/// Lesson 02's communication loop, now a function that returns its error
/// instead of ending the program. Returning drops `conn`: we hang up.
fn serve(mut conn: TcpStream, peer: SocketAddr) -> io::Result<()> {
    let mut buf = [0u8; 1024];
    loop {
        let n = conn.read(&mut buf)?;
        if n == 0 {
            return Ok(()); // the caller hung up
        }
        let data = &buf[..n];
        println!("client {peer} said {}", shared::show(data));
        conn.write_all(&shared::upper(data))?;
    }
}
// ANCHOR_END: serve
