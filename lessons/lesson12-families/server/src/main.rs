//! Lesson 12 server: lesson 06's echo server (a thread per caller, the reply
//! in capitals), on any of the three families the seed tutorials list:
//! `AF_INET` (IPv4), `AF_INET6` (IPv6, by default dual stack, so IPv4
//! callers are answered too) and `AF_UNIX` (a Unix domain socket, whose
//! address is a file). The conversation does not care which: once a call is
//! picked up, a byte stream is a byte stream.

// ANCHOR: imports
use std::io::{self, ErrorKind, Read, Write};
use std::net::TcpStream;
use std::process::ExitCode;
use std::thread;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use shared::{Seat, Seats};
use socket2::{Domain, Protocol, Socket, Type};

// The Unix domain socket half of the server: a file as the address.
#[cfg(unix)]
mod unix;
// ANCHOR_END: imports

// ANCHOR: args
/// Lesson 12: an echo server on IPv4, IPv6 or a Unix domain socket. Each
/// caller is served on a thread of its own and gets every message back in
/// capitals. Stop it with Ctrl-C.
#[derive(Parser)]
#[command(version)]
struct Args {
    /// Address to listen on: IP:PORT, [IPv6]:PORT or localhost:PORT ([::]:PORT is dual stack: IPv4 callers too)
    #[arg(default_value = "[::1]:9012", value_parser = shared::parse_addr)]
    addr: String,

    /// With an IPv6 address, answer IPv6 callers only (IPV6_V6ONLY on)
    #[arg(long)]
    v6only: bool,

    /// Listen on a Unix domain socket at PATH instead of an address (Unix only)
    #[arg(long, value_name = "PATH", conflicts_with_all = ["addr", "v6only"],
          value_parser = shared::parse_socket_path)]
    #[cfg_attr(not(unix), allow(dead_code))]
    unix: Option<std::path::PathBuf>,

    /// Hang up on a client that sends nothing, or reads nothing, for this many seconds (at least 1)
    #[arg(long, value_name = "SECS", default_value = "60", value_parser = at_least_one)]
    idle_timeout: u64,

    /// How many clients are served at once; the next one is turned away
    #[arg(long, value_name = "N", default_value = "100", value_parser = at_least_one)]
    max_clients: u64,
}

/// Checks `--idle-timeout` and `--max-clients`: zero of either makes no sense.
fn at_least_one(text: &str) -> Result<u64, String> {
    match text.parse::<u64>() {
        Ok(0) => Err("must be at least 1".to_string()),
        Ok(n) => Ok(n),
        Err(_) => Err("expected a whole number, e.g. 60".to_string()),
    }
}

fn main() -> ExitCode {
    let args: Args = shared::parse_args();
    // `--v6only` is about IPv6 sockets; on an IPv4 address it means nothing.
    if args.v6only && !args.addr.starts_with('[') {
        eprintln!(
            "error: --v6only needs an IPv6 address such as [::]:9012, not '{}' (see --help)",
            args.addr
        );
        return ExitCode::from(2);
    }
    let idle = Duration::from_secs(args.idle_timeout);
    let seats = Seats::new(usize::try_from(args.max_clients).unwrap_or(usize::MAX));
    #[cfg(unix)]
    if let Some(path) = &args.unix {
        return shared::exit_status(unix::run(path, &seats, idle));
    }
    shared::exit_status(run(&args.addr, args.v6only, &seats, idle))
}
// ANCHOR_END: args

// ANCHOR: listen
/// Buys the phone, inserts the SIM and switches it on, one call at a time,
/// as lesson 03 did: the family comes from the address, and for IPv6 we say
/// whether IPv4 callers may come in too.
fn listen(addr: &str, v6only: bool) -> anyhow::Result<std::net::TcpListener> {
    let at = shared::resolve(addr).with_context(|| shared::cannot_listen(addr))?;
    // AF_INET for an IPv4 address, AF_INET6 for an IPv6 one.
    let socket = Socket::new(Domain::for_address(at), Type::STREAM, Some(Protocol::TCP))?;
    if at.is_ipv6() {
        // Linux lets an IPv6 socket take IPv4 callers unless told otherwise;
        // the BSDs and Windows do not. Say it ourselves, so the server does
        // the same everywhere: dual stack unless `--v6only`.
        socket
            .set_only_v6(v6only)
            .context("could not set IPV6_V6ONLY")?;
    }
    // Lesson 03's SO_REUSEADDR, Unix only for the reason given there.
    #[cfg(unix)]
    socket
        .set_reuse_address(true)
        .context("could not set SO_REUSEADDR")?;
    socket
        .bind(&at.into())
        .with_context(|| shared::cannot_listen(addr))?;
    socket
        .listen(128)
        .with_context(|| shared::cannot_listen(addr))?;
    Ok(socket.into())
}
// ANCHOR_END: listen

// ANCHOR: run
/// Listens on `addr` and serves every caller. An IPv4 caller of a dual-stack
/// socket shows up with an IPv6 address, `[::ffff:127.0.0.1]:50312`: the
/// kernel writes an IPv4 address in IPv6 form, "IPv4-mapped".
fn run(addr: &str, v6only: bool, seats: &Seats, idle: Duration) -> anyhow::Result<()> {
    let listener = listen(addr, v6only)?;
    shared::print_listening(listener.local_addr()?);
    serve_callers(
        || {
            let (conn, peer) = listener.accept()?;
            Ok((conn, peer.to_string()))
        },
        seats,
        idle,
    )
}
// ANCHOR_END: run

// ANCHOR: conn
/// What a conversation needs of a connected socket. `TcpStream` and
/// `UnixStream` both read and write bytes and take timeouts; naming that
/// here lets one `serve` talk over either.
trait Conn: Read + Write + Send + 'static {
    fn set_idle_timeout(&self, idle: Duration) -> io::Result<()>;
}

impl Conn for TcpStream {
    fn set_idle_timeout(&self, idle: Duration) -> io::Result<()> {
        self.set_read_timeout(Some(idle))?;
        self.set_write_timeout(Some(idle))
    }
}
// ANCHOR_END: conn

// ANCHOR: accept-loop
/// The connection loop (链接循环) of lesson 06, for either family: `accept`
/// waits for the next caller and returns their socket and their name in the
/// log. Every caller gets a seat and a thread of their own.
fn serve_callers<C: Conn>(
    mut accept: impl FnMut() -> io::Result<(C, String)>,
    seats: &Seats,
    idle: Duration,
) -> anyhow::Result<()> {
    let mut failures = shared::AcceptLog::default();
    loop {
        let (conn, peer) = match accept() {
            Ok(call) => call,
            Err(err) => {
                // Usually "too many open files": the caller stays in the
                // queue. Say so once, then try again quietly until it works.
                failures.failed(&err);
                thread::sleep(shared::ACCEPT_RETRY);
                continue;
            }
        };
        failures.worked();
        // ANCHOR_END: accept-loop

        // ANCHOR: seat
        let Some(seat) = seats.take() else {
            turn_away(conn, &peer, seats.max());
            continue;
        };
        println!("client {peer} connected");
        let name = peer.clone();
        let spawned = thread::Builder::new()
            .name(format!("client {peer}"))
            .spawn(move || serve(conn, &peer, idle, seat));
        if let Err(err) = spawned {
            // The closure, and the socket inside it, is dropped: we hang up.
            println!("client {name} could not be served ({err}), hanging up");
        }
    }
}

/// One line for a caller beyond `--max-clients`, then we hang up.
fn turn_away(mut conn: impl Conn, peer: &str, max: usize) {
    let _ = conn.set_idle_timeout(Duration::from_secs(1));
    let _ = conn.write_all(b"server busy, try again later\n");
    println!("client {peer} turned away: all {max} seats are taken");
}
// ANCHOR_END: seat

// ANCHOR: serve
/// Lesson 06's conversation, on the caller's own thread. The seat is given
/// back when this returns and `seat` is dropped, and so is `conn`: we hang up.
fn serve(mut conn: impl Conn, peer: &str, idle: Duration, seat: Seat) {
    let ending = match talk(&mut conn, peer, idle) {
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
    };
    println!("client {peer} {ending}");
    drop(seat);
}

/// Reads, answers in capitals, until the caller hangs up or sends `q`.
fn talk(conn: &mut impl Conn, peer: &str, idle: Duration) -> io::Result<&'static str> {
    conn.set_idle_timeout(idle)?;
    let mut buf = [0u8; 1024];
    loop {
        let n = conn.read(&mut buf)?;
        if n == 0 {
            return Ok("closed the connection");
        }
        let data = &buf[..n];
        println!("client {peer} said {}", shared::show(data));
        // As in lesson 06, one read is trusted to be one message here.
        if data.trim_ascii().eq_ignore_ascii_case(b"q") {
            return Ok("asked to quit, hanging up");
        }
        conn.write_all(&shared::upper(data))?;
    }
}
// ANCHOR_END: serve
