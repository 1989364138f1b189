//! Lesson 08's clients, the parts both steps share: the command loop, headers
//! out and answers in (every number and text from the server checked), the
//! progress bar, and `list`.
//!
//! Step 1's client (`main.rs` beside this file) and step 2's,
//! `lesson08-client`, both use them, so each is written once.

// ANCHOR: lib-imports
use std::fmt;
use std::fs::{self, File};
use std::io::{self, ErrorKind, IsTerminal, Read};
use std::net::TcpStream;
use std::path::Path;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use lesson07_frame::{FrameError, read_frame, write_frame};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
// ANCHOR_END: lib-imports

// ANCHOR: command-loop
/// Reads commands from stdin, one a line, and runs each with `command` on a
/// connection to `addr`, where `server` should listen; `command` returns the
/// line to print. The exit status says whether every command succeeded.
pub fn run<F>(addr: &str, server: &str, mut command: F) -> anyhow::Result<()>
where
    F: FnMut(&mut TcpStream, &[&str]) -> anyhow::Result<String>,
{
    // Ctrl-C in the middle of a transfer: wipe the progress bar, so that the
    // shell's prompt starts on a clean line, then stop as Ctrl-C does (exit
    // status 130, 128 + the signal's number 2). The bar is first told to
    // draw nowhere, so the main thread cannot draw it again meanwhile.
    if io::stderr().is_terminal() {
        let _ = ctrlc::set_handler(|| {
            if let Some(bar) = lock_bar().take() {
                bar.set_draw_target(ProgressDrawTarget::hidden());
            }
            eprint!("\r\x1b[2K");
            std::process::exit(130);
        });
    }
    // Connect at once, so that a missing server is said before any typing.
    let mut conn = Some(connect(addr, server)?);
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
        let mut stream = match conn.take() {
            Some(stream) => stream,
            None => match connect(addr, server) {
                Ok(stream) => stream,
                Err(err) => {
                    eprintln!("error: {err:#}");
                    failed += 1;
                    continue;
                }
            },
        };
        match command(&mut stream, &words) {
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

fn connect(addr: &str, server: &str) -> anyhow::Result<TcpStream> {
    let conn = TcpStream::connect(addr).with_context(|| shared::no_server(addr, server))?;
    // A server that stops answering, or stops reading, must not hang us.
    conn.set_read_timeout(Some(Duration::from_secs(60)))?;
    conn.set_write_timeout(Some(Duration::from_secs(60)))?;
    Ok(conn)
}

/// The line for a command that is not one.
pub fn unknown() -> anyhow::Error {
    Refused("unknown command; use put PATH [NAME], get NAME [PATH] or list".to_string()).into()
}
// ANCHOR_END: command-loop

// ANCHOR: headers
/// The server refused (or we refused before asking): one line to print, and
/// the connection is still usable.
#[derive(Debug)]
pub struct Refused(pub String);

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Refused {}

/// The largest header we accept from the server: a long `list` fits.
pub const MAX_HEADER: u32 = 16 * 1024 * 1024;

pub fn send_header(conn: &mut TcpStream, header: &Value) -> anyhow::Result<()> {
    write_frame(conn, header.to_string().as_bytes()).map_err(went_away)
}

/// Reads the server's next header: `Ok` if it says `"ok": true`.
pub fn read_answer(conn: &mut TcpStream) -> anyhow::Result<Value> {
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

pub fn number(header: &Value, key: &str) -> anyhow::Result<u64> {
    header[key]
        .as_u64()
        .with_context(|| format!("server sent no number {key:?}"))
}

/// Text from the server, safe to print: a control character (an escape
/// sequence could clear or garble the terminal) is shown escaped, `\u{1b}`.
pub fn text(header: &Value, key: &str) -> anyhow::Result<String> {
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
pub fn went_away(err: io::Error) -> anyhow::Error {
    match err.kind() {
        ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted | ErrorKind::BrokenPipe => {
            anyhow!("server reset the connection; give the same command again")
        }
        _ => anyhow::Error::new(err).context("talking to the server failed"),
    }
}
// ANCHOR_END: headers

// ANCHOR: list
/// `list`: every stored file, one a line, after a count.
pub fn list(conn: &mut TcpStream) -> anyhow::Result<String> {
    send_header(conn, &json!({"cmd": "list"}))?;
    let answer = read_answer(conn)?;
    let files = answer["files"]
        .as_array()
        .context("server sent a list without files")?;
    let count = match files.len() {
        1 => "1 file".to_string(),
        n => format!("{n} files"),
    };
    let mut lines = vec![format!("list: {count}")];
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

// ANCHOR: helpers
/// The sha256 of the first `size` bytes of `file`, read from its start, in
/// hexadecimal.
pub fn hash(file: &mut File, size: u64) -> io::Result<String> {
    let mut hasher = Sha256::new();
    io::copy(&mut (&mut *file).take(size), &mut hasher)?;
    Ok(format!("{:x}", hasher.finalize()))
}

/// `put PATH` stores the file under its own name.
pub fn file_name(path: &str) -> anyhow::Result<&str> {
    Path::new(path)
        .file_name()
        .and_then(|name| name.to_str())
        .ok_or_else(|| Refused(format!("{path} has no file name; say put PATH NAME")).into())
}

/// `get NAME` saves to NAME here, so NAME must not lead anywhere else.
pub fn plain(name: &str) -> anyhow::Result<&str> {
    if file_name(name).ok() == Some(name) {
        return Ok(name);
    }
    Err(Refused(format!(
        "{name} is not a plain file name; say get NAME PATH"
    ))
    .into())
}

/// Creates the folder that `path` goes into, if it is missing:
/// `get photo.jpg downloads/photo.jpg` makes `downloads/`.
pub fn make_folder_for(path: &str) -> anyhow::Result<()> {
    match Path::new(path).parent() {
        Some(folder) if !folder.as_os_str().is_empty() => fs::create_dir_all(folder)
            .with_context(|| format!("cannot create the folder {}", folder.display())),
        _ => Ok(()),
    }
}

/// A number from the server, checked before it decides anything: the size
/// of a download must be within `max_size`.
pub fn check_size(name: &str, size: u64, max_size: u64) -> anyhow::Result<()> {
    if size > max_size {
        bail!("server announced {name} as {size} bytes, over our limit of {max_size} (--max-size)");
    }
    Ok(())
}
// ANCHOR_END: helpers

// ANCHOR: progress
/// A progress bar on a terminal, for a person watching; nothing otherwise.
/// `wide_bar` takes what the terminal's width leaves, so the line never wraps.
pub fn progress(name: &str, size: u64, done: u64) -> ProgressBar {
    if !(io::stdin().is_terminal() && io::stderr().is_terminal()) {
        return ProgressBar::hidden();
    }
    // The line ends with a carriage return: the cursor waits at its start,
    // so the `^C` a terminal echoes for Ctrl-C lands on this line, which
    // the handler in `run` then wipes, instead of wrapping onto the next.
    let style = ProgressStyle::with_template(
        "{msg} [{wide_bar}] {bytes}/{total_bytes} {bytes_per_sec}, {eta} left\r",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar());
    let bar = ProgressBar::new(size)
        .with_style(style.progress_chars("=> "))
        .with_message(name.to_string());
    bar.set_position(done);
    bar.reset_eta();
    *lock_bar() = Some(bar.clone()); // for Ctrl-C to wipe
    bar
}

/// The bar on the screen, if any (a handle: cloning a bar shares it).
static SHOWN: Mutex<Option<ProgressBar>> = Mutex::new(None);

fn lock_bar() -> MutexGuard<'static, Option<ProgressBar>> {
    SHOWN
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
// ANCHOR_END: progress
