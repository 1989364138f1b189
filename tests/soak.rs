//! Soak tests: nothing is lost, however much goes through.
//!
//! - **Chat soak** (lesson 06): N clients join one room, and each sends M
//!   numbered lines while it reads on a thread of its own. Every client must
//!   receive every other client's lines, each exactly once, in the order its
//!   sender sent them, and never its own.
//! - **Echo soak** (lessons 02, 03 and 04): K messages of random length
//!   (1 byte to 64 KiB) of random bytes, one after another on one connection
//!   per server. Every byte must come back upper-cased, in order.
//!
//! - **File soak** (lesson 08): C clients at once each upload F files of
//!   random length (0 to 256 KiB) under names of their own, and all of them
//!   upload to the same few shared names meanwhile. Every file must come back
//!   byte for byte; a shared name must hold one whole version of the ones
//!   uploaded under it, never a mix.
//!
//! The sizes are small by default (about 3 s for the whole file), so
//! `cargo test --workspace` stays quick. Environment variables make the soak
//! bigger; a single variable overrides what `SOAK` chose:
//!
//! | variable           | what                                  | default         | `SOAK=full` |
//! | ------------------ | ------------------------------------- | --------------- | ----------- |
//! | `SOAK`             | `full` picks the large sizes          |                 |             |
//! | `SOAK_CLIENTS`     | chat clients (N)                      | 10              | 50          |
//! | `SOAK_LINES`       | lines each chat client sends (M)      | 200             | 2,000       |
//! | `SOAK_MESSAGES`    | echo messages per server (K)          | 1,000           | 10,000      |
//! | `SOAK_FILE_CLIENTS`| file clients at once (C)              | 6               | 24          |
//! | `SOAK_FILES`       | files each file client uploads (F)    | 20              | 200         |
//! | `SOAK_SEED`        | seed of the random messages           | 0x50C4E75EED05  | the same    |
//! | `SOAK_WINDOW`      | a chat client's window W (see below)  | the safe one    | the same    |
//! | `SOAK_CHAT_SERVER` | another chat server binary to soak    | lesson06-server | the same    |
//!
//! The full soak, with its figures printed (about a minute on two cores; the
//! chat and the three echo soaks run side by side):
//!
//! ```text
//! SOAK=full cargo test -p course-tests --test soak -- --nocapture
//! ```
//!
//! The random messages come from a tiny generator of our own (SplitMix64)
//! with a fixed seed, printed by every run, so a failure can be replayed
//! exactly with `SOAK_SEED`.
//!
//! What "keeps up" means for a chat client. The server queues at most 256
//! lines for each client and hangs up on a client whose queue is full: a
//! client that does not read must not hold up the room. A soak client reads
//! on its own thread, as fast as lines come, and, like a person in a chat,
//! does not talk much faster than it reads: it sends its line `i` only once it
//! has read line `i - W` of every other client. Then no client can have more
//! than (N-1) * (2W + 2) of the others' lines on the way to it, plus the N-1
//! `joined` notices, wherever they wait (the server's queue, the socket
//! buffers); W is chosen so that this stays below 256 even if the server's
//! writer thread for that client never got the processor (W = 12 for 10
//! clients, 1 for 50). So the soak cannot fail by chance, only if a line is
//! lost, repeated, reordered or misdelivered.
//!
//! Without that pacing (`SOAK_WINDOW=100000`), N clients sending as fast as
//! TCP lets them hand the server N-1 lines to write for every line it reads,
//! the queues fill, and the server hangs up on clients that do read: its
//! policy for a room that is too fast, not a lost line.

use std::collections::HashMap;
use std::env;
use std::io::{BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::process::Command;
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::thread;
use std::time::Instant;

use anyhow::{Context, Result, anyhow, ensure};
use course_tests::chat::{QUEUE_LINES, read_line};
use course_tests::{Chatter, Finished, Rng, Server, TIMEOUT, connect, env_number};

const CHAT_SERVER: &str = "lesson06-server";
const ECHO_SERVER_02: &str = "lesson02-server";
const ECHO_SERVER_03: &str = "lesson03-server";
const ECHO_SERVER_04: &str = "lesson04-server";
const FILE_SERVER: &str = "lesson08-server";

/// How many lines a chat client may send beyond what it has read from the
/// slowest other client (see the header): the largest window that keeps
/// every queue below [`QUEUE_LINES`] even if a writer thread never ran,
/// counting the `joined` notices too: (N-1) * (2W + 2) + (N-1) < 256.
/// Above 85 clients no window is small enough; then it is 0 (lock-step).
fn safe_window(clients: usize) -> usize {
    let others = clients - 1;
    ((QUEUE_LINES - 1) / others).saturating_sub(3) / 2
}

/// The seed used unless `SOAK_SEED` says otherwise.
const DEFAULT_SEED: u64 = 0x50C4_E75E_ED05;

/// The largest echo message, in bytes.
const MAX_MESSAGE: usize = 64 * 1024;

/// The soak's sizes, from the environment.
struct Sizes {
    clients: usize,
    lines: usize,
    messages: usize,
    file_clients: usize,
    files: usize,
    seed: u64,
    window: usize,
}

impl Sizes {
    fn from_env() -> Result<Sizes> {
        let full = env::var("SOAK").is_ok_and(|v| v == "full");
        let pick = |small: u64, large: u64| if full { large } else { small };
        let mut sizes = Sizes {
            clients: env_number("SOAK_CLIENTS", pick(10, 50))? as usize,
            lines: env_number("SOAK_LINES", pick(200, 2_000))? as usize,
            messages: env_number("SOAK_MESSAGES", pick(1_000, 10_000))? as usize,
            file_clients: env_number("SOAK_FILE_CLIENTS", pick(6, 24))? as usize,
            files: env_number("SOAK_FILES", pick(20, 200))? as usize,
            seed: env_number("SOAK_SEED", DEFAULT_SEED)?,
            window: 0,
        };
        ensure!(sizes.clients >= 2, "SOAK_CLIENTS must be at least 2");
        sizes.window = env_number("SOAK_WINDOW", safe_window(sizes.clients) as u64)? as usize;
        Ok(sizes)
    }
}

/// The next echo message: 1 byte to 64 KiB of any byte values.
fn message(rng: &mut Rng) -> Vec<u8> {
    let len = rng.between(1, MAX_MESSAGE);
    rng.bytes(len)
}

/// Locks a mutex; a thread that panicked while holding it fails its own
/// test, so the others may carry on with the data.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Fails if the server's output shows a panic, and returns it.
fn stop(server: Server) -> Result<Finished> {
    let finished = server.kill()?;
    finished.assert_no_panic()?;
    Ok(finished)
}

// ---------------------------------------------------------------- chat soak

/// A meeting point for the client threads, like `std::sync::Barrier`, but
/// every wait has a timeout, and a thread that fails opens it for everybody
/// (as a failure) instead of leaving the others waiting.
struct Gate {
    state: Mutex<(usize, bool)>, // (how many arrived, broken)
    changed: Condvar,
    expected: usize,
}

impl Gate {
    fn new(expected: usize) -> Gate {
        Gate {
            state: Mutex::new((0, false)),
            changed: Condvar::new(),
            expected,
        }
    }

    /// Arrives and waits until everybody has.
    fn arrive_and_wait(&self, what: &str) -> Result<()> {
        let mut state = lock(&self.state);
        state.0 += 1;
        self.changed.notify_all();
        let (state, waited) = self
            .changed
            .wait_timeout_while(state, TIMEOUT, |(arrived, broken)| {
                *arrived < self.expected && !*broken
            })
            .unwrap_or_else(PoisonError::into_inner);
        ensure!(!state.1, "another client failed before {what}");
        ensure!(
            !waited.timed_out(),
            "only {} of {} clients reached {what} within {TIMEOUT:?}",
            state.0,
            self.expected
        );
        Ok(())
    }

    fn fail(&self) {
        lock(&self.state).1 = true;
        self.changed.notify_all();
    }
}

/// What one client's reader has read so far, shared with its sender.
struct Progress {
    state: Mutex<ReadSoFar>,
    changed: Condvar,
    /// How far the sender may run ahead of the reader, in lines.
    window: usize,
}

#[derive(Default)]
struct ReadSoFar {
    /// The number of lines read from the slowest other client.
    floor: usize,
    /// Whether the reader has stopped (finished or failed).
    stopped: bool,
}

impl Progress {
    fn new(window: usize) -> Progress {
        Progress {
            state: Mutex::default(),
            changed: Condvar::new(),
            window,
        }
    }

    /// Waits until the slowest other client's line `line - window` has been
    /// read, so that line `line` may be sent.
    fn wait_to_send(&self, line: usize) -> Result<()> {
        let state = lock(&self.state);
        let (state, waited) = self
            .changed
            .wait_timeout_while(state, TIMEOUT, |read| {
                !self.read_enough(read, line) && !read.stopped
            })
            .unwrap_or_else(PoisonError::into_inner);
        ensure!(
            self.read_enough(&state, line),
            "line {line} waited {TIMEOUT:?} for the others' lines (read {} of each; reader stopped: {}; timed out: {})",
            state.floor,
            state.stopped,
            waited.timed_out()
        );
        Ok(())
    }

    fn read_enough(&self, read: &ReadSoFar, line: usize) -> bool {
        read.floor.saturating_add(self.window) >= line
    }

    fn update(&self, change: impl FnOnce(&mut ReadSoFar)) {
        change(&mut lock(&self.state));
        self.changed.notify_all();
    }
}

/// The text of line `seq` of client `from`.
fn numbered(from: usize, seq: usize) -> String {
    format!("soak {from} {seq}")
}

/// Reads `text` (without its `\n`) back into (client, line number).
fn parse_numbered(text: &str) -> Option<(usize, usize)> {
    let mut words = text.strip_prefix("soak ")?.split(' ');
    let from = words.next()?.parse().ok()?;
    let seq = words.next()?.parse().ok()?;
    words.next().is_none().then_some((from, seq))
}

/// The reader thread of client `me`: checks every numbered line as it
/// arrives, until it has every other client's `lines` lines.
fn read_everything(
    me: usize,
    mut lines: BufReader<TcpStream>,
    names: &[SocketAddr],
    per_sender: usize,
    progress: &Progress,
) -> Result<BufReader<TcpStream>> {
    let clients = names.len();
    let by_name: HashMap<String, usize> = names
        .iter()
        .enumerate()
        .map(|(i, addr)| (addr.to_string(), i))
        .collect();
    // next[c]: the number of the line we expect next from client c.
    let mut next = vec![0usize; clients];
    next[me] = per_sender; // we never hear ourselves; keeps the floor simple
    // The slowest other client's count, and how many others are that slow.
    let mut floor = 0;
    let mut at_floor = clients - 1;
    let mut missing = (clients - 1) * per_sender;
    while missing > 0 {
        let line = read_line(&mut lines)?.with_context(|| {
            format!("the server hung up on client {me} with {missing} lines still to come")
        })?;
        if line.starts_with("* ") {
            // Room news (joined, left). A client cut off for being too slow
            // would see its connection end instead, caught above.
            continue;
        }
        let (name, text) = line
            .split_once(": ")
            .with_context(|| format!("client {me} got a line it cannot read: {line:?}"))?;
        let (from, seq) = parse_numbered(text)
            .with_context(|| format!("client {me} got an unknown line: {line:?}"))?;
        ensure!(
            by_name.get(name) == Some(&from),
            "client {me} got {line:?}: line of client {from} under the name {name}"
        );
        ensure!(from != me, "client {me} heard its own line {seq}");
        ensure!(
            seq == next[from],
            "client {me} got line {seq} of client {from} while expecting line {} \
             (a line lost, repeated or out of order)",
            next[from]
        );
        next[from] += 1;
        missing -= 1;
        // Let our sender know when the slowest other client moved on.
        if seq == floor {
            at_floor -= 1;
            if at_floor == 0 {
                floor = next.iter().copied().min().unwrap_or(per_sender);
                at_floor = next.iter().filter(|&&n| n == floor).count();
                progress.update(|read| read.floor = floor);
            }
        }
    }
    Ok(lines)
}

/// One chat client from start to end.
fn chat_client(
    me: usize,
    server: SocketAddr,
    sizes: &Sizes,
    names: &Mutex<Vec<Option<SocketAddr>>>,
    joined: &Gate,
    finished: &Gate,
) -> Result<()> {
    let Chatter {
        input: lines,
        output: mut out,
        addr,
        ..
    } = Chatter::join(server)?;
    // Each line leaves at once instead of waiting for the last one's ACK
    // (Nagle's algorithm): a paced sender is a latency-bound sender.
    out.set_nodelay(true)?;
    // After the welcome we are in the room. Once everybody is, every line
    // anybody sends reaches everybody else.
    lock(names)[me] = Some(addr);
    joined.arrive_and_wait("joining")?;
    let names: Vec<SocketAddr> = lock(names)
        .iter()
        .map(|name| name.context("a client without an address"))
        .collect::<Result<_>>()?;

    let progress = Progress::new(sizes.window);
    let lines = thread::scope(|scope| -> Result<BufReader<TcpStream>> {
        let reader = scope.spawn(|| {
            let result = read_everything(me, lines, &names, sizes.lines, &progress);
            progress.update(|read| read.stopped = true);
            result
        });
        // The sender: one line at a time, never far ahead of what we read.
        let mut sent = Ok(());
        for seq in 0..sizes.lines {
            sent = progress.wait_to_send(seq).and_then(|()| {
                writeln!(out, "{}", numbered(me, seq))
                    .with_context(|| format!("client {me} sending line {seq}"))
            });
            if sent.is_err() {
                // Unblock our reader too, so the scope can end.
                let _ = out.shutdown(Shutdown::Both);
                break;
            }
        }
        let read = reader
            .join()
            .map_err(|_| anyhow!("the reader of client {me} panicked"))?;
        // The reader's error says what went wrong first.
        let lines = read?;
        sent?;
        Ok(lines)
    })?;

    // Stay until everybody has everything: a line can only reach clients
    // that are still in the room.
    finished.arrive_and_wait("reading every line")?;
    // Hang up politely (a FIN), then read to the end: only room news may
    // come now, no numbered line a second time.
    out.shutdown(Shutdown::Write)?;
    let mut lines = lines;
    while let Some(line) = read_line(&mut lines)? {
        ensure!(
            line.starts_with("* "),
            "client {me} got {line:?} after every line had arrived"
        );
    }
    Ok(())
}

#[test]
fn chat_soak_delivers_every_line_once_in_order() -> Result<()> {
    let sizes = Sizes::from_env()?;
    let clients = sizes.clients;
    let max_clients = clients.to_string();
    let server = match env::var_os("SOAK_CHAT_SERVER").filter(|path| !path.is_empty()) {
        // Another build of the chat server, to compare a change.
        Some(path) => {
            let mut command = Command::new(path);
            command.args(["127.0.0.1:0", "--max-clients", &max_clients]);
            Server::start_command(command)?
        }
        None => Server::start(CHAT_SERVER, &["--max-clients", &max_clients])?,
    };
    let addr = server.addr;
    let names = Mutex::new(vec![None; clients]);
    let joined = Gate::new(clients);
    let finished = Gate::new(clients);
    let started = Instant::now();

    let results: Vec<Result<()>> = thread::scope(|scope| {
        let threads: Vec<_> = (0..clients)
            .map(|me| {
                let (sizes, names, joined, finished) = (&sizes, &names, &joined, &finished);
                scope.spawn(move || {
                    let result = chat_client(me, addr, sizes, names, joined, finished);
                    if result.is_err() {
                        joined.fail();
                        finished.fail();
                    }
                    result
                })
            })
            .collect();
        threads
            .into_iter()
            .map(|t| {
                t.join()
                    .unwrap_or_else(|_| Err(anyhow!("a client panicked")))
            })
            .collect()
    });
    let elapsed = started.elapsed();

    let log = stop(server)?;
    let errors: Vec<String> = results
        .into_iter()
        .filter_map(|r| r.err().map(|err| format!("{err:#}")))
        .collect();
    let slow: Vec<&String> = log
        .stdout
        .iter()
        .filter(|line| line.contains("too slow"))
        .collect();
    ensure!(
        errors.is_empty(),
        "{} of {clients} clients failed; first: {}; server said of slow clients: {slow:?}",
        errors.len(),
        errors[0]
    );
    ensure!(slow.is_empty(), "the server cut off clients: {slow:?}");
    let delivered = clients * (clients - 1) * sizes.lines;
    println!(
        "chat soak: {clients} clients x {} lines, {delivered} lines delivered in {elapsed:.2?} ({:.0} lines/s)",
        sizes.lines,
        delivered as f64 / elapsed.as_secs_f64()
    );
    Ok(())
}

// ---------------------------------------------------------------- echo soak

/// Sends `count` random messages on one connection and checks that each
/// comes back upper-cased, byte for byte. A second thread writes while this
/// one reads, so neither side can wait for the other with full buffers.
///
/// `avoid_quit` replaces `q` and `Q` by `r` and `R`: lesson 04 hangs up on a
/// read that holds only `q` and spaces, and random bytes cut into random
/// reads could make one.
fn echo_soak(stream: &mut TcpStream, count: usize, seed: u64, avoid_quit: bool) -> Result<u64> {
    let make = move |rng: &mut Rng| {
        let mut message = message(rng);
        if avoid_quit {
            for byte in &mut message {
                if byte.eq_ignore_ascii_case(&b'q') {
                    *byte += 1;
                }
            }
        }
        message
    };
    let mut out = stream.try_clone()?;
    let mut total = 0u64;
    thread::scope(|scope| -> Result<()> {
        let writer = scope.spawn(move || -> Result<()> {
            let mut rng = Rng::new(seed);
            for i in 0..count {
                out.write_all(&make(&mut rng))
                    .with_context(|| format!("sending message {i}"))?;
            }
            Ok(())
        });
        // The same seed gives the reader the same messages.
        let mut rng = Rng::new(seed);
        let mut reply = vec![0u8; MAX_MESSAGE];
        let mut checked = Ok(());
        for i in 0..count {
            let message = make(&mut rng);
            let reply = &mut reply[..message.len()];
            checked = stream
                .read_exact(reply)
                .with_context(|| format!("reading the reply to message {i}"))
                .and_then(|()| {
                    match reply
                        .iter()
                        .zip(&message)
                        .position(|(r, m)| *r != m.to_ascii_uppercase())
                    {
                        None => Ok(()),
                        Some(at) => Err(anyhow!(
                            "message {i} ({} bytes): byte {at} came back as {:#04x}, sent {:#04x}",
                            message.len(),
                            reply[at],
                            message[at]
                        )),
                    }
                });
            if checked.is_err() {
                // Unblock the writer, so the scope can end.
                let _ = stream.shutdown(Shutdown::Both);
                break;
            }
            total += message.len() as u64;
        }
        let written = writer.join().map_err(|_| anyhow!("the writer panicked"))?;
        checked?;
        written
    })?;
    Ok(total)
}

/// Checks that a sequential server, after the soak, answers a new client.
fn answers_a_new_client(server: SocketAddr) -> Result<()> {
    let mut stream = connect(server)?;
    stream.write_all(b"still there?")?;
    let mut reply = [0u8; 12];
    stream.read_exact(&mut reply)?;
    ensure!(&reply == b"STILL THERE?", "got {reply:?}");
    Ok(())
}

fn report(server: &str, messages: usize, bytes: u64, started: Instant) {
    let elapsed = started.elapsed();
    println!(
        "echo soak {server}: {messages} messages, {:.1} MiB each way in {elapsed:.2?} ({:.0} MiB/s)",
        bytes as f64 / 1048576.0,
        bytes as f64 / 1048576.0 / elapsed.as_secs_f64()
    );
}

#[test]
fn echo_soak_lesson02_returns_every_byte_upper_cased() -> Result<()> {
    let sizes = Sizes::from_env()?;
    println!(
        "echo soak seed: {:#x} (set SOAK_SEED to change it)",
        sizes.seed
    );
    let mut server = Server::start(ECHO_SERVER_02, &[])?;
    let started = Instant::now();
    let mut stream = connect(server.addr)?;
    let bytes = echo_soak(&mut stream, sizes.messages, sizes.seed, false)?;
    report(ECHO_SERVER_02, sizes.messages, bytes, started);
    // Lesson 02 serves one client and then ends, cleanly.
    drop(stream);
    server.wait_for("disconnected")?;
    let finished = server.wait_exit()?;
    finished.assert_no_panic()?;
    ensure!(finished.status.success(), "exit: {:?}", finished.status);
    Ok(())
}

#[test]
fn echo_soak_lesson03_returns_every_byte_upper_cased() -> Result<()> {
    let sizes = Sizes::from_env()?;
    println!(
        "echo soak seed: {:#x} (set SOAK_SEED to change it)",
        sizes.seed
    );
    let server = Server::start(ECHO_SERVER_03, &[])?;
    let started = Instant::now();
    let mut stream = connect(server.addr)?;
    let bytes = echo_soak(&mut stream, sizes.messages, sizes.seed, false)?;
    report(ECHO_SERVER_03, sizes.messages, bytes, started);
    drop(stream);
    answers_a_new_client(server.addr)?;
    stop(server)?;
    Ok(())
}

#[test]
fn echo_soak_lesson04_returns_every_byte_upper_cased() -> Result<()> {
    let sizes = Sizes::from_env()?;
    println!(
        "echo soak seed: {:#x} (set SOAK_SEED to change it)",
        sizes.seed
    );
    let server = Server::start(ECHO_SERVER_04, &[])?;
    let started = Instant::now();
    let mut stream = connect(server.addr)?;
    let bytes = echo_soak(&mut stream, sizes.messages, sizes.seed, true)?;
    report(ECHO_SERVER_04, sizes.messages, bytes, started);
    drop(stream);
    answers_a_new_client(server.addr)?;
    stop(server)?;
    Ok(())
}

// ---------------------------------------------------------------- file soak

/// The names every file client also uploads to, all at the same time.
const SHARED_NAMES: usize = 3;

fn sha256_hex(data: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn send_json(conn: &mut TcpStream, header: &serde_json::Value) -> Result<()> {
    let body = header.to_string().into_bytes();
    let mut frame = (body.len() as u32).to_be_bytes().to_vec();
    frame.extend_from_slice(&body);
    conn.write_all(&frame)?;
    Ok(())
}

fn read_json(conn: &mut TcpStream) -> Result<serde_json::Value> {
    let mut len = [0u8; 4];
    conn.read_exact(&mut len)?;
    let mut body = vec![0u8; u32::from_be_bytes(len) as usize];
    conn.read_exact(&mut body)?;
    Ok(serde_json::from_slice(&body)?)
}

/// A whole `put`; `false` if the server refused it before the body (the
/// same file being uploaded by another client right now).
fn put_file(conn: &mut TcpStream, name: &str, data: &[u8]) -> Result<bool> {
    let sha = sha256_hex(data);
    send_json(
        conn,
        &serde_json::json!({"cmd": "put", "name": name, "size": data.len(), "sha256": sha}),
    )?;
    let ready = read_json(conn)?;
    if ready["ok"] != true {
        return Ok(false);
    }
    let offset = ready["offset"].as_u64().context("no offset")? as usize;
    conn.write_all(&data[offset..])?;
    let stored = read_json(conn)?;
    ensure!(
        stored["ok"] == true && stored["sha256"] == sha.as_str(),
        "put {name}: {stored}"
    );
    Ok(true)
}

fn get_file(conn: &mut TcpStream, name: &str) -> Result<Vec<u8>> {
    send_json(conn, &serde_json::json!({"cmd": "get", "name": name}))?;
    let found = read_json(conn)?;
    ensure!(found["ok"] == true, "get {name}: {found}");
    let mut data = vec![0u8; found["size"].as_u64().context("no size")? as usize];
    conn.read_exact(&mut data)?;
    ensure!(
        found["sha256"] == sha256_hex(&data).as_str(),
        "get {name}: bad sha256"
    );
    Ok(data)
}

/// The files client `c` uploads: (name, bytes), its own and the shared ones.
fn files_of(c: usize, sizes: &Sizes) -> Vec<(String, Vec<u8>)> {
    let mut rng = Rng::new(sizes.seed ^ (c as u64 + 1));
    let mut files: Vec<(String, Vec<u8>)> = (0..sizes.files)
        .map(|f| {
            let len = rng.between(0, 256 * 1024);
            (format!("客户{c}-文件{f}.bin"), rng.bytes(len))
        })
        .collect();
    for s in 0..SHARED_NAMES {
        let len = rng.between(1, 256 * 1024);
        files.push((format!("shared-{s}.bin"), rng.bytes(len)));
    }
    files
}

#[test]
fn file_soak_returns_every_file_whole() -> Result<()> {
    let sizes = Sizes::from_env()?;
    println!(
        "file soak seed: {:#x} (set SOAK_SEED to change it)",
        sizes.seed
    );
    let dir = course_tests::TempDir::new("soak-lesson08")?;
    let store = dir.path().to_str().context("temp dir is not UTF-8")?;
    let server = Server::start(FILE_SERVER, &["--dir", store])?;
    let addr = server.addr;
    let started = Instant::now();
    let clients: Vec<_> = (0..sizes.file_clients)
        .map(|c| {
            let files = files_of(c, &sizes);
            thread::spawn(move || -> Result<u64> {
                let mut conn = connect(addr)?;
                let mut bytes = 0;
                for (name, data) in &files {
                    // Never refused: no two clients upload the same bytes.
                    ensure!(put_file(&mut conn, name, data)?, "put {name} was refused");
                    bytes += data.len() as u64;
                }
                for (name, data) in &files[..files.len() - SHARED_NAMES] {
                    ensure!(
                        get_file(&mut conn, name)? == *data,
                        "{name} came back different"
                    );
                }
                Ok(bytes)
            })
        })
        .collect();
    let mut bytes = 0;
    for client in clients {
        bytes += client
            .join()
            .map_err(|_| anyhow!("a file client panicked"))??;
    }
    // Each shared name holds exactly one of the versions uploaded under it.
    let mut conn = connect(addr)?;
    for s in 0..SHARED_NAMES {
        let name = format!("shared-{s}.bin");
        let got = get_file(&mut conn, &name)?;
        let whole = (0..sizes.file_clients).any(|c| {
            files_of(c, &sizes)
                .iter()
                .any(|(n, d)| *n == name && *d == got)
        });
        ensure!(
            whole,
            "{name} holds {} bytes that no client uploaded",
            got.len()
        );
    }
    send_json(&mut conn, &serde_json::json!({"cmd": "list"}))?;
    let list = read_json(&mut conn)?;
    let listed = list["files"].as_array().context("no files")?.len();
    ensure!(
        listed == sizes.file_clients * sizes.files + SHARED_NAMES,
        "{listed} files listed"
    );
    println!(
        "file soak: {} clients, {listed} files, {:.1} MiB up in {:.2?}",
        sizes.file_clients,
        bytes as f64 / 1048576.0,
        started.elapsed()
    );
    stop(server)?;
    Ok(())
}

// ---------------------------------------------------------------- the soak's own parts

#[test]
fn random_messages_repeat_for_the_same_seed() {
    let (mut a, mut b) = (Rng::new(7), Rng::new(7));
    for _ in 0..20 {
        let first = message(&mut a);
        assert!((1..=MAX_MESSAGE).contains(&first.len()));
        assert_eq!(first, message(&mut b));
    }
    assert_ne!(message(&mut Rng::new(7)), message(&mut Rng::new(8)));
}

#[test]
fn numbered_lines_read_back() {
    assert_eq!(parse_numbered(&numbered(3, 1999)), Some((3, 1999)));
    assert_eq!(parse_numbered("soak 3"), None);
    assert_eq!(parse_numbered("soak 3 4 5"), None);
    assert_eq!(parse_numbered("hello"), None);
}

#[test]
fn a_failed_client_opens_the_gate_for_the_others() {
    let gate = Gate::new(2);
    gate.fail();
    let err = gate.arrive_and_wait("the test").unwrap_err();
    assert!(err.to_string().contains("another client failed"), "{err}");
}
