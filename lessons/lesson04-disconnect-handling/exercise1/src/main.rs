//! Lesson 04, exercise 1 (a solution): lesson 04's server with a limit on the
//! whole call, `--max-call SECS`, besides the idle timeout of each read.
//!
//! A read timeout limits one `read`, not the call: a caller who says something
//! every 59 seconds is never hung up on by a 60-second idle timeout. To limit
//! the whole call, each read gets as its timeout what is left of the call,
//! when that is less than the idle timeout.

// ANCHOR: imports
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;
// ANCHOR_END: imports

// ANCHOR: args
/// Lesson 04, exercise 1: lesson 04's server, plus a limit on how long a
/// whole call may last, however busy it is.
#[derive(Parser)]
#[command(version)]
struct Args {
    /// Address to listen on: IP:PORT, [IPv6]:PORT or localhost:PORT (port 0 lets the system pick)
    #[arg(default_value = "127.0.0.1:9004", value_parser = shared::parse_addr)]
    addr: String,

    /// Hang up on a client that sends nothing, or reads nothing, for this many seconds
    #[arg(long, value_name = "SECS", default_value = "60",
          value_parser = clap::value_parser!(u64).range(1..))]
    idle_timeout: u64,

    /// Hang up on every client after this many seconds, however much it talks
    #[arg(long, value_name = "SECS", default_value = "600",
          value_parser = clap::value_parser!(u64).range(1..))]
    max_call: u64,
}

fn main() -> ExitCode {
    let args: Args = shared::parse_args();
    shared::exit_status(run(&args))
}
// ANCHOR_END: args

// ANCHOR: loop
fn run(args: &Args) -> anyhow::Result<()> {
    // To keep the solution short we let std make the listener (lesson 01);
    // lesson 04's socket2 version with listen(5) works just as well.
    let listener =
        TcpListener::bind(&args.addr).with_context(|| shared::cannot_listen(&args.addr))?;
    shared::print_listening(listener.local_addr()?);
    let idle = Duration::from_secs(args.idle_timeout);
    let max_call = Duration::from_secs(args.max_call);
    loop {
        let (mut conn, peer) = match listener.accept() {
            Ok(call) => call,
            Err(err) => {
                println!("accept failed: {err}; waiting for the next client");
                continue;
            }
        };
        println!("client {peer} connected");
        // This solution's `serve` returns the end of the log line itself.
        let ending = serve(&mut conn, peer, idle, max_call);
        println!("client {peer} {ending}");
        drop(conn);
    }
}
// ANCHOR_END: loop

// ANCHOR: serve
fn serve(conn: &mut TcpStream, peer: SocketAddr, idle: Duration, max_call: Duration) -> String {
    let (secs, limit) = (idle.as_secs(), max_call.as_secs());
    let too_long = format!("reached the call limit of {limit} s, hanging up");
    let deadline = Instant::now() + max_call;
    if let Err(err) = conn.set_write_timeout(Some(idle)) {
        return format!("error: {err}, hanging up");
    }
    let mut buf = [0u8; 1024];
    loop {
        // What is left of the call; the read may wait no longer than that.
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return too_long;
        }
        let call_ends_first = left <= idle;
        if let Err(err) = conn.set_read_timeout(Some(left.min(idle))) {
            return format!("error: {err}, hanging up");
        }
        let n = match conn.read(&mut buf) {
            Ok(0) => return "closed the connection".to_string(),
            Ok(n) => n,
            Err(err) => {
                return match err.kind() {
                    ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted => {
                        "reset the connection".to_string()
                    }
                    ErrorKind::WouldBlock | ErrorKind::TimedOut if call_ends_first => too_long,
                    ErrorKind::WouldBlock | ErrorKind::TimedOut => {
                        format!("was idle for {secs} s, hanging up")
                    }
                    _ => format!("error: {err}, hanging up"),
                };
            }
        };
        // ANCHOR_END: serve

        // ANCHOR: unchanged
        // From here on, lesson 04's loop: the log line, q, the reply.
        let data = &buf[..n];
        println!("client {peer} said {}", shared::show(data));
        if data.trim_ascii().eq_ignore_ascii_case(b"q") {
            return "asked to quit, hanging up".to_string();
        }
        if let Err(err) = conn.write_all(&shared::upper(data)) {
            return match err.kind() {
                ErrorKind::BrokenPipe
                | ErrorKind::ConnectionReset
                | ErrorKind::ConnectionAborted => "reset the connection".to_string(),
                ErrorKind::WouldBlock | ErrorKind::TimedOut => {
                    format!("did not read our reply for {secs} s, hanging up")
                }
                _ => format!("error: {err}, hanging up"),
            };
        }
    }
}
// ANCHOR_END: unchanged
