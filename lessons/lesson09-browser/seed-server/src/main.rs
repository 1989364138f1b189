//! Lesson 09, step 1: the Python tutorials' first web server, in Rust.
//!
//! It does what the tutorials' dozen lines do, and no more: one caller at
//! a time, one `read` of at most 1024 bytes, a status line that is not
//! quite HTTP, a GB2312 body without a word about its encoding, then the
//! close. The chapter shows, one test at a time, what goes wrong with it;
//! `lesson09-server` is the correct server.

// ANCHOR: imports
use std::io::{Read, Write};
use std::net::TcpListener;
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
// ANCHOR_END: imports

// ANCHOR: args
/// Lesson 09, step 1: the Python tutorials' first web server, to see what
/// goes wrong. Open http://127.0.0.1:9009/ in your browser. Stop it with
/// Ctrl-C.
#[derive(Parser)]
#[command(version)]
struct Args {
    /// Address to listen on: IP:PORT, [IPv6]:PORT or localhost:PORT
    /// (port 0 lets the system pick)
    #[arg(default_value = "127.0.0.1:9009", value_parser = shared::parse_addr)]
    addr: String,
}

fn main() -> ExitCode {
    let args: Args = shared::parse_args();
    shared::exit_status(run(&args.addr))
}
// ANCHOR_END: args

// ANCHOR: seed
/// The seed's words, as the seed sends them.
const WORDS: &str = "<h1> 不要回答！！！不要回答！！！不要回答！！！</h1>";

/// The Python tutorials' first web server, line for line:
///
/// ```text
/// conn, addr = phone.accept()
/// data = conn.recv(1024)
/// conn.send(b"HTTP/1.1 200 OK 、\r\n\r\n")
/// conn.send("<h1> 不要回答！！！...</h1>".encode("gb2312"))
/// conn.close()
/// ```
fn run(addr: &str) -> anyhow::Result<()> {
    let listener =
        TcpListener::bind(addr).with_context(|| shared::cannot_listen(addr))?;
    shared::print_listening(listener.local_addr()?);
    // Lesson 03's connection loop: one caller at a time.
    loop {
        let (mut conn, peer) = match listener.accept() {
            Ok(call) => call,
            Err(err) => {
                println!("accept failed: {err}; waiting for the next client");
                continue;
            }
        };
        // One read: whatever part of the request has arrived by now. No
        // timeout: a caller who sends nothing keeps everyone else waiting.
        let mut buf = [0u8; 1024];
        let n = conn.read(&mut buf).unwrap_or(0);
        let first = buf[..n].split(|&b| b == b'\n').next().unwrap_or_default();
        println!("client {peer}: {} ({n} bytes read)", shared::show(first));
        // Not quite HTTP: a reason phrase with a Chinese comma, and no
        // headers at all (no Content-Type, no charset, no Content-Length).
        let status = "HTTP/1.1 200 OK 、\r\n\r\n".as_bytes();
        // encoding_rs encodes GB2312 text with GBK, its superset: for
        // these characters the bytes are the same.
        let (body, _, _) = encoding_rs::GBK.encode(WORDS);
        let _ = conn.write_all(status).and_then(|()| conn.write_all(&body));
        // `conn` is dropped here, and that closes it at once, with any
        // unread request bytes still queued: the kernel then sends a reset
        // instead of a polite FIN.
    }
}
// ANCHOR_END: seed
