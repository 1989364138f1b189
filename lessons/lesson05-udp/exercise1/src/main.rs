//! Lesson 05, exercise 1 (a solution): lesson 05's client with a sequence
//! number in front of every datagram (`7:hello`), so that a late or
//! duplicated reply is never taken for the answer to the current line.
//! DNS does the same with the 16-bit ID in every query and answer.

// ANCHOR: imports
use std::io::ErrorKind;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Parser;
// ANCHOR_END: imports

// ANCHOR: args
/// Lesson 05, exercise 1: sends each line of stdin as one UDP datagram with a
/// sequence number in front (`1:hello`), and prints only the reply that
/// carries the same number.
#[derive(Parser)]
#[command(version)]
struct Args {
    /// Address of the server: IP:PORT, [IPv6]:PORT or localhost:PORT
    #[arg(default_value = "127.0.0.1:9005", value_parser = shared::parse_addr)]
    addr: String,
}

fn main() -> ExitCode {
    let args: Args = shared::parse_args();
    shared::exit_status(run(&args.addr))
}

/// How long to wait for a reply before sending the message again.
const WAIT: Duration = Duration::from_secs(1);
/// How many times to send one message before giving up on it.
const TRIES: u32 = 3;
// ANCHOR_END: args

// ANCHOR: socket
fn run(addr: &str) -> anyhow::Result<()> {
    // The same socket as the lesson's client: bound to port 0, connected to
    // the server so that only its datagrams reach us.
    let server = shared::resolve(addr).with_context(|| format!("could not resolve {addr}"))?;
    let local: SocketAddr = if server.is_ipv4() {
        (Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        (Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let socket = UdpSocket::bind(local).context("could not create a UDP socket")?;
    socket
        .connect(server)
        .with_context(|| format!("could not set {addr} as the peer"))?;
    // ANCHOR_END: socket

    // ANCHOR: number
    let mut buf = vec![0u8; 65_535];
    let mut unanswered = 0;
    // Line 1 is sent as `1:...`, line 2 as `2:...`. The server upper-cases
    // letters only, so the number comes back exactly as it went out.
    for (seq, line) in (1u32..).zip(shared::input_lines()) {
        let line = line.context("reading stdin failed")?;
        let mut message = format!("{seq}:").into_bytes();
        message.extend_from_slice(&line);
        match ask(&socket, seq, &message, &mut buf).with_context(|| format!("talking to {addr}"))? {
            Some(reply) => println!("{}", String::from_utf8_lossy(&reply)),
            None => {
                eprintln!("no reply from {addr} (is lesson05-server running?)");
                unanswered += 1;
            }
        }
    }
    drop(socket);
    if unanswered > 0 {
        bail!("{unanswered} message(s) got no reply from {addr}");
    }
    Ok(())
}
// ANCHOR_END: number

// ANCHOR: ask
/// Sends `message` (numbered `seq`) up to [`TRIES`] times and returns the
/// first reply numbered `seq`, without its number. Replies with another
/// number (late answers to earlier lines) are reported and thrown away.
fn ask(
    socket: &UdpSocket,
    seq: u32,
    message: &[u8],
    buf: &mut [u8],
) -> anyhow::Result<Option<Vec<u8>>> {
    for _ in 0..TRIES {
        match socket.send(message) {
            Ok(_) => {}
            Err(err) if refused(err.kind()) => continue,
            Err(err) => {
                return Err(err)
                    .with_context(|| format!("sending a {}-byte datagram failed", message.len()));
            }
        }
        // A stale reply must not buy more time: each try waits until one
        // deadline, however many stale replies arrive before it.
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            socket.set_read_timeout(Some(left))?;
            match socket.recv(buf) {
                Ok(n) => match buf[..n].strip_prefix(format!("{seq}:").as_bytes()) {
                    Some(reply) => return Ok(Some(reply.to_vec())),
                    None => eprintln!("ignored a stale reply {}", shared::show(&buf[..n])),
                },
                Err(err) if matches!(err.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    break;
                }
                Err(err) if refused(err.kind()) => break,
                Err(err) => return Err(err).context("receiving the reply failed"),
            }
        }
    }
    Ok(None)
}

/// "Port unreachable" on a connected UDP socket, as each system reports it.
fn refused(kind: ErrorKind) -> bool {
    matches!(
        kind,
        ErrorKind::ConnectionRefused | ErrorKind::ConnectionReset
    )
}
// ANCHOR_END: ask
