//! Lesson 08 client: `put`, `get` and `list` files on lesson08-server.
//!
//! It reads commands, one a line: `put PATH [NAME]`, `get NAME [PATH]`,
//! `list`. Each request is a frame holding a JSON header, and a file's bytes
//! follow their header raw. A download goes to `PATH.part` first and is
//! renamed to `PATH` only when its sha256 matches; an upload or a download
//! that was cut off carries on where it stopped when the same command is
//! given again.

// ANCHOR: imports
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, ErrorKind, IsTerminal, Read, Seek, SeekFrom, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use clap::Parser;
use indicatif::{ProgressBar, ProgressStyle};
use lesson07_frame::{FrameError, read_frame, write_frame};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
// ANCHOR_END: imports

// ANCHOR: args
/// Lesson 08 client: reads commands from stdin, one a line: `put PATH [NAME]`
/// uploads a file, `get NAME [PATH]` downloads one, `list` lists them. Give a
/// cut-off command again to resume it. End the input with Ctrl-D (Ctrl-Z
/// Enter on Windows); the exit status is 1 if any command failed.
#[derive(Parser)]
#[command(version)]
struct Args {
    /// Address of the server: IP:PORT, [IPv6]:PORT or localhost:PORT
    #[arg(default_value = "127.0.0.1:9008", value_parser = shared::parse_addr)]
    addr: String,

    /// The largest file to download, in bytes; a bigger one is refused before its first byte
    #[arg(long, value_name = "BYTES", default_value_t = 4 << 30)]
    max_size: u64,
}

/// The largest header we accept from the server: a long `list` fits.
const MAX_HEADER: u32 = 16 * 1024 * 1024;

fn main() -> ExitCode {
    let args: Args = shared::parse_args();
    shared::exit_status(run(&args))
}
// ANCHOR_END: args

// ANCHOR: command-loop
fn run(args: &Args) -> anyhow::Result<()> {
    let addr = &args.addr;
    // Connect at once, so that a missing server is said before any typing.
    let mut conn = Some(connect(addr)?);
    let (mut given, mut failed) = (0, 0);
    for line in shared::input_lines() {
        let line = line.context("reading standard input failed")?;
        let line = String::from_utf8_lossy(&line);
        let words: Vec<&str> = line.split_whitespace().collect();
        if words.is_empty() {
            continue;
        }
        given += 1;
        // A connection lost in an earlier command is made again.
        let stream = match conn.take() {
            Some(stream) => stream,
            None => match connect(addr) {
                Ok(stream) => stream,
                Err(err) => {
                    eprintln!("error: {err:#}");
                    failed += 1;
                    continue;
                }
            },
        };
        let mut stream = stream;
        match command(&mut stream, &words, args.max_size) {
            Ok(done) => {
                println!("{done}");
                conn = Some(stream);
            }
            Err(err) => {
                eprintln!("error: {}: {err:#}", words.join(" "));
                failed += 1;
                // After a refusal both sides are still in step; after
                // anything else we cannot know where the stream stands.
                if err.downcast_ref::<Refused>().is_some() {
                    conn = Some(stream);
                }
            }
        }
    }
    if failed > 0 {
        bail!("{failed} of {given} commands failed");
    }
    Ok(())
}

fn connect(addr: &str) -> anyhow::Result<TcpStream> {
    let conn =
        TcpStream::connect(addr).with_context(|| shared::no_server(addr, "lesson08-server"))?;
    // A server that stops answering, or stops reading, must not hang us.
    conn.set_read_timeout(Some(Duration::from_secs(60)))?;
    conn.set_write_timeout(Some(Duration::from_secs(60)))?;
    Ok(conn)
}

/// Runs one command; `Ok` is the line to print.
fn command(conn: &mut TcpStream, words: &[&str], max_size: u64) -> anyhow::Result<String> {
    match *words {
        ["put", path] => put(conn, path, file_name(path)?),
        ["put", path, name] => put(conn, path, name),
        ["get", name] => get(conn, name, plain(name)?, max_size),
        ["get", name, path] => get(conn, name, path, max_size),
        ["list"] => list(conn),
        _ => Err(Refused(
            "unknown command; use put PATH [NAME], get NAME [PATH] or list".to_string(),
        )
        .into()),
    }
}
// ANCHOR_END: command-loop

// ANCHOR: put
/// Uploads `path` as `name`: header, the missing bytes, the server's verdict.
fn put(conn: &mut TcpStream, path: &str, name: &str) -> anyhow::Result<String> {
    let mut file = File::open(path).map_err(|err| Refused(format!("cannot open {path}: {err}")))?;
    let size = file.metadata()?.len();
    let sha256 = hex(&hash(&mut file, size)?);
    send_header(
        conn,
        &json!({"cmd": "put", "name": name, "size": size, "sha256": sha256}),
    )?;
    // The server says how much it already has from an interrupted `put`.
    let ready = read_answer(conn)?;
    let offset = number(&ready, "offset")?;
    if offset > size {
        bail!("server asked to resume at {offset}, past the end of {size} bytes");
    }
    file.seek(SeekFrom::Start(offset))?;
    let bar = progress(name, size, offset);
    let mut buf = vec![0u8; 256 * 1024];
    let mut left = size - offset;
    while left > 0 {
        let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        let got = file.read(&mut buf[..want])?;
        if got == 0 {
            bail!("{path} got shorter while it was sent");
        }
        conn.write_all(&buf[..got]).map_err(went_away)?;
        bar.inc(got as u64);
        left -= got as u64;
    }
    bar.finish_and_clear();
    // Only this answer means the file is stored, whole and checked: the
    // file we sent, not another.
    let stored = read_answer(conn)?;
    if number(&stored, "size")? != size || text(&stored, "sha256")? != sha256 {
        bail!("server says it stored something else: {stored}");
    }
    let resumed = if offset > 0 {
        format!(", resumed at {offset}")
    } else {
        String::new()
    };
    Ok(format!(
        "put {name}: {size} bytes{resumed}, sha256 {sha256}"
    ))
}
// ANCHOR_END: put

// ANCHOR: get
/// Downloads `name` into `path`, through `path.part`, resuming a cut-off
/// download that left a `path.part` behind.
fn get(conn: &mut TcpStream, name: &str, path: &str, max_size: u64) -> anyhow::Result<String> {
    let part = format!("{path}.part");
    let have = fs::metadata(&part).map_or(0, |meta| meta.len());
    let request = if have > 0 {
        json!({"cmd": "get", "name": name, "offset": have})
    } else {
        json!({"cmd": "get", "name": name})
    };
    send_header(conn, &request)?;
    let found = match read_answer(conn) {
        Ok(found) => found,
        Err(err) => {
            // Refused (no such file, or it changed and our part is too
            // long): a part left from before is of no use any more.
            if err.downcast_ref::<Refused>().is_some() {
                let _ = fs::remove_file(&part);
            }
            return Err(err);
        }
    };
    let (size, sha256) = (number(&found, "size")?, text(&found, "sha256")?);
    // A number from the network: checked before it decides anything.
    if size > max_size {
        bail!("server announced {name} as {size} bytes, over our limit of {max_size} (--max-size)");
    }
    if have > size {
        // Our part is longer than the whole file: it belongs to another one.
        let _ = fs::remove_file(&part);
        bail!(
            "server announced {name} as {size} bytes, fewer than the {have} in {part}; removed it, give the same command again"
        );
    }
    let mut file = OpenOptions::new()
        .create(true)
        .truncate(false) // keep what an earlier try wrote
        .read(true)
        .write(true)
        .open(&part)
        .with_context(|| format!("cannot write {part}"))?;
    // Hash what an earlier try already wrote, then add what arrives now.
    let mut hasher = Sha256::new();
    io::copy(&mut (&mut file).take(have), &mut hasher)?;
    file.seek(SeekFrom::Start(have))?;
    let bar = progress(name, size, have);
    let mut buf = vec![0u8; 256 * 1024];
    let mut left = size - have;
    while left > 0 {
        let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        let got = match conn.read(&mut buf[..want]) {
            Ok(0) => bail!(
                "server hung up after {} of {size} bytes of {name}; give the same command again to resume",
                size - left
            ),
            Ok(got) => got,
            Err(err) if err.kind() == ErrorKind::Interrupted => continue,
            Err(err) => return Err(went_away(err)),
        };
        hasher.update(&buf[..got]);
        file.write_all(&buf[..got])
            .with_context(|| format!("cannot write {part}"))?;
        bar.inc(got as u64);
        left -= got as u64;
    }
    bar.finish_and_clear();
    let got = hex(&hasher.finalize());
    if got != sha256 {
        drop(file);
        let _ = fs::remove_file(&part);
        return Err(Refused(format!(
            "{name} arrived with sha256 {got}, not {sha256}; nothing was saved, try again"
        ))
        .into());
    }
    // The same steps as the server: on the disk first, then the atomic rename.
    file.sync_all()?;
    fs::rename(&part, path).with_context(|| format!("cannot rename {part} to {path}"))?;
    Ok(format!(
        "get {name}: {size} bytes into {path}, sha256 {sha256}"
    ))
}
// ANCHOR_END: get

// ANCHOR: list
fn list(conn: &mut TcpStream) -> anyhow::Result<String> {
    send_header(conn, &json!({"cmd": "list"}))?;
    let answer = read_answer(conn)?;
    let files = answer["files"]
        .as_array()
        .context("server sent a list without files")?;
    let mut lines = vec![format!("list: {}", count(files.len()))];
    for file in files {
        lines.push(format!(
            "{}  {} bytes  sha256 {}",
            text(file, "name")?,
            number(file, "size")?,
            text(file, "sha256")?
        ));
    }
    Ok(lines.join("\n"))
}
// ANCHOR_END: list

// ANCHOR: headers
/// The server refused (or we refused before asking): one line to print, and
/// the connection is still usable.
#[derive(Debug)]
struct Refused(String);

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Refused {}

fn send_header(conn: &mut TcpStream, header: &Value) -> anyhow::Result<()> {
    write_frame(conn, header.to_string().as_bytes()).map_err(went_away)
}

/// Reads the server's next header: `Ok` if it says `"ok": true`.
fn read_answer(conn: &mut TcpStream) -> anyhow::Result<Value> {
    let header = match read_frame(conn, MAX_HEADER) {
        Ok(Some(header)) => header,
        Ok(None) | Err(FrameError::CutOff { .. }) => {
            bail!("server closed the connection before it answered")
        }
        Err(FrameError::TooLong { announced, limit }) => {
            bail!("server announced a header of {announced} bytes, over our limit of {limit}")
        }
        Err(FrameError::Io(err)) => return Err(went_away(err)),
    };
    let answer: Value =
        serde_json::from_slice(&header).context("server sent a header that is not JSON")?;
    if answer["ok"] == true {
        return Ok(answer);
    }
    let why = text(&answer, "error").unwrap_or_else(|_| "refused, without saying why".into());
    Err(Refused(format!("server refused: {why}")).into())
}

fn number(header: &Value, key: &str) -> anyhow::Result<u64> {
    header[key]
        .as_u64()
        .with_context(|| format!("server sent no number {key:?}"))
}

/// Text from the server, safe to print: a control character (an escape
/// sequence could clear or garble the terminal) is shown escaped, `\u{1b}`.
fn text(header: &Value, key: &str) -> anyhow::Result<String> {
    let text = header[key]
        .as_str()
        .with_context(|| format!("server sent no text {key:?}"))?;
    Ok(text
        .chars()
        .map(|c| match c.is_control() {
            true => c.escape_debug().to_string(),
            false => c.to_string(),
        })
        .collect())
}

/// Turns a failed read or write into one line saying what the server did.
fn went_away(err: io::Error) -> anyhow::Error {
    match err.kind() {
        ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted | ErrorKind::BrokenPipe => {
            anyhow!("server reset the connection; give the same command again to resume")
        }
        _ => anyhow::Error::new(err).context("talking to the server failed"),
    }
}
// ANCHOR_END: headers

// ANCHOR: helpers
/// The sha256 of the first `size` bytes of `file`, read from its start.
fn hash(file: &mut File, size: u64) -> io::Result<Vec<u8>> {
    let mut hasher = Sha256::new();
    io::copy(&mut (&mut *file).take(size), &mut hasher)?;
    Ok(hasher.finalize().to_vec())
}

/// "1 file", "2 files".
fn count(files: usize) -> String {
    if files == 1 {
        "1 file".to_string()
    } else {
        format!("{files} files")
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `put PATH` stores the file under its own name.
fn file_name(path: &str) -> anyhow::Result<&str> {
    Path::new(path)
        .file_name()
        .and_then(|name| name.to_str())
        .ok_or_else(|| Refused(format!("{path} has no file name; say put PATH NAME")).into())
}

/// `get NAME` saves to NAME here, so NAME must not lead anywhere else.
fn plain(name: &str) -> anyhow::Result<&str> {
    if file_name(name).ok() == Some(name) {
        return Ok(name);
    }
    Err(Refused(format!(
        "{name} is not a plain file name; say get NAME PATH"
    ))
    .into())
}

/// A progress bar on a terminal, for a person watching; nothing otherwise.
/// `wide_bar` takes what the terminal's width leaves, so the line never wraps.
fn progress(name: &str, size: u64, done: u64) -> ProgressBar {
    if !(io::stdin().is_terminal() && io::stderr().is_terminal()) {
        return ProgressBar::hidden();
    }
    let style = ProgressStyle::with_template(
        "{msg} [{wide_bar}] {bytes}/{total_bytes} {bytes_per_sec}, {eta} left",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar());
    let bar = ProgressBar::new(size)
        .with_style(style.progress_chars("=> "))
        .with_message(name.to_string());
    bar.set_position(done);
    bar.reset_eta();
    bar
}
// ANCHOR_END: helpers
