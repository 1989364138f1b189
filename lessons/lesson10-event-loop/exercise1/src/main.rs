//! Lesson 10, exercise 1: the upper-casing echo server of lessons 02 to 04,
//! every caller served at once by one thread with an event loop.

// ANCHOR: imports
use std::collections::HashMap;
use std::io::{ErrorKind, Read, Write};
use std::net::SocketAddr;
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};
// ANCHOR_END: imports

// ANCHOR: args
/// Lesson 10, exercise 1: an echo server that answers in capitals, every
/// caller at once, on one thread. Stop it with Ctrl-C.
#[derive(Parser)]
#[command(version)]
struct Args {
    /// Address to listen on: IP:PORT, [IPv6]:PORT or localhost:PORT
    #[arg(default_value = "127.0.0.1:9010", value_parser = shared::parse_addr)]
    addr: String,
}

fn main() -> ExitCode {
    let args: Args = shared::parse_args();
    shared::exit_status(run(&args.addr))
}
// ANCHOR_END: args

// ANCHOR: caller
/// What an echo server must remember about a caller: the socket, and the
/// replies it has not taken yet. (The address is only for the log.)
struct Caller {
    conn: TcpStream,
    peer: SocketAddr,
    unsent: Vec<u8>,
    /// They have sent all they will send (`read` gave `Ok(0)`), but we may
    /// still owe them replies: the call ends when `unsent` is empty.
    done_sending: bool,
}

/// Replies waiting for one caller beyond this are too many: we stop
/// reading from them until they take some (that is how a blocking echo
/// server behaves too: it waits in `write_all`).
const MAX_UNSENT: usize = 64 * 1024;
const LISTENER: Token = Token(0);
// ANCHOR_END: caller

// ANCHOR: run
fn run(addr: &str) -> anyhow::Result<()> {
    let std_listener = std::net::TcpListener::bind(addr)
        .with_context(|| shared::cannot_listen(addr))?;
    std_listener.set_nonblocking(true)?;
    let mut listener = TcpListener::from_std(std_listener);
    shared::print_listening(listener.local_addr()?);
    let mut poll = Poll::new()?;
    poll.registry()
        .register(&mut listener, LISTENER, Interest::READABLE)?;
    let mut callers: HashMap<Token, Caller> = HashMap::new();
    let mut next = 1;
    let mut events = Events::with_capacity(256);
    loop {
        if let Err(err) = poll.poll(&mut events, None) {
            if err.kind() == ErrorKind::Interrupted {
                continue;
            }
            return Err(err).context("poll failed");
        }
        for event in events.iter() {
            if event.token() == LISTENER {
                // Every waiting caller, until WouldBlock.
                while let Ok((mut conn, peer)) = listener.accept() {
                    let token = Token(next);
                    next += 1;
                    let both = Interest::READABLE | Interest::WRITABLE;
                    poll.registry().register(&mut conn, token, both)?;
                    println!("client {peer} connected");
                    let unsent = Vec::new();
                    let done_sending = false;
                    callers.insert(
                        token,
                        Caller {
                            conn,
                            peer,
                            unsent,
                            done_sending,
                        },
                    );
                }
                continue;
            }
            let token = event.token();
            let Some(caller) = callers.get_mut(&token) else {
                continue;
            };
            if !serve(caller) {
                println!("client {} disconnected", caller.peer);
                callers.remove(&token);
            }
        }
    }
}
// ANCHOR_END: run

// ANCHOR: serve
/// Reads what a caller sent and writes the replies, until their socket
/// would block either way. Returns `false` when the call is over.
///
/// Registering for both readable and writable from the start keeps this
/// short: with mio's edge-triggered events, "writable" is reported once
/// each time space appears, not for as long as there is space.
fn serve(caller: &mut Caller) -> bool {
    let mut buf = [0; 4096];
    loop {
        // First send what waits, as far as the socket takes it.
        while !caller.unsent.is_empty() {
            match caller.conn.write(&caller.unsent) {
                Ok(n) => {
                    caller.unsent.drain(..n);
                }
                Err(err) if err.kind() == ErrorKind::WouldBlock => break,
                Err(_) => return false,
            }
        }
        if caller.done_sending {
            // Nothing more to read; over once every reply has gone out.
            return !caller.unsent.is_empty();
        }
        if caller.unsent.len() >= MAX_UNSENT {
            return true; // wait for "writable" before reading more
        }
        match caller.conn.read(&mut buf) {
            // They hung up, or only shut their sending side (as `nc -N`
            // does): either way, the replies we owe still go out first.
            Ok(0) => caller.done_sending = true,
            Ok(n) => caller.unsent.extend(shared::upper(&buf[..n])),
            Err(err) if err.kind() == ErrorKind::WouldBlock => return true,
            Err(err) if err.kind() == ErrorKind::Interrupted => {}
            Err(_) => return false, // a reset, say
        }
    }
}
// ANCHOR_END: serve
