//! Lesson 06 client: listen and talk at the same time.
//!
//! Until now a client said something, then waited for the answer. In a chat,
//! lines from the others arrive whenever they like, also while you are typing.
//! So this client has two threads: one reads the socket and prints every line
//! as it comes, and the main thread reads the keyboard and sends your lines.
//!
//! The client is this library, and `main.rs` only its command line, so that
//! lesson 10's client can be the very same program with another default
//! address.

// ANCHOR: imports
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::{self, JoinHandle};

use anyhow::{Context, anyhow, bail};
use lesson06_protocol::MAX_SERVER_LINE;
// ANCHOR_END: imports

// ANCHOR: connect
/// Joins the chat room at `addr` and chats until the end of input or
/// `/quit`. `server` is the package to suggest starting when nobody answers
/// there: lesson 10's client runs this same function against lesson 10's
/// server. If the server hangs up first, this ends the whole process, with
/// one line on stderr and status 1 (see `listen`).
pub fn run(addr: &str, server: &str) -> anyhow::Result<()> {
    // Dial, as in every TCP lesson.
    let conn = TcpStream::connect(addr).with_context(|| shared::no_server(addr, server))?;
    // ANCHOR_END: connect

    // ANCHOR: spawn-listener
    // The second thread gets its own handle on the same connection:
    // `try_clone` duplicates the socket handle (Python: the same socket object
    // used from two threads). `quitting` tells it whether the end of the
    // conversation is our idea or the server's.
    let incoming = conn
        .try_clone()
        .context("could not share the connection with a second thread")?;
    let quitting = Arc::new(AtomicBool::new(false));
    let listener = {
        let quitting = Arc::clone(&quitting);
        thread::Builder::new()
            .name("listener".to_string())
            .spawn(move || listen(incoming, &quitting))
            .context("could not start the listening thread")?
    };
    // ANCHOR_END: spawn-listener

    // ANCHOR: talk
    // The main thread: every line typed (or piped in) goes to the server with
    // a `\n`, which is how the server tells where a line ends.
    let mut out = &conn;
    for line in shared::input_lines() {
        let mut line = line.context("reading the keyboard failed")?;
        let quit = line == b"/quit";
        if quit {
            quitting.store(true, Ordering::SeqCst);
        }
        line.push(b'\n');
        if out.write_all(&line).is_err() {
            // The server is gone. The listening thread sees that too and ends
            // the program with the reason; wait for it.
            return wait_for(listener);
        }
        if quit {
            break;
        }
    }
    // ANCHOR_END: talk

    // ANCHOR: hang-up
    // End of input or /quit: say we are done sending (a FIN, the other side
    // reads 0), then wait until the server has sent its last lines and hung up.
    quitting.store(true, Ordering::SeqCst);
    let _ = conn.shutdown(Shutdown::Write); // fails only if the server is gone
    wait_for(listener)
}

/// Waits for the listening thread and returns how its conversation ended.
fn wait_for(listener: JoinHandle<anyhow::Result<()>>) -> anyhow::Result<()> {
    listener
        .join()
        .map_err(|_| anyhow!("the listening thread panicked"))?
}
// ANCHOR_END: hang-up

// ANCHOR: listen
/// The listening thread: prints every line from the server as it arrives.
fn listen(incoming: TcpStream, quitting: &AtomicBool) -> anyhow::Result<()> {
    let ended = print_lines(incoming);
    if quitting.load(Ordering::SeqCst) {
        return ended; // we hung up first; the main thread is waiting for us
    }
    // The server hung up on us. The main thread may be waiting for the
    // keyboard, and nothing can interrupt that wait: so we end the program
    // from here, with one line that says why.
    let err = ended
        .err()
        .unwrap_or_else(|| anyhow!("server closed the connection"));
    eprintln!("error: {err:#}");
    std::process::exit(1);
}

/// Prints lines until the server closes the connection (`Ok`) or it breaks.
fn print_lines(incoming: TcpStream) -> anyhow::Result<()> {
    let mut reader = BufReader::new(incoming);
    let mut line = Vec::new();
    loop {
        // A client trusts its server no more than the server trusts it:
        // `take` stops a line that never ends from filling our memory.
        line.clear();
        let n = (&mut reader)
            .take(MAX_SERVER_LINE as u64 + 1)
            .read_until(b'\n', &mut line)
            .context("lost the connection to the server")?;
        if n == 0 {
            return Ok(());
        }
        if line.len() > MAX_SERVER_LINE {
            bail!("the server sent a line longer than {MAX_SERVER_LINE} bytes");
        }
        let text = String::from_utf8_lossy(&line);
        // At a terminal, the line takes the `>> ` prompt's place, and the
        // prompt comes back below it (see `shared::print_incoming`).
        shared::print_incoming(text.trim_end_matches(['\r', '\n']));
    }
}
// ANCHOR_END: listen
