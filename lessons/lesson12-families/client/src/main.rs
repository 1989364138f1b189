//! Lesson 12 client: lesson 04's client, over TCP or a Unix domain socket.
//!
//! Over TCP it tries every address a name such as `localhost` resolves to,
//! in the order the system gives them, and says what each attempt did if
//! none works. Every reply is waited for at most ten seconds.

// ANCHOR: imports
use std::io::{self, ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream, ToSocketAddrs};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, anyhow};
use clap::Parser;

/// The server this client talks to, for the advice when it is not there.
const SERVER: &str = "lesson12-server";

/// The longest we wait to get through, and for any reply.
const WAIT: Duration = Duration::from_secs(10);
// ANCHOR_END: imports

// ANCHOR: args
/// Lesson 12 client: sends each line you type to lesson12-server, over TCP
/// or a Unix domain socket, and prints the reply. Type q to ask the server to
/// hang up, or end the input (Ctrl-D, or Ctrl-Z Enter on Windows).
#[derive(Parser)]
#[command(version)]
struct Args {
    /// Address of the server: IP:PORT, [IPv6]:PORT or localhost:PORT (every address the name has is tried)
    #[arg(default_value = "[::1]:9012", value_parser = shared::parse_addr)]
    addr: String,

    /// Connect to the Unix domain socket at PATH instead (Unix only)
    #[arg(long, value_name = "PATH", conflicts_with = "addr", value_parser = shared::parse_socket_path)]
    #[cfg_attr(not(unix), allow(dead_code))]
    unix: Option<std::path::PathBuf>,
}

fn main() -> ExitCode {
    let args: Args = shared::parse_args();
    #[cfg(unix)]
    if let Some(path) = &args.unix {
        return shared::exit_status(dial_unix(path).and_then(talk));
    }
    shared::exit_status(dial(&args.addr).and_then(talk))
}
// ANCHOR_END: args

// ANCHOR: dial
/// Connects to the first address of `addr` that answers. `localhost` may
/// name `::1`, `127.0.0.1` or both, as the hosts file says; a server bound
/// to only one of them is reached only if the name has that one.
fn dial(addr: &str) -> anyhow::Result<TcpStream> {
    let every: Vec<SocketAddr> = addr
        .to_socket_addrs()
        .with_context(|| shared::no_server(addr, SERVER))?
        .collect();
    let mut tried = Vec::new();
    for candidate in every {
        match TcpStream::connect_timeout(&candidate, WAIT) {
            Ok(conn) => return Ok(conn),
            Err(err) => tried.push(format!("{candidate}: {err}")),
        }
    }
    // Every attempt failed: name each one, in the order tried.
    Err(anyhow!("{}", tried.join("; "))).context(shared::no_server(addr, SERVER))
}
// ANCHOR_END: dial

// ANCHOR: dial-unix
/// Connects to the Unix domain socket at `path`. "Permission denied" means
/// the socket file is not ours to write: its mode keeps us out.
#[cfg(unix)]
fn dial_unix(path: &std::path::Path) -> anyhow::Result<std::os::unix::net::UnixStream> {
    let shown = path.display().to_string();
    std::os::unix::net::UnixStream::connect(path).map_err(|err| {
        let advice = match err.kind() {
            ErrorKind::PermissionDenied => {
                format!("could not connect to {shown} (its permissions let only its owner connect)")
            }
            _ => shared::no_server(&shown, SERVER),
        };
        anyhow::Error::new(err).context(advice)
    })
}
// ANCHOR_END: dial-unix

// ANCHOR: stream
/// What the conversation needs of a connected socket, TCP or Unix: both std
/// types can read, write, time out and half-close.
trait Stream: Read + Write {
    fn set_wait(&self, wait: Duration) -> io::Result<()>;
    fn shutdown_write(&self) -> io::Result<()>;
}

impl Stream for TcpStream {
    fn set_wait(&self, wait: Duration) -> io::Result<()> {
        self.set_read_timeout(Some(wait))
    }
    fn shutdown_write(&self) -> io::Result<()> {
        self.shutdown(Shutdown::Write)
    }
}

#[cfg(unix)]
impl Stream for std::os::unix::net::UnixStream {
    fn set_wait(&self, wait: Duration) -> io::Result<()> {
        self.set_read_timeout(Some(wait))
    }
    fn shutdown_write(&self) -> io::Result<()> {
        self.shutdown(Shutdown::Write)
    }
}
// ANCHOR_END: stream

// ANCHOR: talk
/// Lesson 04's conversation, unchanged but for the bound on every read.
fn talk(mut conn: impl Stream) -> anyhow::Result<()> {
    conn.set_wait(WAIT)?;
    for line in shared::input_lines() {
        let line = line.context("reading standard input failed")?;
        let message = line.trim_ascii();
        if message.is_empty() {
            continue; // zero bytes would send nothing (lesson 02)
        }
        if message.eq_ignore_ascii_case(b"q") {
            // Lesson 04's goodbye: send `q`, half-close, read until the
            // server hangs up.
            conn.write_all(message).map_err(went_away)?;
            conn.shutdown_write().map_err(went_away)?;
            let mut rest = Vec::new();
            conn.read_to_end(&mut rest).map_err(went_away)?;
            if !rest.is_empty() {
                println!("{}", String::from_utf8_lossy(&rest));
            }
            println!("server hung up, as asked");
            return Ok(());
        }
        // The reply is as long as the message: read exactly that much.
        const PIECE: usize = 64 * 1024;
        let mut reply = vec![0u8; message.len()];
        for (piece, answer) in message.chunks(PIECE).zip(reply.chunks_mut(PIECE)) {
            conn.write_all(piece).map_err(went_away)?;
            conn.read_exact(answer).map_err(went_away)?;
            if *answer != shared::upper(piece) {
                return Err(not_an_echo(&mut conn, answer));
            }
        }
        println!("{}", String::from_utf8_lossy(&reply));
    }
    // End of input: hang up.
    drop(conn);
    Ok(())
}
// ANCHOR_END: talk

// ANCHOR: not-an-echo
/// The reply is not our message in capitals: the server said something of
/// its own, such as the line it sends a caller it turns away. Read the rest
/// of it (a little, and not for ever) and show it.
fn not_an_echo(conn: &mut impl Stream, start: &[u8]) -> anyhow::Error {
    let mut said = start.to_vec();
    let _ = conn.take(1024).read_to_end(&mut said);
    let said = String::from_utf8_lossy(&said);
    anyhow!(
        "the server did not echo our message, it said: {}",
        said.trim_end()
    )
}
// ANCHOR_END: not-an-echo

// ANCHOR: went-away
/// Turns a failed read or write into one line saying what the server did.
fn went_away(err: io::Error) -> anyhow::Error {
    match err.kind() {
        ErrorKind::UnexpectedEof => anyhow!("server closed the connection"),
        ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted | ErrorKind::BrokenPipe => {
            anyhow!("server reset the connection")
        }
        // The read timeout: Unix says WouldBlock, Windows TimedOut.
        ErrorKind::WouldBlock | ErrorKind::TimedOut => {
            anyhow!("the server sent no reply within {} s", WAIT.as_secs())
        }
        _ => anyhow::Error::new(err).context("talking to the server failed"),
    }
}
// ANCHOR_END: went-away
