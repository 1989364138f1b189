//! Lesson 08, step 1: files up and down over TCP, each after a header.
//!
//! Every message, both ways, is one of lesson 07's frames holding a JSON
//! header (报头), and a `put` or a `get` is followed by the raw bytes of the
//! file. The header says how many bytes follow and what their sha256 is, so
//! the receiver knows where the file ends and whether it is whole. Files are
//! kept in one folder (`--dir`), written once and never replaced; step 2,
//! `lesson08-server`, makes the store lose nothing.

// ANCHOR: imports
use std::fs::{self, File, OpenOptions};
use std::io::{self, ErrorKind, Read, Seek, SeekFrom, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use lesson07_frame::read_frame;
use lesson08_header_server::names::{check_name, open_stored};
use lesson08_header_server::{
    MAX_HEADER, accept_loop, frame_ending, io_ending, refusal, send_file, send_header,
};
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
// ANCHOR_END: imports

// ANCHOR: args
/// Lesson 08, step 1: stores files that lesson08-header-client uploads (put),
/// sends them back (get) and lists them (list). Every file comes after a
/// header with its size and sha256, and is kept only if all of its bytes
/// arrived and match; a stored file is never replaced. Serves up to
/// --max-clients clients at once. Stop it with Ctrl-C.
#[derive(Parser)]
#[command(version)]
struct Args {
    /// Address to listen on: IP:PORT, [IPv6]:PORT or localhost:PORT (port 0 lets the system pick)
    #[arg(default_value = "127.0.0.1:9008", value_parser = shared::parse_addr)]
    addr: String,

    /// The folder where files are kept; created if missing
    #[arg(long, value_name = "DIR", default_value = "lesson08-files")]
    dir: PathBuf,

    /// The largest file a client may upload, in bytes
    #[arg(long, value_name = "BYTES", default_value_t = 4 << 30)]
    max_size: u64,

    /// Hang up on a client that sends nothing, or reads nothing, for this many seconds
    #[arg(long, value_name = "SECS", default_value_t = 60,
          value_parser = clap::value_parser!(u64).range(1..))]
    idle_timeout: u64,

    /// How many clients may be served at once; the next one is turned away
    #[arg(long, value_name = "N", default_value_t = 100,
          value_parser = clap::value_parser!(u64).range(1..))]
    max_clients: u64,
}

fn main() -> ExitCode {
    let args: Args = shared::parse_args();
    shared::exit_status(run(args))
}

/// What every caller's thread needs to know.
struct Folder {
    dir: PathBuf,
    max_size: u64,
    idle: Duration,
}

fn run(args: Args) -> anyhow::Result<()> {
    fs::create_dir_all(&args.dir).with_context(|| {
        format!(
            "could not use {} as the storage folder (pass another one with --dir)",
            args.dir.display()
        )
    })?;
    let addr = &args.addr;
    let listener = TcpListener::bind(addr).with_context(|| shared::cannot_listen(addr))?;
    shared::print_listening(listener.local_addr()?);
    println!("keeping files in {}", args.dir.display());
    let folder = Arc::new(Folder {
        dir: args.dir,
        max_size: args.max_size,
        idle: Duration::from_secs(args.idle_timeout),
    });
    let max_clients = usize::try_from(args.max_clients).unwrap_or(usize::MAX);
    accept_loop(&listener, max_clients, move |conn, peer| {
        serve(conn, peer, &folder)
    })
}
// ANCHOR_END: args

// ANCHOR: request
/// What a client may ask, as its JSON header says: `{"cmd":"put",...}`.
/// Sizes are `u64`: a negative or oversized number, like any other
/// malformed header, fails to parse and is answered with an error.
#[derive(Deserialize)]
#[serde(tag = "cmd", rename_all = "lowercase")]
enum Request {
    Put {
        name: String,
        size: u64,
        sha256: String,
    },
    Get {
        name: String,
    },
    List,
}
// ANCHOR_END: request

// ANCHOR: serve
/// Answers requests until the call ends, and says how it ended.
fn serve(mut conn: TcpStream, peer: SocketAddr, folder: &Folder) -> String {
    if let Err(err) = conn
        .set_read_timeout(Some(folder.idle))
        .and_then(|()| conn.set_write_timeout(Some(folder.idle)))
    {
        return format!("could not be served: {err}");
    }
    loop {
        let header = match read_frame(&mut conn, MAX_HEADER) {
            Ok(Some(header)) => header,
            Ok(None) => return "closed the connection".to_string(),
            Err(err) => return frame_ending(err),
        };
        let request = match serde_json::from_slice::<Request>(&header) {
            Ok(request) => request,
            Err(err) => {
                // The frame itself was whole, so the stream is still in step:
                // answer, and read the next header. The error may quote the
                // peer's bytes: shown escaped, so no control character
                // reaches our terminal.
                println!(
                    "client {peer} sent a bad header: {}",
                    shared::show(err.to_string().as_bytes())
                );
                let answer = refusal(&format!("bad header: {err}"));
                match send_header(&mut conn, &answer) {
                    Ok(()) => continue,
                    Err(err) => return io_ending(&err),
                }
            }
        };
        let done = match request {
            Request::Put { name, size, sha256 } => {
                receive(&mut conn, peer, folder, &name, size, &sha256)
            }
            Request::Get { name } => send(&mut conn, peer, &folder.dir, &name),
            Request::List => list(&mut conn, peer, &folder.dir),
        };
        // `Err` means the stream is broken (mid-body, or the socket failed):
        // the only thing left to do is hang up.
        if let Err(ending) = done {
            return ending;
        }
    }
}
// ANCHOR_END: serve

// ANCHOR: check-put
/// Everything that can refuse a `put` before its body: the name, the hash's
/// form, the size, and a name that is taken. `Ok` is the new, empty file.
fn check_put(folder: &Folder, name: &str, size: u64, sha256: &str) -> Result<File, String> {
    check_name(name)?;
    if sha256.len() != 64 || !sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err("sha256 must be 64 hexadecimal digits".to_string());
    }
    if size > folder.max_size {
        return Err(format!(
            "{size} bytes is over the limit of {} bytes per file",
            folder.max_size
        ));
    }
    // `create_new`: the file must not exist yet, checked and created in one
    // step, so two uploads of one name cannot both get it.
    let created = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(folder.dir.join(name));
    created.map_err(|err| match err.kind() {
        ErrorKind::AlreadyExists => format!("there is already a file called {name:?}"),
        _ => format!("cannot create the file: {err}"),
    })
}
// ANCHOR_END: check-put

// ANCHOR: receive
/// A `put`: check it, say "go ahead", read exactly `size` bytes into the
/// file, check their sha256, and answer.
fn receive(
    conn: &mut TcpStream,
    peer: SocketAddr,
    folder: &Folder,
    name: &str,
    size: u64,
    sha256: &str,
) -> Result<(), String> {
    let shown = shared::show(name.as_bytes());
    let mut file = match check_put(folder, name, size, sha256) {
        Ok(file) => file,
        Err(why) => {
            // Refused before the body: the client sends nothing more.
            println!("client {peer} was refused put {shown}: {why}");
            return send_header(conn, &refusal(&why)).map_err(|err| io_ending(&err));
        }
    };
    let path = folder.dir.join(name);
    println!("client {peer} puts {shown}: {size} bytes");
    if let Err(err) = send_header(conn, &json!({"ok": true})) {
        let _ = fs::remove_file(&path);
        return Err(io_ending(&err));
    }
    // Exactly `size` bytes follow, and then the next header. A fixed
    // buffer: memory does not grow with the file.
    let mut hasher = Sha256::new();
    let mut left = size;
    let mut buf = vec![0u8; 256 * 1024];
    while left > 0 {
        let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        let got = match conn.read(&mut buf[..want]) {
            Ok(0) => {
                // A cut-off file is not a file: nothing stays under the name.
                let _ = fs::remove_file(&path);
                return Err(format!(
                    "hung up in the middle of {shown} ({} of {size} bytes arrived; removed)",
                    size - left
                ));
            }
            Ok(got) => got,
            Err(err) if err.kind() == ErrorKind::Interrupted => continue,
            Err(err) => {
                let _ = fs::remove_file(&path);
                return Err(format!("{} in the middle of {shown}", io_ending(&err)));
            }
        };
        hasher.update(&buf[..got]);
        if let Err(err) = file.write_all(&buf[..got]) {
            // The disk failed us (full, say). Tell the client, then hang up:
            // the rest of its body is still on the way.
            let _ = fs::remove_file(&path);
            let why = format!("cannot write the file: {err}");
            let _ = send_header(conn, &refusal(&why));
            return Err(format!("could not be served: {why}"));
        }
        left -= got as u64;
    }
    // A digest prints itself in lower-case hex, the way sha256sum shows it.
    let got = format!("{:x}", hasher.finalize());
    let answer = if got == sha256.to_ascii_lowercase() {
        println!("client {peer} stored {shown}: {size} bytes, sha256 {got}");
        json!({"ok": true, "name": name, "size": size, "sha256": got})
    } else {
        let _ = fs::remove_file(&path);
        let why =
            format!("the {size} bytes received hash to {got}, not to {sha256}; nothing was stored");
        println!("client {peer} did not store {shown}: {why}");
        refusal(&why)
    };
    send_header(conn, &answer).map_err(|err| io_ending(&err))
}
// ANCHOR_END: receive

// ANCHOR: send
/// A `get`: the header with the size and sha256, then the bytes.
fn send(conn: &mut TcpStream, peer: SocketAddr, dir: &Path, name: &str) -> Result<(), String> {
    let shown = shared::show(name.as_bytes());
    let described = open_stored(dir, name).and_then(|mut file| {
        // Read the file through once for its hash, then back to its start.
        let mut hasher = Sha256::new();
        let size = io::copy(&mut file, &mut hasher)
            .and_then(|size| file.seek(SeekFrom::Start(0)).map(|_| size))
            .map_err(|err| format!("cannot read {name:?}: {err}"))?;
        Ok((file, size, format!("{:x}", hasher.finalize())))
    });
    let (file, size, sha256) = match described {
        Ok(found) => found,
        Err(why) => {
            println!("client {peer} was refused get {shown}: {why}");
            return send_header(conn, &refusal(&why)).map_err(|err| io_ending(&err));
        }
    };
    println!("client {peer} gets {shown}: {size} bytes");
    send_header(conn, &json!({"ok": true, "size": size, "sha256": sha256}))
        .map_err(|err| io_ending(&err))?;
    // Exactly the `size` bytes we hashed, by the kernel.
    let sent = send_file(&file, conn, size).map_err(|err| io_ending(&err))?;
    if sent < size {
        return Err(format!(
            "could not be served: {shown} was cut short while we sent it"
        ));
    }
    Ok(())
}
// ANCHOR_END: send

// ANCHOR: list
/// A `list`: every stored file with its size and sha256, in one header.
fn list(conn: &mut TcpStream, peer: SocketAddr, dir: &Path) -> Result<(), String> {
    let answer = match stored_files(dir) {
        Ok(files) => {
            let plural = if files.len() == 1 { "" } else { "s" };
            println!("client {peer} lists {} file{plural}", files.len());
            json!({"ok": true, "files": files})
        }
        Err(err) => refusal(&format!("cannot list the files: {err}")),
    };
    send_header(conn, &answer).map_err(|err| io_ending(&err))
}

/// Every file in `dir` whose name a client could have given, sorted, each
/// read through once for its sha256.
fn stored_files(dir: &Path) -> io::Result<Vec<Value>> {
    let mut names: Vec<String> = fs::read_dir(dir)?
        .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
        .filter(|name| check_name(name).is_ok())
        .collect();
    names.sort();
    let mut files = Vec::new();
    for name in names {
        // Gone, or a folder or a symlink: not a stored file.
        let Ok(mut file) = open_stored(dir, &name) else {
            continue;
        };
        let mut hasher = Sha256::new();
        let size = io::copy(&mut file, &mut hasher)?;
        files.push(
            json!({"name": name, "size": size, "sha256": format!("{:x}", hasher.finalize())}),
        );
    }
    Ok(files)
}
// ANCHOR_END: list
