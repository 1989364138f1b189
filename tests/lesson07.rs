//! Lesson 07: 粘包 ("sticky packets") and framing.
//!
//! First the problem, made to happen on purpose with lesson 03's server,
//! which answers each `read` as it comes: two sends arrive in one read, one
//! send in several, and neither `TCP_NODELAY` nor a pause between sends
//! keeps the boundaries. Then the framed echo server and client, which keep
//! every message whole however the bytes arrive, the Python twins, and the
//! exercise's JSON header (报头).

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::process::Command;
use std::thread;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, ensure};
use course_tests::chaos;
use course_tests::contract;
use course_tests::frames::{ask, frame, reply};
use course_tests::tools::PYTHON3;
use course_tests::transcript::Transcript;
use course_tests::{
    PYTHON, PlainServer, Proc, Server, TIMEOUT, cmd, connect, python, read_exactly, read_to_close,
    read_until_hung_up, reset, run_with_stdin,
};
use lesson07_frame::{FrameError, read_frame, write_frame};
use predicates::prelude::*;

const SERVER: &str = "lesson07-server";
const CLIENT: &str = "lesson07-client";
const EXERCISE: &str = "lesson07-exercise1";
const LESSON: &str = "lesson07-framing";
const DEFAULT_ADDR: &str = "127.0.0.1:9007";

/// Lesson 03's server, which answers every read as it comes.
const UNFRAMED: &str = "lesson03-server";

/// Checks that the server hung up on us without another byte.
fn assert_hung_up(stream: &mut TcpStream) -> Result<()> {
    let rest = read_until_hung_up(stream)?;
    ensure!(rest.is_empty(), "expected the end, got {rest:?}");
    Ok(())
}

// ---------------------------------------------------------------- the command line

course_tests::test_table! {
    server_prints_help: contract::help_works(SERVER, DEFAULT_ADDR);
    client_prints_help: contract::help_works(CLIENT, DEFAULT_ADDR);
    exercise1_prints_help: contract::help_works(EXERCISE, DEFAULT_ADDR);
    server_dies_on_bad_address: contract::bad_address_is_refused(SERVER);
    client_dies_on_bad_address: contract::bad_address_is_refused(CLIENT);
    client_explains_when_no_server_listens: contract::client_explains_no_server(CLIENT, SERVER);
}

#[test]
fn server_help_shows_the_frame_limit_and_its_default() -> Result<()> {
    cmd(SERVER)?
        .arg("--help")
        .assert()
        .success()
        .stdout(predicate::str::contains("--max-frame <BYTES>"))
        .stdout(predicate::str::contains("[default: 1048576]"));
    Ok(())
}

#[test]
fn server_refuses_a_frame_limit_that_is_not_a_number_of_bytes() -> Result<()> {
    for bad in ["-1", "5000000000", "lots"] {
        cmd(SERVER)?
            .args(["--max-frame", bad])
            .assert()
            .code(2)
            .stdout("")
            .stderr(predicate::str::contains(bad))
            .stderr(predicate::function(|e: &str| e.lines().count() == 1))
            .stderr(predicate::str::contains("panicked").not());
    }
    Ok(())
}

#[test]
fn server_refuses_an_idle_timeout_of_zero() -> Result<()> {
    cmd(SERVER)?
        .args(["--idle-timeout", "0"])
        .assert()
        .code(2)
        .stdout("")
        .stderr(predicate::str::contains("'0'"))
        .stderr(predicate::function(|e: &str| e.lines().count() == 1));
    Ok(())
}

// ---------------------------------------------------------------- the frame functions

#[test]
fn a_frame_is_its_length_then_its_bytes() -> Result<()> {
    let mut wire = Vec::new();
    write_frame(&mut wire, b"hello")?;
    ensure!(wire == b"\0\0\0\x05hello", "{wire:?}");
    write_frame(&mut wire, b"")?;
    ensure!(wire[9..] == *b"\0\0\0\0", "{wire:?}");
    Ok(())
}

#[test]
fn frames_read_back_one_by_one_then_the_end() -> Result<()> {
    let mut wire = Vec::new();
    for body in [&b"one"[..], b"", "你好".as_bytes()] {
        write_frame(&mut wire, body)?;
    }
    let mut stream = &wire[..];
    let mut next = || read_frame(&mut stream, 100).map_err(|e| anyhow!("{e:?}"));
    ensure!(next()?.as_deref() == Some(&b"one"[..]));
    ensure!(next()?.as_deref() == Some(&b""[..]));
    ensure!(next()?.as_deref() == Some("你好".as_bytes()));
    ensure!(next()?.is_none(), "no end after the last frame");
    Ok(())
}

#[test]
fn a_long_announcement_is_refused_before_any_body_is_read() -> Result<()> {
    let mut stream = &b"\xff\xff\xff\xffxyz"[..];
    match read_frame(&mut stream, 1024) {
        Err(FrameError::TooLong { announced, limit }) => {
            ensure!((announced, limit) == (u32::MAX, 1024));
        }
        other => anyhow::bail!("expected TooLong, got {other:?}"),
    }
    ensure!(stream == b"xyz", "the body was read: {stream:?}");
    Ok(())
}

#[test]
fn a_cut_off_length_or_body_is_told_apart_from_the_end() -> Result<()> {
    let mut half_length = &b"\0\0"[..];
    ensure!(matches!(
        read_frame(&mut half_length, 10),
        Err(FrameError::CutOff {
            got: 2,
            expected: 4
        })
    ));
    let mut half_body = &b"\0\0\0\x05hel"[..];
    ensure!(matches!(
        read_frame(&mut half_body, 10),
        Err(FrameError::CutOff {
            got: 3,
            expected: 5
        })
    ));
    Ok(())
}

/// A reader that hands out at most one byte per `read`, as a slow network
/// might: `read_frame` must still read whole frames.
struct OneByteAtATime<'a>(&'a [u8]);

impl Read for OneByteAtATime<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let Some((&first, rest)) = self.0.split_first() else {
            return Ok(0);
        };
        if buf.is_empty() {
            return Ok(0);
        }
        buf[0] = first;
        self.0 = rest;
        Ok(1)
    }
}

/// Counts, per thread, the largest single allocation, to show what
/// `read_frame` allocates for an announced length. (Resident memory cannot
/// show it: the system backs a large allocation's pages only once they are
/// touched.)
struct LargestAllocation;

thread_local! {
    static LARGEST: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

unsafe impl std::alloc::GlobalAlloc for LargestAllocation {
    unsafe fn alloc(&self, layout: std::alloc::Layout) -> *mut u8 {
        let _ = LARGEST.try_with(|l| l.set(l.get().max(layout.size())));
        // SAFETY: passed on unchanged to the system allocator.
        unsafe { std::alloc::System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: std::alloc::Layout) {
        // SAFETY: `ptr` came from `System.alloc` with this `layout`.
        unsafe { std::alloc::System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: std::alloc::Layout, size: usize) -> *mut u8 {
        let _ = LARGEST.try_with(|l| l.set(l.get().max(size)));
        // SAFETY: as for `dealloc`; `size` is the caller's.
        unsafe { std::alloc::System.realloc(ptr, layout, size) }
    }
}

#[global_allocator]
static ALLOCATOR: LargestAllocation = LargestAllocation;

/// A peer announces a megabyte and sends ten bytes: `read_frame` has
/// allocated room for what came, not for what was announced.
#[test]
fn an_announced_length_allocates_nothing_before_the_bytes_are_there() -> Result<()> {
    let wire = [&(1024u32 * 1024).to_be_bytes()[..], b"ten bytes!"].concat();
    LARGEST.with(|l| l.set(0));
    let read = read_frame(&mut &wire[..], 1024 * 1024);
    let largest = LARGEST.with(|l| l.get());
    ensure!(
        matches!(read, Err(FrameError::CutOff { got: 10, .. })),
        "{read:?}"
    );
    ensure!(
        largest < 4096,
        "allocated {largest} bytes for a 10-byte body"
    );
    Ok(())
}

#[test]
fn a_read_that_returns_fewer_bytes_than_asked_still_gives_whole_frames() -> Result<()> {
    let wire = [frame(b"first"), frame("第二".as_bytes())].concat();
    let mut slow = OneByteAtATime(&wire);
    let first = read_frame(&mut slow, 100).map_err(|e| anyhow!("{e:?}"))?;
    ensure!(first.as_deref() == Some(&b"first"[..]), "{first:?}");
    let second = read_frame(&mut slow, 100).map_err(|e| anyhow!("{e:?}"))?;
    ensure!(second.as_deref() == Some("第二".as_bytes()), "{second:?}");
    Ok(())
}

// ---------------------------------------------------------------- 粘包, on purpose

/// Two sends, made while lesson 03's server is busy with another caller,
/// are waiting together when it gets to them: one `read` returns both.
/// The sender even switched Nagle's algorithm off (`TCP_NODELAY`), so each
/// send left at once as a packet of its own: Nagle is not the cause.
#[test]
fn two_quick_sends_arrive_in_one_read_while_the_server_is_busy() -> Result<()> {
    chaos::exempt("shows loopback's read sizes, which a proxy changes");
    let mut server = Server::start(UNFRAMED, &[])?;
    let busy = connect(server.addr)?;
    server.wait_for(&format!("client {} connected", busy.local_addr()?))?;
    // Lesson 03's backlog lets the handshake complete while the server talks
    // to `busy`; the bytes wait in our connection's receive queue.
    let mut waiting = connect(server.addr)?;
    waiting.set_nodelay(true)?;
    waiting.write_all(b"hello")?;
    waiting.write_all(b"world")?;
    drop(busy);
    let line = server.wait_for(&format!("client {} said", waiting.local_addr()?))?;
    ensure!(line.ends_with(r#"said "helloworld""#), "{line}");
    ensure!(read_exactly(&mut waiting, 10)? == b"HELLOWORLD");
    server.kill()?.assert_no_panic()
}

/// One send of 3000 bytes meets a server that reads 1024 bytes at a time:
/// three reads, three log lines, three replies.
#[test]
fn one_large_send_arrives_in_several_reads() -> Result<()> {
    chaos::exempt("shows loopback's read sizes, which a proxy changes");
    let mut server = Server::start(UNFRAMED, &[])?;
    let mut caller = connect(server.addr)?;
    let me = caller.local_addr()?;
    caller.write_all(&[b'a'; 3000])?;
    ensure!(read_exactly(&mut caller, 3000)? == [b'A'; 3000]);
    drop(caller);
    server.wait_for(&format!("client {me} disconnected"))?;
    let reads = server
        .proc
        .seen()
        .iter()
        .filter(|line| line.starts_with(&format!("client {me} said")))
        .count();
    ensure!(reads >= 3, "3000 bytes in {reads} reads of at most 1024");
    server.kill()?.assert_no_panic()
}

/// A proxy of the test's own that regroups bytes the way a network may: it
/// collects what arrives and passes it on in pieces of `piece` bytes.
/// Returns its address; it serves one connection to `to`.
fn regrouping_proxy(to: SocketAddr, piece: usize) -> Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    thread::spawn(move || -> Result<()> {
        let (mut from_client, _) = listener.accept()?;
        from_client.set_read_timeout(Some(TIMEOUT))?;
        let mut to_server = connect(to)?;
        to_server.set_nodelay(true)?;
        // Replies go straight back, on a thread of their own.
        let mut back = to_server.try_clone()?;
        let mut client_side = from_client.try_clone()?;
        thread::spawn(move || std::io::copy(&mut back, &mut client_side));
        let mut pending = Vec::new();
        let mut buf = [0u8; 1024];
        loop {
            let n = match from_client.read(&mut buf) {
                Err(err) if err.kind() == std::io::ErrorKind::Interrupted => continue,
                read => read?,
            };
            if n == 0 {
                to_server.write_all(&pending)?;
                to_server.shutdown(Shutdown::Write)?;
                return Ok(());
            }
            pending.extend_from_slice(&buf[..n]);
            while pending.len() >= piece {
                let rest = pending.split_off(piece);
                to_server.write_all(&pending)?;
                pending = rest;
            }
        }
    });
    Ok(addr)
}

/// The "fix" of sleeping between two sends only holds while nothing between
/// the two programs regroups the bytes. Through a proxy that does, the
/// server never sees `hello` on its own: it reads `hellowo` and `rld`, or
/// all ten bytes at once, but the sender's boundary is gone either way.
#[test]
fn a_regrouping_proxy_breaks_the_sleep_fix() -> Result<()> {
    chaos::exempt("counts reads behind a proxy of its own, which a second proxy would regroup");
    let mut server = Server::start(UNFRAMED, &[])?;
    let proxy = regrouping_proxy(server.addr, 7)?;
    let mut caller = connect(proxy)?;
    caller.write_all(b"hello")?;
    // The myth under test: a pause between sends keeps messages apart.
    thread::sleep(Duration::from_millis(200));
    caller.write_all(b"world")?;
    caller.shutdown(Shutdown::Write)?;
    ensure!(read_to_close(&mut caller)? == b"HELLOWORLD");
    server.wait_for("disconnected")?;
    let reads: Vec<&str> = server
        .proc
        .seen()
        .iter()
        .filter_map(|line| line.split_once(" said ").map(|(_, said)| said))
        .collect();
    ensure!(
        !reads.contains(&r#""hello""#) && !reads.contains(&r#""world""#),
        "the server saw the sender's own boundary: {reads:?}"
    );
    ensure!(
        reads == [r#""hellowo""#, r#""rld""#] || reads == [r#""helloworld""#],
        "unexpected reads {reads:?}"
    );
    server.kill()?.assert_no_panic()
}

// ---------------------------------------------------------------- the framed server

#[test]
fn server_answers_each_frame_upper_cased_and_logs_it() -> Result<()> {
    chaos::exempt(chaos::ADDRESS_IN_LOG);
    let mut server = Server::start(SERVER, &[])?;
    let mut caller = connect(server.addr)?;
    let me = caller.local_addr()?;
    ask(&mut caller, b"hello")?;
    ask(&mut caller, "你好, rust".as_bytes())?;
    drop(caller);
    server.wait_for(&format!(r#"client {me} sent a frame of 5 bytes: "hello""#))?;
    server.wait_for(&format!(
        r#"client {me} sent a frame of 12 bytes: "你好, rust""#
    ))?;
    server.wait_for(&format!("client {me} closed the connection"))?;
    server.kill()?.assert_no_panic()
}

#[test]
fn server_answers_an_empty_frame_with_an_empty_frame() -> Result<()> {
    let server = Server::start(SERVER, &[])?;
    let mut caller = connect(server.addr)?;
    caller.write_all(&frame(b""))?;
    ensure!(read_exactly(&mut caller, 4)? == [0, 0, 0, 0]);
    ask(&mut caller, b"still here")?;
    server.kill()?.assert_no_panic()
}

#[test]
fn server_answers_frames_glued_into_one_write_one_by_one() -> Result<()> {
    let server = Server::start(SERVER, &[])?;
    let mut caller = connect(server.addr)?;
    let bodies: Vec<Vec<u8>> = (0..50)
        .map(|i| format!("message {i}").into_bytes())
        .collect();
    let glued: Vec<u8> = bodies.iter().flat_map(|b| frame(b)).collect();
    caller.write_all(&glued)?;
    for body in &bodies {
        let got = reply(&mut caller)?;
        ensure!(got == body.to_ascii_uppercase(), "{got:?}");
    }
    server.kill()?.assert_no_panic()
}

#[test]
fn server_answers_a_frame_split_at_every_byte() -> Result<()> {
    let server = Server::start(SERVER, &[])?;
    let bytes = frame("split 你好".as_bytes());
    for at in 1..bytes.len() {
        let mut caller = connect(server.addr)?;
        caller.set_nodelay(true)?;
        caller.write_all(&bytes[..at])?;
        caller.write_all(&bytes[at..])?;
        let got = reply(&mut caller).with_context(|| format!("split at byte {at}"))?;
        ensure!(got == "SPLIT 你好".as_bytes(), "split at {at}: {got:?}");
    }
    server.kill()?.assert_no_panic()
}

#[test]
fn server_echoes_invalid_utf8_unchanged_and_logs_it_lossily() -> Result<()> {
    let mut server = Server::start(SERVER, &[])?;
    let mut caller = connect(server.addr)?;
    let bad = b"ok\xff\xfe\xe5\x93";
    caller.write_all(&frame(bad))?;
    ensure!(reply(&mut caller)? == b"OK\xff\xfe\xe5\x93");
    server.wait_for("sent a frame of 6 bytes: \"ok\u{fffd}\u{fffd}\u{fffd}\"")?;
    server.kill()?.assert_no_panic()
}

#[test]
fn server_takes_a_frame_of_exactly_the_limit_and_refuses_one_byte_more() -> Result<()> {
    let mut server = Server::start(SERVER, &["--max-frame", "1000"])?;
    let mut caller = connect(server.addr)?;
    ask(&mut caller, &[b'x'; 1000])?;
    caller.write_all(&frame(&[b'x'; 1001]))?;
    assert_hung_up(&mut caller)?;
    server.wait_for("announced 1001 bytes, over the limit of 1000; hanging up")?;
    server.kill()?.assert_no_panic()
}

/// Four bytes announce 4 GiB. The server refuses before it reads or
/// allocates anything for the body, and the others carry on.
#[test]
fn server_hangs_up_on_a_4_gib_announcement_and_serves_the_others() -> Result<()> {
    let mut server = Server::start(SERVER, &[])?;
    let mut other = connect(server.addr)?;
    ask(&mut other, b"before")?;
    let mut hostile = connect(server.addr)?;
    hostile.write_all(&[0xff, 0xff, 0xff, 0xff])?;
    assert_hung_up(&mut hostile)?;
    server.wait_for("announced 4294967295 bytes, over the limit of 1048576; hanging up")?;
    ask(&mut other, b"after")?;
    server.kill()?.assert_no_panic()
}

/// Python's `struct.pack('I', 5)` on a little-endian machine sends
/// 05 00 00 00, which big-endian reads as 83,886,080.
#[test]
fn server_says_when_a_length_looks_like_the_wrong_byte_order() -> Result<()> {
    let mut server = Server::start(SERVER, &[])?;
    let mut caller = connect(server.addr)?;
    caller.write_all(&5u32.to_le_bytes())?;
    caller.write_all(b"hello")?;
    assert_hung_up(&mut caller)?;
    server.wait_for(
        "announced 83886080 bytes, over the limit of 1048576 \
         (backwards it reads 5: is the length big-endian?); hanging up",
    )?;
    server.kill()?.assert_no_panic()
}

/// Lesson 02's line framing on a connection that expects length framing:
/// `hell` becomes a length of 1,751,477,356 bytes.
#[test]
fn server_hangs_up_on_a_line_where_a_frame_was_expected() -> Result<()> {
    let mut server = Server::start(SERVER, &[])?;
    let mut caller = connect(server.addr)?;
    caller.write_all(b"hello\n")?;
    assert_hung_up(&mut caller)?;
    server.wait_for("announced 1751477356 bytes, over the limit of 1048576; hanging up")?;
    server.kill()?.assert_no_panic()
}

#[test]
fn server_logs_a_frame_cut_off_by_a_hang_up() -> Result<()> {
    chaos::exempt(chaos::ADDRESS_IN_LOG);
    let mut server = Server::start(SERVER, &[])?;
    let mut caller = connect(server.addr)?;
    let me = caller.local_addr()?;
    caller.write_all(&frame(b"0123456789")[..7])?;
    caller.shutdown(Shutdown::Write)?;
    assert_hung_up(&mut caller)?;
    server.wait_for(&format!(
        "client {me} hung up in the middle of a frame (3 of 10 bytes arrived)"
    ))?;
    let mut half_length = connect(server.addr)?;
    let other = half_length.local_addr()?;
    half_length.write_all(&[0, 0])?;
    drop(half_length);
    server.wait_for(&format!(
        "client {other} hung up in the middle of a frame (2 of 4 bytes arrived)"
    ))?;
    server.kill()?.assert_no_panic()
}

#[cfg(target_os = "linux")] // Linux reports a reset to the reader; see lesson 04
#[test]
fn server_logs_a_frame_cut_off_by_a_reset() -> Result<()> {
    chaos::exempt(chaos::ADDRESS_IN_LOG);
    let mut server = Server::start(SERVER, &[])?;
    let mut caller = connect(server.addr)?;
    let me = caller.local_addr()?;
    ask(&mut caller, b"whole")?;
    caller.write_all(&frame(b"0123456789")[..7])?;
    server.wait_for(&format!("client {me} sent a frame of 5 bytes"))?;
    reset(caller)?;
    server.wait_for(&format!("client {me} reset the connection"))?;
    let mut next = connect(server.addr)?;
    ask(&mut next, b"next")?;
    server.kill()?.assert_no_panic()
}

/// A thread per caller: while the first caller is still on the line, the
/// second is answered at once (lesson 03's second caller had to wait).
#[test]
fn server_answers_a_second_caller_while_the_first_stays_connected() -> Result<()> {
    let server = Server::start(SERVER, &[])?;
    let mut first = connect(server.addr)?;
    ask(&mut first, b"first")?;
    let mut second = connect(server.addr)?;
    ask(&mut second, b"second")?;
    ask(&mut first, b"first again")?;
    server.kill()?.assert_no_panic()
}

#[test]
fn server_hangs_up_on_a_silent_caller_after_the_idle_timeout() -> Result<()> {
    chaos::exempt(chaos::ADDRESS_IN_LOG);
    let mut server = Server::start(SERVER, &["--idle-timeout", "1"])?;
    let mut silent = connect(server.addr)?;
    let me = silent.local_addr()?;
    silent.write_all(&frame(b"hi")[..3])?; // half a frame, then silence
    assert_hung_up(&mut silent)?;
    server.wait_for(&format!(
        "client {me} was silent or did not read for 1 s, hanging up"
    ))?;
    server.kill()?.assert_no_panic()
}

/// What a server full of callers says, in a frame: the caller past
/// `--max-clients 2` gets it instead of an answer.
const FULL: &str = "server full: 2 clients are being served, try again later";

/// Fills the two seats of `server` (started with `--max-clients 2`), shows
/// that the third caller gets one frame saying so and is hung up on, then
/// that a caller is served again once a seat is free.
fn turns_away_the_caller_past_max_clients(mut server: Server) -> Result<()> {
    let mut first = connect(server.addr)?;
    ask(&mut first, b"first")?;
    let mut second = connect(server.addr)?;
    ask(&mut second, b"second")?;
    let mut third = connect(server.addr)?;
    let me = third.local_addr()?;
    // Its frame is not answered: the frame that comes back says why.
    third.write_all(&frame(b"third"))?;
    let said = reply(&mut third)?;
    ensure!(
        said == FULL.as_bytes(),
        "{:?}",
        String::from_utf8_lossy(&said)
    );
    ensure!(read_until_hung_up(&mut third)?.is_empty());
    server.wait_for(&format!(
        "client {me} turned away: the server is full (2 clients)"
    ))?;
    // The seat comes back when its caller hangs up.
    let gone = first.local_addr()?;
    drop(first);
    server.wait_for(&format!("client {gone} closed the connection"))?;
    let mut fourth = connect(server.addr)?;
    ask(&mut fourth, b"fourth")?;
    ask(&mut second, b"second again")?;
    server.kill()?.assert_no_panic()
}

#[test]
fn server_turns_away_the_caller_past_max_clients_with_a_frame() -> Result<()> {
    chaos::exempt(chaos::ADDRESS_IN_LOG);
    turns_away_the_caller_past_max_clients(Server::start(SERVER, &["--max-clients", "2"])?)
}

#[test]
fn server_serves_100_callers_at_once_by_default() -> Result<()> {
    cmd(SERVER)?
        .arg("--help")
        .assert()
        .success()
        .stdout(predicate::str::contains("--max-clients <N>"))
        .stdout(predicate::str::contains("[default: 100]"));
    cmd(SERVER)?
        .args(["--max-clients", "0"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("'0'"));
    Ok(())
}

/// Two callers hold both seats of `--max-clients 2` while the client runs.
fn full_server(name_or_twin: Option<&str>) -> Result<(Server, [TcpStream; 2])> {
    let server = match name_or_twin {
        Some(name) => Server::start(name, &["--max-clients", "2"])?,
        None => {
            let mut twin = python(LESSON, "server.py");
            twin.args(["127.0.0.1:0", "--max-clients", "2"]);
            Server::start_command(twin)?
        }
    };
    let mut seated = [connect(server.addr)?, connect(server.addr)?];
    for caller in &mut seated {
        ask(caller, b"seated")?;
    }
    Ok((server, seated))
}

#[test]
fn client_says_in_one_line_when_the_server_is_full() -> Result<()> {
    let (server, _seated) = full_server(Some(SERVER))?;
    for flags in [&[][..], &["--all-at-once"]] {
        cmd(CLIENT)?
            .arg(server.addr_arg())
            .args(flags)
            .write_stdin("hello\n")
            .assert()
            .code(1)
            .stdout("")
            .stderr(format!(
                "error: instead of an answer the server said \"{FULL}\"\n"
            ));
    }
    server.kill()?.assert_no_panic()
}

// ---------------------------------------------------------------- the client

#[test]
fn client_sends_each_line_as_one_frame_and_prints_each_reply() -> Result<()> {
    let server = Server::start(SERVER, &[])?;
    cmd(CLIENT)?
        .arg(server.addr_arg())
        .write_stdin("hello\n\n你好 rust\n")
        .assert()
        .success()
        .stdout("HELLO\n\n你好 RUST\n")
        .stderr("");
    server.kill()?.assert_no_panic()
}

/// What the client puts on the wire, seen by a plain server of the test's own.
#[test]
fn client_puts_a_length_before_every_line() -> Result<()> {
    let plain = PlainServer::start(|mut stream| {
        let mut seen = Vec::new();
        for _ in 0..2 {
            // What arrived, encoded again: the same bytes if the client
            // framed them right.
            let body = reply(&mut stream)?;
            stream.write_all(&frame(&body.to_ascii_uppercase()))?;
            seen.extend_from_slice(&frame(&body));
        }
        Ok(seen)
    })?;
    cmd(CLIENT)?
        .arg(plain.addr.to_string())
        .write_stdin("ab\nc\n")
        .assert()
        .success()
        .stdout("AB\nC\n");
    ensure!(plain.join()? == b"\0\0\0\x02ab\0\0\0\x01c");
    Ok(())
}

#[test]
fn client_reads_a_reply_that_arrives_one_byte_at_a_time() -> Result<()> {
    let plain = PlainServer::start(|mut stream| {
        stream.set_nodelay(true)?;
        let body = reply(&mut stream)?;
        for byte in frame(&body.to_ascii_uppercase()) {
            stream.write_all(&[byte])?;
        }
        Ok(body)
    })?;
    cmd(CLIENT)?
        .arg(plain.addr.to_string())
        .write_stdin("piece by piece\n")
        .assert()
        .success()
        .stdout("PIECE BY PIECE\n");
    ensure!(plain.join()? == b"piece by piece");
    Ok(())
}

/// With `--all-at-once` every frame is on the wire before the first reply
/// is read: the server of the test's own reads the whole stream to its end
/// first, and only then answers.
#[test]
fn client_all_at_once_sends_every_frame_before_reading_a_reply() -> Result<()> {
    let plain = PlainServer::start(|mut stream| {
        let everything = read_to_close(&mut stream)?;
        let mut rest = &everything[..];
        while !rest.is_empty() {
            let len = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
            stream.write_all(&frame(&rest[4..4 + len].to_ascii_uppercase()))?;
            rest = &rest[4 + len..];
        }
        Ok(everything)
    })?;
    cmd(CLIENT)?
        .arg(plain.addr.to_string())
        .arg("--all-at-once")
        .write_stdin("one\ntwo\nthree\n")
        .assert()
        .success()
        .stdout("ONE\nTWO\nTHREE\n");
    ensure!(plain.join()? == [frame(b"one"), frame(b"two"), frame(b"three")].concat());
    Ok(())
}

/// 32 MB at once, more than the socket buffers on both sides can hold: the
/// client must read replies while it sends, or both sides would block with
/// full buffers.
#[test]
fn client_all_at_once_does_not_deadlock_on_a_large_input() -> Result<()> {
    chaos::bulk();
    let server = Server::start(SERVER, &[])?;
    let line = "x".repeat(2047);
    let input = format!("{line}\n").repeat(16 * 1024);
    let expected = format!("{}\n", line.to_ascii_uppercase()).repeat(16 * 1024);
    cmd(CLIENT)?
        .arg(server.addr_arg())
        .arg("--all-at-once")
        .write_stdin(input)
        .assert()
        .success()
        .stdout(expected);
    server.kill()?.assert_no_panic()
}

#[test]
fn client_refuses_a_reply_over_its_limit_in_one_line() -> Result<()> {
    let plain = PlainServer::start(|mut stream| {
        let _ = read_exactly(&mut stream, 9)?;
        stream.write_all(&[0xff, 0xff, 0xff, 0xff])?;
        Ok(Vec::new())
    })?;
    cmd(CLIENT)?
        .arg(plain.addr.to_string())
        .write_stdin("hello\n")
        .assert()
        .code(1)
        .stdout("")
        .stderr("error: server announced a reply of 4294967295 bytes, over our limit of 1048576\n");
    plain.join()?;
    Ok(())
}

#[test]
fn client_says_when_the_server_hangs_up_in_the_middle_of_a_reply() -> Result<()> {
    let plain = PlainServer::start(|mut stream| {
        let _ = read_exactly(&mut stream, 9)?;
        stream.write_all(&frame(b"HELLO")[..6])?;
        Ok(Vec::new())
    })?;
    cmd(CLIENT)?
        .arg(plain.addr.to_string())
        .write_stdin("hello\n")
        .assert()
        .code(1)
        .stderr("error: server closed the connection in the middle of a reply (2 of 5 bytes)\n");
    plain.join()?;
    Ok(())
}

// ---------------------------------------------------------------- interop

/// A plain Python peer, written the way the Python courses write it:
/// `struct.pack('!I')`, `sendall`, and `recv` in a loop.
const PLAIN_PYTHON_PEER: &str = r#"import socket, struct, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
def recv_exactly(n):
    data = b""
    while len(data) < n:
        chunk = s.recv(min(n - len(data), 65536))
        if not chunk:
            raise SystemExit("cut off")
        data += chunk
    return data
for word in [b"hello", b"", "你好".encode()]:
    s.sendall(struct.pack("!I", len(word)) + word)
for _ in range(3):
    (n,) = struct.unpack("!I", recv_exactly(4))
    if n > 1024 * 1024:
        raise SystemExit(f"a reply of {n} bytes is too long")
    print(recv_exactly(n).decode())
"#;

fn run_plain_python_peer(server: &Server) -> Result<std::process::Output> {
    let mut peer = Command::new(PYTHON);
    peer.env("PYTHONUTF8", "1")
        .args(["-c", PLAIN_PYTHON_PEER])
        .arg(server.addr.port().to_string());
    run_with_stdin(peer, "")
}

#[test]
fn interop_plain_python_peer_talks_to_the_rust_server() -> Result<()> {
    if !PYTHON3.is_here()? {
        return Ok(());
    }
    let server = Server::start(SERVER, &[])?;
    let out = run_plain_python_peer(&server)?;
    ensure!(out.status.success(), "{out:?}");
    ensure!(out.stdout == "HELLO\n\n你好\n".as_bytes(), "{out:?}");
    server.kill()?.assert_no_panic()
}

/// The plain peer bounds what it reads: a reply announced as 4 GiB is
/// refused before any of it is read.
#[test]
fn interop_plain_python_peer_refuses_a_reply_over_1_mib() -> Result<()> {
    if !PYTHON3.is_here()? {
        return Ok(());
    }
    let plain = PlainServer::start(|mut stream| {
        for _ in 0..3 {
            reply(&mut stream)?;
        }
        stream.write_all(&[0xff, 0xff, 0xff, 0xff])?;
        Ok(Vec::new())
    })?;
    let mut peer = Command::new(PYTHON);
    peer.env("PYTHONUTF8", "1")
        .args(["-c", PLAIN_PYTHON_PEER])
        .arg(plain.addr.port().to_string());
    let out = run_with_stdin(peer, "")?;
    ensure!(out.status.code() == Some(1), "{out:?}");
    ensure!(
        out.stderr == "a reply of 4294967295 bytes is too long\n".as_bytes(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    plain.join()?;
    Ok(())
}

#[test]
fn interop_plain_python_peer_talks_to_the_python_server() -> Result<()> {
    if !PYTHON3.is_here()? {
        return Ok(());
    }
    let mut twin = python(LESSON, "server.py");
    twin.arg("127.0.0.1:0");
    let server = Server::start_command(twin)?;
    let out = run_plain_python_peer(&server)?;
    ensure!(out.status.success(), "{out:?}");
    ensure!(out.stdout == "HELLO\n\n你好\n".as_bytes(), "{out:?}");
    server.kill()?.assert_no_panic()
}

#[test]
fn interop_python_client_with_rust_server() -> Result<()> {
    if !PYTHON3.is_here()? {
        return Ok(());
    }
    let server = Server::start(SERVER, &[])?;
    for all_at_once in [false, true] {
        let mut client = python(LESSON, "client.py");
        client.arg(server.addr_arg());
        if all_at_once {
            client.arg("--all-at-once");
        }
        let out = run_with_stdin(client, "hello\n\n你好 rust\n")?;
        ensure!(out.status.success(), "{out:?}");
        ensure!(out.stdout == "HELLO\n\n你好 RUST\n".as_bytes(), "{out:?}");
    }
    server.kill()?.assert_no_panic()
}

#[test]
fn interop_rust_client_with_python_server() -> Result<()> {
    if !PYTHON3.is_here()? {
        return Ok(());
    }
    let mut twin = python(LESSON, "server.py");
    twin.arg("127.0.0.1:0");
    let mut server = Server::start_command(twin)?;
    for all_at_once in [false, true] {
        let mut client = cmd(CLIENT)?;
        client.arg(server.addr_arg());
        if all_at_once {
            client.arg("--all-at-once");
        }
        client
            .write_stdin("hello\n\n你好 rust\n")
            .assert()
            .success()
            .stdout("HELLO\n\n你好 RUST\n");
    }
    server.wait_for("sent a frame of 0 bytes: ''")?;
    server.kill()?;
    Ok(())
}

/// The Python twin keeps the same limits and says the same things.
#[test]
fn interop_python_server_refuses_the_same_bad_frames() -> Result<()> {
    if !PYTHON3.is_here()? {
        return Ok(());
    }
    let mut twin = python(LESSON, "server.py");
    twin.arg("127.0.0.1:0");
    let mut server = Server::start_command(twin)?;
    let mut huge = connect(server.addr)?;
    huge.write_all(&[0xff, 0xff, 0xff, 0xff])?;
    assert_hung_up(&mut huge)?;
    server.wait_for("announced 4294967295 bytes, over the limit of 1048576; hanging up")?;
    let mut swapped = connect(server.addr)?;
    swapped.write_all(&5u32.to_le_bytes())?;
    assert_hung_up(&mut swapped)?;
    server.wait_for("(backwards it reads 5: is the length big-endian?)")?;
    let mut cut = connect(server.addr)?;
    cut.write_all(&frame(b"0123456789")[..7])?;
    cut.shutdown(Shutdown::Write)?;
    assert_hung_up(&mut cut)?;
    server.wait_for("hung up in the middle of a frame (3 of 10 bytes arrived)")?;
    let mut fine = connect(server.addr)?;
    ask(&mut fine, b"still serving")?;
    server.kill()?;
    Ok(())
}

#[test]
fn interop_python_server_turns_away_the_caller_past_max_clients_with_a_frame() -> Result<()> {
    chaos::exempt(chaos::ADDRESS_IN_LOG);
    if !PYTHON3.is_here()? {
        return Ok(());
    }
    let mut twin = python(LESSON, "server.py");
    twin.args(["127.0.0.1:0", "--max-clients", "2"]);
    turns_away_the_caller_past_max_clients(Server::start_command(twin)?)
}

#[test]
fn interop_python_client_says_in_one_line_when_the_server_is_full() -> Result<()> {
    if !PYTHON3.is_here()? {
        return Ok(());
    }
    let (server, _seated) = full_server(None)?;
    let mut client = python(LESSON, "client.py");
    client.arg(server.addr_arg());
    let out = run_with_stdin(client, "hello\n")?;
    ensure!(out.status.code() == Some(1), "{out:?}");
    ensure!(out.stdout.is_empty(), "{out:?}");
    ensure!(
        out.stderr == format!("error: instead of an answer the server said '{FULL}'\n").as_bytes(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    server.kill()?;
    Ok(())
}

#[test]
fn interop_python_client_refuses_a_reply_over_its_limit_in_one_line() -> Result<()> {
    if !PYTHON3.is_here()? {
        return Ok(());
    }
    let plain = PlainServer::start(|mut stream| {
        let _ = read_exactly(&mut stream, 9)?;
        stream.write_all(&[0xff, 0xff, 0xff, 0xff])?;
        Ok(Vec::new())
    })?;
    let mut client = python(LESSON, "client.py");
    client.arg(plain.addr.to_string());
    let out = run_with_stdin(client, "hello\n")?;
    ensure!(out.status.code() == Some(1), "{out:?}");
    ensure!(
        out.stderr
            == "error: server announced a reply of 4294967295 bytes, over our limit of 1048576\n"
                .as_bytes(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    plain.join()?;
    Ok(())
}

// ---------------------------------------------------------------- exercise 1: a header

#[test]
fn exercise1_answers_a_header_and_body_sent_the_courses_way() -> Result<()> {
    if !PYTHON3.is_here()? {
        return Ok(());
    }
    let mut server = Server::start(EXERCISE, &[])?;
    let out = header_client(server.addr.port(), &[])?;
    ensure!(out.status.success(), "{out:?}");
    ensure!(
        out.stdout == "{\"name\":\"notes.txt\",\"ok\":true,\"size\":13}\nHELLO, 你好\n".as_bytes(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    server.wait_for(r#"sent "notes.txt" (13 bytes)"#)?;
    // Announcing more than --max-body: the refusal, and no body.
    let out = header_client(server.addr.port(), &["2000000"])?;
    ensure!(
        out.stdout
            == "{\"error\":\"a body of 2000000 bytes is over the limit of 1048576\",\"ok\":false}\n"
                .as_bytes(),
        "{out:?}"
    );
    server.kill()?.assert_no_panic()
}

/// The chapter's "Try it" of the exercise: the courses' client against the
/// solution, once as it is and once announcing more than `--max-body`.
#[cfg(target_os = "linux")]
#[test]
fn book_output_of_the_header_client() -> Result<()> {
    if !PYTHON3.is_here()? {
        return Ok(());
    }
    let server = Server::start(EXERCISE, &[])?;
    let mut t = Transcript::new();
    for extra in [&[][..], &["2000000"]] {
        let out = header_client(server.addr.port(), extra)?;
        ensure!(out.status.success(), "{out:?}");
        let mut command = "python3 lessons/lesson07-framing/python/header_client.py".to_string();
        if !extra.is_empty() {
            command.push_str(" 9007 ");
            command.push_str(&extra.join(" "));
        }
        t.command(&command)
            .output(&String::from_utf8_lossy(&out.stdout));
    }
    server.kill()?.assert_no_panic()?;
    t.check("lesson07-header-client")
}

/// The exercise's client, written the courses' way (`python/header_client.py`),
/// run to its end against `port`.
fn header_client(port: u16, extra: &[&str]) -> Result<std::process::Output> {
    let mut client = python(LESSON, "header_client.py");
    client.arg(port.to_string()).args(extra);
    run_with_stdin(client, "")
}

/// The courses' client bounds what it reads, too: a 4 GiB answer header
/// is refused before a byte of it is read.
#[test]
fn exercise1_header_client_refuses_an_answer_header_over_8_kib() -> Result<()> {
    if !PYTHON3.is_here()? {
        return Ok(());
    }
    let plain = PlainServer::start(|mut stream| {
        let _header = reply(&mut stream)?;
        let _body = read_exactly(&mut stream, "hello, 你好".len())?;
        stream.write_all(&[0xff, 0xff, 0xff, 0xff])?;
        Ok(Vec::new())
    })?;
    let out = header_client(plain.addr.port(), &[])?;
    ensure!(out.status.code() == Some(1), "{out:?}");
    ensure!(
        out.stderr == "error: an answer header of 4294967295 bytes is over our limit\n".as_bytes(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    plain.join()?;
    Ok(())
}

/// Reads the answer header of the exercise server as JSON text.
fn answer_header(stream: &mut TcpStream) -> Result<String> {
    Ok(String::from_utf8(reply(stream)?)?)
}

#[test]
fn exercise1_refuses_a_body_over_the_limit_before_reading_it() -> Result<()> {
    let mut server = Server::start(EXERCISE, &["--max-body", "100"])?;
    let mut caller = connect(server.addr)?;
    caller.write_all(&frame(br#"{"name":"big","size":101}"#))?;
    let answer = answer_header(&mut caller)?;
    ensure!(
        answer == r#"{"error":"a body of 101 bytes is over the limit of 100","ok":false}"#,
        "{answer}"
    );
    assert_hung_up(&mut caller)?;
    server.wait_for("was refused: a body of 101 bytes is over the limit of 100; hanging up")?;
    server.kill()?.assert_no_panic()
}

#[test]
fn exercise1_refuses_a_header_that_is_not_json() -> Result<()> {
    let mut server = Server::start(EXERCISE, &[])?;
    let mut caller = connect(server.addr)?;
    caller.write_all(&frame(b"name=notes.txt size=3"))?;
    let answer = answer_header(&mut caller)?;
    ensure!(
        answer.contains(r#""ok":false"#) && answer.contains("not a header"),
        "{answer}"
    );
    assert_hung_up(&mut caller)?;
    server.wait_for("was refused: not a header")?;
    server.kill()?.assert_no_panic()
}

#[test]
fn exercise1_gives_the_header_a_limit_of_its_own() -> Result<()> {
    let mut server = Server::start(EXERCISE, &["--max-body", "100000000"])?;
    let mut caller = connect(server.addr)?;
    // A header just over 8 KiB: refused, however large bodies may be.
    caller.write_all(&((8 * 1024 + 1) as u32).to_be_bytes())?;
    let answer = answer_header(&mut caller)?;
    ensure!(
        answer == r#"{"error":"a header of 8193 bytes is over the limit of 8192","ok":false}"#,
        "{answer}"
    );
    assert_hung_up(&mut caller)?;
    server.wait_for("was refused: a header of 8193 bytes is over the limit of 8192; hanging up")?;
    server.kill()?.assert_no_panic()
}

/// Many Python tutorials pack the header's length with `struct.pack('i')`,
/// the machine's own byte order: refused, with a hint.
#[test]
fn exercise1_hints_at_a_header_length_in_the_wrong_byte_order() -> Result<()> {
    let server = Server::start(EXERCISE, &[])?;
    let mut caller = connect(server.addr)?;
    let header = br#"{"name":"a","size":1}"#;
    caller.write_all(&(header.len() as u32).to_le_bytes())?;
    caller.write_all(header)?;
    caller.write_all(b"x")?;
    let answer = answer_header(&mut caller)?;
    ensure!(
        answer.contains("(backwards it reads 21: use '!I')"),
        "{answer}"
    );
    assert_hung_up(&mut caller)?;
    server.kill()?.assert_no_panic()
}

/// A caller that hangs up in the middle of a header is logged in words.
#[test]
fn exercise1_logs_a_header_cut_off() -> Result<()> {
    let mut server = Server::start(EXERCISE, &[])?;
    let mut caller = connect(server.addr)?;
    caller.write_all(&[0, 0, 0])?;
    caller.shutdown(Shutdown::Write)?;
    assert_hung_up(&mut caller)?;
    server.wait_for(
        "sent no whole header: hung up in the middle of a frame (3 of 4 bytes arrived)",
    )?;
    server.kill()?.assert_no_panic()
}

#[test]
fn exercise1_takes_several_messages_on_one_connection() -> Result<()> {
    let server = Server::start(EXERCISE, &[])?;
    let mut caller = connect(server.addr)?;
    for (name, body) in [("a", &b"first"[..]), ("b", b""), ("c", b"third")] {
        let header = format!(r#"{{"name":"{name}","size":{}}}"#, body.len());
        caller.write_all(&[frame(header.as_bytes()), body.to_vec()].concat())?;
        let answer = answer_header(&mut caller)?;
        let expected = format!(r#"{{"name":"{name}","ok":true,"size":{}}}"#, body.len());
        ensure!(answer == expected, "{answer}");
        ensure!(read_exactly(&mut caller, body.len())? == body.to_ascii_uppercase());
    }
    server.kill()?.assert_no_panic()
}

/// One message through the exercise's server: a header and a body, the
/// answer header and the body upper-cased.
fn header_and_body(caller: &mut TcpStream, name: &str, body: &[u8]) -> Result<()> {
    let header = format!(r#"{{"name":"{name}","size":{}}}"#, body.len());
    caller.write_all(&[frame(header.as_bytes()), body.to_vec()].concat())?;
    let answer = answer_header(caller)?;
    let expected = format!(r#"{{"name":"{name}","ok":true,"size":{}}}"#, body.len());
    ensure!(answer == expected, "{answer}");
    ensure!(read_exactly(caller, body.len())? == body.to_ascii_uppercase());
    Ok(())
}

/// The caller past `--max-clients 2` gets the protocol's own refusal, a
/// header with `"ok":false`, and is hung up on; a free seat serves again.
#[test]
fn exercise1_turns_away_the_caller_past_max_clients_with_ok_false() -> Result<()> {
    chaos::exempt(chaos::ADDRESS_IN_LOG);
    let mut server = Server::start(EXERCISE, &["--max-clients", "2"])?;
    let mut first = connect(server.addr)?;
    header_and_body(&mut first, "a", b"first")?;
    let mut second = connect(server.addr)?;
    header_and_body(&mut second, "b", b"second")?;
    let mut third = connect(server.addr)?;
    let me = third.local_addr()?;
    let answer = answer_header(&mut third)?;
    ensure!(
        answer == format!(r#"{{"error":"{FULL}","ok":false}}"#),
        "{answer}"
    );
    ensure!(read_until_hung_up(&mut third)?.is_empty());
    server.wait_for(&format!(
        "client {me} turned away: the server is full (2 clients)"
    ))?;
    let gone = first.local_addr()?;
    drop(first);
    server.wait_for(&format!("client {gone} closed the connection"))?;
    header_and_body(&mut connect(server.addr)?, "c", b"third")?;
    server.kill()?.assert_no_panic()
}

// ---------------------------------------------------------------- the book's output

/// Starts `name` on port 0 and returns it with a transcript that shows its
/// address as the default one.
fn start_for_the_book(name: &str, default: &str) -> Result<(Server, Transcript)> {
    let server = Server::start(name, &[])?;
    let mut t = Transcript::new();
    t.show_addr_as(server.addr, default);
    Ok((server, t))
}

#[cfg(target_os = "linux")]
#[test]
fn book_output_of_a_first_run() -> Result<()> {
    let (server, mut t) = start_for_the_book(SERVER, DEFAULT_ADDR)?;
    let client = cmd(CLIENT)?
        .arg(server.addr_arg())
        .write_stdin("hello\n\n你好 rust\n")
        .assert()
        .success();
    t.command(r"printf 'hello\n\n你好 rust\n' | cargo run -q -p lesson07-client")
        .output(&String::from_utf8_lossy(&client.get_output().stdout));
    t.check("lesson07-client")?;
    // The server logs the goodbye on the caller's own thread: wait for it, so
    // that the next caller's lines come after it in the log.
    let mut server = server;
    server.wait_for("closed the connection")?;
    let glued = cmd(CLIENT)?
        .arg(server.addr_arg())
        .arg("--all-at-once")
        .write_stdin("one\ntwo\nthree\n")
        .assert()
        .success();
    let mut t2 = Transcript::new();
    t2.command(r"printf 'one\ntwo\nthree\n' | cargo run -q -p lesson07-client -- --all-at-once")
        .output(&String::from_utf8_lossy(&glued.get_output().stdout));
    t2.check("lesson07-all-at-once")?;
    server.wait_for("sent a frame of 5 bytes: \"three\"")?;
    server.wait_for("closed the connection")?;
    let log = server.kill()?;
    let mut t3 = Transcript::new();
    t3.show_addr_as(
        log.stdout[0].trim_start_matches("listening on "),
        DEFAULT_ADDR,
    )
    .command("cargo run -p lesson07-server")
    .lines(&log.stdout);
    t3.check("lesson07-server")
}

/// The chapter's first experiment: lesson 03's server busy with one caller
/// (lesson03-client, waiting for input), while a Python one-liner sends
/// twice; then the waiting client hangs up.
#[cfg(target_os = "linux")]
#[test]
fn book_output_of_sticky_packets() -> Result<()> {
    if !PYTHON3.is_here()? {
        return Ok(());
    }
    let (mut server, mut t) = start_for_the_book(UNFRAMED, "127.0.0.1:9003")?;
    let mut holding = Proc::spawn("lesson03-client", &[&server.addr_arg()])?;
    server.wait_for("connected")?;
    let script = "import socket\n\
                  s = socket.create_connection((\"127.0.0.1\", 9003))\n\
                  s.sendall(b\"hello\")\n\
                  s.sendall(b\"world\")\n\
                  print(\"sent twice\", flush=True)\n\
                  print(s.recv(1024))\n";
    let mut py = Command::new(PYTHON);
    py.arg("-c")
        .arg(script.replace("9003", &server.addr.port().to_string()));
    let mut sender = Proc::spawn_command(py)?;
    let sent = sender.next_line()?;
    // Both sends are now in the server's queue. Ctrl-D in the first client:
    holding.close_stdin();
    let answer = sender.next_line()?;
    ensure!(answer == "b'HELLOWORLD'", "{answer}");
    sender.wait_exit()?;
    holding.wait_exit()?;
    server.wait_for(r#"said "helloworld""#)?;
    server.wait_for("disconnected")?;
    let log = server.kill()?;
    t.command(&format!("python3 - <<'EOF'\n{script}EOF"))
        .lines(&[sent, answer]);
    t.check("lesson07-sticky-python")?;
    let mut t2 = Transcript::new();
    t2.show_addr_as(
        log.stdout[0].trim_start_matches("listening on "),
        "127.0.0.1:9003",
    )
    .command("cargo run -p lesson03-server")
    .lines(&log.stdout);
    t2.check("lesson07-sticky-server")
}

/// The chapter's second experiment: one send of 3000 bytes, read 1024 bytes
/// at a time by lesson 03's server.
#[cfg(target_os = "linux")]
#[test]
fn book_output_of_one_send_in_several_reads() -> Result<()> {
    if !PYTHON3.is_here()? {
        return Ok(());
    }
    let (mut server, mut t) = start_for_the_book(UNFRAMED, "127.0.0.1:9003")?;
    let script = "import socket\n\
                  s = socket.create_connection((\"127.0.0.1\", 9003))\n\
                  s.sendall(b\"a\" * 3000)\n\
                  s.shutdown(socket.SHUT_WR)\n\
                  got = b\"\"\n\
                  while chunk := s.recv(65536):\n    got += chunk\n\
                  print(len(got), \"bytes back\")\n";
    let mut py = Command::new(PYTHON);
    py.arg("-c")
        .arg(script.replace("9003", &server.addr.port().to_string()));
    let out = run_with_stdin(py, "")?;
    ensure!(out.status.success(), "{out:?}");
    server.wait_for("disconnected")?;
    let log = server.kill()?;
    t.command(&format!("python3 - <<'EOF'\n{script}EOF"))
        .output(&String::from_utf8_lossy(&out.stdout));
    t.check("lesson07-split-python")?;
    let mut t2 = Transcript::new();
    t2.show_addr_as(
        log.stdout[0].trim_start_matches("listening on "),
        "127.0.0.1:9003",
    )
    .command("cargo run -p lesson03-server")
    .lines(&log.stdout);
    t2.check("lesson07-split-server")
}

/// Three mistakes the chapter shows: the bytes of `s.sendall(b"\xff" * 4)`,
/// of `s.sendall(struct.pack("I", 5) + b"hello")` (native, little-endian
/// byte order) and of `s.sendall(b"hello\n")` (a line, not a frame).
const MISTAKES: [&[u8]; 3] = [&[0xff, 0xff, 0xff, 0xff], b"\x05\0\0\0hello", b"hello\n"];

/// A plain Python peer, and three mistakes the server names: a 4 GiB
/// length, a length in the wrong byte order, and a line instead of a frame.
#[cfg(target_os = "linux")]
#[test]
fn book_output_of_other_clients_and_mistakes() -> Result<()> {
    if !PYTHON3.is_here()? {
        return Ok(());
    }
    let (mut server, mut t) = start_for_the_book(SERVER, DEFAULT_ADDR)?;
    let out = run_plain_python_peer(&server)?;
    ensure!(out.status.success(), "{out:?}");
    t.command(&format!("python3 - 9007 <<'EOF'\n{PLAIN_PYTHON_PEER}EOF"))
        .output(&String::from_utf8_lossy(&out.stdout));
    t.check("lesson07-python-peer")?;
    for bytes in MISTAKES {
        let mut caller = connect(server.addr)?;
        caller.write_all(bytes)?;
        assert_hung_up(&mut caller)?;
        server.wait_for("hanging up")?;
    }
    let log = server.kill()?;
    let mut t2 = Transcript::new();
    t2.show_addr_as(
        log.stdout[0].trim_start_matches("listening on "),
        DEFAULT_ADDR,
    )
    .command("cargo run -p lesson07-server")
    .lines(&log.stdout);
    t2.check("lesson07-mistakes-server")
}
