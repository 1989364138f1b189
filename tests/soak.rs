//! Soak tests: nothing is lost, however much goes through.
//!
//! - **Chat soak** (lessons 06, 10 and 11, which speak the same protocol):
//!   N clients join one room, and each sends M lines while it reads on a
//!   thread of its own. Line `i` of client `c` is `soak c i ` and random
//!   letters, a few of them two- and three-byte UTF-8 characters, up to L
//!   bytes in all. Every client must receive every other client's lines,
//!   each exactly once, byte for byte, in the order its sender sent them,
//!   and never its own. Then the room must still work (a newcomer is alone
//!   in it; another, who reads late, gets 96 long lines whole and in order),
//!   and Ctrl-C must give the members still there their goodbye and end the
//!   server with status 0.
//! - **Echo soak** (lessons 02, 03 and 04): K messages of random length
//!   (1 byte to 64 KiB) of random bytes, one after another on one connection
//!   per server. Every byte must come back upper-cased, in order.
//! - **Echo soak at once** (lesson 12): four connections at once on TCP and
//!   four on the server's Unix socket, K/8 messages of their own each (K in
//!   all), the same check.
//! - **File soak** (lesson 08): C clients at once each upload F files of
//!   random length (0 to 256 KiB) under names of their own, and all of them
//!   upload to the same few shared names meanwhile. Every file must come back
//!   byte for byte; a shared name must hold one whole version of the ones
//!   uploaded under it, never a mix.
//!
//! The sizes are small by default (about 10 s for the whole file, two tests
//! at a time on two cores; each chat soak takes 1 to 3 s), so
//! `cargo test --workspace` stays quick. Environment variables make the soak
//! bigger; a single variable overrides what `SOAK` chose:
//!
//! | variable            | what                                             | default         | `SOAK=full` |
//! | ------------------- | ------------------------------------------------ | --------------- | ----------- |
//! | `SOAK`              | `full` picks the large sizes                     |                 |             |
//! | `SOAK_CLIENTS`      | chat clients (N)                                 | 10              | 50          |
//! | `SOAK_LINES`        | lines each chat client sends (M)                 | 200             | 2,000       |
//! | `SOAK_LINE_BYTES`   | the longest chat line, in bytes (L)              | 2,048           | 64          |
//! | `SOAK_WINDOW`       | a chat client's window W (see below)             | the safe one    | the same    |
//! | `SOAK_PAUSE`        | lines a chat client reads between pauses         | 100             | 1,000       |
//! | `SOAK_RECV_BUFFER`  | a chat client's receive buffer, in bytes         | 2,048           | the same    |
//! | `SOAK_MSS`          | a chat client's segment size, in bytes           | 256             | the same    |
//! | `SOAK_CHAT_SERVER`  | another chat server, soaked in lesson 06's place | lesson06-server | the same    |
//! | `SOAK_MESSAGES`     | echo messages per server (K)                     | 1,000           | 10,000      |
//! | `SOAK_FILE_CLIENTS` | file clients at once (C)                         | 6               | 24          |
//! | `SOAK_FILES`        | files each file client uploads (F)               | 20              | 200         |
//! | `SOAK_SEED`         | seed of the random lines and messages            | 0x50C4E75EED05  | the same    |
//!
//! `SOAK_PAUSE`, `SOAK_RECV_BUFFER` and `SOAK_MSS` set to 0 mean never
//! pause, and the system's own buffer and segment sizes (Windows has no
//! segment size to set). `SOAK_CHAT_SERVER` is the path of another build of
//! any of the course's chat servers, to compare a change; a relative path
//! starts at the workspace's top folder.
//!
//! The full soak, with its figures printed (about four minutes on two cores; the
//! soaks run two at a time):
//!
//! ```text
//! SOAK=full cargo test -p course-tests --test soak -- --nocapture
//! ```
//!
//! The random lines and messages come from a tiny generator of our own
//! (SplitMix64) with a fixed seed, printed by every run, so a failure can be
//! replayed exactly with `SOAK_SEED`.
//!
//! What "keeps up" means for a chat client. A chat server keeps only so
//! much for each client, 256 lines, and deals with a client who lets it fill
//! up: lesson 06 hangs up on them, lessons 10 and 11 stop reading the
//! senders until there is space, and every server hangs up on a client for
//! whom a line has waited 5 s. A soak
//! client reads on its own thread, as fast as lines come, and, like a person
//! in a chat, does not talk much faster than it reads: it sends its line `i`
//! only once it has read line `i - W` of every other client. Then no client
//! can have more than (N-1) * (2W + 2) of the others' lines on the way to
//! it, plus the N-1 `joined` notices, wherever they wait (the server's queue
//! or buffer, the socket buffers). W is chosen so that this stays within
//! the server's limit even if the server never wrote a byte to that client:
//! (N-1) * (2W + 2) + (N-1) < 256 lines (W = 12 for 10 clients, 1 for 50).
//! So the soak cannot fail by chance, only if a line is
//! lost, repeated, reordered, changed or misdelivered.
//!
//! Without that pacing (`SOAK_WINDOW=100000`), N clients sending as fast as
//! TCP lets them hand the server N-1 lines to write for every line it reads,
//! and the queues fill: lesson 06 then hangs up on clients that do read (its
//! policy for a room that is too fast, not a lost line), while lessons 10
//! and 11 slow the senders down.
//!
//! Making the servers keep lines. A soak that goes well could also be one
//! in which every line the server writes is taken whole at once: then
//! lesson 10's partial writes and output buffer, and the queues of lessons
//! 06 and 11 filling while a writer waits for the socket, are never tried.
//! On loopback that is what happens: Linux gives the sending side of a
//! connection megabytes of buffer. So each soak client asks, before it
//! connects, for a small receive buffer and small segments (Linux sizes the
//! server's send buffer from the segment size): then some tens of kilobytes
//! fill the path to it, at least at first, instead of megabytes. And every
//! `SOAK_PAUSE` lines a reader pauses: it reads nothing until the others
//! have read all the lines that they, in their windows, can send before it
//! reads again. By then the server has for the paused reader as much as the
//! window allows, as a rule more than its socket takes, and must keep the
//! rest and write it out piece by piece as the reader reads on.
//! One reader pauses at a time, and a pause ends on an event (the others'
//! reading), never on a clock. The late reader after the soak does the
//! same once more with nothing else going on, so that only a server that
//! writes on when the socket becomes writable again gets its lines to it.

use std::collections::HashMap;
use std::env;
use std::io::{BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::Command;
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::thread;
use std::time::Instant;

use anyhow::{Context, Result, anyhow, bail, ensure};
use course_tests::chat::{MAX_LINE, QUEUE_LINES, read_line};
#[cfg(unix)]
use course_tests::chat_suite::interrupt;
use course_tests::headers::{get, read_json, send_json, sha256_hex};
use course_tests::{
    Chatter, Finished, Rng, Server, TIMEOUT, bin_path, connect, env_number, workspace_dir,
};
use socket2::{Domain, Socket, Type};

const CHAT_SERVER_06: &str = "lesson06-server";
const CHAT_SERVER_10: &str = "lesson10-server";
const CHAT_SERVER_11: &str = "lesson11-server";
const ECHO_SERVER_02: &str = "lesson02-server";
const ECHO_SERVER_03: &str = "lesson03-server";
const ECHO_SERVER_04: &str = "lesson04-server";
const ECHO_SERVER_12: &str = "lesson12-server";
const FILE_SERVER: &str = "lesson08-server";

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
    /// `SOAK_WINDOW`, if set; else each chat soak takes its server's safe one.
    window: Option<usize>,
    line_bytes: usize,
    recv_buffer: usize,
    mss: u32,
    pause_every: usize,
}

impl Sizes {
    fn from_env() -> Result<Sizes> {
        let full = env::var("SOAK").is_ok_and(|v| v == "full");
        let pick = |small: u64, large: u64| if full { large } else { small };
        let sizes = Sizes {
            clients: env_number("SOAK_CLIENTS", pick(10, 50))? as usize,
            lines: env_number("SOAK_LINES", pick(200, 2_000))? as usize,
            messages: env_number("SOAK_MESSAGES", pick(1_000, 10_000))? as usize,
            file_clients: env_number("SOAK_FILE_CLIENTS", pick(6, 24))? as usize,
            files: env_number("SOAK_FILES", pick(20, 200))? as usize,
            seed: env_number("SOAK_SEED", DEFAULT_SEED)?,
            window: match env::var_os("SOAK_WINDOW") {
                Some(_) => Some(env_number("SOAK_WINDOW", 0)? as usize),
                None => None,
            },
            line_bytes: env_number("SOAK_LINE_BYTES", pick(2048, 64))? as usize,
            recv_buffer: env_number("SOAK_RECV_BUFFER", 2048)? as usize,
            mss: u32::try_from(env_number("SOAK_MSS", 256)?).context("SOAK_MSS is too large")?,
            pause_every: env_number("SOAK_PAUSE", pick(100, 1000))? as usize,
        };
        ensure!(sizes.clients >= 2, "SOAK_CLIENTS must be at least 2");
        ensure!(
            sizes.line_bytes <= MAX_LINE,
            "SOAK_LINE_BYTES must be at most {MAX_LINE}, the longest line a chat server takes"
        );
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
            !waited.timed_out(),
            "line {line} waited {TIMEOUT:?} for the others' lines (read {} of each)",
            state.floor
        );
        ensure!(
            self.read_enough(&state, line),
            "line {line} not sent: the reader stopped after {} lines of each",
            state.floor
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

/// Where the readers' pauses (see the header) are arranged: how many lines
/// each reader has read, and whether one of them is pausing now. One reader
/// pauses at a time; another that comes to its pause meanwhile pauses later.
struct Pauses {
    state: Mutex<Readers>,
    changed: Condvar,
}

struct Readers {
    /// How many lines each client has read.
    read: Vec<usize>,
    /// Whether a reader is pausing now.
    pausing: bool,
    /// A client failed: nobody waits any more.
    broken: bool,
}

impl Pauses {
    fn new(clients: usize) -> Pauses {
        Pauses {
            state: Mutex::new(Readers {
                read: vec![0; clients],
                pausing: false,
                broken: false,
            }),
            changed: Condvar::new(),
        }
    }

    /// Client `me` has read one more line.
    fn read(&self, me: usize) {
        let mut state = lock(&self.state);
        state.read[me] += 1;
        if state.pausing {
            self.changed.notify_all();
        }
    }

    /// The reader of client `me` stops reading until each other client has
    /// read all there will be for it: `theirs` lines of every client but
    /// `me` and itself, and `ours` of ours. Then, and not before, the server
    /// has passed on to `me` every line the others will send until it reads
    /// again. Returns `false` at once if another reader is pausing now.
    fn pause(&self, me: usize, ours: usize, theirs: usize) -> Result<bool> {
        let mut state = lock(&self.state);
        if state.pausing {
            return Ok(false);
        }
        state.pausing = true;
        let others = state.read.len() - 1;
        let everything = others * ((others - 1) * theirs + ours);
        let read_by_others = |state: &Readers| state.read.iter().sum::<usize>() - state.read[me];
        let (mut state, waited) = self
            .changed
            .wait_timeout_while(state, TIMEOUT, |state| {
                read_by_others(state) < everything && !state.broken
            })
            .unwrap_or_else(PoisonError::into_inner);
        state.pausing = false;
        ensure!(
            !state.broken,
            "another client failed while client {me} paused"
        );
        ensure!(
            !waited.timed_out(),
            "client {me} paused {TIMEOUT:?} for the others to read {everything} lines; \
             they read {} ({:?})",
            read_by_others(&state),
            state.read
        );
        Ok(true)
    }

    fn fail(&self) {
        lock(&self.state).broken = true;
        self.changed.notify_all();
    }
}

/// What the chat clients say: line `seq` of client `from` is `soak FROM SEQ `
/// and then random letters, up to a random length of at most `longest`
/// bytes. A few letters are two- and three-byte UTF-8 characters. The same
/// seed gives the same lines, so a reader can check every byte it gets.
#[derive(Clone, Copy)]
struct Script {
    seed: u64,
    longest: usize,
}

/// The letters of the soak's lines: no space, no control character, nothing
/// a chat server changes on the way.
const LETTERS: [&str; 64] = [
    "a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k", "l", "m", "n", "o", "p", "q", "r", "s",
    "t", "u", "v", "w", "x", "y", "z", "A", "B", "C", "D", "E", "F", "G", "H", "I", "J", "K", "L",
    "M", "N", "O", "P", "Q", "R", "S", "T", "U", "V", "W", "X", "Y", "Z", "0", "1", "2", "3", "4",
    "5", "6", "7", "8", "9", "é", "好",
];

impl Script {
    /// The text of line `seq` of client `from`, without its `\n`.
    fn line(&self, from: usize, seq: usize) -> String {
        let mut text = format!("soak {from} {seq} ");
        let mut rng = Rng::new(self.seed ^ ((from as u64) << 32 | seq as u64));
        let len = rng.between(text.len() + 1, self.longest.max(text.len() + 1));
        while text.len() < len {
            for byte in rng.next_u64().to_le_bytes() {
                let mut letter = LETTERS[usize::from(byte % 64)];
                if text.len() + letter.len() > len {
                    letter = LETTERS[usize::from(byte % 62)]; // one byte
                }
                text.push_str(letter);
                if text.len() == len {
                    break;
                }
            }
        }
        text
    }

    /// The longest text any of `clients` clients sends in `lines` lines.
    fn longest_text(&self, clients: usize, lines: usize) -> usize {
        let prefix = format!("soak {} {} ", clients - 1, lines.saturating_sub(1));
        self.longest.max(prefix.len() + 1)
    }
}

/// Reads the client and line number out of a line's text.
fn parse_numbered(text: &str) -> Option<(usize, usize)> {
    let mut words = text.strip_prefix("soak ")?.split(' ');
    let from = words.next()?.parse().ok()?;
    let seq = words.next()?.parse().ok()?;
    words.next()?; // the letters
    words.next().is_none().then_some((from, seq))
}

/// The largest window W (see the header) that keeps what can be on the way
/// to one client within the chat servers' queue of [`QUEUE_LINES`] lines,
/// even if the server never got to write any of it: (N-1) * (2W + 2) lines
/// plus the N-1 `joined` notices. Above 85 clients no window is small
/// enough; then it is 0 (lock-step).
fn safe_window(clients: usize) -> usize {
    let others = clients - 1;
    let each = (QUEUE_LINES - 1) / others; // lines each other client may have on the way
    let on_the_way = each.saturating_sub(1); // less its notice: 2W + 2
    on_the_way.saturating_sub(2) / 2
}

/// What the clients of one chat soak share.
struct Room<'a> {
    server: SocketAddr,
    sizes: &'a Sizes,
    /// How far a sender may run ahead of its reader, in lines.
    window: usize,
    script: Script,
    /// Each client's address, which is its name in the room.
    names: Mutex<Vec<Option<SocketAddr>>>,
    joined: Gate,
    finished: Gate,
    pauses: Pauses,
    /// Each client's connection, so that a failure can end them all.
    connections: Mutex<Vec<TcpStream>>,
    /// The first failure, which caused the others.
    first_failure: Mutex<Option<String>>,
}

impl Room<'_> {
    /// Notes the first failure, opens every gate and shuts every connection
    /// down, so that no other client waits for one that failed: their reads
    /// end at once instead of after [`TIMEOUT`].
    fn fail(&self, me: usize, err: &anyhow::Error) {
        lock(&self.first_failure).get_or_insert_with(|| format!("client {me}: {err:#}"));
        self.joined.fail();
        self.finished.fail();
        self.pauses.fail();
        for connection in lock(&self.connections).iter() {
            let _ = connection.shutdown(Shutdown::Both);
        }
    }
}

/// The reader thread of client `me`: checks every line as it arrives, byte
/// for byte, until it has every other client's lines. Every
/// `sizes.pause_every` lines it pauses (see the header).
fn read_everything(
    me: usize,
    mut lines: BufReader<TcpStream>,
    names: &[SocketAddr],
    room: &Room,
    progress: &Progress,
) -> Result<BufReader<TcpStream>> {
    let clients = names.len();
    let per_sender = room.sizes.lines;
    let pause_every = room.sizes.pause_every;
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
    // Lines read since the last pause. The clients pause at different
    // times: client `me` first after `pause_every * (me + 1) / clients`.
    let mut since_pause = pause_every - pause_every * (me + 1) / clients;
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
            .with_context(|| format!("client {me} got a line it cannot read: {}", shown(&line)))?;
        let (from, seq) = parse_numbered(text)
            .with_context(|| format!("client {me} got an unknown line: {}", shown(&line)))?;
        ensure!(
            by_name.get(name) == Some(&from),
            "client {me} got {}: line of client {from} under the name {name}",
            shown(&line)
        );
        ensure!(from != me, "client {me} heard its own line {seq}");
        ensure!(
            seq == next[from],
            "client {me} got line {seq} of client {from} while expecting line {} \
             (a line lost, repeated or out of order)",
            next[from]
        );
        let sent = room.script.line(from, seq);
        if text != sent {
            let mut at = text
                .bytes()
                .zip(sent.bytes())
                .take_while(|(a, b)| a == b)
                .count();
            while !(text.is_char_boundary(at) && sent.is_char_boundary(at)) {
                at -= 1; // a difference inside a character: show all of it
            }
            bail!(
                "client {me} got line {seq} of client {from} changed from byte {at} on: \
                 {} bytes {}, sent {} bytes {}",
                text.len(),
                shown(&text[at..]),
                sent.len(),
                shown(&sent[at..])
            );
        }
        next[from] += 1;
        missing -= 1;
        room.pauses.read(me);
        // Let our sender know when the slowest other client moved on.
        if seq == floor {
            at_floor -= 1;
            if at_floor == 0 {
                floor = next.iter().copied().min().unwrap_or(per_sender);
                at_floor = next.iter().filter(|&&n| n == floor).count();
                progress.update(|read| read.floor = floor);
            }
        }
        // Time to pause? Then read nothing until the others have read all
        // that their windows let them send before we read again: by then the
        // server has passed on to us the most there can be on the way. If
        // another reader is pausing, try again after the next line.
        since_pause += 1;
        if pause_every > 0 && since_pause >= pause_every {
            let ours = (floor + room.window + 1).min(per_sender);
            let theirs = (ours + room.window + 1).min(per_sender);
            if room.pauses.pause(me, ours, theirs)? {
                since_pause = 0;
            }
        }
    }
    Ok(lines)
}

/// A line for an error message: its start, if it is long.
fn shown(text: &str) -> String {
    const SHOWN: usize = 100;
    match text.char_indices().nth(SHOWN) {
        None => format!("{text:?}"),
        Some((end, _)) => format!("{:?}... ({} bytes)", &text[..end], text.len()),
    }
}

/// Joins the room over a socket that asked for a receive buffer of
/// `recv_buffer` bytes and segments of `mss` bytes (0: the system's
/// default). Both are set before `connect`, so that the server's side of the
/// connection is small from the first byte: on Linux its send buffer is
/// sized from the segment size, and would hold megabytes on loopback.
fn join_with_buffers(server: SocketAddr, recv_buffer: usize, mss: u32) -> Result<Chatter> {
    let socket = Socket::new(Domain::for_address(server), Type::STREAM, None)?;
    if recv_buffer > 0 {
        socket.set_recv_buffer_size(recv_buffer)?;
    }
    // Windows has no TCP_MAXSEG to set; its buffers are small anyway.
    #[cfg(unix)]
    if mss > 0 {
        socket.set_tcp_mss(mss)?;
    }
    #[cfg(not(unix))]
    let _ = mss;
    socket
        .connect_timeout(&server.into(), TIMEOUT)
        .with_context(|| format!("connecting to {server}"))?;
    Chatter::over(socket.into())
}

/// One chat client from start to end. Returns the bytes it sent.
fn chat_client(me: usize, room: &Room) -> Result<u64> {
    let sizes = room.sizes;
    let Chatter {
        input: lines,
        output: mut out,
        addr,
        ..
    } = join_with_buffers(room.server, sizes.recv_buffer, sizes.mss)?;
    // Each line leaves at once instead of waiting for the last one's ACK
    // (Nagle's algorithm): a paced sender is a latency-bound sender.
    out.set_nodelay(true)?;
    // After the welcome we are in the room. Once everybody is, every line
    // anybody sends reaches everybody else.
    lock(&room.connections).push(out.try_clone()?);
    lock(&room.names)[me] = Some(addr);
    room.joined.arrive_and_wait("joining")?;
    let names: Vec<SocketAddr> = lock(&room.names)
        .iter()
        .map(|name| name.context("a client without an address"))
        .collect::<Result<_>>()?;

    let progress = Progress::new(room.window);
    let mut bytes = 0u64;
    let lines = thread::scope(|scope| -> Result<BufReader<TcpStream>> {
        let reader = scope.spawn(|| {
            let result = read_everything(me, lines, &names, room, &progress);
            progress.update(|read| read.stopped = true);
            result
        });
        // The sender: one line at a time, never far ahead of what we read.
        let mut sent = Ok(());
        for seq in 0..sizes.lines {
            sent = progress.wait_to_send(seq).and_then(|()| {
                let text = room.script.line(me, seq);
                bytes += text.len() as u64 + 1;
                writeln!(out, "{text}").with_context(|| format!("client {me} sending line {seq}"))
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
        // When one half fails, the other fails after it: a reader that
        // stopped holds up its sender, and a sender that failed shuts the
        // connection down under its reader. Say both.
        match (read, sent) {
            (Ok(lines), Ok(())) => Ok(lines),
            (Err(read), Ok(())) => Err(read),
            (Ok(_), Err(sent)) => Err(sent),
            (Err(read), Err(sent)) => Err(anyhow!("reader: {read:#}; sender: {sent:#}")),
        }
    })?;

    // Stay until everybody has everything: a line can only reach clients
    // that are still in the room.
    room.finished.arrive_and_wait("reading every line")?;
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
    Ok(bytes)
}

/// The lines of a chat server's log that say it cut a member off as too
/// slow (its queue full, or a line waiting too long for it).
fn cut_off(log: &[String]) -> Vec<&String> {
    log.iter()
        .filter(|line| line.contains("too slow"))
        .collect()
}

/// How many lines, of [`LATE_BYTES`] bytes each, come for the member who
/// reads late after the soak: 96 lines, 188 KiB with the sender's name, more
/// than the sockets take and less than any server keeps (256 lines, 256 KiB).
const LATE_LINES: usize = 96;

/// The length of each of those lines, without the sender's name.
const LATE_BYTES: usize = 2000;

/// Line `i` of those for the late reader.
fn late_line(i: usize) -> String {
    let mut text = format!("late {i} ");
    let letters = (text.len()..LATE_BYTES).map(|k| char::from(b'a' + ((i + k) % 26) as u8));
    text.extend(letters);
    text
}

/// After the soak the room is empty and still works: a newcomer is alone in
/// it, and a second one, over a socket as small as the soak's, reads nothing
/// while the first sends it [`LATE_LINES`] long lines. The server must keep
/// what the socket does not take in its queue (lesson 10 writes on when the
/// socket is writable again)
/// and hand over every line, in order, once the reader reads. Both stay, for
/// the goodbye.
fn room_still_works(server: SocketAddr, sizes: &Sizes) -> Result<[Chatter; 2]> {
    let mut first = Chatter::named(server, "after")?;
    let who = first.who()?;
    ensure!(
        who == "* 1 in the room: after",
        "after the soak, /who said {who:?}"
    );
    let mut late = join_with_buffers(server, sizes.recv_buffer, sizes.mss)?.renamed("late")?;
    for i in 0..LATE_LINES {
        first.say(&late_line(i))?;
    }
    // The server reads a member's lines in order: once it answers the /who
    // after them, it has passed all of them on.
    let who = first.who()?;
    ensure!(
        who == "* 2 in the room: after, late",
        "after the soak, /who said {who:?}"
    );
    for i in 0..LATE_LINES {
        let line = late
            .line()
            .with_context(|| format!("the late reader waiting for line {i} of {LATE_LINES}"))?;
        let sent = format!("after: {}", late_line(i));
        ensure!(
            line == sent,
            "the late reader got {} for line {i}, {} bytes",
            shown(&line),
            sent.len()
        );
    }
    Ok([first, late])
}

/// Stops a chat server as Ctrl-C does: each member still in the room gets
/// the goodbye and nothing else, and the server exits with status 0. Where
/// there is no SIGINT (Windows) it is killed instead.
fn stop_chat(server: Server, members: [Chatter; 2]) -> Result<Finished> {
    #[cfg(unix)]
    {
        interrupt(&server.proc)?;
        for mut member in members {
            let last = member.lines_until_closed()?;
            ensure!(
                last == ["* server shutting down"],
                "{} got {last:?} on Ctrl-C",
                member.name
            );
        }
        let finished = server.wait_exit()?;
        finished.assert_no_panic()?;
        ensure!(
            finished.status.success() && finished.stdout.iter().any(|l| l == "server stopped"),
            "after Ctrl-C: {:?}, last lines {:?}, stderr {:?}",
            finished.status,
            &finished.stdout[finished.stdout.len().saturating_sub(5)..],
            finished.stderr
        );
        Ok(finished)
    }
    #[cfg(not(unix))]
    {
        drop(members);
        stop(server)
    }
}

/// The chat soak against the chat server `program` (named `label` in what
/// it prints), whose limit for a slow member is `backlog`.
fn chat_soak(label: &str, program: PathBuf) -> Result<()> {
    let sizes = Sizes::from_env()?;
    let clients = sizes.clients;
    let script = Script {
        seed: sizes.seed,
        longest: sizes.line_bytes,
    };
    let window = sizes.window.unwrap_or_else(|| safe_window(clients));
    println!(
        "chat soak {label}: seed {:#x} (set SOAK_SEED to change it), window {window}",
        sizes.seed
    );
    let max_clients = clients.to_string();
    let mut command = Command::new(program);
    command.args(["127.0.0.1:0", "--max-clients", &max_clients]);
    let server = Server::start_command(command)?;
    let room = Room {
        server: server.addr,
        sizes: &sizes,
        window,
        script,
        names: Mutex::new(vec![None; clients]),
        joined: Gate::new(clients),
        finished: Gate::new(clients),
        pauses: Pauses::new(clients),
        connections: Mutex::new(Vec::new()),
        first_failure: Mutex::new(None),
    };
    let started = Instant::now();

    let results: Vec<Result<u64>> = thread::scope(|scope| {
        let threads: Vec<_> = (0..clients)
            .map(|me| {
                let room = &room;
                scope.spawn(move || {
                    let result = chat_client(me, room);
                    if let Err(err) = &result {
                        room.fail(me, err);
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

    let mut sent = 0;
    let mut failed = 0;
    for result in results {
        match result {
            Ok(bytes) => sent += bytes,
            Err(_) => failed += 1,
        }
    }
    if let Some(first) = lock(&room.first_failure).take() {
        let log = stop(server)?;
        bail!(
            "{failed} of {clients} clients failed; the first was {first}; server said of slow clients: {:?}",
            cut_off(&log.stdout)
        );
    }
    let members = room_still_works(room.server, &sizes)?;
    let log = stop_chat(server, members)?;
    let cut = cut_off(&log.stdout);
    ensure!(cut.is_empty(), "the server cut off clients: {cut:?}");
    let delivered = clients * (clients - 1) * sizes.lines;
    let mib = (sent * (clients as u64 - 1)) as f64 / 1048576.0;
    println!(
        "chat soak {label}: {clients} clients x {} lines, {delivered} lines ({mib:.1} MiB) \
         delivered in {elapsed:.2?} ({:.0} lines/s)",
        sizes.lines,
        delivered as f64 / elapsed.as_secs_f64()
    );
    Ok(())
}

/// Lesson 06, or the server `SOAK_CHAT_SERVER` names.
#[test]
fn chat_soak_delivers_every_line_once_in_order() -> Result<()> {
    match env::var_os("SOAK_CHAT_SERVER").filter(|path| !path.is_empty()) {
        // Another build of a chat server, to compare a change. A relative
        // path starts at the workspace's top folder, not at tests/.
        Some(path) => {
            let label = path.to_string_lossy().into_owned();
            chat_soak(&label, workspace_dir().join(path))
        }
        None => chat_soak(CHAT_SERVER_06, bin_path(CHAT_SERVER_06)?),
    }
}

course_tests::test_table! {
    chat_soak_lesson10_delivers_every_line_once_in_order:
        chat_soak(CHAT_SERVER_10, bin_path(CHAT_SERVER_10)?);
    chat_soak_lesson11_delivers_every_line_once_in_order:
        chat_soak(CHAT_SERVER_11, bin_path(CHAT_SERVER_11)?);
}

// ---------------------------------------------------------------- echo soak

/// Sends `count` random messages on one connection and checks that each
/// comes back upper-cased, byte for byte. A second thread writes while this
/// one reads, so neither side can wait for the other with full buffers.
///
/// `avoid_quit` replaces `q` and `Q` by `r` and `R`: lesson 04 hangs up on a
/// read that holds only `q` and spaces, and random bytes cut into random
/// reads could make one.
fn echo_soak<S: Duplex>(stream: &mut S, count: usize, seed: u64, avoid_quit: bool) -> Result<u64> {
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
    let mut out = stream.clone_handle()?;
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
                let _ = stream.shut_both();
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

/// A connected stream of either family, as the echo soak uses it.
trait Duplex: Read + Write + Send + Sized {
    fn clone_handle(&self) -> std::io::Result<Self>;
    fn shut_both(&self) -> std::io::Result<()>;
}

impl Duplex for TcpStream {
    fn clone_handle(&self) -> std::io::Result<Self> {
        self.try_clone()
    }
    fn shut_both(&self) -> std::io::Result<()> {
        self.shutdown(Shutdown::Both)
    }
}

#[cfg(unix)]
impl Duplex for std::os::unix::net::UnixStream {
    fn clone_handle(&self) -> std::io::Result<Self> {
        self.try_clone()
    }
    fn shut_both(&self) -> std::io::Result<()> {
        self.shutdown(Shutdown::Both)
    }
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

/// Echo server `name` (lesson 03's or 04's) soaked on one connection, then
/// serving a new client. `avoid_quit` keeps lesson 04's `q` out of the data.
fn sequential_echo_soak(name: &str, avoid_quit: bool) -> Result<()> {
    let sizes = Sizes::from_env()?;
    println!(
        "echo soak seed: {:#x} (set SOAK_SEED to change it)",
        sizes.seed
    );
    let server = Server::start(name, &[])?;
    let started = Instant::now();
    let mut stream = connect(server.addr)?;
    let bytes = echo_soak(&mut stream, sizes.messages, sizes.seed, avoid_quit)?;
    report(name, sizes.messages, bytes, started);
    drop(stream);
    answers_a_new_client(server.addr)?;
    stop(server)?;
    Ok(())
}

course_tests::test_table! {
    echo_soak_lesson03_returns_every_byte_upper_cased: sequential_echo_soak(ECHO_SERVER_03, false);
    echo_soak_lesson04_returns_every_byte_upper_cased: sequential_echo_soak(ECHO_SERVER_04, true);
}

/// Lesson 13's proxy, cutting the stream into pieces of 1 to 97 bytes, in
/// front of lesson 03's server: every byte still comes back, in order.
#[test]
fn echo_soak_lesson13_passes_every_byte_on_through_split() -> Result<()> {
    let sizes = Sizes::from_env()?;
    println!(
        "echo soak seed: {:#x} (set SOAK_SEED to change it)",
        sizes.seed
    );
    let server = Server::start(ECHO_SERVER_03, &[])?;
    let to = server.addr_arg();
    let seed = sizes.seed.to_string();
    let proxy = Server::start(
        "lesson13-proxy",
        &["--to", &to, "--split", "97", "--seed", &seed],
    )?;
    let started = Instant::now();
    let mut stream = connect(proxy.addr)?;
    let bytes = echo_soak(&mut stream, sizes.messages, sizes.seed, false)?;
    report("lesson13-proxy --split 97", sizes.messages, bytes, started);
    drop(stream);
    answers_a_new_client(proxy.addr)?;
    stop(proxy)?;
    stop(server)?;
    Ok(())
}

/// Lesson 12: four callers at once over TCP and four over the Unix socket,
/// each soaking its own connection with its own seed.
#[cfg(unix)]
#[test]
fn echo_soak_lesson12_returns_every_byte_upper_cased_on_both_families() -> Result<()> {
    use course_tests::{TempDir, UnixServer, connect_unix};
    let sizes = Sizes::from_env()?;
    println!(
        "echo soak seed: {:#x} (set SOAK_SEED to change it)",
        sizes.seed
    );
    let tcp = Server::start(ECHO_SERVER_12, &[])?;
    let dir = TempDir::with_prefix("soak-l12-")?;
    let unix = UnixServer::start(ECHO_SERVER_12, &dir.path().join("lesson12.sock"), &[])?;
    let started = Instant::now();
    let each = sizes.messages.div_ceil(8);
    let bytes = thread::scope(|scope| -> Result<u64> {
        let mut soaks = Vec::new();
        for c in 0..4u64 {
            let addr = tcp.addr;
            soaks.push(scope.spawn(move || -> Result<u64> {
                let mut stream = connect(addr)?;
                echo_soak(&mut stream, each, sizes.seed + c, true)
            }));
            let path = unix.path.clone();
            soaks.push(scope.spawn(move || -> Result<u64> {
                let mut stream = connect_unix(&path)?;
                echo_soak(&mut stream, each, sizes.seed + 100 + c, true)
            }));
        }
        let mut total = 0;
        for soak in soaks {
            total += soak.join().map_err(|_| anyhow!("a soak panicked"))??;
        }
        Ok(total)
    })?;
    report(ECHO_SERVER_12, 8 * each, bytes, started);
    answers_a_new_client(tcp.addr)?;
    stop(tcp)?;
    unix.proc.kill()?.assert_no_panic()
}

// ---------------------------------------------------------------- file soak

/// The names every file client also uploads to, all at the same time.
const SHARED_NAMES: usize = 3;

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
    let dir = course_tests::TempDir::with_prefix("soak-lesson08-")?;
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
                    ensure!(get(&mut conn, name)? == *data, "{name} came back different");
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
        let got = get(&mut conn, &name)?;
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
fn script_lines_read_back_and_repeat_for_the_same_seed() {
    let script = Script {
        seed: 7,
        longest: 300,
    };
    for (from, seq) in [(0, 0), (3, 1999), (49, 123_456)] {
        let line = script.line(from, seq);
        assert_eq!(parse_numbered(&line), Some((from, seq)), "{line:?}");
        assert!(line.len() <= script.longest_text(50, 200_000), "{line:?}");
        assert_eq!(line, script.line(from, seq));
        assert_ne!(line, script.line(from, seq + 1));
    }
    let other = Script { seed: 8, ..script };
    assert_ne!(script.line(3, 4), other.line(3, 4));
    // The shortest a line can be: one letter after the numbers.
    let short = Script {
        longest: 0,
        ..script
    };
    assert_eq!(short.line(3, 4).len(), "soak 3 4 x".len());
    assert_eq!(parse_numbered("soak 3"), None);
    assert_eq!(parse_numbered("soak 3 4"), None);
    assert_eq!(parse_numbered("soak 3 4 a b"), None);
    assert_eq!(parse_numbered("hello"), None);
}

#[test]
fn safe_windows_keep_the_backlog_below_its_limit() {
    // W = 12 for 10 clients, 1 for 50, as the header says.
    assert_eq!(safe_window(10), 12);
    assert_eq!(safe_window(50), 1);
    for clients in [2, 10, 50] {
        let others = clients - 1;
        let w = safe_window(clients);
        assert!(others * (2 * w + 2) + others < QUEUE_LINES);
        assert!(others * (2 * w + 4) + others >= QUEUE_LINES || w == 0);
    }
}

#[test]
fn a_failed_client_opens_the_gate_for_the_others() {
    let gate = Gate::new(2);
    gate.fail();
    let err = gate.arrive_and_wait("the test").unwrap_err();
    assert!(err.to_string().contains("another client failed"), "{err}");
}
