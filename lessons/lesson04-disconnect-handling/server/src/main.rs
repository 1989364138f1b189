//! Lesson 04 server: lesson 03's server, hardened against every way a call
//! can end.
//!
//! A call does not always end with a polite goodbye. The caller may hang up
//! (end of stream), the line may go dead (a reset), the caller may fall
//! silent, or the caller may ask us to hang up (`q`). This server tells these
//! apart, says in one log line which one happened, and then picks up the
//! next call. Nothing one caller does ends the server.

// ANCHOR: imports
use std::io::{self, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use socket2::{Domain, Protocol, Socket, Type};
// ANCHOR_END: imports

// ANCHOR: args
/// Lesson 04 server: serves callers one after another, for ever, and logs how
/// each call ended (closed, reset, idle too long, or `q` to quit). Stop it
/// with Ctrl-C.
#[derive(Parser)]
#[command(version)]
struct Args {
    /// Address to listen on: IP:PORT, [IPv6]:PORT or localhost:PORT (port 0 lets the system pick)
    #[arg(default_value = "127.0.0.1:9004", value_parser = shared::parse_addr)]
    addr: String,

    /// Hang up on a client that sends nothing, or reads nothing, for this many seconds (at least 1)
    #[arg(long, value_name = "SECS", default_value = "60", value_parser = parse_secs)]
    idle_timeout: u64,
}

/// Checks `--idle-timeout`. Zero is refused: `set_read_timeout` treats
/// `Some(Duration::ZERO)` as an error, and "no time at all" is not a timeout.
fn parse_secs(text: &str) -> Result<u64, String> {
    match text.parse::<u64>() {
        Ok(0) => Err("the timeout must be at least 1 second".to_string()),
        Ok(secs) => Ok(secs),
        Err(_) => Err("expected a whole number of seconds, e.g. 60".to_string()),
    }
}

fn main() -> ExitCode {
    let args: Args = shared::parse_args();
    let idle = Duration::from_secs(args.idle_timeout);
    shared::exit_status(run(&args.addr, idle))
}
// ANCHOR_END: args

// ANCHOR: listen
fn run(addr: &str, idle: Duration) -> anyhow::Result<()> {
    // Exactly lesson 03: socket, SO_REUSEADDR (Unix only), bind, listen(5).
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
    socket
        .listen(5)
        .with_context(|| shared::cannot_listen(addr))?;
    let listener: TcpListener = socket.into();
    shared::print_listening(listener.local_addr()?);
    // ANCHOR_END: listen

    // ANCHOR: connection-loop
    // The connection loop. `serve` never returns an error: it returns how the
    // call ended, and every ending is one log line, then the next call.
    loop {
        let (mut conn, peer) = match listener.accept() {
            Ok(call) => call,
            Err(err) => {
                println!("accept failed: {err}; waiting for the next client");
                continue;
            }
        };
        println!("client {peer} connected");
        let secs = idle.as_secs();
        match serve(&mut conn, peer, idle) {
            Ending::Closed => println!("client {peer} closed the connection"),
            Ending::Reset => println!("client {peer} reset the connection"),
            Ending::Quit => println!("client {peer} asked to quit, hanging up"),
            Ending::Idle => println!("client {peer} was idle for {secs} s, hanging up"),
            Ending::NotReading => {
                println!("client {peer} did not read our reply for {secs} s, hanging up")
            }
            Ending::Failed(err) => println!("client {peer}: error: {err}, hanging up"),
        }
        // Hang up, however the call ended. If the client already hung up,
        // this frees our half of the connection; otherwise it ends the call.
        drop(conn);
    }
    // ANCHOR_END: connection-loop
}

// ANCHOR: ending
/// How a call ended. The connection loop gives each its own log line.
enum Ending {
    /// `read` returned 0: the client closed its side (it sent a FIN).
    Closed,
    /// The client's side sent a reset (an RST) instead of a FIN.
    Reset,
    /// The client sent `q`: we hang up from our side.
    Quit,
    /// Nothing arrived for the whole idle timeout.
    Idle,
    /// Our reply did not get out for the whole timeout: the client is not reading.
    NotReading,
    /// Anything else the operating system reported.
    Failed(io::Error),
}
// ANCHOR_END: ending

// ANCHOR: timeouts
/// Lesson 03's communication loop, with every way out named.
fn serve(conn: &mut TcpStream, peer: SocketAddr, idle: Duration) -> Ending {
    // Without a timeout, `read` waits for ever for a client that went silent,
    // and a sequential server then never picks up anyone else. The write
    // timeout guards the other direction: a client that sends but never
    // reads fills the buffers between us until `write_all` blocks, for ever.
    let timeouts = conn
        .set_read_timeout(Some(idle))
        .and_then(|()| conn.set_write_timeout(Some(idle)));
    if let Err(err) = timeouts {
        return Ending::Failed(err);
    }
    // ANCHOR_END: timeouts

    // ANCHOR: read
    let mut buf = [0u8; 1024];
    loop {
        let n = match conn.read(&mut buf) {
            // End of stream: the client hung up politely. Not an error.
            Ok(0) => return Ending::Closed,
            Ok(n) => n,
            Err(err) => {
                return match err.kind() {
                    // The client's kernel answered with a reset: the program
                    // crashed, or closed while our data was still unread.
                    ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted => Ending::Reset,
                    // The read timeout ran out. Unix calls this WouldBlock
                    // (EAGAIN), Windows TimedOut: both mean "nothing came".
                    ErrorKind::WouldBlock | ErrorKind::TimedOut => Ending::Idle,
                    _ => Ending::Failed(err),
                };
            }
        };
        let data = &buf[..n];
        println!("client {peer} said {}", shared::show(data));
        // ANCHOR_END: read

        // ANCHOR: quit
        // `q` or `Q`, with any spaces or line ending around it, means "please
        // hang up". This assumes one read holds one whole message, which is
        // true for our client's short lines but not promised by TCP (see the
        // chapter: this is 粘包, missing message framing).
        if data.trim_ascii().eq_ignore_ascii_case(b"q") {
            return Ending::Quit;
        }
        // ANCHOR_END: quit

        // ANCHOR: write
        if let Err(err) = conn.write_all(&shared::upper(data)) {
            return match err.kind() {
                // Writing to a connection the client has already torn down.
                // Rust ignores SIGPIPE, so this is an error, not a dead server.
                ErrorKind::BrokenPipe
                | ErrorKind::ConnectionReset
                | ErrorKind::ConnectionAborted => Ending::Reset,
                // The write timeout ran out: the client is not reading.
                ErrorKind::WouldBlock | ErrorKind::TimedOut => Ending::NotReading,
                _ => Ending::Failed(err),
            };
        }
    }
}
// ANCHOR_END: write
