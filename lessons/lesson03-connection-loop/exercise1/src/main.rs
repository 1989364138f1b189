//! Lesson 03, exercise 1 (a solution): lesson 03's server with the backlog
//! as an option, `--backlog N`, so you can watch the queue it bounds.

// ANCHOR: imports
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use socket2::{Domain, Protocol, Socket, Type};
// ANCHOR_END: imports

// ANCHOR: args
/// Lesson 03, exercise 1: lesson 03's server with a chosen backlog. Serves
/// callers one after another, for ever; stop it with Ctrl-C.
#[derive(Parser)]
#[command(version)]
struct Args {
    /// Address to listen on: IP:PORT, [IPv6]:PORT or localhost:PORT (port 0 lets the system pick)
    #[arg(default_value = "127.0.0.1:9003", value_parser = shared::parse_addr)]
    addr: String,

    /// The backlog given to listen: about how many callers may wait in line
    #[arg(long, default_value_t = 5)]
    backlog: u16,
}

fn main() -> ExitCode {
    let args: Args = shared::parse_args();
    shared::exit_status(run(&args))
}
// ANCHOR_END: args

// ANCHOR: listen
fn run(args: &Args) -> anyhow::Result<()> {
    let addr = args.addr.as_str();
    let address = shared::resolve(addr).with_context(|| shared::cannot_listen(addr))?;
    let socket = Socket::new(
        Domain::for_address(address),
        Type::STREAM,
        Some(Protocol::TCP),
    )
    .context("could not create a socket")?;
    #[cfg(unix)]
    socket
        .set_reuse_address(true)
        .context("could not set SO_REUSEADDR")?;
    socket
        .bind(&address.into())
        .with_context(|| shared::cannot_listen(addr))?;
    // The one change: the backlog comes from the command line.
    socket
        .listen(i32::from(args.backlog))
        .with_context(|| shared::cannot_listen(addr))?;
    let listener: TcpListener = socket.into();
    shared::print_listening(listener.local_addr()?);
    // ANCHOR_END: listen

    // ANCHOR: loops
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
}

fn serve(mut conn: TcpStream, peer: SocketAddr) -> io::Result<()> {
    let mut buf = [0u8; 1024];
    loop {
        let n = conn.read(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        let data = &buf[..n];
        println!("client {peer} said {}", shared::show(data));
        conn.write_all(&shared::upper(data))?;
    }
}
// ANCHOR_END: loops
