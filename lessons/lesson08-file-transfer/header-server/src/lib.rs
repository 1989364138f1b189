//! Lesson 08's file servers, the parts both steps share: the accept loop
//! with its seats, headers out, a file sent by the kernel, the log words,
//! and the name rule (`names.rs`).
//!
//! Step 1's server (`main.rs` beside this file) and step 2's,
//! `lesson08-server`, both use them, so each is written once.

// ANCHOR: lib-imports
pub mod names;

use std::fs::File;
use std::io::{self, ErrorKind};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::thread;

use lesson07_frame::{FrameError, write_frame};
use serde_json::{Value, json};
use shared::Seats;
// ANCHOR_END: lib-imports

// ANCHOR: max-header
/// The largest header we read. A file travels after its header, never in it,
/// so 64 KiB is plenty, and a bigger announcement is an attack or a bug.
pub const MAX_HEADER: u32 = 64 * 1024;
// ANCHOR_END: max-header

// ANCHOR: accept-loop
/// Picks up every call, for ever: each caller is served by `serve` on a
/// thread of its own, at most `max_clients` at once. `serve` says in log
/// words how the call ended.
pub fn accept_loop<F>(listener: &TcpListener, max_clients: usize, serve: F) -> !
where
    F: Fn(TcpStream, SocketAddr) -> String + Send + Sync + 'static,
{
    let serve = Arc::new(serve);
    let seats = Seats::new(max_clients);
    // Out of descriptors, say: the caller waits in the queue, and we try
    // again. Said once, not ten times a second (lesson 06).
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
        let Some(seat) = seats.take() else {
            turn_away(conn, peer, max_clients);
            continue;
        };
        println!("client {peer} connected");
        let serve = Arc::clone(&serve);
        let started = thread::Builder::new().spawn(move || {
            let ending = serve(conn, peer);
            drop(seat); // the next caller may have it
            println!("client {peer} {ending}");
        });
        // No thread left on this machine: this caller is hung up on (the
        // closure, and the socket in it, are dropped), and we go on.
        if let Err(err) = started {
            println!("client {peer} could not be served: no thread for it ({err}); hung up");
        }
    }
}

/// Every seat is taken: one refusal, in the protocol's own form, then hang up.
fn turn_away(mut conn: TcpStream, peer: SocketAddr, max: usize) {
    let why = format!("the server is busy with {max} clients; try again later");
    // A new connection's send buffer is empty: this small write cannot block.
    let _ = send_header(&mut conn, &refusal(&why));
    println!("client {peer} turned away: {max} clients are being served");
}
// ANCHOR_END: accept-loop

// ANCHOR: headers
/// Sends one header: a frame holding JSON.
pub fn send_header(conn: &mut TcpStream, header: &Value) -> io::Result<()> {
    write_frame(conn, header.to_string().as_bytes())
}

/// The header of every refusal.
pub fn refusal(error: &str) -> Value {
    json!({"ok": false, "error": error})
}
// ANCHOR_END: headers

// ANCHOR: send-file
/// Sends the next `count` bytes of `file`, from where it stands, and returns
/// how many went out (fewer only if the file is shorter).
///
/// On Linux, `sendfile` has the kernel copy them from the file into the
/// socket: they never pass through this program. Elsewhere `io::copy` reads
/// and writes them through a buffer.
pub fn send_file(file: &File, conn: &TcpStream, count: u64) -> io::Result<u64> {
    #[cfg(target_os = "linux")]
    {
        let mut sent = 0;
        while sent < count {
            // At most 1 GiB a call; `None`: from the file's own position,
            // which moves on as the bytes go.
            let chunk = usize::try_from(count - sent).map_or(1 << 30, |n| n.min(1 << 30));
            match nix::sys::sendfile::sendfile(conn, file, None, chunk) {
                Ok(0) => break, // the end of the file
                Ok(n) => sent += n as u64,
                Err(nix::errno::Errno::EINTR) => continue,
                Err(errno) => return Err(io::Error::from(errno)),
            }
        }
        Ok(sent)
    }
    #[cfg(not(target_os = "linux"))]
    {
        use std::io::Read;
        io::copy(&mut file.take(count), &mut &*conn)
    }
}
// ANCHOR_END: send-file

// ANCHOR: ending
/// The log words for a header that could not be read.
pub fn frame_ending(err: FrameError) -> String {
    match err {
        FrameError::TooLong { announced, limit } => {
            format!(
                "announced a header of {announced} bytes, over the limit of {limit}; hanging up"
            )
        }
        FrameError::CutOff { got, expected } => {
            format!("hung up in the middle of a header ({got} of {expected} bytes arrived)")
        }
        FrameError::Io(err) => io_ending(&err),
    }
}

/// The log words for a socket that failed.
pub fn io_ending(err: &io::Error) -> String {
    match err.kind() {
        ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted | ErrorKind::BrokenPipe => {
            "reset the connection".to_string()
        }
        ErrorKind::WouldBlock | ErrorKind::TimedOut => {
            "was silent or did not read for too long, hanging up".to_string()
        }
        _ => format!("error: {err}, hanging up"),
    }
}
// ANCHOR_END: ending
