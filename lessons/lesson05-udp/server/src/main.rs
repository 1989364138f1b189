//! Lesson 05 server: UDP, letters instead of phone calls.
//!
//! A TCP server picks up calls; a UDP server is a mailbox. It binds one
//! socket to an address and then reads letters (数据报, datagrams) from
//! anyone, in any order, each one whole, each one stamped with its sender's
//! address. There is no `listen`, no `accept` and no connection: the answer
//! goes back with `send_to`, addressed by hand to whoever wrote.
//!
//! Because no sender owns a connection, no sender may end the loop either:
//! a datagram of any size or content, or an error that one sender caused,
//! is logged and the server goes on reading.

// ANCHOR: imports
use std::io::{self, ErrorKind};
use std::net::UdpSocket;
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
// ANCHOR_END: imports

// ANCHOR: args
/// Lesson 05 server: answers every UDP datagram with the same bytes in
/// capitals, sent back to whoever sent it, until stopped with Ctrl-C.
#[derive(Parser)]
#[command(version)]
struct Args {
    /// Address to bind: IP:PORT, [IPv6]:PORT or localhost:PORT (port 0 lets the system pick)
    #[arg(default_value = "127.0.0.1:9005", value_parser = shared::parse_addr)]
    addr: String,
}

fn main() -> ExitCode {
    let args: Args = shared::parse_args();
    shared::exit_status(run(&args.addr))
}
// ANCHOR_END: args

// ANCHOR: buffer
/// Big enough for any datagram. Lengths in the IP and UDP headers are 16-bit
/// numbers, so no datagram is longer than 65,535 bytes, headers included:
/// that leaves at most 65,507 bytes of data over IPv4 and 65,527 over IPv6.
/// A buffer this big never cuts a datagram short.
const MAX_DATAGRAM: usize = 65_535;
// ANCHOR_END: buffer

// ANCHOR: bind
fn run(addr: &str) -> anyhow::Result<()> {
    // Buy a phone and insert the SIM card, and that is all: `bind` gives the
    // socket its address, and from then on datagrams sent to that address
    // queue up in it. There is nothing to switch on, since nobody calls in
    // (Python: socket(AF_INET, SOCK_DGRAM), then bind()).
    let socket = UdpSocket::bind(addr).with_context(|| shared::cannot_listen(addr))?;
    shared::print_listening(socket.local_addr()?);
    // ANCHOR_END: bind

    // ANCHOR: loop
    // One loop, and it is both loops of the TCP lessons at once: the
    // 通信循环 (communication loop) and the 链接循环 (connection loop) become
    // a single "read the next letter, whoever wrote it". The buffer lives on
    // the heap and is reused for every datagram.
    let mut buf = vec![0u8; MAX_DATAGRAM];
    loop {
        // ANCHOR_END: loop
        // ANCHOR: recv_from
        // Wait for the next letter. `recv_from` blocks until one datagram has
        // arrived and returns its length and its sender. One call returns
        // exactly one datagram: never half of one, never two glued together.
        // A datagram may be empty, and then `n` is 0; unlike TCP's `read`,
        // 0 does NOT mean that anyone hung up (nobody was connected).
        let (n, peer) = match socket.recv_from(&mut buf) {
            Ok(received) => received,
            Err(err) if caused_by_one_sender(&err) => {
                println!("an earlier datagram bounced ({err}); still listening");
                continue;
            }
            Err(err) => return Err(err).context("receiving a datagram failed"),
        };
        let data = &buf[..n];
        println!("client {peer} said {}", shared::show(data));
        // ANCHOR_END: recv_from

        // ANCHOR: send_to
        // Write back, addressed by hand. A failure concerns this one reply
        // only (the sender may be gone, its address unreachable), so it is
        // logged and the loop goes on; it never ends the server.
        if let Err(err) = socket.send_to(&shared::upper(data), peer) {
            println!("could not answer client {peer}: {err}");
        }
    }
}
// ANCHOR_END: send_to

// ANCHOR: bounced
/// Errors on `recv_from` that come from one sender, not from our socket.
///
/// When we answer a sender whose socket is already closed, its machine sends
/// back an ICMP "port unreachable" message. Windows reports it on the *next*
/// `recv_from` as `ConnectionReset` (WSAECONNRESET, 10054), whoever that next
/// datagram is from; Linux and macOS report such errors only on a connected
/// socket (`ConnectionRefused`), but a server may meet them there too. None of
/// this says anything about the datagrams still waiting, so we read on.
/// (`Interrupted`, a signal arriving while we wait, is just as harmless.)
fn caused_by_one_sender(err: &io::Error) -> bool {
    matches!(
        err.kind(),
        ErrorKind::ConnectionReset
            | ErrorKind::ConnectionRefused
            | ErrorKind::HostUnreachable
            | ErrorKind::NetworkUnreachable
            | ErrorKind::Interrupted
    )
}
// ANCHOR_END: bounced
