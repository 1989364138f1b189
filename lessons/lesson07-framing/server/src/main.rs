//! Lesson 07 server: an echo server that answers whole messages.
//!
//! Earlier servers answered every `read`, whatever it held: half a message,
//! or two glued together (粘包). This one reads *frames*: a 4-byte big-endian
//! length, then that many bytes. Every frame gets one frame back, holding the
//! same bytes upper-cased, however the bytes arrived. As in lesson 06's first
//! step, every caller gets a thread of their own.

// ANCHOR: imports
use std::io::ErrorKind;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::ExitCode;
use std::thread;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use lesson07_frame::{FrameError, read_frame, write_frame};
// ANCHOR_END: imports

// ANCHOR: args
/// Lesson 07 server: reads length-prefixed frames (a 4-byte big-endian
/// length, then that many bytes) and answers each with one frame of the same
/// bytes upper-cased. Serves every client at once. Stop it with Ctrl-C.
#[derive(Parser)]
#[command(version)]
struct Args {
    /// Address to listen on: IP:PORT, [IPv6]:PORT or localhost:PORT (port 0 lets the system pick)
    #[arg(default_value = "127.0.0.1:9007", value_parser = shared::parse_addr)]
    addr: String,

    /// The largest frame a client may send, in bytes; a longer announcement is refused
    #[arg(long, value_name = "BYTES", default_value_t = 1024 * 1024)]
    max_frame: u32,

    /// Hang up on a client that sends nothing, or reads nothing, for this many seconds
    #[arg(long, value_name = "SECS", default_value_t = 60,
          value_parser = clap::value_parser!(u64).range(1..))]
    idle_timeout: u64,
}

fn main() -> ExitCode {
    let args: Args = shared::parse_args();
    let idle = Duration::from_secs(args.idle_timeout);
    shared::exit_status(run(&args.addr, args.max_frame, idle))
}
// ANCHOR_END: args

// ANCHOR: accept-loop
fn run(addr: &str, max_frame: u32, idle: Duration) -> anyhow::Result<()> {
    let listener = TcpListener::bind(addr).with_context(|| shared::cannot_listen(addr))?;
    shared::print_listening(listener.local_addr()?);
    // A thread per caller, as in lesson 06's first step: while one caller
    // thinks, the others are served.
    loop {
        let (conn, peer) = match listener.accept() {
            Ok(call) => call,
            Err(err) => {
                // Usually "too many open files": pause instead of spinning.
                println!("accept failed: {err}; trying again shortly");
                thread::sleep(Duration::from_millis(100));
                continue;
            }
        };
        println!("client {peer} connected");
        thread::spawn(move || {
            let ending = serve(conn, peer, max_frame, idle);
            println!("client {peer} {ending}");
        });
    }
}
// ANCHOR_END: accept-loop

// ANCHOR: serve
/// Answers frames until the call ends, and says how it ended.
fn serve(mut conn: TcpStream, peer: SocketAddr, max_frame: u32, idle: Duration) -> String {
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
    match err {
        FrameError::TooLong { announced, limit } => {
            // A length in the wrong byte order (Python's `struct.pack('I')`
            // on a little-endian machine instead of `'!I'`) usually looks
            // huge. If the bytes read the other way round fit, say so.
            let backwards = announced.swap_bytes();
            let hint = if backwards <= limit {
                format!(" (backwards it reads {backwards}: is the length big-endian?)")
            } else {
                String::new()
            };
            format!("announced {announced} bytes, over the limit of {limit}{hint}; hanging up")
        }
        FrameError::CutOff { got, expected } => {
            format!("hung up in the middle of a frame ({got} of {expected} bytes arrived)")
        }
        FrameError::Io(err) => match err.kind() {
            ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted | ErrorKind::BrokenPipe => {
                "reset the connection".to_string()
            }
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
