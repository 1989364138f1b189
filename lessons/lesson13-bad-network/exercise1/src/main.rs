//! Lesson 13, exercise 1: a file over UDP that arrives whole, through a
//! network that loses, doubles and reorders datagrams.
//!
//! Stop-and-wait: the sender sends one piece, numbered, and waits for the
//! receiver's acknowledgement of that number. No acknowledgement in time:
//! it sends the same piece again. The receiver writes each number once,
//! in order, and acknowledges every copy it gets, so that a lost
//! acknowledgement is made good by the next one.

// ANCHOR: imports
use std::fs::File;
use std::io::{self, BufWriter, ErrorKind, Read, Write};
use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Parser;
use sha2::{Digest, Sha256};
// ANCHOR_END: imports

// ANCHOR: args
/// Lesson 13, exercise 1: stop-and-wait over UDP. One side receives a file
/// (--receive FILE, listening on ADDR), the other sends one (--send FILE,
/// to ADDR), each piece numbered, acknowledged, and sent again until it is.
#[derive(Parser)]
#[command(version)]
struct Args {
    /// With --send, where to send (the proxy, or the receiver); with
    /// --receive, where to listen: IP:PORT, [IPv6]:PORT or localhost:PORT
    #[arg(default_value = "127.0.0.1:9013", value_parser = shared::parse_addr)]
    addr: String,

    /// Send this file to ADDR
    #[arg(long, value_name = "FILE", conflicts_with = "receive")]
    send: Option<PathBuf>,

    /// Listen on ADDR and write what one sender sends into this file
    #[arg(long, value_name = "FILE", required_unless_present = "send")]
    receive: Option<PathBuf>,
}

fn main() -> ExitCode {
    let args: Args = shared::parse_args();
    let result = match (&args.send, &args.receive) {
        (Some(file), _) => send(&args.addr, file),
        (None, Some(file)) => receive(&args.addr, file),
        (None, None) => Ok(()), // clap requires one of the two
    };
    shared::exit_status(result)
}
// ANCHOR_END: args

// ANCHOR: protocol
/// A piece of the file: 4 bytes of number, big-endian, then the bytes.
/// The piece with no bytes marks the end. An acknowledgement is the
/// 4 bytes of the number alone.
///
/// 32 KiB a piece, because loopback carries datagrams up to 64 KiB whole.
/// Over a real network you would stay under its packet size, about 1400.
const PIECE: usize = 32 * 1024;

/// How long the sender waits for an acknowledgement before sending again.
const RETRY: Duration = Duration::from_millis(10);

/// How many times one piece is sent before the sender gives up.
const TRIES: u32 = 100;

/// How long the receiver waits for the next piece before it gives up.
const QUIET: Duration = Duration::from_secs(30);

/// After the end, how long the receiver goes on acknowledging copies: its
/// last acknowledgement may be lost, and the sender is still asking.
const LINGER: Duration = Duration::from_secs(2);

fn number_of(datagram: &[u8]) -> Option<u32> {
    let bytes: [u8; 4] = datagram.get(..4)?.try_into().ok()?;
    Some(u32::from_be_bytes(bytes))
}
// ANCHOR_END: protocol

// ANCHOR: send
fn send(addr: &str, path: &Path) -> anyhow::Result<()> {
    let mut file = File::open(path)
        .with_context(|| format!("could not open {}", path.display()))?;
    let socket = UdpSocket::bind(if addr.starts_with('[') {
        "[::]:0"
    } else {
        "0.0.0.0:0"
    })?;
    // `connect` on UDP: only the receiver's datagrams reach us.
    socket
        .connect(addr)
        .with_context(|| format!("could not reach {addr}"))?;
    socket.set_read_timeout(Some(RETRY))?;
    let mut hash = Sha256::new();
    let (mut total, mut again) = (0u64, 0u64);
    let mut piece = vec![0u8; PIECE];
    for number in 0u32.. {
        let n = read_piece(&mut file, &mut piece)?;
        hash.update(&piece[..n]);
        total += n as u64;
        let mut datagram = number.to_be_bytes().to_vec();
        datagram.extend_from_slice(&piece[..n]);
        again += u64::from(send_until_acked(&socket, &datagram, number)?);
        if n == 0 {
            println!(
                "sent {total} bytes in {number} pieces; {again} sent again"
            );
            println!("sha256 {:x}", hash.finalize());
            return Ok(());
        }
    }
    bail!("the file has more pieces than there are numbers")
}

/// Fills `piece` from the file as far as it goes; 0 at the end.
fn read_piece(file: &mut File, piece: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < piece.len() {
        match file.read(&mut piece[filled..])? {
            0 => break,
            n => filled += n,
        }
    }
    Ok(filled)
}
// ANCHOR_END: send

// ANCHOR: send-until-acked
/// Sends one datagram until its acknowledgement comes back, and returns
/// how many times it had to be sent again.
fn send_until_acked(
    socket: &UdpSocket,
    datagram: &[u8],
    number: u32,
) -> anyhow::Result<u32> {
    let mut ack = [0u8; 16];
    for tries in 0..TRIES {
        socket.send(datagram).context("sending a piece")?;
        loop {
            match socket.recv(&mut ack) {
                // Ours: done. An older number: a late or doubled
                // acknowledgement of a piece already done, ignored.
                Ok(n) if number_of(&ack[..n]) == Some(number) => {
                    return Ok(tries);
                }
                Ok(_) => continue,
                // No acknowledgement in time, or (on Linux) the receiver
                // is not there yet: send it again.
                Err(err)
                    if matches!(
                        err.kind(),
                        ErrorKind::WouldBlock
                            | ErrorKind::TimedOut
                            | ErrorKind::ConnectionRefused
                    ) =>
                {
                    break;
                }
                Err(err) => return Err(err).context("waiting for an ack"),
            }
        }
    }
    bail!(
        "piece {number} was not acknowledged after {TRIES} tries; is the receiver running?"
    )
}
// ANCHOR_END: send-until-acked

// ANCHOR: receive
fn receive(addr: &str, path: &Path) -> anyhow::Result<()> {
    let socket =
        UdpSocket::bind(addr).with_context(|| shared::cannot_listen(addr))?;
    shared::print_listening(socket.local_addr()?);
    let file = File::create(path)
        .with_context(|| format!("could not create {}", path.display()))?;
    let mut out = BufWriter::new(file);
    let mut hash = Sha256::new();
    let mut buf = vec![0u8; 65_536];
    let mut sender: Option<SocketAddr> = None;
    let (mut next, mut total, mut doubles) = (0u32, 0u64, 0u64);
    socket.set_read_timeout(Some(QUIET))?;
    loop {
        let (n, from) = match socket.recv_from(&mut buf) {
            Ok(got) => got,
            Err(err) if is_timeout(&err) => {
                bail!("nothing arrived for {} s; giving up", QUIET.as_secs())
            }
            Err(_) => continue, // Windows: an earlier ack found nobody
        };
        // One sender per run: the first one heard.
        if *sender.get_or_insert(from) != from {
            continue;
        }
        let Some(number) = number_of(&buf[..n]) else {
            continue; // not a piece of ours
        };
        if number == next {
            let bytes = &buf[4..n];
            out.write_all(bytes).context("writing the file")?;
            hash.update(bytes);
            total += bytes.len() as u64;
            next += 1;
            if bytes.is_empty() {
                out.flush().context("writing the file")?;
                socket.send_to(&number.to_be_bytes(), from)?;
                println!(
                    "received {total} bytes in {number} pieces; {doubles} copies ignored"
                );
                println!("sha256 {:x}", hash.finalize());
                return linger(&socket, from, number);
            }
        } else {
            doubles += 1; // a copy of a piece we have: only acknowledged
        }
        // Acknowledge what we have, this piece or an old one again.
        if number < next {
            socket.send_to(&number.to_be_bytes(), from)?;
        }
    }
}
// ANCHOR_END: receive

// ANCHOR: linger
/// After the end: answer every copy of the last piece until the sender
/// has been quiet for [`LINGER`], so that it hears our last ack.
fn linger(
    socket: &UdpSocket,
    sender: SocketAddr,
    last: u32,
) -> anyhow::Result<()> {
    socket.set_read_timeout(Some(LINGER))?;
    let mut buf = vec![0u8; 65_536];
    loop {
        match socket.recv_from(&mut buf) {
            Ok((n, from)) if from == sender => {
                if let Some(number) =
                    number_of(&buf[..n]).filter(|&n| n <= last)
                {
                    socket.send_to(&number.to_be_bytes(), from)?;
                }
            }
            Ok(_) => {}
            Err(err) if is_timeout(&err) => return Ok(()),
            Err(_) => {}
        }
    }
}

fn is_timeout(err: &io::Error) -> bool {
    matches!(err.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut)
}
// ANCHOR_END: linger
