//! Lesson 08, exercise 1: is my copy the same as the server's?
//!
//! Reads paths of local files from stdin, one a line, and says for each
//! whether lesson08-server stores a file of that name with the same bytes:
//! `same`, `differs` or `missing`. It compares sha256 hashes from one `list`
//! per line, so not one byte of the files themselves crosses the network. A
//! path that cannot be read here is one error line, and the next is checked.

// ANCHOR: imports
use std::fs::File;
use std::io;
use std::net::TcpStream;
use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, anyhow, bail};
use clap::Parser;
use lesson07_frame::{read_frame, write_frame};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
// ANCHOR_END: imports

// ANCHOR: args
/// Lesson 08 exercise 1: reads paths of local files from stdin, one a line,
/// and prints for each whether lesson08-server holds the same file (same),
/// another one under that name (differs) or none (missing). The exit status
/// is 1 unless every file is the same.
#[derive(Parser)]
#[command(version)]
struct Args {
    /// Address of the server: IP:PORT, [IPv6]:PORT or localhost:PORT
    #[arg(default_value = "127.0.0.1:9008", value_parser = shared::parse_addr)]
    addr: String,
}

fn main() -> ExitCode {
    let args: Args = shared::parse_args();
    shared::exit_status(run(&args.addr))
}
// ANCHOR_END: args

// ANCHOR: compare
fn run(addr: &str) -> anyhow::Result<()> {
    let mut conn =
        TcpStream::connect(addr).with_context(|| shared::no_server(addr, "lesson08-server"))?;
    let mut all_same = true;
    for line in shared::input_lines() {
        let line = line.context("reading standard input failed")?;
        let path = String::from_utf8_lossy(&line).trim().to_string();
        if path.is_empty() {
            continue;
        }
        // A path we cannot read is said, and the next one is checked.
        let (name, mine) = match local_file(&path) {
            Ok(found) => found,
            Err(err) => {
                eprintln!("error: {err:#}");
                all_same = false;
                continue;
            }
        };
        // The server's list carries every file's sha256: compare with that.
        let files = list(&mut conn)?;
        let theirs = files.iter().find(|file| file["name"] == name.as_str());
        let verdict = match theirs {
            None => "missing",
            Some(file) if file["sha256"] == mine.as_str() => "same",
            Some(_) => "differs",
        };
        all_same &= verdict == "same";
        println!("{verdict} {path}");
    }
    if !all_same {
        bail!("not every file is the same on the server");
    }
    Ok(())
}

/// The name and sha256 of the local file at `path`.
fn local_file(path: &str) -> anyhow::Result<(String, String)> {
    let name = Path::new(path)
        .file_name()
        .and_then(|name| name.to_str())
        .with_context(|| format!("{path} has no file name"))?;
    let mut file = File::open(path).with_context(|| format!("cannot open {path}"))?;
    let mut hasher = Sha256::new();
    io::copy(&mut file, &mut hasher).with_context(|| format!("cannot read {path}"))?;
    let sha256 = hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    Ok((name.to_string(), sha256))
}

/// One `list` request: a frame of JSON out, a frame of JSON back.
fn list(conn: &mut TcpStream) -> anyhow::Result<Vec<Value>> {
    write_frame(conn, json!({"cmd": "list"}).to_string().as_bytes())
        .context("talking to the server failed")?;
    // A long list fits in 16 MiB; a longer announcement is refused unread.
    let header = read_frame(conn, 16 * 1024 * 1024)
        .map_err(|err| anyhow!("reading the list failed: {err}"))?
        .context("server closed the connection before it answered")?;
    let answer: Value = serde_json::from_slice(&header).context("server sent no JSON")?;
    match answer["files"].as_array() {
        Some(files) => Ok(files.clone()),
        None => bail!("server refused: {}", answer["error"]),
    }
}
// ANCHOR_END: compare
