//! Lesson 08, step 1 client: `put`, `get` and `list` files on
//! lesson08-header-server.
//!
//! It reads commands, one a line: `put PATH [NAME]`, `get NAME [PATH]`,
//! `list`. Each request is a frame holding a JSON header, and a file's bytes
//! follow their header raw, after the server said "go ahead".

// ANCHOR: imports
use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Read, Seek, Write};
use std::net::TcpStream;
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::Parser;
use lesson08_header_client::{
    Refused, check_size, file_name, hash, list, make_folder_for, number, plain, progress,
    read_answer, send_header, text, unknown, went_away,
};
use serde_json::json;
use sha2::{Digest, Sha256};
// ANCHOR_END: imports

// ANCHOR: args
/// Lesson 08, step 1 client: reads commands from stdin, one a line:
/// `put PATH [NAME]` uploads a file, `get NAME [PATH]` downloads one (never
/// over a file that is there), `list` lists them. End the input with Ctrl-D
/// (Ctrl-Z Enter on Windows); the exit status is 1 if any command failed.
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

fn main() -> ExitCode {
    let args: Args = shared::parse_args();
    let max_size = args.max_size;
    shared::exit_status(lesson08_header_client::run(
        &args.addr,
        "lesson08-header-server",
        |conn, words| match *words {
            ["put", path] => put(conn, path, file_name(path)?),
            ["put", path, name] => put(conn, path, name),
            ["get", name] => get(conn, name, plain(name)?, max_size),
            ["get", name, path] => get(conn, name, path, max_size),
            ["list"] => list(conn),
            _ => Err(unknown()),
        },
    ))
}
// ANCHOR_END: args

// ANCHOR: put
/// Uploads `path` as `name`: header, "go ahead", the bytes, the verdict.
fn put(conn: &mut TcpStream, path: &str, name: &str) -> anyhow::Result<String> {
    let mut file = File::open(path).map_err(|err| Refused(format!("cannot open {path}: {err}")))?;
    let size = file.metadata()?.len();
    // The header carries the hash, so the file is read through once first.
    let sha256 = hash(&mut file, size)?;
    let header = json!({"cmd": "put", "name": name, "size": size, "sha256": sha256});
    send_header(conn, &header)?;
    read_answer(conn)?; // go ahead, or the refusal
    file.rewind()?;
    let bar = progress(name, size, 0);
    let mut buf = vec![0u8; 256 * 1024];
    let mut left = size;
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
    Ok(format!("put {name}: {size} bytes, sha256 {sha256}"))
}
// ANCHOR_END: put

// ANCHOR: get
/// Downloads `name` into `path`, which must not exist yet; a download that
/// fails leaves nothing there.
fn get(conn: &mut TcpStream, name: &str, path: &str, max_size: u64) -> anyhow::Result<String> {
    make_folder_for(path)?;
    let created = OpenOptions::new().write(true).create_new(true).open(path);
    let mut file = match created {
        Ok(file) => file,
        Err(err) if err.kind() == ErrorKind::AlreadyExists => {
            return Err(Refused(format!("{path} is there already; remove it first")).into());
        }
        Err(err) => return Err(err).with_context(|| format!("cannot write {path}")),
    };
    let done = download(conn, name, path, max_size, &mut file);
    if done.is_err() {
        drop(file);
        let _ = fs::remove_file(path);
    }
    done
}

/// The request, the header, exactly `size` bytes into `file`, the check.
fn download(
    conn: &mut TcpStream,
    name: &str,
    path: &str,
    max_size: u64,
    file: &mut File,
) -> anyhow::Result<String> {
    send_header(conn, &json!({"cmd": "get", "name": name}))?;
    let found = read_answer(conn)?;
    let (size, sha256) = (number(&found, "size")?, text(&found, "sha256")?);
    check_size(name, size, max_size)?;
    let bar = progress(name, size, 0);
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    let mut left = size;
    while left > 0 {
        let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        let got = match conn.read(&mut buf[..want]) {
            Ok(0) => bail!(
                "server hung up after {} of {size} bytes of {name}",
                size - left
            ),
            Ok(got) => got,
            Err(err) if err.kind() == ErrorKind::Interrupted => continue,
            Err(err) => return Err(went_away(err)),
        };
        hasher.update(&buf[..got]);
        file.write_all(&buf[..got])
            .with_context(|| format!("cannot write {path}"))?;
        bar.inc(got as u64);
        left -= got as u64;
    }
    bar.finish_and_clear();
    let got = format!("{:x}", hasher.finalize());
    if got != sha256 {
        // Every byte arrived, so the stream is in step: a refusal.
        return Err(Refused(format!(
            "{name} arrived with sha256 {got}, not {sha256}; nothing was saved, try again"
        ))
        .into());
    }
    Ok(format!(
        "get {name}: {size} bytes into {path}, sha256 {sha256}"
    ))
}
// ANCHOR_END: get
