//! Lesson 08 client: `put`, `get` and `list` files on lesson08-server.
//!
//! It reads commands, one a line: `put PATH [NAME]`, `get NAME [PATH]`,
//! `list`, as step 1's client does, and uses its library for the command
//! loop, the headers and `list`. New here: a download goes to `PATH.part`
//! first and is renamed to `PATH` only when its sha256 matches, and an
//! upload or a download that was cut off carries on where it stopped when
//! the same command is given again.

// ANCHOR: imports
use std::fs::{self, File, OpenOptions};
use std::io::{self, ErrorKind, Read, Seek, SeekFrom, Write};
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

fn main() -> ExitCode {
    let args: Args = shared::parse_args();
    let max_size = args.max_size;
    // Step 1's command loop, with this step's `put` and `get`.
    shared::exit_status(lesson08_header_client::run(
        &args.addr,
        "lesson08-server",
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
/// Uploads `path` as `name`: header, the missing bytes, the server's verdict.
fn put(conn: &mut TcpStream, path: &str, name: &str) -> anyhow::Result<String> {
    let mut file = File::open(path).map_err(|err| Refused(format!("cannot open {path}: {err}")))?;
    let size = file.metadata()?.len();
    let sha256 = hash(&mut file, size)?;
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
    Ok(format!(
        "put {name}: {size} bytes{}, sha256 {sha256}",
        resumed(offset)
    ))
}

/// ", resumed at K" when a transfer carried on from byte K.
fn resumed(offset: u64) -> String {
    match offset {
        0 => String::new(),
        k => format!(", resumed at {k}"),
    }
}
// ANCHOR_END: put

// ANCHOR: get
/// Downloads `name` into `path`, through `path.part`, resuming a cut-off
/// download that left a `path.part` behind.
fn get(conn: &mut TcpStream, name: &str, path: &str, max_size: u64) -> anyhow::Result<String> {
    make_folder_for(path)?;
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
    check_size(name, size, max_size)?;
    if have > size {
        // Our part is longer than the whole file: it belongs to another one.
        let _ = fs::remove_file(&part);
        bail!(
            "server announced {name} as {size} bytes, fewer than the {have} in {part}; \
             removed it, give the same command again"
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
    let got = format!("{:x}", hasher.finalize());
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
        "get {name}: {size} bytes into {path}{}, sha256 {sha256}",
        resumed(have)
    ))
}
// ANCHOR_END: get
