//! Lesson 08 server: files up and down over TCP, and nothing lost.
//!
//! Every message, both ways, is one of lesson 07's frames holding a JSON
//! header (报头), and a `put` or a `get` is followed by the raw bytes of the
//! file. The header says how many bytes follow and what their sha256 is, so
//! the receiver knows where the file ends and whether it is whole. Files are
//! kept in one folder (`--dir`); `store.rs` says how an upload becomes a file
//! without ever being half a file, `names.rs` which names are allowed.

// ANCHOR: imports
mod store;

use std::io::{ErrorKind, Read};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use lesson07_frame::read_frame;
use lesson08_header_server::{
    MAX_HEADER, accept_loop, frame_ending, io_ending, refusal, send_file, send_header,
};
use serde::Deserialize;
use serde_json::{Value, json};

use store::{FileInfo, Store};
// ANCHOR_END: imports

// ANCHOR: args
/// Lesson 08 server: stores files that lesson08-client uploads (put), sends
/// them back (get) and lists them (list). A file is stored only once all of
/// its bytes have arrived and their sha256 matches; an interrupted upload
/// resumes. Serves up to --max-clients clients at once. Stop it with Ctrl-C.
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

    /// The most bytes the folder may hold, stored files and partial uploads together
    #[arg(long, value_name = "BYTES", default_value_t = 16 << 30)]
    quota: u64,

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
    shared::exit_status(run(&args))
}
// ANCHOR_END: args

// ANCHOR: run
fn run(args: &Args) -> anyhow::Result<()> {
    let (store, removed) =
        Store::open(&args.dir, args.max_size, args.quota).with_context(|| {
            format!(
                "could not use {} as the storage folder (pass another one with --dir)",
                args.dir.display()
            )
        })?;
    let addr = &args.addr;
    let listener = TcpListener::bind(addr).with_context(|| shared::cannot_listen(addr))?;
    shared::print_listening(listener.local_addr()?);
    println!(
        "keeping files in {} (removed {removed} partial uploads older than a day)",
        store.dir().display()
    );
    // Every caller's thread shares the one store. The accept loop is step 1's.
    let store = Arc::new(store);
    let idle = Duration::from_secs(args.idle_timeout);
    let max_clients = usize::try_from(args.max_clients).unwrap_or(usize::MAX);
    accept_loop(&listener, max_clients, move |conn, peer| {
        serve(conn, peer, &store, idle)
    })
}
// ANCHOR_END: run

// ANCHOR: request
/// What a client may ask, as its JSON header says: `{"cmd":"put",...}`.
/// Sizes and offsets are `u64`: a negative or oversized number, like any
/// other malformed header, fails to parse and is answered with an error.
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
        #[serde(default)]
        offset: u64,
    },
    List,
}

// ANCHOR_END: request

// ANCHOR: serve
/// Answers requests until the call ends, and says how it ended.
fn serve(mut conn: TcpStream, peer: SocketAddr, store: &Store, idle: Duration) -> String {
    if let Err(err) = conn
        .set_read_timeout(Some(idle))
        .and_then(|()| conn.set_write_timeout(Some(idle)))
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
                // answer, and read the next header.
                // The error may quote the peer's bytes (`unknown variant
                // "\u{1b}[2J"`): shown escaped, so no control character
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
                receive(&mut conn, peer, store, &name, size, &sha256)
            }
            Request::Get { name, offset } => send(&mut conn, peer, store, &name, offset),
            Request::List => list(&mut conn, peer, store),
        };
        // `Err` means the stream is broken (mid-body, or the socket failed):
        // the only thing left to do is hang up.
        if let Err(ending) = done {
            return ending;
        }
    }
}
// ANCHOR_END: serve

// ANCHOR: receive
/// A `put`: check it, say where to start, read exactly the missing bytes,
/// store them, and answer.
fn receive(
    conn: &mut TcpStream,
    peer: SocketAddr,
    store: &Store,
    name: &str,
    size: u64,
    sha256: &str,
) -> Result<(), String> {
    let shown = shared::show(name.as_bytes());
    let mut upload = match store.begin_put(name, size, sha256) {
        Ok(upload) => upload,
        Err(why) => {
            // Refused before the body: the client sends nothing more.
            println!("client {peer} was refused put {shown}: {why}");
            return send_header(conn, &refusal(&why)).map_err(|err| io_ending(&err));
        }
    };
    let offset = upload.offset();
    println!("client {peer} puts {shown}: {size} bytes, from offset {offset}");
    send_header(conn, &json!({"ok": true, "offset": offset})).map_err(|err| io_ending(&err))?;
    // Exactly `size - offset` bytes follow, and then the next header. A
    // fixed buffer: memory does not grow with the file.
    let mut left = size - offset;
    let mut buf = vec![0u8; 256 * 1024];
    while left > 0 {
        let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        let got = match conn.read(&mut buf[..want]) {
            Ok(0) => {
                let had = upload.offset();
                return Err(format!(
                    "hung up in the middle of {shown} ({had} of {size} bytes kept aside to resume)"
                ));
            }
            Ok(got) => got,
            Err(err) if err.kind() == ErrorKind::Interrupted => continue,
            Err(err) => {
                let had = upload.offset();
                return Err(format!(
                    "{} in the middle of {shown} ({had} of {size} bytes kept aside)",
                    io_ending(&err)
                ));
            }
        };
        if let Err(err) = upload.write(&buf[..got]) {
            // The disk failed us (full, say). Tell the client, then hang up:
            // the rest of its body is still on the way.
            let why = format!("cannot write the file: {err}");
            let _ = send_header(conn, &refusal(&why));
            return Err(format!("could not be served: {why}"));
        }
        left -= got as u64;
    }
    let answer = match upload.finish() {
        Ok(FileInfo { name, size, sha256 }) => {
            println!("client {peer} stored {shown}: {size} bytes, sha256 {sha256}");
            json!({"ok": true, "name": name, "size": size, "sha256": sha256})
        }
        Err(why) => {
            println!("client {peer} did not store {shown}: {why}");
            refusal(&why)
        }
    };
    send_header(conn, &answer).map_err(|err| io_ending(&err))
}
// ANCHOR_END: receive

// ANCHOR: send
/// A `get`: the header with the size and sha256, then the bytes from `offset`.
fn send(
    conn: &mut TcpStream,
    peer: SocketAddr,
    store: &Store,
    name: &str,
    offset: u64,
) -> Result<(), String> {
    let shown = shared::show(name.as_bytes());
    let (file, size, sha256) = match store.open_for_get(name, offset) {
        Ok(found) => found,
        Err(why) => {
            println!("client {peer} was refused get {shown}: {why}");
            return send_header(conn, &refusal(&why)).map_err(|err| io_ending(&err));
        }
    };
    println!("client {peer} gets {shown}: {size} bytes, from offset {offset}");
    send_header(conn, &json!({"ok": true, "size": size, "sha256": sha256}))
        .map_err(|err| io_ending(&err))?;
    // The bytes from `offset` on, by the kernel (step 1's `send_file`). The
    // open file is the one we hashed: a `put` renaming a new file over the
    // name meanwhile does not change it.
    let sent = send_file(&file, conn, size - offset).map_err(|err| io_ending(&err))?;
    if sent < size - offset {
        return Err(format!(
            "could not be served: {shown} was cut short while we sent it"
        ));
    }
    Ok(())
}
// ANCHOR_END: send

// ANCHOR: list
/// A `list`: every stored file with its size and sha256, in one header.
fn list(conn: &mut TcpStream, peer: SocketAddr, store: &Store) -> Result<(), String> {
    let answer = match store.list() {
        Ok(files) => {
            let plural = if files.len() == 1 { "" } else { "s" };
            println!("client {peer} lists {} file{plural}", files.len());
            let files: Vec<Value> = files
                .into_iter()
                .map(|f| json!({"name": f.name, "size": f.size, "sha256": f.sha256}))
                .collect();
            json!({"ok": true, "files": files})
        }
        Err(err) => refusal(&format!("cannot list the files: {err}")),
    };
    send_header(conn, &answer).map_err(|err| io_ending(&err))
}
// ANCHOR_END: list
