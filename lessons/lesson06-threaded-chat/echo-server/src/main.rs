//! Lesson 06, step 1: lesson 04's echo server, with a thread per caller.
//!
//! Lesson 04's server talked with one caller at a time: while it served one,
//! the next waited in the listen queue. Here the main thread only picks up,
//! and every caller gets a thread of their own for the conversation, as
//! Python's `socketserver.ThreadingTCPServer` gives each caller one. The
//! conversation itself is lesson 04's, unchanged.

// ANCHOR: imports
use std::io::{self, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::ExitCode;
use std::thread;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use clap::builder::RangedU64ValueParser;
// ANCHOR_END: imports

// ANCHOR: args
/// Lesson 06, step 1: an echo server that serves every caller at once, each
/// on a thread of its own, and logs how each call ended. Stop it with Ctrl-C.
#[derive(Parser)]
#[command(version)]
struct Args {
    /// Address to listen on: IP:PORT, [IPv6]:PORT or localhost:PORT (port 0 lets the system pick)
    #[arg(default_value = "127.0.0.1:9006", value_parser = shared::parse_addr)]
    addr: String,

    /// Hang up on a client that sends nothing, or reads nothing, for this many seconds (at least 1)
    #[arg(long, value_name = "SECS", default_value = "60", value_parser = parse_secs)]
    idle_timeout: u64,

    /// How many callers may be served at once; the next one is turned away
    #[arg(long, default_value_t = 100, value_parser = RangedU64ValueParser::<usize>::new().range(1..))]
    max_clients: usize,
}

/// Checks `--idle-timeout`, as in lesson 04: zero is not a timeout.
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
    let seats = shared::Seats::new(args.max_clients);
    shared::exit_status(run(&args.addr, idle, &seats))
}
// ANCHOR_END: args

// ANCHOR: bind
fn run(addr: &str, idle: Duration, seats: &shared::Seats) -> anyhow::Result<()> {
    // Buy the phone, insert the SIM, switch it on, in one call. Lessons 03
    // and 04 made four calls with `socket2` to choose `listen(5)`: the queue
    // of callers waiting for `accept`. Here nobody waits there for long, so
    // std's backlog of 128 will do (and on Unix `bind` sets SO_REUSEADDR).
    let listener = TcpListener::bind(addr).with_context(|| shared::cannot_listen(addr))?;
    shared::print_listening(listener.local_addr()?);
    // ANCHOR_END: bind

    // ANCHOR: accept-loop
    // The connection loop (链接循环), but this thread only picks up: it hands
    // each call to a new thread and goes straight back to `accept`.
    let mut failures = shared::AcceptLog::default();
    loop {
        let (mut conn, peer) = match listener.accept() {
            Ok(call) => call,
            Err(err) => {
                // Usually "too many open files": the caller stays in the
                // queue, so pause a moment instead of failing in a busy
                // loop, and say so once, not ten times a second.
                failures.failed(&err);
                thread::sleep(shared::ACCEPT_RETRY);
                continue;
            }
        };
        failures.worked();
        // A thread per caller, but not without end: each caller takes a
        // seat, and when all are taken the next one hears so and goes.
        let Some(seat) = seats.take() else {
            // A new socket's send buffer is empty: this short write fits.
            let _ = conn.write_all(b"server full, try again later\n");
            println!(
                "client {peer} turned away: all {} seats are taken",
                seats.max()
            );
            continue; // dropping `conn` hangs up
        };
        println!("client {peer} connected");
        // ANCHOR_END: accept-loop

        // ANCHOR: spawn
        // `move` gives the closure `conn`, `peer` and `seat` (and a copy of
        // `idle`): the new thread owns its caller's socket and seat, and
        // the loop keeps neither. The seat is freed when the thread ends.
        // `Builder::spawn` returns an error when the system has no thread
        // left for us, where plain `thread::spawn` would panic.
        let spawned = thread::Builder::new()
            .name(format!("client {peer}"))
            .spawn(move || {
                let ending = serve(conn, peer, idle);
                drop(seat); // free before we say so
                println!("client {peer} {ending}");
            });
        if let Err(err) = spawned {
            // The closure, `conn` inside it, is dropped: we hang up.
            println!("client {peer} could not be served ({err}), hanging up");
        }
    }
}
// ANCHOR_END: spawn

// ANCHOR: serve
/// Lesson 04's communication loop (通信循环), on the caller's own thread.
/// Returns how the call ended, in the words of lesson 04's log. Returning
/// drops `conn`: we hang up.
fn serve(mut conn: TcpStream, peer: SocketAddr, idle: Duration) -> String {
    match talk(&mut conn, peer, idle) {
        Ok(ending) => ending.to_string(),
        Err(err) => match err.kind() {
            ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted | ErrorKind::BrokenPipe => {
                "reset the connection".to_string()
            }
            // A read or write timeout: Unix says WouldBlock, Windows TimedOut.
            ErrorKind::WouldBlock | ErrorKind::TimedOut => {
                format!("was idle for {} s, hanging up", idle.as_secs())
            }
            _ => format!("failed: {err}, hanging up"),
        },
    }
}

/// Reads, answers in capitals, until the caller hangs up or sends `q`.
fn talk(conn: &mut TcpStream, peer: SocketAddr, idle: Duration) -> io::Result<&'static str> {
    // A silent caller no longer keeps anyone else waiting, but still holds a
    // thread and a socket: the timeouts of lesson 04 give both back.
    conn.set_read_timeout(Some(idle))?;
    conn.set_write_timeout(Some(idle))?;
    let mut buf = [0u8; 1024];
    loop {
        let n = conn.read(&mut buf)?;
        if n == 0 {
            return Ok("closed the connection");
        }
        let data = &buf[..n];
        println!("client {peer} said {}", shared::show(data));
        // As in lesson 04, this trusts one read to hold one whole message;
        // lesson 07 (粘包 and framing) stops trusting it.
        if data.trim_ascii().eq_ignore_ascii_case(b"q") {
            return Ok("asked to quit, hanging up");
        }
        conn.write_all(&shared::upper(data))?;
    }
}
// ANCHOR_END: serve
