//! Lesson 09 client: your own tiny curl.
//!
//! It sends one HTTP request, then shows what came back: the status line,
//! the headers, and the body, decoded with the charset the headers name.
//! It reads the body up to `Content-Length` if the server gave one, or
//! else until the server hangs up, and it says which.

// ANCHOR: imports
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::ExitCode;

use anyhow::{Context, anyhow, bail};
use clap::Parser;
// ANCHOR_END: imports

// ANCHOR: args
/// Lesson 09 client: fetches PATH from a web server (lesson09-server by
/// default) and prints the status line, the headers and the body.
#[derive(Parser)]
#[command(version)]
struct Args {
    /// Address of the server: IP:PORT, [IPv6]:PORT or localhost:PORT
    #[arg(default_value = "127.0.0.1:9009", value_parser = shared::parse_addr)]
    addr: String,

    /// The path to ask for
    #[arg(default_value = "/")]
    path: String,
}

/// The most of an answer we read: a header section, then a body.
const MAX_HEAD: usize = 64 * 1024;
const MAX_BODY: u64 = 16 * 1024 * 1024;

fn main() -> ExitCode {
    let args: Args = shared::parse_args();
    shared::exit_status(run(&args.addr, &args.path))
}
// ANCHOR_END: args

// ANCHOR: request
fn run(addr: &str, path: &str) -> anyhow::Result<()> {
    if !path.starts_with('/')
        || path.contains(|c: char| c.is_ascii_whitespace())
    {
        bail!("the path must start with / and hold no spaces, e.g. /gb2312");
    }
    let mut conn = TcpStream::connect(addr)
        .with_context(|| shared::no_server(addr, "lesson09-server"))?;
    // A request: the request line, a Host header (HTTP/1.1 requires one),
    // and an empty line. `Connection: close` asks for one answer only.
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\n\
         User-Agent: lesson09-client\r\nConnection: close\r\n\r\n"
    );
    conn.write_all(request.as_bytes())
        .context("sending the request failed")?;
    // ANCHOR_END: request

    // ANCHOR: head
    // Read until the empty line that ends the head; what came after it is
    // the start of the body.
    let mut data = Vec::new();
    let mut buf = [0u8; 4096];
    let end = loop {
        if let Some(at) = find(&data, b"\r\n\r\n") {
            break at;
        }
        if data.len() > MAX_HEAD {
            bail!(
                "the answer's head goes on past our limit of {MAX_HEAD} bytes"
            );
        }
        let n = conn.read(&mut buf).context("reading the answer failed")?;
        if n == 0 {
            bail!("the server hung up before a whole answer head");
        }
        data.extend_from_slice(&buf[..n]);
    };
    let head = String::from_utf8_lossy(&data[..end]).into_owned();
    let mut body = data[end + 4..].to_vec();
    for line in head.lines() {
        println!("{line}");
    }
    println!();
    // ANCHOR_END: head

    // ANCHOR: body
    // Content-Length says where the body ends. Without it, the end of the
    // stream does: the server must hang up, and we cannot tell a whole body
    // from one cut short.
    let length = header(&head, "content-length")
        .map(|v| {
            v.parse::<u64>()
                .map_err(|_| anyhow!("a bad Content-Length: {v}"))
        })
        .transpose()?;
    if let Some(n) = length.filter(|&n| n > MAX_BODY) {
        bail!(
            "the server announced a body of {n} bytes, over our limit of {MAX_BODY}"
        );
    }
    // One byte more than we take, to see whether a body without a length
    // goes on past the limit.
    let limit = length.unwrap_or(MAX_BODY + 1);
    body.truncate(limit as usize);
    let wanted = limit - body.len() as u64;
    (&mut conn)
        .take(wanted)
        .read_to_end(&mut body)
        .context("reading the body failed")?;
    if body.len() as u64 > MAX_BODY {
        bail!("the body goes on past our limit of {MAX_BODY} bytes");
    }
    let how = match length {
        Some(n) if body.len() as u64 == n => {
            format!("{n} bytes, as Content-Length said")
        }
        Some(n) => format!(
            "only {} of the {n} bytes Content-Length promised",
            body.len()
        ),
        None => format!(
            "{} bytes, until the server hung up (no Content-Length)",
            body.len()
        ),
    };
    // ANCHOR_END: body

    // ANCHOR: decode
    // The charset comes from Content-Type, e.g. `text/html; charset=gb2312`.
    let kind = header(&head, "content-type").unwrap_or_default();
    let charset = kind
        .split(';')
        .filter_map(|part| part.trim().strip_prefix("charset="))
        .next();
    let text = match charset
        .and_then(|c| encoding_rs::Encoding::for_label(c.as_bytes()))
    {
        Some(encoding) => encoding.decode(&body).0.into_owned(),
        None => String::from_utf8_lossy(&body).into_owned(),
    };
    println!("{}", text.trim_end());
    let named = charset.unwrap_or("none named, shown as UTF-8");
    eprintln!("({how}; charset: {named})");
    Ok(())
}
// ANCHOR_END: decode

// ANCHOR: helpers
/// Where `needle` starts in `haystack`.
fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// The value of header `name` (any case), if the head has it.
fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().skip(1).find_map(|line| {
        let (key, value) = line.split_once(':')?;
        key.trim().eq_ignore_ascii_case(name).then(|| value.trim())
    })
}
// ANCHOR_END: helpers
