//! Lesson 07 server: an echo server that answers whole messages.
//!
//! Earlier servers answered every `read`, whatever it held: half a message,
//! or two glued together (粘包). This one reads *frames*: a 4-byte big-endian
//! length, then that many bytes. Every frame gets one frame back, holding the
//! same bytes upper-cased, however the bytes arrived. As in lesson 06's first
//! step, every caller gets a thread of their own, up to `--max-clients` at
//! once.

// ANCHOR: imports
use std::io::ErrorKind;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::ExitCode;
use std::thread;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use clap::builder::RangedU64ValueParser;
use lesson07_frame::{FrameError, read_frame, write_frame};
use shared::Seats;
// ANCHOR_END: imports

// ANCHOR: args
/// Lesson 07 server: reads length-prefixed frames (a 4-byte big-endian
/// length, then that many bytes) and answers each with one frame of the same
/// bytes upper-cased. Serves every client at once. Stop it with Ctrl-C.
#[derive(Parser)]
#[command(version)]
struct Args {
    /// Address to listen on: IP:PORT, [IPv6]:PORT or localhost:PORT
    /// (port 0 lets the system pick)
    #[arg(default_value = "127.0.0.1:9007", value_parser = shared::parse_addr)]
    addr: String,

    /// The largest frame a client may send, in bytes; a longer
    /// announcement is refused
    #[arg(long, value_name = "BYTES", default_value_t = 1024 * 1024)]
    max_frame: u32,

    /// Hang up on a client that sends nothing, or reads nothing, for this
    /// many seconds
    #[arg(long, value_name = "SECS", default_value_t = 60,
          value_parser = clap::value_parser!(u64).range(1..))]
    idle_timeout: u64,

    /// Serve at most this many clients at once; the next one gets a frame
    /// saying the server is full, and is hung up on
    #[arg(long, value_name = "N", default_value_t = 100,
          value_parser = RangedU64ValueParser::<usize>::new().range(1..))]
    max_clients: usize,
}

fn main() -> ExitCode {
    let args: Args = shared::parse_args();
    let idle = Duration::from_secs(args.idle_timeout);
    let seats = Seats::new(args.max_clients);
    shared::exit_status(run(&args.addr, args.max_frame, idle, seats))
}
// ANCHOR_END: args

// ANCHOR: accept-loop
fn run(
    addr: &str,
    max_frame: u32,
    idle: Duration,
    seats: Seats,
) -> anyhow::Result<()> {
    let listener =
        TcpListener::bind(addr).with_context(|| shared::cannot_listen(addr))?;
    shared::print_listening(listener.local_addr()?);
    // A thread per caller, as in lesson 06's first step: while one caller
    // thinks, the others are served.
    // A failing accept (usually "too many open files") is said once and
    // tried again every 100 ms, as in lesson 06.
    let mut failures = shared::AcceptLog::default();
    loop {
        let (conn, peer) = match listener.accept() {
            Ok(call) => call,
            Err(err) => {
                failures.failed(&err);
                thread::sleep(shared::ACCEPT_RETRY);
                continue;
            }
        };
        failures.worked();
        // One seat per caller being served; when all are taken, the
        // caller is told so and hung up on, and nobody waits for it.
        let Some(seat) = seats.take() else {
            turn_away(conn, peer, seats.max());
            continue;
        };
        println!("client {peer} connected");
        let talk = move || {
            let ending = serve(conn, peer, max_frame, idle);
            drop(seat); // the seat is free before the log says so
            println!("client {peer} {ending}");
        };
        // `Builder::spawn` reports a failure (no thread left) as an error;
        // `thread::spawn` would panic. The closure is then dropped, and
        // with it the connection (a hang-up) and the seat.
        if let Err(err) = thread::Builder::new().spawn(talk) {
            println!("client {peer} could not be served: {err}; hanging up");
        }
    }
}
// ANCHOR_END: accept-loop

// ANCHOR: turn-away
/// Tells a caller in one frame that the server is full, and hangs up.
fn turn_away(mut conn: TcpStream, peer: SocketAddr, max: usize) {
    let why =
        format!("server full: {max} clients are being served, try again later");
    // A new connection's send buffer is empty, so this short write cannot
    // block the accept loop.
    let _ = write_frame(&mut conn, why.as_bytes());
    println!("client {peer} turned away: the server is full ({max} clients)");
    // Dropping `conn` hangs up.
}
// ANCHOR_END: turn-away

// ANCHOR: serve
/// Answers frames until the call ends, and says how it ended.
fn serve(
    mut conn: TcpStream,
    peer: SocketAddr,
    max_frame: u32,
    idle: Duration,
) -> String {
    // Lesson 04's timeouts: a silent caller, or one who never reads our
    // answers, must not hold a thread for ever.
    if let Err(err) = conn
        .set_read_timeout(Some(idle))
        .and_then(|()| conn.set_write_timeout(Some(idle)))
    {
        return format!("could not be served: {err}");
    }
    loop {
        let body = match read_frame(&mut conn, max_frame) {
            Ok(Some(body)) => body,
            // The stream ended between two frames: a polite goodbye.
            Ok(None) => return "closed the connection".to_string(),
            Err(err) => return ending(err, idle),
        };
        println!(
            "client {peer} sent a frame of {} bytes: {}",
            body.len(),
            shared::show(&body)
        );
        if let Err(err) = write_frame(&mut conn, &shared::upper(&body)) {
            return ending(FrameError::Io(err), idle);
        }
    }
}
// ANCHOR_END: serve

// ANCHOR: ending
/// The log words for a call that did not end politely.
fn ending(err: FrameError, idle: Duration) -> String {
    match &err {
        FrameError::TooLong { announced, limit } => {
            // A length in the wrong byte order (Python's `struct.pack('I')`
            // on a little-endian machine instead of `'!I'`) usually looks
            // huge. If the bytes read the other way round fit, say so.
            let backwards = announced.swap_bytes();
            let hint = if backwards <= *limit {
                format!(
                    " (backwards it reads {backwards}: \
                     is the length big-endian?)"
                )
            } else {
                String::new()
            };
            format!("{err}{hint}; hanging up")
        }
        FrameError::CutOff { .. } => err.to_string(),
        FrameError::Io(err) => match err.kind() {
            ErrorKind::ConnectionReset
            | ErrorKind::ConnectionAborted
            | ErrorKind::BrokenPipe => "reset the connection".to_string(),
            ErrorKind::WouldBlock | ErrorKind::TimedOut => {
                format!(
                    "was silent or did not read for {} s, hanging up",
                    idle.as_secs()
                )
            }
            _ => format!("error: {err}, hanging up"),
        },
    }
}
// ANCHOR_END: ending
