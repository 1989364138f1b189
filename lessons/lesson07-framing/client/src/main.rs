//! Lesson 07 client: every line you type travels as one frame.
//!
//! Like lesson 04's client it sends each line and prints the reply, but each
//! message is a frame (a 4-byte big-endian length, then the bytes), so an
//! empty line is a message too, and a reply is read as exactly one frame.
//! With `--all-at-once` it sends every line before it reads any reply: the
//! frames travel glued together, and the framing still keeps them apart.

// ANCHOR: imports
use std::io::{self, ErrorKind};
use std::net::{Shutdown, TcpStream};
use std::process::ExitCode;
use std::thread;

use anyhow::{Context, anyhow};
use clap::Parser;
use lesson07_frame::{FrameError, read_frame, write_frame};
// ANCHOR_END: imports

// ANCHOR: args
/// Lesson 07 client: sends each line you type to lesson07-server as one frame
/// and prints the reply frame. End the input with Ctrl-D (Ctrl-Z Enter on
/// Windows).
#[derive(Parser)]
#[command(version)]
struct Args {
    /// Address of the server: IP:PORT, [IPv6]:PORT or localhost:PORT
    #[arg(default_value = "127.0.0.1:9007", value_parser = shared::parse_addr)]
    addr: String,

    /// Read all of the input first and send every frame before reading
    /// any reply
    #[arg(long)]
    all_at_once: bool,

    /// The largest reply frame we accept, in bytes
    #[arg(long, value_name = "BYTES", default_value_t = 1024 * 1024)]
    max_frame: u32,
}

fn main() -> ExitCode {
    let args: Args = shared::parse_args();
    shared::exit_status(run(&args))
}
// ANCHOR_END: args

// ANCHOR: one-by-one
fn run(args: &Args) -> anyhow::Result<()> {
    let addr = &args.addr;
    let mut conn = TcpStream::connect(addr)
        .with_context(|| shared::no_server(addr, "lesson07-server"))?;
    if args.all_at_once {
        return all_at_once(conn, args.max_frame);
    }
    // One frame out, one frame back, line by line.
    for line in shared::input_lines() {
        let line = line.context("reading standard input failed")?;
        write_frame(&mut conn, &line).map_err(went_away)?;
        let reply = read_reply(&mut conn, args.max_frame)?;
        check_answer(&line, &reply)?;
        println!("{}", String::from_utf8_lossy(&reply));
    }
    // End of input: hang up between two frames, the polite way.
    Ok(())
}
// ANCHOR_END: one-by-one

// ANCHOR: all-at-once
/// Sends every line, glued into one stream of frames, then reads the replies.
fn all_at_once(conn: TcpStream, max_frame: u32) -> anyhow::Result<()> {
    let lines: Vec<Vec<u8>> = shared::input_lines()
        .collect::<io::Result<_>>()
        .context("reading standard input failed")?;
    let mut glued = Vec::new();
    for line in &lines {
        write_frame(&mut glued, line)?;
    }
    // Another thread sends while this one reads. If one thread did both, a
    // large input could deadlock: we block writing because the server blocks
    // writing replies that nobody reads.
    let mut sender = conn.try_clone().context("could not share the socket")?;
    let sending = thread::spawn(move || -> io::Result<()> {
        io::Write::write_all(&mut sender, &glued)?;
        // "That was everything": the server sees end of stream after the
        // last frame, and still sends us every reply.
        sender.shutdown(Shutdown::Write)
    });
    let mut conn = conn;
    for line in &lines {
        let reply = read_reply(&mut conn, max_frame)?;
        check_answer(line, &reply)?;
        println!("{}", String::from_utf8_lossy(&reply));
    }
    sending
        .join()
        .map_err(|_| anyhow!("the sending thread panicked"))?
        .map_err(went_away)
}
// ANCHOR_END: all-at-once

// ANCHOR: read-reply
/// Reads one reply frame, or says in one line why none came.
fn read_reply(conn: &mut TcpStream, max_frame: u32) -> anyhow::Result<Vec<u8>> {
    match read_frame(conn, max_frame) {
        Ok(Some(reply)) => Ok(reply),
        Ok(None) => {
            Err(anyhow!("server closed the connection before it answered"))
        }
        Err(FrameError::CutOff { got, expected }) => Err(anyhow!(
            "server closed the connection in the middle of a reply \
             ({got} of {expected} bytes)"
        )),
        Err(FrameError::TooLong { announced, limit }) => Err(anyhow!(
            "server announced a reply of {announced} bytes, \
             over our limit of {limit}"
        )),
        Err(FrameError::Io(err)) => Err(went_away(err)),
    }
}

/// The answer to a frame is the same bytes upper-cased. Any other reply is
/// the server saying something else, such as that it is full: an error,
/// shown in the server's own words.
fn check_answer(sent: &[u8], reply: &[u8]) -> anyhow::Result<()> {
    if reply != shared::upper(sent) {
        let said = shared::show(reply);
        return Err(anyhow!("instead of an answer the server said {said}"));
    }
    Ok(())
}

/// Turns a failed read or write into one line saying what the server did.
fn went_away(err: io::Error) -> anyhow::Error {
    match err.kind() {
        ErrorKind::ConnectionReset
        | ErrorKind::ConnectionAborted
        | ErrorKind::BrokenPipe => {
            anyhow!("server reset the connection")
        }
        _ => anyhow::Error::new(err).context("talking to the server failed"),
    }
}
// ANCHOR_END: read-reply
