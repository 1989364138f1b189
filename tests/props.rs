//! Property tests: TCP is a byte stream, so however the same bytes are cut
//! into pieces on the way, every program must make the same of them.
//!
//! The parsing lives in the lesson binaries, so each property drives the real
//! programs over real sockets. The test writes each piece with its own
//! `write` and `TCP_NODELAY` on, so a piece leaves at once as its own segment;
//! a piece boundary can fall anywhere, inside a UTF-8 character and between
//! `\r` and `\n` included. (The receiver may still read several pieces at
//! once; that is one more way to cut the same bytes, and must work too.)
//!
//! - lesson06-server, and lessons 10 and 11 which speak its protocol: lines
//!   and commands split anywhere reach another client as the same lines (the
//!   model: the chapter's rules, in `expected_chat`).
//! - lesson02/03/04-client: a reply delivered in pieces is printed as exactly
//!   the upper-cased line.
//! - lesson06-client and lesson11-client: lines delivered in pieces are
//!   printed one per line.
//! - lesson07-server: frames glued together and split anywhere, inside the
//!   4-byte length included, are each answered with exactly one frame.
//! - lesson04-server: `q` on its own hangs up, however its bytes are split.
//!   (Only on its own: lesson 04 finds `q` by looking at one `read`, so a `q`
//!   that arrives in the same read as an earlier message is echoed instead.
//!   The chapter says so; that is why no property claims more.)
//! - lesson08-server: put, its body, get and list, glued and cut anywhere, store
//!   and return the same file.
//! - lesson08-client: a download delivered in pieces is saved as the same file.
//!
//! Each property runs 32 cases (override with `PROPTEST_CASES`) from a fixed
//! seed, so every run tries the same cases (another seed:
//! `PROPTEST_RNG_SEED=12345`). A failure prints the smallest input proptest
//! could shrink it to. One server serves all cases of a property; a client
//! process per case is reaped when the case ends.

use std::cell::RefCell;
use std::env;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::{Context, Result, anyhow, ensure};
use course_tests::frames::{frame, reply};
use course_tests::headers::{frame_of, read_json, sha256_hex};
use course_tests::{Chatter, PlainServer, Proc, Server, connect};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::{Config, RngSeed, TestCaseError, TestRunner};

const CHAT_SERVER: &str = "lesson06-server";
const CHAT_CLIENT: &str = "lesson06-client";
const ECHO_CLIENTS: [&str; 3] = ["lesson02-client", "lesson03-client", "lesson04-client"];
const QUIT_SERVER: &str = "lesson04-server";
const FRAMED_SERVER: &str = "lesson07-server";
const FILE_SERVER: &str = "lesson08-server";
const FILE_CLIENT: &str = "lesson08-client";

/// Cases per property unless `PROPTEST_CASES` is set.
const CASES: u32 = 32;

/// The seed unless `PROPTEST_RNG_SEED` is set.
const SEED: u64 = 0x0050_C4E7;

// ---------------------------------------------------------------- running properties

/// Runs `property` on values from `strategy` and turns a failure (after
/// shrinking) into an error that names the smallest failing input.
fn check<S>(strategy: S, property: impl Fn(S::Value) -> Result<()>) -> Result<()>
where
    S: Strategy,
    S::Value: std::fmt::Debug,
{
    // `Config::default()` has already read the `PROPTEST_*` variables.
    let mut config = Config::default();
    if env::var_os("PROPTEST_CASES").is_none() {
        config.cases = CASES;
    }
    if env::var_os("PROPTEST_RNG_SEED").is_none() {
        config.rng_seed = RngSeed::Fixed(SEED);
    }
    // No regression files in the source tree; the failure message has the case.
    config.failure_persistence = None;
    // Shrinking reruns the case; bound how long a failure can take to report.
    config.max_shrink_time = 60_000;
    let mut runner = TestRunner::new(config);
    runner
        .run(&strategy, |value| {
            property(value).map_err(|err| TestCaseError::fail(format!("{err:#}")))
        })
        .map_err(|err| anyhow!("{err}"))
}

/// Where to cut a stream of bytes into pieces.
#[derive(Clone, Debug)]
enum Cuts {
    /// At these places, each scaled to the stream's length.
    At(Vec<Index>),
    /// After every byte: the stream one byte at a time.
    EveryByte,
}

fn cuts() -> impl Strategy<Value = Cuts> {
    prop_oneof![
        4 => vec(any::<Index>(), 0..24).prop_map(Cuts::At),
        1 => Just(Cuts::EveryByte),
    ]
}

impl Cuts {
    /// The cut positions in `bytes` (each between 1 and `len - 1`), sorted.
    fn positions(&self, len: usize) -> Vec<usize> {
        let mut at: Vec<usize> = match self {
            Cuts::At(places) => places.iter().map(|i| i.index(len + 1)).collect(),
            Cuts::EveryByte => (0..len).collect(),
        };
        at.retain(|&p| 0 < p && p < len);
        at.sort_unstable();
        at.dedup();
        at
    }

    /// `bytes` cut into pieces; none is empty, and together they are `bytes`.
    fn pieces<'a>(&self, bytes: &'a [u8]) -> Vec<&'a [u8]> {
        cut_at(bytes, &self.positions(bytes.len()))
    }
}

/// `bytes` cut at the sorted positions `at`.
fn cut_at<'a>(bytes: &'a [u8], at: &[usize]) -> Vec<&'a [u8]> {
    let mut pieces = Vec::new();
    let mut start = 0;
    for &cut in at.iter().chain([&bytes.len()]) {
        if cut > start {
            pieces.push(&bytes[start..cut]);
            start = cut;
        }
    }
    pieces
}

/// Writes each piece with its own `write_all`, the Nagle delay off.
fn send_pieces(stream: &mut TcpStream, pieces: &[&[u8]]) -> Result<()> {
    stream.set_nodelay(true)?;
    for piece in pieces {
        stream.write_all(piece).context("sending a piece")?;
    }
    Ok(())
}

/// Pieces, shown in a failure message.
fn show(pieces: &[&[u8]]) -> String {
    let shown: Vec<String> = pieces
        .iter()
        .map(|p| format!("\"{}\"", p.escape_ascii()))
        .collect();
    shown.join(" | ")
}

/// Any bytes but `\n`, as a line's content.
fn line_bytes(len: std::ops::Range<usize>) -> impl Strategy<Value = Vec<u8>> {
    vec(any::<u8>(), len).prop_map(|mut bytes| {
        for byte in &mut bytes {
            if *byte == b'\n' {
                *byte = b' ';
            }
        }
        bytes
    })
}

/// Readable text with multi-byte characters, spaces, a `/` and a `\r` now
/// and then, as bytes.
fn text_bytes() -> impl Strategy<Value = Vec<u8>> {
    "[a-z /\r你好é😀]{0,30}".prop_map(String::into_bytes)
}

// ---------------------------------------------------------------- lesson06-server

/// One line a chat client sends.
#[derive(Clone, Debug)]
enum Said {
    /// These bytes (no `\n`): text, an empty line, a `\r` ending, a `/` that
    /// is no command...
    Line(Vec<u8>),
    /// `/nick NAME`, with a name made unique when the case runs.
    Nick,
    /// `/who`: the answer goes to the sender only.
    Who,
}

fn said() -> impl Strategy<Value = Said> {
    prop_oneof![
        3 => text_bytes().prop_map(Said::Line),
        2 => line_bytes(0..60).prop_map(Said::Line),
        1 => text_bytes().prop_map(|mut b| {
            b.extend_from_slice(b"\r");
            Said::Line(b)
        }),
        1 => Just(Said::Nick),
        1 => Just(Said::Who),
    ]
    // `/quit` would end the conversation; it has tests of its own.
    .prop_filter("no /quit", |said| match said {
        Said::Line(bytes) => !String::from_utf8_lossy(bytes).starts_with("/quit"),
        _ => true,
    })
}

/// The bytes a client sends for `said`, its `/nick` names taken from `names`.
fn chat_bytes(said: &[Said], names: &mut impl Iterator<Item = String>) -> Vec<u8> {
    let mut bytes = Vec::new();
    for line in said {
        match line {
            Said::Line(text) => bytes.extend_from_slice(text),
            Said::Nick => bytes.extend_from_slice(
                format!("/nick {}", names.next().unwrap_or_default()).as_bytes(),
            ),
            Said::Who => bytes.extend_from_slice(b"/who"),
        }
        bytes.push(b'\n');
    }
    bytes
}

/// The model: what another client receives when a client called `name` sends
/// the lines of `stream` (split at `\n`), by the chapter's rules. A trailing
/// `\r` is dropped; invalid UTF-8 and control characters but tab become `�`;
/// an empty line says nothing; `/nick` with a good name tells the others;
/// other commands answer the sender only; anything else goes to the others
/// as `NAME: text`.
fn expected_chat(stream: &[u8], mut name: String) -> (Vec<String>, String) {
    let mut others_see = Vec::new();
    let lines = stream.strip_suffix(b"\n").unwrap_or(stream);
    for line in lines.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let text: String = String::from_utf8_lossy(line)
            .chars()
            .map(|c| {
                if c.is_control() && c != '\t' {
                    '\u{fffd}'
                } else {
                    c
                }
            })
            .collect();
        let (command, rest) = text.split_once(' ').unwrap_or((&text, ""));
        if text.is_empty() || command == "/who" {
            continue;
        }
        if command == "/nick" {
            let wanted = rest.trim();
            let good = (1..=20).contains(&wanted.chars().count())
                && wanted
                    .chars()
                    .all(|c| c.is_alphanumeric() || c == '_' || c == '-');
            if good {
                others_see.push(format!("* {name} is now {wanted}"));
                name = wanted.to_string();
            }
            continue;
        }
        if command.starts_with('/') {
            continue;
        }
        others_see.push(format!("{name}: {text}"));
    }
    (others_see, name)
}

/// Room news about other cases' clients coming and going.
fn is_coming_or_going(line: &str) -> bool {
    line.starts_with("* ") && (line.ends_with(" joined") || line.ends_with(" left"))
}

course_tests::test_table! {
    chat_server_reads_the_same_lines_however_they_are_split:
        chat_server_reads_the_same_lines(CHAT_SERVER);
    lesson10_server_reads_the_same_lines_however_they_are_split:
        chat_server_reads_the_same_lines("lesson10-server");
    lesson11_server_reads_the_same_lines_however_they_are_split:
        chat_server_reads_the_same_lines("lesson11-server");
}

/// The property for chat server `name`: lessons 06, 10 and 11 share it.
fn chat_server_reads_the_same_lines(name: &str) -> Result<()> {
    course_tests::chaos::exempt(
        "cuts the bytes itself, and names the sender by the address the server sees",
    );
    let server = Server::start(name, &[])?;
    let addr = server.addr;
    let names = AtomicUsize::new(0);
    check((vec(said(), 1..12), cuts()), |(said, cuts)| {
        let mut hears = Chatter::join(addr)?;
        let mut says = Chatter::join(addr)?.output;
        let sender = says.local_addr()?.to_string();
        // Names nobody else in the room can have: numbered across all cases.
        let mut fresh =
            std::iter::repeat_with(|| format!("p{}", names.fetch_add(1, Ordering::SeqCst)));
        let stream = chat_bytes(&said, &mut fresh);
        let pieces = cuts.pieces(&stream);
        send_pieces(&mut says, &pieces)?;
        // A last line in one piece marks the end of the case.
        says.write_all(b"end of case\n")?;
        let (mut expected, name) = expected_chat(&stream, sender);
        let last = format!("{name}: end of case");
        let mut heard = Vec::new();
        loop {
            let line = hears
                .line()
                .with_context(|| format!("heard so far {heard:?}; sent {}", show(&pieces)))?;
            if line == last {
                break;
            }
            if !is_coming_or_going(&line) {
                heard.push(line);
            }
        }
        expected.retain(|line| !is_coming_or_going(line));
        ensure!(
            heard == expected,
            "sent {}\nheard    {heard:?}\nexpected {expected:?}",
            show(&pieces)
        );
        Ok(())
    })?;
    server.kill()?.assert_no_panic()
}

// ---------------------------------------------------------------- the echo clients

/// A message a person might type: any bytes but `\n`, not blank, not `q`
/// (lesson 04's client treats `q` as goodbye). Now and then longer than the
/// clients' 64 KiB piece.
fn typed_message() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        8 => line_bytes(1..200),
        1 => line_bytes(64 * 1024 - 10..70_000),
    ]
    .prop_filter("something to send", |m| {
        let trimmed = m.trim_ascii();
        !trimmed.is_empty() && !trimmed.eq_ignore_ascii_case(b"q")
    })
}

/// A plain server that answers `message` with its upper-cased bytes, cut
/// at `cuts`, as the bytes arrive (the clients send 64 KiB at a time and
/// wait for that piece's answer). It returns what it received.
fn piecemeal_echo(len: usize, cuts: Cuts) -> Result<PlainServer> {
    PlainServer::start(move |mut stream| {
        stream.set_nodelay(true)?;
        let at = cuts.positions(len);
        let mut received = Vec::with_capacity(len);
        let mut buf = vec![0u8; 16 * 1024];
        while received.len() < len {
            let want = buf.len().min(len - received.len());
            let n = stream
                .read(&mut buf[..want])
                .context("reading the message")?;
            ensure!(n > 0, "the client hung up after {} bytes", received.len());
            let start = received.len();
            received.extend_from_slice(&buf[..n]);
            let end = received.len();
            let mut from = start;
            for &cut in at.iter().filter(|&&c| start < c && c < end) {
                stream.write_all(&received[from..cut].to_ascii_uppercase())?;
                from = cut;
            }
            stream.write_all(&received[from..end].to_ascii_uppercase())?;
        }
        // The client has nothing more to say: its next move is to hang up.
        let mut rest = Vec::new();
        stream.read_to_end(&mut rest)?;
        ensure!(rest.is_empty(), "the client sent more: {rest:?}");
        Ok(received)
    })
}

#[test]
fn echo_clients_print_a_reply_however_it_is_split() -> Result<()> {
    check((typed_message(), cuts()), |(message, cuts)| {
        let trimmed = message.trim_ascii();
        let expected = String::from_utf8_lossy(&trimmed.to_ascii_uppercase()).into_owned();
        for client in ECHO_CLIENTS {
            let server = piecemeal_echo(trimmed.len(), cuts.clone())?;
            let mut proc = Proc::spawn(client, &[&server.addr.to_string()])?;
            let stdin = proc.stdin()?;
            stdin.write_all(&message)?;
            stdin.write_all(b"\n")?;
            let finished = proc.wait_exit()?;
            let received = server.join()?;
            ensure!(received == trimmed, "{client} sent {received:?}");
            ensure!(
                finished.status.success() && finished.stderr.is_empty(),
                "{client} failed: {finished:?}"
            );
            ensure!(
                finished.stdout == [expected.as_str()],
                "{client} printed {:?}, expected {expected:?}",
                finished.stdout
            );
        }
        Ok(())
    })
}

// ---------------------------------------------------------------- lesson06-client

course_tests::test_table! {
    chat_client_prints_the_same_lines_however_they_are_split:
        chat_client_prints_the_same_lines(CHAT_CLIENT);
    lesson11_client_prints_the_same_lines_however_they_are_split:
        chat_client_prints_the_same_lines("lesson11-client");
}

/// The property for chat client `name`: lessons 06 and 11 share it.
fn chat_client_prints_the_same_lines(name: &str) -> Result<()> {
    let lines = vec(prop_oneof![text_bytes(), line_bytes(0..80)], 1..10);
    check((lines, cuts()), |(lines, cuts)| {
        let mut stream = Vec::new();
        for line in &lines {
            stream.extend_from_slice(line);
            stream.push(b'\n');
        }
        let owned: Vec<Vec<u8>> = cuts
            .pieces(&stream)
            .into_iter()
            .map(<[u8]>::to_vec)
            .collect();
        let server = PlainServer::start(move |mut conn| {
            let pieces: Vec<&[u8]> = owned.iter().map(Vec::as_slice).collect();
            send_pieces(&mut conn, &pieces)?;
            // Wait for the client to hang up (its stdin is closed), then we do.
            let mut rest = Vec::new();
            conn.read_to_end(&mut rest)?;
            Ok(rest)
        })?;
        let proc = Proc::spawn(name, &[&server.addr.to_string()])?;
        let finished = proc.wait_exit()?;
        let rest = server.join()?;
        ensure!(rest.is_empty(), "the client sent {rest:?}");
        let expected: Vec<String> = lines
            .iter()
            .map(|line| {
                let text = String::from_utf8_lossy(line);
                text.trim_end_matches(['\r', '\n']).to_string()
            })
            .collect();
        ensure!(
            finished.status.success() && finished.stderr.is_empty(),
            "the client failed: {finished:?}"
        );
        ensure!(
            finished.stdout == expected,
            "sent {}\nprinted  {:?}\nexpected {expected:?}",
            show(&cuts.pieces(&stream)),
            finished.stdout
        );
        Ok(())
    })
}

// ---------------------------------------------------------------- lesson04-server's q

/// `q` or `Q` with spaces, tabs or a line ending around it.
fn quit_line() -> impl Strategy<Value = Vec<u8>> {
    let before = vec(prop_oneof![Just(b' '), Just(b'\t')], 0..3);
    let after = vec(prop_oneof![Just(b' '), Just(b'\r'), Just(b'\n')], 0..3);
    (before, prop_oneof![Just(b'q'), Just(b'Q')], after).prop_map(|(mut line, q, after)| {
        line.push(q);
        line.extend(after);
        line
    })
}

/// Reads the server's log up to the line that says how the call of `peer`
/// ended, and returns it.
fn ending_of(server: &mut Server, peer: SocketAddr) -> Result<String> {
    let prefix = format!("client {peer} ");
    loop {
        let line = server.proc.next_line()?;
        let about_peer = line.starts_with(&prefix);
        let rest = &line[prefix.len().min(line.len())..];
        if about_peer && !rest.starts_with("connected") && !rest.starts_with("said ") {
            return Ok(line);
        }
    }
}

#[test]
fn quit_server_hangs_up_on_q_however_it_is_split() -> Result<()> {
    let server = RefCell::new(Server::start(QUIT_SERVER, &[])?);
    let addr = server.borrow().addr;
    check(
        (quit_line(), cuts(), any::<bool>()),
        |(line, cuts, talk_first)| {
            let mut stream = connect(addr)?;
            let peer = stream.local_addr()?;
            if talk_first {
                // A whole exchange first, as lesson 04's client does it.
                stream.write_all(b"hello")?;
                let mut reply = [0u8; 5];
                stream.read_exact(&mut reply)?;
                ensure!(&reply == b"HELLO", "got {reply:?}");
            }
            let pieces = cuts.pieces(&line);
            stream.set_nodelay(true)?;
            let mut q_sent = false;
            for piece in &pieces {
                match stream.write_all(piece) {
                    Ok(()) => q_sent |= piece.iter().any(|b| b.eq_ignore_ascii_case(&b'q')),
                    // Once it has the `q`, the server may hang up before the
                    // rest of the line arrives: writing that then fails.
                    Err(_) if q_sent => break,
                    Err(err) => return Err(err).context("sending a piece before the q"),
                }
            }
            // The server hangs up: end of stream, or a reset if it closed with
            // some of our bytes (the line ending after `q`) still unread.
            let mut echoed = Vec::new();
            match stream.read_to_end(&mut echoed) {
                Ok(_) => {}
                Err(err) if err.kind() == io::ErrorKind::ConnectionReset => {}
                Err(err) => return Err(err).context("waiting for the server to hang up"),
            }
            // A piece of only spaces before the `q` is an ordinary message.
            ensure!(
                echoed.iter().all(u8::is_ascii_whitespace),
                "sent {}, got back {echoed:?}",
                show(&pieces)
            );
            let ending = ending_of(&mut server.borrow_mut(), peer)?;
            ensure!(
                ending.ends_with("asked to quit, hanging up"),
                "sent {}; the server logged {ending:?}",
                show(&pieces)
            );
            Ok(())
        },
    )?;
    server.into_inner().kill()?.assert_no_panic()
}

// ---------------------------------------------------------------- lesson08, frames and bodies

#[test]
fn file_server_stores_the_same_file_however_the_requests_are_split() -> Result<()> {
    let dir = course_tests::TempDir::with_prefix("props-lesson08-")?;
    let store = dir
        .path()
        .to_str()
        .context("temp dir is not UTF-8")?
        .to_string();
    let server = RefCell::new(Server::start(FILE_SERVER, &["--dir", &store])?);
    let addr = server.borrow().addr;
    let case = AtomicUsize::new(0);
    check((vec(any::<u8>(), 0..3000), cuts()), |(data, cuts)| {
        // A fresh name per case, so that no case resumes another's upload.
        let name = format!("文件-{}.bin", case.fetch_add(1, Ordering::Relaxed));
        let sha = sha256_hex(&data);
        // put, its body, get and list, glued into one stream and then cut
        // anywhere: inside a length, a header, a character of the name, the
        // body, or between any two of them.
        let mut stream = frame_of(&serde_json::json!(
            {"cmd": "put", "name": name, "size": data.len(), "sha256": sha}
        ));
        stream.extend_from_slice(&data);
        stream.extend(frame_of(&serde_json::json!({"cmd": "get", "name": name})));
        stream.extend(frame_of(&serde_json::json!({"cmd": "list"})));
        let mut conn = connect(addr)?;
        send_pieces(&mut conn, &cuts.pieces(&stream))?;
        let ready = read_json(&mut conn)?;
        ensure!(
            ready == serde_json::json!({"ok": true, "offset": 0}),
            "{ready}"
        );
        let stored = read_json(&mut conn)?;
        let expected =
            serde_json::json!({"ok": true, "name": name, "size": data.len(), "sha256": sha});
        ensure!(stored == expected, "{stored}");
        let found = read_json(&mut conn)?;
        ensure!(found["sha256"] == sha.as_str(), "{found}");
        let mut back = vec![0u8; data.len()];
        conn.read_exact(&mut back)?;
        ensure!(back == data, "the download differs");
        let list = read_json(&mut conn)?;
        let listed = list["files"].as_array().context("no files")?;
        ensure!(listed.iter().any(|f| f["name"] == name.as_str()), "{list}");
        Ok(())
    })?;
    server.into_inner().kill()?.assert_no_panic()
}

#[test]
fn file_client_saves_the_same_file_however_the_download_is_split() -> Result<()> {
    check((vec(any::<u8>(), 0..3000), cuts()), |(data, cuts)| {
        let dir = course_tests::TempDir::with_prefix("props-lesson08-client-")?;
        let mut reply = frame_of(&serde_json::json!(
            {"ok": true, "size": data.len(), "sha256": sha256_hex(&data)}
        ));
        reply.extend_from_slice(&data);
        let owned: Vec<Vec<u8>> = cuts
            .pieces(&reply)
            .into_iter()
            .map(<[u8]>::to_vec)
            .collect();
        let server = PlainServer::start(move |mut conn| {
            let request = read_json(&mut conn)?;
            let pieces: Vec<&[u8]> = owned.iter().map(Vec::as_slice).collect();
            send_pieces(&mut conn, &pieces)?;
            let mut rest = Vec::new();
            conn.read_to_end(&mut rest)?;
            Ok(request.to_string().into_bytes())
        })?;
        let mut command = std::process::Command::new(course_tests::bin_path(FILE_CLIENT)?);
        command.arg(server.addr.to_string()).current_dir(dir.path());
        let mut proc = Proc::spawn_command(command)?;
        proc.stdin()?.write_all(b"get x.bin\n")?;
        let finished = proc.wait_exit()?;
        let request = server.join()?;
        ensure!(request == br#"{"cmd":"get","name":"x.bin"}"#, "{request:?}");
        ensure!(
            finished.status.success() && finished.stderr.is_empty(),
            "the client failed: {finished:?}"
        );
        let saved = std::fs::read(dir.path().join("x.bin"))?;
        ensure!(
            saved == data,
            "saved {} bytes of {}",
            saved.len(),
            data.len()
        );
        Ok(())
    })
}

// ---------------------------------------------------------------- the test's own parts

#[test]
fn pieces_put_together_are_the_bytes() {
    let bytes = "a你\r\nb".as_bytes();
    let every = Cuts::EveryByte.pieces(bytes);
    assert_eq!(every.len(), bytes.len());
    assert_eq!(every.concat(), bytes);
    let pieces = cut_at(bytes, &[2, 5, 5]);
    assert_eq!(pieces, [&bytes[..2], &bytes[2..5], &bytes[5..]]);
    assert!(Cuts::At(vec![]).pieces(b"").is_empty());
}

#[test]
fn chat_model_follows_the_chapter() {
    let stream = b"hi\r\n\n/who\n/nick bob\nyo\n/nope x\n/nick b:d\n \x1b[2J\t\r\r\n";
    let (seen, name) = expected_chat(stream, "127.0.0.1:5".to_string());
    assert_eq!(
        seen,
        [
            "127.0.0.1:5: hi",
            "* 127.0.0.1:5 is now bob",
            "bob: yo",
            "bob:  \u{fffd}[2J\t\u{fffd}"
        ]
    );
    assert_eq!(name, "bob");
}

// ---------------------------------------------------------------- the framed server

#[test]
fn framed_server_answers_the_same_frames_however_they_are_split() -> Result<()> {
    let server = Server::start(FRAMED_SERVER, &[])?;
    let addr = server.addr;
    check(
        (vec(vec(any::<u8>(), 0..300), 1..8), cuts()),
        |(bodies, cuts)| {
            let mut stream = connect(addr)?;
            let wire: Vec<u8> = bodies.iter().flat_map(|body| frame(body)).collect();
            let pieces = cuts.pieces(&wire);
            send_pieces(&mut stream, &pieces)?;
            for (n, body) in bodies.iter().enumerate() {
                let reply = reply(&mut stream)
                    .with_context(|| format!("reply {n}; sent {}", show(&pieces)))?;
                ensure!(
                    reply == body.to_ascii_uppercase(),
                    "reply {n} is {reply:?}; sent {}",
                    show(&pieces)
                );
            }
            Ok(())
        },
    )?;
    server.kill()?.assert_no_panic()
}
