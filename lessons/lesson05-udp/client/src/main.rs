//! Lesson 05 client: send each line as one datagram, wait for the answer.
//!
//! UDP promises nothing: a datagram may be lost, duplicated or overtaken by
//! a later one, and nobody tells the sender. So the client does what anyone
//! does when a letter goes unanswered: it waits a while, sends it again, and
//! after a few tries gives up on that message and says so.

// ANCHOR: imports
use std::io::ErrorKind;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Parser;
// ANCHOR_END: imports

// ANCHOR: args
/// Lesson 05 client: sends each line of stdin as one UDP datagram to
/// lesson05-server and prints each reply. Empty lines are sent too.
#[derive(Parser)]
#[command(version)]
struct Args {
    /// Address of the server: IP:PORT, [IPv6]:PORT or localhost:PORT
    #[arg(default_value = "127.0.0.1:9005", value_parser = shared::parse_addr)]
    addr: String,

    /// Size in bytes of the buffer a reply is read into; a longer reply is
    /// cut to this size without any warning (try 1024 with a long line)
    #[arg(long, value_name = "BYTES", default_value_t = 65_535, value_parser = clap::value_parser!(u16).range(1..))]
    buffer: u16,
}

fn main() -> ExitCode {
    let args: Args = shared::parse_args();
    shared::exit_status(run(&args))
}
// ANCHOR_END: args

// ANCHOR: patience
/// How long to wait for a reply before sending the message again.
const WAIT: Duration = Duration::from_secs(1);
/// How many times to send one message before giving up on it.
const TRIES: u32 = 3;
// ANCHOR_END: patience

// ANCHOR: connect
fn run(args: &Args) -> anyhow::Result<()> {
    let addr = &args.addr;
    let server = shared::resolve(addr).with_context(|| format!("could not resolve {addr}"))?;

    // Our own address: any local IP of the server's family, port 0, so the
    // system picks a free port (Python's first `sendto` does this silently).
    let local: SocketAddr = if server.is_ipv4() {
        (Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        (Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let socket = UdpSocket::bind(local).context("could not create a UDP socket")?;

    // `connect` on a UDP socket sends nothing and waits for nothing: it only
    // writes the server's address into our socket. That buys two things:
    // the system now drops datagrams from anyone else (a filter), and an
    // ICMP "port unreachable" for our datagrams comes back to us as an
    // error on `recv` (`ConnectionRefused`) instead of being thrown away.
    socket
        .connect(server)
        .with_context(|| format!("could not set {addr} as the peer"))?;

    // Without a timeout, one lost datagram would make `recv` wait forever.
    socket.set_read_timeout(Some(WAIT))?;
    // ANCHOR_END: connect

    // ANCHOR: lines
    let mut buf = vec![0u8; usize::from(args.buffer)];
    let mut unanswered = 0;
    for line in shared::input_lines() {
        let line = line.context("reading stdin failed")?;
        // No check for empty lines, unlike lesson 02: an empty datagram is a
        // real message (the server sees it, and answers with another one).
        match ask(&socket, &line, &mut buf).with_context(|| format!("talking to {addr}"))? {
            Some(n) => println!("{}", String::from_utf8_lossy(&buf[..n])),
            None => {
                eprintln!("no reply from {addr} (is lesson05-server running?)");
                unanswered += 1;
            }
        }
    }
    // ANCHOR_END: lines

    // ANCHOR: end
    // End of input. There is no connection to close: dropping the socket
    // just frees our port, and the server never hears of it.
    drop(socket);
    if unanswered > 0 {
        bail!("{unanswered} message(s) got no reply from {addr}");
    }
    Ok(())
}
// ANCHOR_END: end

// ANCHOR: ask
/// Sends `message` as one datagram and waits up to [`WAIT`] for the reply,
/// [`TRIES`] times at most. Returns the reply's length in `buf`, or `None`
/// if no reply came.
fn ask(socket: &UdpSocket, message: &[u8], buf: &mut [u8]) -> anyhow::Result<Option<usize>> {
    for _ in 0..TRIES {
        // `send`, not `send_to`: the socket is connected, it knows where to.
        // One call, one datagram: all of `message` or an error (too big, for
        // example), never a part of it as with TCP.
        match socket.send(message) {
            Ok(_) => {}
            // A "port unreachable" from an earlier try may surface here.
            Err(err) if refused(err.kind()) => continue,
            Err(err) => {
                return Err(err)
                    .with_context(|| format!("sending a {}-byte datagram failed", message.len()));
            }
        }
        // `recv`, not `recv_from`: only the server's datagrams reach us.
        match socket.recv(buf) {
            Ok(n) => return Ok(Some(n)),
            // Nothing within WAIT: our datagram or its reply was lost, or
            // nobody is there. Unix says WouldBlock here, Windows TimedOut.
            Err(err) if matches!(err.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            // "Port unreachable": nothing is bound there (yet). Try again.
            Err(err) if refused(err.kind()) => {}
            Err(err) => return Err(err).context("receiving the reply failed"),
        }
    }
    Ok(None)
}

/// How "port unreachable" shows up on a connected UDP socket: Linux and
/// macOS say `ConnectionRefused`, Windows says `ConnectionReset`.
fn refused(kind: ErrorKind) -> bool {
    matches!(
        kind,
        ErrorKind::ConnectionRefused | ErrorKind::ConnectionReset
    )
}
// ANCHOR_END: ask
