//! Lesson 09 server, step 2: answering a real web browser, by hand.
//!
//! A browser is just another TCP client. It sends a request, a few lines of
//! text ending in an empty line, and expects an answer in the same form: a
//! status line, headers, an empty line, then the body. This server reads
//! the request whole, answers with every header a browser needs, and hangs
//! up politely, a thread per caller as in lesson 07, up to `--max-clients`
//! at once.
//!
//! Step 1, `lesson09-seed-server`, is the Python tutorials' first web
//! server, which gets each of these things wrong.

// ANCHOR: imports
use std::fs;
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;
use clap::builder::RangedU64ValueParser;
use shared::Seats;
// ANCHOR_END: imports

// ANCHOR: args
/// Lesson 09 server: answers web browsers, curl and Python's urllib with
/// the seed's words, in UTF-8 at / and in GB2312 at /gb2312, and with files
/// from --dir. Open http://127.0.0.1:9009/ in your browser. Stop it with
/// Ctrl-C.
#[derive(Parser)]
#[command(version)]
struct Args {
    /// Address to listen on: IP:PORT, [IPv6]:PORT or localhost:PORT
    /// (port 0 lets the system pick)
    #[arg(default_value = "127.0.0.1:9009", value_parser = shared::parse_addr)]
    addr: String,

    /// Also serve the files in this folder (never anything outside it)
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,

    /// Close a connection that has not sent a whole request head within
    /// this many seconds
    #[arg(long, value_name = "SECS", default_value_t = 10,
          value_parser = clap::value_parser!(u64).range(1..))]
    idle_timeout: u64,

    /// Serve at most this many connections at once; the next one is
    /// answered 503 Service Unavailable
    #[arg(long, value_name = "N", default_value_t = 100,
          value_parser = RangedU64ValueParser::<usize>::new().range(1..))]
    max_clients: usize,
}

/// What every connection's thread needs to know.
struct Config {
    /// The folder to serve, made absolute, with every link resolved.
    dir: Option<PathBuf>,
    idle: Duration,
}

fn main() -> ExitCode {
    let args: Args = shared::parse_args();
    shared::exit_status(run(args))
}
// ANCHOR_END: args

// ANCHOR: accept-loop
fn run(args: Args) -> anyhow::Result<()> {
    let dir = match &args.dir {
        Some(dir) => Some(dir.canonicalize().with_context(|| {
            format!(
                "cannot serve {} (is it an existing folder?)",
                dir.display()
            )
        })?),
        None => None,
    };
    let config = std::sync::Arc::new(Config {
        dir,
        idle: Duration::from_secs(args.idle_timeout),
    });
    let addr = &args.addr;
    let listener =
        TcpListener::bind(addr).with_context(|| shared::cannot_listen(addr))?;
    shared::print_listening(listener.local_addr()?);
    // Lesson 07's connection loop: a seat per caller, and a failing
    // accept said once, then tried again every 100 ms.
    let seats = Seats::new(args.max_clients);
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
            turn_away(conn, peer, seats.max());
            continue;
        };
        let config = std::sync::Arc::clone(&config);
        let talk = move || {
            answer(conn, peer, &config);
            drop(seat);
        };
        if let Err(err) = thread::Builder::new().spawn(talk) {
            println!("client {peer}: could not be served: {err}; hanging up");
        }
    }
}
// ANCHOR_END: accept-loop

// ANCHOR: turn-away
/// Answers 503 while every seat is taken. The accept loop must not wait
/// for anybody, so the request is not read: a new connection's send buffer
/// is empty, and this short write cannot block.
fn turn_away(mut conn: TcpStream, peer: SocketAddr, max: usize) {
    let why = format!(
        "server full: {max} clients are being served, try again later\n"
    );
    let full = Response::new(503, "Service Unavailable", TEXT_UTF8, why.into());
    println!("client {peer}: turned away, the server is full -> 503");
    let _ = conn.write_all(&[full.head(), full.body].concat());
    // Our side is done. What the caller has sent so far is read and
    // dropped, without waiting for more, so that the close sends no reset.
    let _ = conn.shutdown(Shutdown::Write);
    if conn.set_nonblocking(true).is_ok() {
        let mut buf = [0u8; 4096];
        for _ in 0..16 {
            if !matches!(conn.read(&mut buf), Ok(1..)) {
                break;
            }
        }
    }
}
// ANCHOR_END: turn-away

// ANCHOR: limits
/// The most a request head may take: the request line and all headers.
const MAX_HEAD: usize = 8 * 1024;

/// How long we keep reading what a client still sends after our answer.
const DRAIN: Duration = Duration::from_secs(1);
// ANCHOR_END: limits

// ANCHOR: answer
/// Reads one request, answers it, and hangs up politely.
fn answer(mut conn: TcpStream, peer: SocketAddr, config: &Config) {
    if conn.set_read_timeout(Some(config.idle)).is_err()
        || conn.set_write_timeout(Some(config.idle)).is_err()
    {
        return;
    }
    let response = match read_head(&mut conn, config.idle) {
        Ok(head) => respond(&head, config),
        Err(HeadError::TooLarge) => {
            Response::error(431, "Request Header Fields Too Large")
        }
        Err(HeadError::Silent) => {
            println!(
                "client {peer}: no request within {:?}, closing",
                config.idle
            );
            return;
        }
        Err(HeadError::Gone) => {
            println!("client {peer}: hung up before a whole request");
            return;
        }
    };
    println!(
        "client {peer}: {} -> {} ({} bytes)",
        response.log,
        response.status,
        response.body.len()
    );
    let _ = conn.write_all(&response.head()).and_then(|()| {
        if response.send_body {
            conn.write_all(&response.body)
        } else {
            Ok(())
        }
    });
    hang_up_politely(conn);
}

/// Shuts down our sending side (the client sees the end of our answer),
/// then reads and drops whatever the client still sends, for a moment.
/// Closing with unread bytes would make the kernel send a reset, and a
/// reset can destroy the answer before the browser has read it.
fn hang_up_politely(mut conn: TcpStream) {
    let _ = conn.shutdown(Shutdown::Write);
    let deadline = Instant::now() + DRAIN;
    let mut buf = [0u8; 4096];
    let mut drained = 0;
    // At most 64 KiB, and at most DRAIN in all, however slowly it comes.
    while drained < 64 * 1024 {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || conn.set_read_timeout(Some(left)).is_err() {
            return;
        }
        match conn.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => drained += n,
        }
    }
}
// ANCHOR_END: answer

// ANCHOR: read-head
/// Why no request head could be read.
enum HeadError {
    TooLarge,
    Silent,
    Gone,
}

/// Reads up to and including the empty line that ends the request head,
/// however the bytes arrive: one read is not one request (lesson 07). What
/// comes after the empty line (a body we do not want) stays unread or is
/// dropped.
///
/// The whole head must arrive within `limit`: a client that sends one byte
/// now and then (a "slow loris") cannot keep the thread for longer.
fn read_head(
    conn: &mut TcpStream,
    limit: Duration,
) -> Result<Vec<u8>, HeadError> {
    let deadline = Instant::now() + limit;
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        if let Some(end) = end_of_head(&head) {
            head.truncate(end);
            return Ok(head);
        }
        if head.len() > MAX_HEAD {
            return Err(HeadError::TooLarge);
        }
        // Each read may wait only for what is left of the time.
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || conn.set_read_timeout(Some(left)).is_err() {
            return Err(HeadError::Silent);
        }
        match conn.read(&mut buf) {
            Ok(0) => return Err(HeadError::Gone),
            Ok(n) => head.extend_from_slice(&buf[..n]),
            Err(err) if err.kind() == ErrorKind::Interrupted => continue,
            Err(err)
                if matches!(
                    err.kind(),
                    ErrorKind::WouldBlock | ErrorKind::TimedOut
                ) =>
            {
                return Err(HeadError::Silent);
            }
            Err(_) => return Err(HeadError::Gone),
        }
    }
}

/// Where the head ends: just after its empty line (`\r\n\r\n`, or `\n\n`
/// from a client that forgets the `\r`), if it is within the limit.
fn end_of_head(data: &[u8]) -> Option<usize> {
    let seen = &data[..data.len().min(MAX_HEAD)];
    let crlf = seen
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| i + 4);
    let lf = seen.windows(2).position(|w| w == b"\n\n").map(|i| i + 2);
    crlf.into_iter().chain(lf).min()
}
// ANCHOR_END: read-head

// ANCHOR: respond
/// An answer: status, headers, body.
struct Response {
    status: u16,
    reason: &'static str,
    headers: Vec<(&'static str, String)>,
    body: Vec<u8>,
    /// `false` for HEAD: the same headers, no body.
    send_body: bool,
    /// What the log line says was asked.
    log: String,
}

impl Response {
    fn new(
        status: u16,
        reason: &'static str,
        kind: &str,
        body: Vec<u8>,
    ) -> Response {
        Response {
            status,
            reason,
            headers: vec![("Content-Type", kind.to_string())],
            body,
            send_body: true,
            log: "(no request line)".into(),
        }
    }

    /// A small HTML page that says what went wrong.
    fn error(status: u16, reason: &'static str) -> Response {
        let page = format!(
            "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">\
             <title>{status} {reason}</title></head>\n\
             <body><h1>{status} {reason}</h1></body></html>\n"
        );
        Response::new(status, reason, HTML_UTF8, page.into_bytes())
    }

    /// The status line and headers, ending in the empty line. Every answer
    /// says how long its body is, and that we hang up after it.
    fn head(&self) -> Vec<u8> {
        let mut head = format!("HTTP/1.1 {} {}\r\n", self.status, self.reason);
        for (name, value) in &self.headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str(&format!("Content-Length: {}\r\n", self.body.len()));
        head.push_str("Connection: close\r\n\r\n");
        head.into_bytes()
    }
}

const HTML_UTF8: &str = "text/html; charset=utf-8";
const TEXT_UTF8: &str = "text/plain; charset=utf-8";

/// Decides the answer to one request head.
fn respond(head: &[u8], config: &Config) -> Response {
    // The request line: METHOD PATH VERSION, in UTF-8 (ASCII, really).
    let line = head.split(|&b| b == b'\n').next().unwrap_or_default();
    let Ok(line) = std::str::from_utf8(line) else {
        return Response::error(400, "Bad Request");
    };
    let line = line.trim_end_matches('\r');
    let parts: Vec<&str> = line.split(' ').collect();
    let [method, target, version] = parts[..] else {
        return Response::error(400, "Bad Request").asked(line);
    };
    // An answer to HEAD is the headers only, whatever its status.
    let head_only = |mut r: Response| {
        r.send_body = method != "HEAD";
        r
    };
    if !matches!(version, "HTTP/1.0" | "HTTP/1.1") {
        let refused = Response::error(505, "HTTP Version Not Supported");
        return head_only(refused).asked(line);
    }
    let response = match method {
        "GET" | "HEAD" => route(target, config),
        _ => {
            let mut refused = Response::error(405, "Method Not Allowed");
            refused.headers.push(("Allow", "GET, HEAD".into()));
            refused
        }
    };
    head_only(response).asked(&format!("{method} {target}"))
}

impl Response {
    fn asked(mut self, what: &str) -> Response {
        self.log = shared::show(what.as_bytes());
        self
    }
}
// ANCHOR_END: respond

// ANCHOR: route
/// The seed's words, as the seed sends them.
const SEED_WORDS_HTML: &str =
    "<h1> 不要回答！！！不要回答！！！不要回答！！！</h1>";

/// The seed's words, in a page that says which encoding it uses.
fn seed_page(charset: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html><head><meta charset=\"{charset}\">\
         <title>不要回答</title></head>\n\
         <body>{SEED_WORDS_HTML}</body></html>\n"
    )
}

/// Which answer a path gets.
fn route(target: &str, config: &Config) -> Response {
    // `/?lang=zh` asks for `/`: what follows `?` (or `#`) is not the path.
    let path = target.split(['?', '#']).next().unwrap_or_default();
    match path {
        "/" => {
            Response::new(200, "OK", HTML_UTF8, seed_page("utf-8").into_bytes())
        }
        "/gb2312" => {
            // encoding_rs encodes GB2312 text with GBK, its superset: for
            // these characters the bytes are the same.
            let page = seed_page("gb2312");
            let (bytes, _, _) = encoding_rs::GBK.encode(&page);
            let kind = "text/html; charset=gb2312";
            Response::new(200, "OK", kind, bytes.into_owned())
        }
        _ => match &config.dir {
            Some(dir) => serve_file(dir, path),
            None => Response::error(404, "Not Found"),
        },
    }
}
// ANCHOR_END: route

// ANCHOR: files
/// A file from `dir`, or 404 or 403. The path is percent-decoded first,
/// then every way out of `dir` is refused.
fn serve_file(dir: &Path, path: &str) -> Response {
    let Some(decoded) = percent_decode(path) else {
        return Response::error(400, "Bad Request");
    };
    // Only plain names between slashes: no `..`, no `.`, no empty parts
    // (`//`), no backslashes (Windows reads them as slashes), no NUL.
    let parts: Vec<&str> =
        decoded.strip_prefix('/').unwrap_or("").split('/').collect();
    let plain = |p: &&str| {
        !p.is_empty() && *p != "." && *p != ".." && !p.contains(['\\', '\0'])
    };
    if !parts.iter().all(plain) {
        return Response::error(404, "Not Found");
    }
    let wanted = parts.iter().fold(dir.to_path_buf(), |path, p| path.join(p));
    // A link inside `dir` may point outside it: resolve, then check again.
    let Ok(real) = wanted.canonicalize() else {
        return Response::error(404, "Not Found");
    };
    if !real.starts_with(dir) {
        return Response::error(403, "Forbidden");
    }
    match fs::read(&real) {
        Ok(bytes) => Response::new(200, "OK", content_type(&real), bytes),
        Err(_) => Response::error(404, "Not Found"),
    }
}

/// `%E4%BD%A0` -> the bytes E4 BD A0, then UTF-8. `None` if malformed.
fn percent_decode(path: &str) -> Option<String> {
    let bytes = path.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// The Content-Type of a file, from its name's ending.
fn content_type(path: &Path) -> &'static str {
    let ending = path.extension().and_then(|e| e.to_str()).unwrap_or("");
    match ending.to_ascii_lowercase().as_str() {
        "html" | "htm" => HTML_UTF8,
        "txt" => TEXT_UTF8,
        "css" => "text/css; charset=utf-8",
        "js" => "text/javascript; charset=utf-8",
        "json" => "application/json",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "svg" => "image/svg+xml",
        "ico" => "image/x-icon",
        _ => "application/octet-stream",
    }
}
// ANCHOR_END: files
