//! Lesson 09, exercise 1: keep-alive, several requests on one connection.
//!
//! The lesson's server answers one request and hangs up. HTTP/1.1 lets a
//! browser send its next request on the same connection instead, and this
//! server allows it: after each answer it reads the next request head,
//! until the client says `Connection: close`, speaks HTTP/1.0, hangs up, or
//! stays silent for five seconds. `Content-Length` is what makes it
//! possible: it tells the client where one answer ends and the next begins.

// ANCHOR: imports
use std::io::{self, ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::process::ExitCode;
use std::thread;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use clap::builder::RangedU64ValueParser;
use shared::Seats;
// ANCHOR_END: imports

// ANCHOR: args
/// Lesson 09, exercise 1: a web server that keeps the connection open for
/// the next request.
#[derive(Parser)]
#[command(version)]
struct Args {
    /// Address to listen on: IP:PORT, [IPv6]:PORT or localhost:PORT
    /// (port 0 lets the system pick)
    #[arg(default_value = "127.0.0.1:9009", value_parser = shared::parse_addr)]
    addr: String,

    /// Serve at most this many connections at once; the next one is
    /// answered 503 Service Unavailable
    #[arg(long, value_name = "N", default_value_t = 100,
          value_parser = RangedU64ValueParser::<usize>::new().range(1..))]
    max_clients: usize,
}

/// How long a kept-alive connection may wait for its next request.
const IDLE: Duration = Duration::from_secs(5);
const MAX_HEAD: usize = 8 * 1024;
const PAGE: &str = "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">\
                    <title>不要回答</title></head>\n\
                    <body><h1>不要回答！</h1></body></html>\n";

fn main() -> ExitCode {
    let args: Args = shared::parse_args();
    shared::exit_status(run(&args.addr, Seats::new(args.max_clients)))
}

/// The lesson's connection loop, with its seats and its accept failures.
fn run(addr: &str, seats: Seats) -> anyhow::Result<()> {
    let listener =
        TcpListener::bind(addr).with_context(|| shared::cannot_listen(addr))?;
    shared::print_listening(listener.local_addr()?);
    let mut failures = shared::AcceptLog::default();
    loop {
        let (mut conn, peer) = match listener.accept() {
            Ok(call) => call,
            Err(err) => {
                failures.failed(&err);
                thread::sleep(shared::ACCEPT_RETRY);
                continue;
            }
        };
        failures.worked();
        let Some(seat) = seats.take() else {
            let body = "server full, try again later\n";
            let answer = format!(
                "HTTP/1.1 503 Service Unavailable\r\n\
                 Content-Type: text/plain; charset=utf-8\r\n\
                 Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = conn.write_all(answer.as_bytes());
            println!("client {peer}: turned away, the server is full -> 503");
            continue;
        };
        let talk = move || {
            keep_alive(conn, peer);
            drop(seat);
        };
        if let Err(err) = thread::Builder::new().spawn(talk) {
            println!("client {peer}: could not be served: {err}; hanging up");
        }
    }
}
// ANCHOR_END: args

// ANCHOR: keep-alive
/// Answers requests on one connection until one side is done.
fn keep_alive(mut conn: TcpStream, peer: SocketAddr) {
    let _ = conn.set_read_timeout(Some(IDLE));
    // Bytes after one head belong to the next request: keep them.
    let mut pending = Vec::new();
    for number in 1.. {
        let head = match next_head(&mut conn, &mut pending) {
            Ok(Some(head)) => head,
            Ok(None) => {
                let served = number - 1;
                let noun = if served == 1 { "request" } else { "requests" };
                println!("client {peer}: done after {served} {noun}");
                return;
            }
            Err(TooLarge) => {
                let answer = "HTTP/1.1 431 Request Header Fields Too Large\r\n\
                              Content-Length: 0\r\nConnection: close\r\n\r\n";
                let _ = conn.write_all(answer.as_bytes());
                println!("client {peer}: request {number}: too large -> 431");
                return;
            }
        };
        let text = String::from_utf8_lossy(&head).into_owned();
        let lower = text.to_ascii_lowercase();
        let line = text.lines().next().unwrap_or_default().trim().to_string();
        // HTTP/1.1 keeps the connection unless asked not to; 1.0 closes it
        // unless asked to keep it.
        let close = lower.contains("\nconnection: close")
            || (line.ends_with("HTTP/1.0")
                && !lower.contains("\nconnection: keep-alive"));
        let mut words = line.split(' ');
        let method = words.next().unwrap_or_default();
        let (status, body) = match words.next() {
            Some("/") => ("200 OK", PAGE),
            _ => ("404 Not Found", "<h1>404 Not Found</h1>\n"),
        };
        // HEAD gets the same headers and no body: Content-Length says how
        // long the body would be, not what follows.
        let sent = if method == "HEAD" { "" } else { body };
        let answer = format!(
            "HTTP/1.1 {status}\r\nContent-Type: text/html; charset=utf-8\r\n\
             Content-Length: {}\r\nConnection: {}\r\n\r\n{sent}",
            body.len(),
            if close { "close" } else { "keep-alive" }
        );
        println!("client {peer}: request {number}: {line} -> {status}");
        if conn.write_all(answer.as_bytes()).is_err() {
            return;
        }
        if close {
            // As the lesson's server does: our side first, then a drain.
            let _ = conn.shutdown(Shutdown::Write);
            let _ = io::copy(&mut (&mut conn).take(64 * 1024), &mut io::sink());
            return;
        }
    }
}

/// A request head over `MAX_HEAD`.
struct TooLarge;

/// The next request head from `pending` and the connection, or `None` when
/// the client hung up or stayed silent.
fn next_head(
    conn: &mut TcpStream,
    pending: &mut Vec<u8>,
) -> Result<Option<Vec<u8>>, TooLarge> {
    let mut buf = [0u8; 1024];
    loop {
        if let Some(at) = pending.windows(4).position(|w| w == b"\r\n\r\n") {
            let rest = pending.split_off(at + 4);
            return Ok(Some(std::mem::replace(pending, rest)));
        }
        if pending.len() > MAX_HEAD {
            return Err(TooLarge);
        }
        match conn.read(&mut buf) {
            Ok(0) => return Ok(None),
            Ok(n) => pending.extend_from_slice(&buf[..n]),
            Err(err) if err.kind() == ErrorKind::Interrupted => continue,
            Err(_) => return Ok(None),
        }
    }
}
// ANCHOR_END: keep-alive
