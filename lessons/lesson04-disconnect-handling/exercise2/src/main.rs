//! Lesson 04, exercise 2 (a solution): lesson 04's client, but it says at
//! once when the server hangs up, even while it waits for you to type.
//!
//! A blocking client can wait for one thing at a time: your next line, or the
//! server. So this one has two threads. The main thread reads your lines and
//! sends them; a listening thread reads the socket all the time, prints each
//! reply when it is complete, and notices the server's FIN or RST the moment
//! it arrives. Lesson 06 builds its chat client the same way.

// ANCHOR: imports
use std::io::{self, ErrorKind, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, Sender, TryRecvError};
use std::sync::{Arc, Mutex};
use std::thread;

use anyhow::{Context, anyhow};
use clap::Parser;
// ANCHOR_END: imports

// ANCHOR: args
/// Lesson 04, exercise 2: lesson 04's client, which says at once when the
/// server hangs up, even while it waits for your next line.
#[derive(Parser)]
#[command(version)]
struct Args {
    /// Address of the server: IP:PORT, [IPv6]:PORT or localhost:PORT
    #[arg(default_value = "127.0.0.1:9004", value_parser = shared::parse_addr)]
    addr: String,
}

fn main() -> ExitCode {
    let args: Args = shared::parse_args();
    shared::exit_status(run(&args.addr))
}
// ANCHOR_END: args

// ANCHOR: talk
/// The main thread: read lines, send them. Replies are the listener's job.
fn run(addr: &str) -> anyhow::Result<()> {
    let mut conn =
        TcpStream::connect(addr).with_context(|| shared::no_server(addr, "lesson04-server"))?;
    // A second handle to the same connection, for the listening thread.
    let listening = conn.try_clone().context("could not clone the connection")?;
    // Before sending a message, we tell the listener how long its reply will
    // be: that is how it knows where one reply ends and the next begins. It
    // tells us when it has printed the reply.
    let (lengths, expected) = mpsc::channel();
    let (printed, replied) = mpsc::channel();
    let said_q = Arc::new(AtomicBool::new(false));
    let heard_q = Arc::clone(&said_q);
    let listener = thread::spawn(move || listen(listening, expected, printed, &heard_q));

    for line in shared::input_lines() {
        let line = line.context("reading standard input failed")?;
        let message = line.trim_ascii();
        if message.is_empty() {
            continue;
        }
        if message.eq_ignore_ascii_case(b"q") {
            said_q.store(true, Ordering::SeqCst);
            conn.write_all(message)
                .unwrap_or_else(|err| fail(went_away(err)));
            break;
        }
        // If the listener has hung up the channels, it is ending the program.
        let _ = lengths.send(message.len());
        conn.write_all(message)
            .unwrap_or_else(|err| fail(went_away(err)));
        // Wait for the reply before sending the next line, as lesson 04's
        // client does: with one message in flight, one read on the server's
        // side is one message (no 粘包), and a `q` arrives alone.
        let _ = replied.recv();
    }
    // Done talking (q, or end of input): half-close, so that the server hangs
    // up once it has answered everything, and let the listener hear the rest.
    drop(lengths);
    // If this fails, the connection is already gone and the listener says so.
    let _ = conn.shutdown(Shutdown::Write);
    listener
        .join()
        .map_err(|_| anyhow!("the listening thread panicked"))
}
// ANCHOR_END: talk

// ANCHOR: listen
/// The listening thread: prints every reply as soon as it is complete, and
/// ends the program the moment the server hangs up unasked.
fn listen(
    mut conn: TcpStream,
    expected: Receiver<usize>,
    printed: Sender<()>,
    said_q: &AtomicBool,
) {
    let mut heard = Vec::new(); // bytes received and not yet printed
    let mut waiting_for = None; // the length of the reply we are waiting for
    let mut buf = [0u8; 64 * 1024];
    loop {
        let n = conn
            .read(&mut buf)
            .unwrap_or_else(|err| fail(went_away(err)));
        if n == 0 {
            break; // the server hung up: see below whether we asked it to
        }
        heard.extend_from_slice(&buf[..n]);
        // Print every reply that is complete. The main thread sends a length
        // before its message, so the length is there before the reply is.
        loop {
            if waiting_for.is_none() {
                waiting_for = expected.try_recv().ok();
            }
            match waiting_for {
                Some(len) if heard.len() >= len => {
                    let reply: Vec<u8> = heard.drain(..len).collect();
                    println!("{}", String::from_utf8_lossy(&reply));
                    let _ = printed.send(());
                    waiting_for = None;
                }
                _ => break,
            }
        }
    }
    // ANCHOR_END: listen

    // ANCHOR: hung-up
    // End of stream. After our q, it is the goodbye we asked for.
    if said_q.load(Ordering::SeqCst) {
        if !heard.is_empty() {
            println!("{}", String::from_utf8_lossy(&heard));
        }
        println!("server hung up, as asked");
        return;
    }
    // After the end of our input, with every reply printed, it is the normal
    // end of the call. Otherwise the server hung up on us: say so at once,
    // even if the main thread is still waiting for a line.
    let input_ended = matches!(expected.try_recv(), Err(TryRecvError::Disconnected));
    if !(input_ended && waiting_for.is_none() && heard.is_empty()) {
        fail(anyhow!("server closed the connection"));
    }
}

/// Prints `error: ...` and ends the program with status 1, from either thread.
fn fail(err: anyhow::Error) -> ! {
    // If both threads fail at once, only the first says so: the second waits
    // here until the program has ended.
    static SAYING: Mutex<()> = Mutex::new(());
    let _only_one = SAYING.lock();
    eprintln!("error: {err:#}");
    std::process::exit(1)
}

/// Lesson 04's `went_away`, for errors of the listening thread and of writes.
fn went_away(err: io::Error) -> anyhow::Error {
    match err.kind() {
        ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted | ErrorKind::BrokenPipe => {
            anyhow!("server reset the connection")
        }
        _ => anyhow::Error::new(err).context("talking to the server failed"),
    }
}
// ANCHOR_END: hung-up
