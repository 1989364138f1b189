//! Lesson 13: a bad network on your desk. The proxy, each of its faults
//! measured from outside (piece sizes, delays, rates, FIN against RST,
//! silence), the half-close and the reset passed on, the seed that replays
//! a run, 100 MB byte for byte, many callers and the cap on them, hostile
//! input to the proxy itself; the client with its time limit; the Python
//! twin; the exercise's 10 MB over lossy UDP; the book's output.
//!
//! Most tests put the proxy in front of a small server of the test's own,
//! so that what arrives there can be measured exactly; the chapter's
//! scenes put it in front of the earlier lessons' servers.

use std::io::{self, ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::process::Command;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use course_tests::contract;
use course_tests::headers::sha256_hex;
use course_tests::tools::PYTHON3;
use course_tests::transcript::Transcript;
use course_tests::{
    Proc, Rng, Server, TIMEOUT, TempDir, cmd, connect, python, read_exactly, read_to_close, reset,
    run_with_stdin, still_on_the_line, udp_ask, udp_socket,
};
use predicates::prelude::*;

const PROXY: &str = "lesson13-proxy";
const CLIENT: &str = "lesson13-client";
const EXERCISE1: &str = "lesson13-exercise1";
const LESSON: &str = "lesson13-bad-network";
const DEFAULT_ADDR: &str = "127.0.0.1:9013";

/// A window of silence: long enough that a proxy which forwarded anything
/// would have done it, short enough to keep the suite quick.
const SILENCE: Duration = Duration::from_millis(500);

// ---------------------------------------------------------------- helpers

/// Starts the proxy on port 0 in front of `to`, with `extra` arguments,
/// and reads its second line, `seed S`.
fn proxy(to: SocketAddr, extra: &[&str]) -> Result<(Server, u64)> {
    let to = to.to_string();
    let mut args = vec!["--to", to.as_str()];
    args.extend_from_slice(extra);
    let mut server = Server::start(PROXY, &args)?;
    let seed = seed_line(&mut server.proc)?;
    Ok((server, seed))
}

/// The proxy's second line: `seed S`.
fn seed_line(proc: &mut Proc) -> Result<u64> {
    let line = proc.next_line()?;
    let seed = line
        .strip_prefix("seed ")
        .with_context(|| format!("expected `seed S` after the listening line, got {line:?}"))?;
    seed.parse()
        .with_context(|| format!("the seed in {line:?} is not a number"))
}

/// A TCP server of the test's own for one connection: it hands the test
/// the accepted stream, with timeouts, through a channel.
struct Upstream {
    addr: SocketAddr,
    accepted: mpsc::Receiver<TcpStream>,
}

impl Upstream {
    fn start() -> Result<Upstream> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let (tx, accepted) = mpsc::channel();
        thread::spawn(move || {
            while let Ok((stream, _)) = listener.accept() {
                let _ = stream.set_read_timeout(Some(TIMEOUT));
                let _ = stream.set_write_timeout(Some(TIMEOUT));
                if tx.send(stream).is_err() {
                    break;
                }
            }
        });
        Ok(Upstream { addr, accepted })
    }

    /// The next connection the proxy made to us.
    fn next(&self) -> Result<TcpStream> {
        self.accepted
            .recv_timeout(TIMEOUT)
            .context("the proxy never connected to the upstream server")
    }
}

/// The sizes of the pieces the proxy logged for `way` (`->` or `<-`).
fn pieces(lines: &[String], way: &str) -> Vec<usize> {
    lines
        .iter()
        .filter_map(|line| line.split_once(&format!(" {way} server: ")))
        .filter_map(|(_, rest)| rest.strip_suffix(" bytes").or(rest.strip_suffix(" byte")))
        .filter_map(|n| n.parse().ok())
        .collect()
}

/// Reads until end of stream: `Ok` with the bytes on a FIN, the error
/// (with the bytes so far) on anything else, such as a reset.
fn read_to_end_or_error(stream: &mut TcpStream) -> (Vec<u8>, io::Result<()>) {
    let mut got = Vec::new();
    let mut buf = [0u8; 64 * 1024];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return (got, Ok(())),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(err) if err.kind() == ErrorKind::Interrupted => continue,
            Err(err) => return (got, Err(err)),
        }
    }
}

fn is_reset(result: &io::Result<()>) -> bool {
    matches!(result, Err(err) if matches!(err.kind(),
        ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted))
}

// ---------------------------------------------------------------- the command line

course_tests::test_table! {
    proxy_prints_help: contract::help_works(PROXY, DEFAULT_ADDR);
    client_prints_help: contract::help_works(CLIENT, DEFAULT_ADDR);
    exercise1_prints_help: contract::help_works(EXERCISE1, DEFAULT_ADDR);
    proxy_dies_on_bad_address: contract::bad_address_is_refused(PROXY);
    client_dies_on_bad_address: contract::bad_address_is_refused(CLIENT);
    client_explains_when_no_server_listens: contract::client_explains_no_server(CLIENT, PROXY);
}

/// What the command line cannot hold is refused in one line, exit 2.
#[test]
fn proxy_refuses_what_cannot_work_in_one_line() -> Result<()> {
    for (args, says) in [
        (&["127.0.0.1:0"][..], "--to UPSTREAM is missing"),
        (&["--to", "nowhere"], "'nowhere'"),
        (&["--to", "127.0.0.1:1", "--drop", "5"], "need --udp"),
        (&["--to", "127.0.0.1:1", "--udp", "--split", "3"], "--split"),
        (&["--to", "127.0.0.1:1", "--udp", "--drop", "101"], "101"),
        (&["--to", "127.0.0.1:1", "--split", "0"], "--split"),
        (&["--to", "127.0.0.1:1", "--rate", "0"], "--rate"),
        (
            &[
                "--to",
                "127.0.0.1:1",
                "--cut-after",
                "1",
                "--reset-after",
                "2",
            ],
            "--reset-after",
        ),
        (
            &["--to", "127.0.0.1:1", "--max-clients", "0"],
            "--max-clients",
        ),
    ] {
        let assert = cmd(PROXY)?.args(args).assert().code(2).stdout("");
        let stderr = String::from_utf8_lossy(&assert.get_output().stderr).into_owned();
        ensure!(stderr.lines().count() == 1, "{args:?}: {stderr:?}");
        ensure!(stderr.contains(says), "{args:?}: {stderr:?} lacks {says:?}");
        ensure!(!stderr.contains("panicked"), "{args:?}: {stderr:?}");
    }
    Ok(())
}

/// `listening on ADDR`, then `seed S` at once: the given seed, or one it
/// picked. Then what it forwards to, and which faults.
#[test]
fn proxy_prints_the_seed_right_after_listening() -> Result<()> {
    let upstream = Upstream::start()?;
    let (mut given, seed) = proxy(upstream.addr, &["--seed", "12345", "--split", "3"])?;
    ensure!(seed == 12345, "seed {seed}");
    let third = given.proc.next_line()?;
    ensure!(
        third == format!("forwarding to {}, faults: split 3", upstream.addr),
        "{third:?}"
    );
    given.kill()?.assert_no_panic()?;
    let (mut picked, _) = proxy(upstream.addr, &[])?;
    picked.wait_for("faults: none")?;
    picked.kill()?.assert_no_panic()
}

// ---------------------------------------------------------------- forwarding

/// With no fault, 100 MB go through and come back byte for byte: the test's
/// server echoes everything, the test checks every byte of the echo.
#[test]
fn proxy_passes_100_mb_byte_for_byte_with_no_fault() -> Result<()> {
    const BLOCKS: u64 = 100;
    const BLOCK: usize = 1024 * 1024;
    let upstream = Upstream::start()?;
    let (proxy, _) = proxy(upstream.addr, &[])?;
    let caller = connect(proxy.addr)?;
    let mut echo = upstream.next()?;
    let echoing = thread::spawn(move || -> Result<u64> {
        let mut back = echo.try_clone()?;
        let copied = io::copy(&mut echo, &mut back)?;
        back.shutdown(Shutdown::Write)?;
        Ok(copied)
    });
    let mut sending = caller.try_clone()?;
    let sender = thread::spawn(move || -> Result<()> {
        for block in 0..BLOCKS {
            sending.write_all(&Rng::new(block).bytes(BLOCK))?;
        }
        sending.shutdown(Shutdown::Write)?;
        Ok(())
    });
    let mut reading = caller;
    for block in 0..BLOCKS {
        let got = read_exactly(&mut reading, BLOCK).with_context(|| format!("block {block}"))?;
        ensure!(
            got == Rng::new(block).bytes(BLOCK),
            "block {block} came back changed"
        );
    }
    ensure!(
        read_to_close(&mut reading)?.is_empty(),
        "bytes after the end"
    );
    sender
        .join()
        .map_err(|_| anyhow::anyhow!("sender panicked"))??;
    let copied = echoing
        .join()
        .map_err(|_| anyhow::anyhow!("echo panicked"))??;
    ensure!(
        copied == BLOCKS * BLOCK as u64,
        "the server got {copied} bytes"
    );
    proxy.kill()?.assert_no_panic()
}

/// The caller's half-close reaches the server as a half-close: the server
/// reads to the end and can still answer. And the other way round.
#[test]
fn proxy_passes_a_half_close_on_as_a_half_close() -> Result<()> {
    let upstream = Upstream::start()?;
    let (mut proxy, _) = proxy(upstream.addr, &[])?;
    // The caller finishes first.
    let mut caller = connect(proxy.addr)?;
    let mut server = upstream.next()?;
    caller.write_all(b"question")?;
    caller.shutdown(Shutdown::Write)?;
    let (asked, ended) = read_to_end_or_error(&mut server);
    ensure!(ended.is_ok() && asked == b"question", "{asked:?} {ended:?}");
    server.write_all(b"answer after your FIN")?;
    server.shutdown(Shutdown::Write)?;
    ensure!(read_to_close(&mut caller)? == b"answer after your FIN");
    proxy.wait_for(" -> server: end of stream, passed on")?;
    proxy.wait_for(" <- server: end of stream, passed on")?;
    proxy.wait_for(" disconnected")?;
    // The server finishes first.
    let mut caller = connect(proxy.addr)?;
    let mut server = upstream.next()?;
    server.write_all(b"hello, and goodbye")?;
    server.shutdown(Shutdown::Write)?;
    ensure!(read_to_close(&mut caller)? == b"hello, and goodbye");
    caller.write_all(b"still talking")?;
    caller.shutdown(Shutdown::Write)?;
    let (said, ended) = read_to_end_or_error(&mut server);
    ensure!(
        ended.is_ok() && said == b"still talking",
        "{said:?} {ended:?}"
    );
    proxy.kill()?.assert_no_panic()
}

/// A caller that resets is passed on as a reset, and so is a server.
#[test]
fn proxy_passes_a_reset_on_as_a_reset() -> Result<()> {
    let upstream = Upstream::start()?;
    let (mut proxy, _) = proxy(upstream.addr, &[])?;
    let caller = connect(proxy.addr)?;
    let mut server = upstream.next()?;
    reset(caller)?;
    let (_, ended) = read_to_end_or_error(&mut server);
    ensure!(is_reset(&ended), "the server saw {ended:?}, not a reset");
    proxy.wait_for("the client reset the connection, passed on")?;

    let mut caller = connect(proxy.addr)?;
    let server = upstream.next()?;
    reset(server)?;
    let (_, ended) = read_to_end_or_error(&mut caller);
    if !is_reset(&ended) {
        let _ = proxy.wait_for("nothing");
        bail!(
            "the caller saw {ended:?}, not a reset; {:?}",
            proxy.proc.seen()
        );
    }
    // Passed on, or, when the reset came while the proxy was still
    // connecting, reported as a refusal: a reset either way.
    let line = proxy.wait_for("reset")?;
    ensure!(
        line.ends_with("the server reset the connection, passed on")
            || line.ends_with(", resetting"),
        "{line}"
    );
    proxy.kill()?.assert_no_panic()
}

/// `proxy` or `python_proxy`.
type StartProxy = fn(SocketAddr, &[&str]) -> Result<(Server, u64)>;

/// A server that answers and then resets while the caller is still
/// sending: the proxy's next write to it fails, but the answer is already
/// on its way back, and the caller gets all of it before the reset.
fn answer_before_a_reset_arrives_whole(start: StartProxy) -> Result<()> {
    let upstream = Upstream::start()?;
    // One byte every 5 ms each way: the answer takes a quarter of a second
    // to pass, and the caller's next byte finds the server gone long before.
    let (proxy, _) = start(upstream.addr, &["--split", "1", "--delay", "5"])?;
    let mut caller = connect(proxy.addr)?;
    caller.write_all(&[b'q'; 200])?;
    let mut server = upstream.next()?;
    read_exactly(&mut server, 1)?;
    let answer: Vec<u8> = (0..50u8).map(|i| b'a' + i % 26).collect();
    server.write_all(&answer)?;
    reset(server)?;
    let (got, ended) = read_to_end_or_error(&mut caller);
    ensure!(
        got == answer,
        "the caller got {} of the answer's {} bytes, then {ended:?}",
        got.len(),
        answer.len()
    );
    ensure!(
        is_reset(&ended),
        "after the answer the caller saw {ended:?}, not a reset"
    );
    proxy.kill()?.assert_no_panic()
}

#[test]
fn proxy_passes_on_the_answer_of_a_server_that_then_resets() -> Result<()> {
    answer_before_a_reset_arrives_whole(proxy)
}

#[test]
fn interop_python_proxy_passes_on_the_answer_of_a_server_that_then_resets() -> Result<()> {
    if !PYTHON3.is_here()? {
        return Ok(());
    }
    answer_before_a_reset_arrives_whole(python_proxy)
}

// ---------------------------------------------------------------- the faults, measured

/// `--split 5`: every piece the proxy wrote is 1 to 5 bytes, all five sizes
/// occur, and together they are exactly what was sent, in order.
#[test]
fn split_passes_the_bytes_on_in_pieces_of_1_to_n() -> Result<()> {
    let upstream = Upstream::start()?;
    let (mut proxy, _) = proxy(upstream.addr, &["--split", "5", "--seed", "1"])?;
    let mut caller = connect(proxy.addr)?;
    let mut server = upstream.next()?;
    let sent = Rng::new(7).bytes(1000);
    caller.write_all(&sent)?;
    caller.shutdown(Shutdown::Write)?;
    let (got, ended) = read_to_end_or_error(&mut server);
    ended?;
    ensure!(got == sent, "the bytes changed on the way");
    proxy.wait_for(" -> server: end of stream")?;
    let sizes = pieces(proxy.proc.seen(), "->");
    ensure!(sizes.iter().sum::<usize>() == 1000, "pieces {sizes:?}");
    ensure!(sizes.iter().all(|&n| (1..=5).contains(&n)), "{sizes:?}");
    for size in 1..=5 {
        ensure!(sizes.contains(&size), "no piece of {size} bytes: {sizes:?}");
    }
    proxy.kill()?.assert_no_panic()
}

/// The pieces of one seed, for one write of `len` bytes.
fn pieces_with_seed(seed: &str, len: usize) -> Result<Vec<usize>> {
    let upstream = Upstream::start()?;
    let (mut proxy, _) = proxy(upstream.addr, &["--split", "7", "--seed", seed])?;
    let mut caller = connect(proxy.addr)?;
    let mut server = upstream.next()?;
    caller.write_all(&vec![b'x'; len])?;
    caller.shutdown(Shutdown::Write)?;
    read_to_end_or_error(&mut server).1?;
    proxy.wait_for(" -> server: end of stream")?;
    let sizes = pieces(proxy.proc.seen(), "->");
    proxy.kill()?.assert_no_panic()?;
    Ok(sizes)
}

/// The same seed cuts the same bytes into the same pieces; another seed
/// into others.
#[test]
fn the_same_seed_gives_the_same_pieces() -> Result<()> {
    let first = pieces_with_seed("42", 200)?;
    let again = pieces_with_seed("42", 200)?;
    let other = pieces_with_seed("43", 200)?;
    ensure!(first == again, "seed 42 gave {first:?}, then {again:?}");
    ensure!(first != other, "seeds 42 and 43 both gave {first:?}");
    Ok(())
}

/// `--delay 300`: a reply through an echo takes two pieces, each held at
/// least 300 ms.
#[test]
fn delay_holds_each_piece_at_least_ms() -> Result<()> {
    let upstream = Upstream::start()?;
    let (proxy, _) = proxy(upstream.addr, &["--delay", "300"])?;
    let mut caller = connect(proxy.addr)?;
    let mut server = upstream.next()?;
    let start = Instant::now();
    caller.write_all(b"ping")?;
    let arrived = read_exactly(&mut server, 4)?;
    let there = start.elapsed();
    server.write_all(&arrived.to_ascii_uppercase())?;
    ensure!(read_exactly(&mut caller, 4)? == b"PING");
    let back = start.elapsed();
    ensure!(there >= Duration::from_millis(300), "there in {there:?}");
    ensure!(
        back >= Duration::from_millis(600),
        "there and back in {back:?}"
    );
    proxy.kill()?.assert_no_panic()
}

/// `--rate 50000`: 100 kB arrive at 50 kB/s, within 20%, timed from the
/// first byte at the server to the last.
#[test]
fn rate_passes_bytes_on_at_the_rate_within_20_percent() -> Result<()> {
    const RATE: f64 = 50_000.0;
    const LEN: usize = 100_000;
    let upstream = Upstream::start()?;
    let (proxy, _) = proxy(upstream.addr, &["--rate", "50000"])?;
    let mut caller = connect(proxy.addr)?;
    let mut server = upstream.next()?;
    caller.write_all(&vec![b'r'; LEN])?;
    caller.shutdown(Shutdown::Write)?;
    let mut buf = vec![0u8; 64 * 1024];
    let first = server.read(&mut buf)?;
    let start = Instant::now();
    let mut rest = first;
    loop {
        match server.read(&mut buf)? {
            0 => break,
            n => rest += n,
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    ensure!(rest == LEN, "{rest} bytes arrived");
    // The first piece leaves at once; the others, one after another, take
    // the time the rate gives them.
    let measured = (LEN - first) as f64 / elapsed;
    eprintln!("{LEN} bytes at {measured:.0} bytes/s (asked for {RATE})");
    ensure!(
        (0.8 * RATE..=1.2 * RATE).contains(&measured),
        "{measured:.0} bytes/s is not within 20% of {RATE}"
    );
    proxy.kill()?.assert_no_panic()
}

/// `--cut-after 10`: exactly 10 bytes reach the server, then both sides
/// read a clean end of stream (a FIN), not a reset.
#[test]
fn cut_after_closes_both_sides_cleanly_after_bytes() -> Result<()> {
    let upstream = Upstream::start()?;
    let (mut proxy, _) = proxy(upstream.addr, &["--cut-after", "10"])?;
    let mut caller = connect(proxy.addr)?;
    let mut server = upstream.next()?;
    // Far more than the proxy reads at once: after the cut, most of it is
    // still unread in the proxy's socket, and closing that socket without
    // reading it would send an RST instead of the FIN.
    let mut sent = b"0123456789".to_vec();
    sent.extend_from_slice(&[b'-'; 100_000]);
    caller.write_all(&sent)?;
    let (got, ended) = read_to_end_or_error(&mut server);
    ensure!(ended.is_ok(), "the server saw {ended:?}, not a FIN");
    ensure!(got == b"0123456789", "the server got {got:?}");
    let (back, ended) = read_to_end_or_error(&mut caller);
    ensure!(
        ended.is_ok() && back.is_empty(),
        "the caller saw {back:?} {ended:?}"
    );
    proxy.wait_for("cut after 10 bytes")?;
    // Half-closed, not reset: each side may still send, and the proxy
    // reads it (and throws it away) until that side hangs up too.
    caller
        .write_all(b"still here")
        .context("the caller's socket was reset after the cut")?;
    server
        .write_all(b"still here")
        .context("the server's socket was reset after the cut")?;
    drop((caller, server));
    proxy.wait_for(" disconnected")?;
    proxy.kill()?.assert_no_panic()
}

/// `--reset-after 10`: exactly 10 bytes reach the server, then both sides
/// are reset (an RST), which they read as "connection reset".
#[test]
fn reset_after_resets_both_sides_after_bytes() -> Result<()> {
    let upstream = Upstream::start()?;
    let (mut proxy, _) = proxy(upstream.addr, &["--reset-after", "10"])?;
    let mut caller = connect(proxy.addr)?;
    let mut server = upstream.next()?;
    caller.write_all(b"0123456789 and more")?;
    let (got, ended) = read_to_end_or_error(&mut server);
    ensure!(is_reset(&ended), "the server saw {ended:?}, not a reset");
    ensure!(got == b"0123456789", "the server got {got:?}");
    let (_, ended) = read_to_end_or_error(&mut caller);
    ensure!(is_reset(&ended), "the caller saw {ended:?}, not a reset");
    proxy.wait_for("reset after 10 bytes")?;
    proxy.kill()?.assert_no_panic()
}

/// `--stall-after 5`: 5 bytes pass, then nothing more either way, and
/// neither side is told: no bytes, no FIN, no RST, even when the other
/// side hangs up. The call ends for the proxy when both have.
#[test]
fn stall_after_goes_silent_but_keeps_both_sides_open() -> Result<()> {
    let upstream = Upstream::start()?;
    let (mut proxy, _) = proxy(upstream.addr, &["--stall-after", "5"])?;
    let mut caller = connect(proxy.addr)?;
    let mut server = upstream.next()?;
    caller.write_all(b"hello world")?;
    ensure!(read_exactly(&mut server, 5)? == b"hello");
    proxy.wait_for("stalled after 5 bytes")?;
    ensure!(
        still_on_the_line(&mut server, SILENCE)?,
        "the server was hung up on"
    );
    server.write_all(b"HELLO")?;
    ensure!(
        still_on_the_line(&mut caller, SILENCE)?,
        "the caller was hung up on"
    );
    // The caller gives up; the server is not told.
    drop(caller);
    ensure!(
        still_on_the_line(&mut server, SILENCE)?,
        "the caller's FIN got through"
    );
    drop(server);
    proxy.wait_for(" disconnected")?;
    proxy.kill()?.assert_no_panic()
}

/// `--cut-after 0` cuts a call before its first byte.
#[test]
fn cut_after_0_hangs_up_at_once() -> Result<()> {
    let upstream = Upstream::start()?;
    let (mut proxy, _) = proxy(upstream.addr, &["--cut-after", "0"])?;
    let mut caller = connect(proxy.addr)?;
    let mut server = upstream.next()?;
    ensure!(read_to_close(&mut caller)?.is_empty());
    ensure!(read_to_close(&mut server)?.is_empty());
    proxy.wait_for("cut after 0 bytes")?;
    proxy.kill()?.assert_no_panic()
}

// ---------------------------------------------------------------- many callers

/// 50 callers at once through the proxy to lesson 06's threaded echo
/// server, each answered correctly.
#[test]
fn proxy_serves_many_callers_at_once() -> Result<()> {
    let echo = Server::start("lesson06-echo-server", &[])?;
    let (proxy, _) = proxy(echo.addr, &["--split", "64"])?;
    let addr = proxy.addr;
    let callers: Vec<_> = (0..50)
        .map(|i| {
            thread::spawn(move || -> Result<()> {
                let mut conn = connect(addr)?;
                for round in 0..5 {
                    let message = format!("caller {i}, round {round}; ").repeat(20);
                    course_tests::exchange(&mut conn, message.as_bytes())?;
                }
                Ok(())
            })
        })
        .collect();
    for caller in callers {
        caller
            .join()
            .map_err(|_| anyhow::anyhow!("a caller panicked"))??;
    }
    proxy.kill()?.assert_no_panic()
}

/// `--max-clients 2`: a third caller is turned away (hung up on), and
/// logged; once a seat is free, the next caller is served.
#[test]
fn proxy_turns_away_the_caller_beyond_max_clients() -> Result<()> {
    let echo = Server::start("lesson06-echo-server", &[])?;
    let (mut proxy, _) = proxy(echo.addr, &["--max-clients", "2"])?;
    let mut first = connect(proxy.addr)?;
    let mut second = connect(proxy.addr)?;
    course_tests::exchange(&mut first, b"one")?;
    course_tests::exchange(&mut second, b"two")?;
    let mut third = connect(proxy.addr)?;
    let (got, _) = read_to_end_or_error(&mut third);
    ensure!(got.is_empty(), "the third caller got {got:?}");
    proxy.wait_for("turned away: 2 callers already")?;
    drop(first);
    proxy.wait_for(" disconnected")?;
    let mut fourth = connect(proxy.addr)?;
    course_tests::exchange(&mut fourth, b"four")?;
    drop(second);
    proxy.kill()?.assert_no_panic()
}

// ---------------------------------------------------------------- hostile input to the proxy

/// No server behind the proxy: each caller is reset (a refusal is a reset
/// on the wire), with one log line, and the proxy goes on.
#[test]
fn proxy_resets_callers_when_the_server_is_not_there() -> Result<()> {
    let nowhere = course_tests::unused_addr()?;
    let (mut proxy, _) = proxy(nowhere, &[])?;
    for _ in 0..3 {
        // The reset can come so fast that `connect` itself reports it: the
        // handshake was done, and the RST arrived before connect returned.
        let (got, ended) = match TcpStream::connect_timeout(&proxy.addr, TIMEOUT) {
            Ok(mut caller) => {
                caller.set_read_timeout(Some(TIMEOUT))?;
                read_to_end_or_error(&mut caller)
            }
            Err(err) => (Vec::new(), Err(err)),
        };
        ensure!(got.is_empty() && is_reset(&ended), "{got:?} {ended:?}");
        proxy.wait_for(&format!("cannot reach {nowhere}"))?;
    }
    proxy.kill()?.assert_no_panic()
}

/// Callers who connect and vanish at once, reset before the server is
/// reached, or send random bytes and reset, leave the proxy serving.
#[test]
fn proxy_survives_callers_that_vanish_and_reset() -> Result<()> {
    let echo = Server::start("lesson06-echo-server", &[])?;
    let (mut proxy, _) = proxy(echo.addr, &["--split", "100"])?;
    for round in 0..50 {
        let mut conn = connect(proxy.addr)?;
        match round % 3 {
            0 => drop(conn),
            1 => reset(conn)?,
            _ => {
                conn.write_all(&Rng::new(round).bytes(10_000))?;
                reset(conn)?;
            }
        }
    }
    let mut normal = connect(proxy.addr)?;
    course_tests::exchange(&mut normal, "still here 你好".as_bytes())?;
    drop(normal);
    // Every caller's call ends, however it ended.
    let deadline = Instant::now() + TIMEOUT;
    while proxy
        .proc
        .seen()
        .iter()
        .filter(|l| l.ends_with(" disconnected"))
        .count()
        < 51
    {
        ensure!(Instant::now() < deadline, "not every call ended");
        proxy.proc.next_line()?;
    }
    proxy.kill()?.assert_no_panic()
}

/// Over UDP: the largest datagram, an empty one, and 300 senders against
/// `--max-clients 100`; the ones beyond are turned away, and a newcomer is
/// answered once the others have gone quiet (here: once the proxy restarts
/// its count, since quiet means a minute).
#[test]
fn udp_proxy_survives_big_empty_and_many_datagrams() -> Result<()> {
    let server = Server::start("lesson05-server", &[])?;
    let (mut proxy, _) = proxy(server.addr, &["--udp"])?;
    let socket = udp_socket()?;
    let big = vec![b'a'; 65_507];
    let (reply, _) = udp_ask(&socket, proxy.addr, &big)?;
    ensure!(reply == vec![b'A'; 65_507], "{} bytes back", reply.len());
    let (reply, _) = udp_ask(&socket, proxy.addr, b"")?;
    ensure!(reply.is_empty(), "{reply:?}");
    let senders: Vec<UdpSocket> = (0..300).map(|_| udp_socket()).collect::<Result<_>>()?;
    for sender in &senders {
        sender.send_to(b"me too", proxy.addr)?;
    }
    proxy.wait_for("turned away: 100 callers already")?;
    // The first sender still has its seat.
    let (reply, _) = udp_ask(&socket, proxy.addr, b"still here")?;
    ensure!(reply == b"STILL HERE", "{reply:?}");
    proxy.kill()?.assert_no_panic()
}

/// Ctrl-C and SIGTERM stop the proxy cleanly, exit status 0.
#[cfg(unix)]
#[test]
fn proxy_stops_cleanly_on_sigterm() -> Result<()> {
    let upstream = Upstream::start()?;
    let (proxy, _) = proxy(upstream.addr, &[])?;
    let _caller = connect(proxy.addr)?;
    let status = Command::new("kill")
        .args(["-TERM", &proxy.pid().to_string()])
        .status()?;
    ensure!(status.success(), "kill failed");
    let done = proxy.wait_exit()?;
    ensure!(done.status.success(), "exit status {:?}", done.status);
    ensure!(
        done.stdout.last().map(String::as_str) == Some("proxy stopped"),
        "{:?}",
        done.stdout
    );
    done.assert_no_panic()
}

// ---------------------------------------------------------------- UDP faults, measured

/// Sends `count` numbered datagrams through a UDP proxy with `faults` to a
/// socket of the test's own, and returns the numbers in the order they
/// arrived, with the proxy's log.
fn through_udp(faults: &[&str], count: u32) -> Result<(Vec<u32>, Vec<String>)> {
    let sink = udp_socket()?;
    let mut args = vec!["--udp", "--seed", "7"];
    args.extend_from_slice(faults);
    let (mut proxy, _) = proxy(sink.local_addr()?, &args)?;
    let sender = udp_socket()?;
    for n in 0..count {
        sender.send_to(&n.to_be_bytes(), proxy.addr)?;
    }
    sender.send_to(b"end", proxy.addr)?;
    // The end marker is itself subject to the faults: send it until it
    // comes, a few times at most.
    let mut got = Vec::new();
    let mut buf = [0u8; 16];
    sink.set_read_timeout(Some(Duration::from_millis(300)))?;
    let mut ends = 0;
    loop {
        match sink.recv(&mut buf) {
            Ok(4) => got.push(u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]])),
            Ok(_) => break,
            Err(_) if ends < 20 => {
                ends += 1;
                sender.send_to(b"end", proxy.addr)?;
            }
            Err(err) => return Err(err).context("the end marker never came"),
        }
    }
    proxy.proc.wait_for("forwarding datagrams")?;
    let log = proxy.kill()?;
    log.assert_no_panic()?;
    Ok((got, log.stdout))
}

fn logged(log: &[String], what: &str) -> Vec<u32> {
    log.iter()
        .filter(|line| line.contains(" -> server: datagram ") && line.ends_with(what))
        .filter_map(|line| {
            line.split(" datagram ")
                .nth(1)?
                .split(' ')
                .next()?
                .parse()
                .ok()
        })
        .collect()
}

/// `--drop 30`: about 30 in 100 datagrams are lost, and exactly the ones
/// the log names.
#[test]
fn udp_drop_loses_the_datagrams_it_logs() -> Result<()> {
    let (got, log) = through_udp(&["--drop", "30"], 200)?;
    let dropped = logged(&log, " dropped");
    // The log numbers datagrams from 1; ours are numbered from 0.
    let expected: Vec<u32> = (0..200).filter(|n| !dropped.contains(&(n + 1))).collect();
    ensure!(got == expected, "arrived {got:?}, dropped {dropped:?}");
    ensure!(
        (40..=80).contains(&dropped.len()),
        "{} of 200 dropped",
        dropped.len()
    );
    Ok(())
}

/// `--duplicate 20`: the datagrams the log names arrive twice, the others
/// once, in order.
#[test]
fn udp_duplicate_sends_the_datagrams_it_logs_twice() -> Result<()> {
    let (got, log) = through_udp(&["--duplicate", "20"], 200)?;
    let twice = logged(&log, " sent twice");
    let expected: Vec<u32> = (0..200)
        .flat_map(|n| vec![n; if twice.contains(&(n + 1)) { 2 } else { 1 }])
        .collect();
    ensure!(got == expected, "arrived {got:?}, doubled {twice:?}");
    ensure!(
        (20..=60).contains(&twice.len()),
        "{} of 200 doubled",
        twice.len()
    );
    Ok(())
}

/// `--reorder 20`: each datagram the log names arrives after the one that
/// followed it; nothing is lost or doubled.
#[test]
fn udp_reorder_lets_the_next_datagram_overtake() -> Result<()> {
    let (got, log) = through_udp(&["--reorder", "20"], 200)?;
    let held = logged(&log, " held back");
    let mut expected: Vec<u32> = (0..200).collect();
    for &n in &held {
        // Datagram n of the log is our n - 1; the next one overtakes it.
        let ours = (n - 1) as usize;
        if ours + 1 < expected.len() {
            expected.swap(ours, ours + 1);
        }
    }
    ensure!(got == expected, "arrived {got:?}, held {held:?}");
    ensure!(
        (20..=60).contains(&held.len()),
        "{} of 200 held",
        held.len()
    );
    Ok(())
}

/// The same seed makes the same choices for the same datagrams.
#[test]
fn udp_the_same_seed_gives_the_same_faults() -> Result<()> {
    let faults = ["--drop", "20", "--duplicate", "20", "--reorder", "20"];
    let (first, _) = through_udp(&faults, 100)?;
    let (again, _) = through_udp(&faults, 100)?;
    ensure!(first == again, "{first:?}\n{again:?}");
    Ok(())
}

// ---------------------------------------------------------------- the client

/// Through a stalled proxy, lesson 04's server and our client: the client
/// gives up after its --timeout, with one line, exit 1.
#[test]
fn client_gives_up_on_a_stalled_line_after_its_timeout() -> Result<()> {
    let server = Server::start("lesson04-server", &[])?;
    let (proxy, _) = proxy(server.addr, &["--stall-after", "10"])?;
    let start = Instant::now();
    cmd(CLIENT)?
        .args([&proxy.addr_arg(), "--timeout", "1"])
        .write_stdin("hello\nworld\n")
        .assert()
        .code(1)
        .stdout("HELLO\n")
        .stderr("error: no reply within 1 s; the server or the line went silent, hanging up\n");
    ensure!(start.elapsed() >= Duration::from_secs(1));
    proxy.kill()?.assert_no_panic()
}

/// Cut and reset reach the client as lesson 04's two endings.
#[test]
fn client_tells_a_cut_from_a_reset() -> Result<()> {
    let server = Server::start("lesson04-server", &[])?;
    for (fault, says) in [
        ("--cut-after", "error: server closed the connection\n"),
        ("--reset-after", "error: server reset the connection\n"),
    ] {
        let (proxy, _) = proxy(server.addr, &[fault, "10"])?;
        cmd(CLIENT)?
            .arg(proxy.addr_arg())
            .write_stdin("hello\nworld\n")
            .assert()
            .code(1)
            .stdout("HELLO\n")
            .stderr(says);
        proxy.kill()?.assert_no_panic()?;
    }
    Ok(())
}

#[test]
fn client_says_goodbye_with_q_through_the_proxy() -> Result<()> {
    let server = Server::start("lesson04-server", &[])?;
    let (proxy, _) = proxy(server.addr, &["--split", "2"])?;
    cmd(CLIENT)?
        .arg(proxy.addr_arg())
        .write_stdin("hello 你好\nq\n")
        .assert()
        .success()
        .stdout("HELLO 你好\nserver hung up, as asked\n");
    proxy.kill()?.assert_no_panic()
}

// ---------------------------------------------------------------- the Python twin

/// The Python proxy on port 0 in front of `to`.
fn python_proxy(to: SocketAddr, extra: &[&str]) -> Result<(Server, u64)> {
    let mut command = python(LESSON, "proxy.py");
    command
        .arg("127.0.0.1:0")
        .arg("--to")
        .arg(to.to_string())
        .args(extra);
    let mut server = Server::start_command(command)?;
    let seed = seed_line(&mut server.proc)?;
    Ok((server, seed))
}

/// The Python twin makes the same pieces as the Rust proxy from the same
/// seed: the generator and the choices are the same, line for line.
#[test]
fn interop_python_proxy_splits_like_the_rust_one() -> Result<()> {
    if !PYTHON3.is_here()? {
        return Ok(());
    }
    let rust = pieces_with_seed("42", 200)?;
    let upstream = Upstream::start()?;
    let (mut proxy, seed) = python_proxy(upstream.addr, &["--split", "7", "--seed", "42"])?;
    ensure!(seed == 42);
    let mut caller = connect(proxy.addr)?;
    let mut server = upstream.next()?;
    caller.write_all(&[b'x'; 200])?;
    caller.shutdown(Shutdown::Write)?;
    read_to_end_or_error(&mut server).1?;
    proxy.wait_for(" -> server: end of stream")?;
    let python = pieces(proxy.proc.seen(), "->");
    ensure!(python == rust, "Python {python:?}, Rust {rust:?}");
    proxy.kill()?;
    Ok(())
}

/// The Python twin passes a half-close on, cuts, resets and stalls as the
/// Rust proxy does, with lesson 13's client as the caller.
#[test]
fn interop_python_proxy_forwards_cuts_and_resets() -> Result<()> {
    if !PYTHON3.is_here()? {
        return Ok(());
    }
    let server = Server::start("lesson04-server", &[])?;
    for (fault, code, stdout, stderr) in [
        (None, 0, "HELLO\nWORLD\n", ""),
        (
            Some("--cut-after"),
            1,
            "HELLO\n",
            "error: server closed the connection\n",
        ),
        (
            Some("--reset-after"),
            1,
            "HELLO\n",
            "error: server reset the connection\n",
        ),
    ] {
        let extra: Vec<&str> = fault.map(|f| vec![f, "10"]).unwrap_or_default();
        let (proxy, _) = python_proxy(server.addr, &extra)?;
        cmd(CLIENT)?
            .arg(proxy.addr_arg())
            .write_stdin("hello\nworld\n")
            .assert()
            .code(code)
            .stdout(stdout)
            .stderr(stderr);
        proxy.kill()?;
    }
    Ok(())
}

/// The Python twin's UDP relay makes the same choices as the Rust one.
#[test]
fn interop_python_proxy_drops_the_same_datagrams() -> Result<()> {
    if !PYTHON3.is_here()? {
        return Ok(());
    }
    let (rust, _) = through_udp(&["--drop", "30"], 50)?;
    let sink = udp_socket()?;
    let (proxy, _) = python_proxy(
        sink.local_addr()?,
        &["--udp", "--seed", "7", "--drop", "30"],
    )?;
    let sender = udp_socket()?;
    let mut got = Vec::new();
    let mut buf = [0u8; 16];
    // One at a time, each answered by arrival or by silence, so the
    // Python relay has opened its session before the next one.
    sink.set_read_timeout(Some(Duration::from_millis(300)))?;
    for n in 0..50u32 {
        sender.send_to(&n.to_be_bytes(), proxy.addr)?;
        if let Ok(4) = sink.recv(&mut buf) {
            got.push(u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]));
        }
    }
    ensure!(got == rust, "Python {got:?}, Rust {rust:?}");
    proxy.kill()?;
    Ok(())
}

#[test]
fn interop_python_proxy_refuses_what_the_rust_one_refuses() -> Result<()> {
    if !PYTHON3.is_here()? {
        return Ok(());
    }
    for args in [
        &["127.0.0.1:0"][..],
        &["nowhere", "--to", "127.0.0.1:1"],
        &["--to", "127.0.0.1:1", "--drop", "5"],
        &["--to", "127.0.0.1:1", "--udp", "--split", "3"],
    ] {
        let mut command = python(LESSON, "proxy.py");
        command.args(args);
        let output = course_tests::run_with_stdin(command, "")?;
        let stderr = String::from_utf8_lossy(&output.stderr);
        ensure!(
            output.status.code() == Some(2),
            "{args:?}: {:?}",
            output.status
        );
        ensure!(stderr.lines().count() == 1, "{args:?}: {stderr:?}");
        ensure!(output.stdout.is_empty(), "{args:?}");
    }
    Ok(())
}

#[test]
fn interop_python_client_gives_up_on_a_stalled_line() -> Result<()> {
    if !PYTHON3.is_here()? {
        return Ok(());
    }
    let server = Server::start("lesson04-server", &[])?;
    let (proxy, _) = proxy(server.addr, &["--stall-after", "10"])?;
    let mut command = python(LESSON, "client.py");
    command.arg(proxy.addr_arg()).args(["--timeout", "1"]);
    let output = course_tests::run_with_stdin(command, "hello\nworld\n")?;
    ensure!(output.status.code() == Some(1), "{:?}", output.status);
    ensure!(
        output.stdout == b"HELLO\n",
        "{:?}",
        String::from_utf8_lossy(&output.stdout)
    );
    ensure!(
        String::from_utf8_lossy(&output.stderr)
            == "error: no reply within 1 s; the server or the line went silent, hanging up\n",
        "{:?}",
        String::from_utf8_lossy(&output.stderr)
    );
    proxy.kill()?.assert_no_panic()
}

// ---------------------------------------------------------------- the exercise

/// 10 MB over UDP through `--drop 30 --duplicate 10 --reorder 10` arrive
/// whole: the same bytes, the same sha256 on both sides.
#[test]
fn exercise1_moves_10_mb_whole_through_loss_duplicates_and_reordering() -> Result<()> {
    let dir = TempDir::with_prefix("lesson13-exercise1-")?;
    let original = dir.path().join("original.bin");
    let copy = dir.path().join("copy.bin");
    let data = Rng::new(13).bytes(10 * 1024 * 1024);
    std::fs::write(&original, &data)?;
    let copy_arg = copy.to_str().context("temp path is not UTF-8")?;
    let mut receiver = Server::start(EXERCISE1, &["--receive", copy_arg])?;
    let (mut proxy, _) = proxy(
        receiver.addr,
        &[
            "--udp",
            "--drop",
            "30",
            "--duplicate",
            "10",
            "--reorder",
            "10",
            "--seed",
            "1",
        ],
    )?;
    let sent = cmd(EXERCISE1)?
        .arg(proxy.addr_arg())
        .arg("--send")
        .arg(&original)
        .timeout(Duration::from_secs(120))
        .assert()
        .success();
    let stdout = String::from_utf8_lossy(&sent.get_output().stdout).into_owned();
    let hash = sha256_hex(&data);
    ensure!(
        stdout.contains(&format!("sha256 {hash}")),
        "sender said {stdout:?}"
    );
    receiver.wait_for(&format!("sha256 {hash}"))?;
    let finished = receiver.wait_exit()?;
    ensure!(finished.status.success(), "{finished:?}");
    ensure!(std::fs::read(&copy)? == data, "the copy differs");
    // The faults really fired.
    for what in [" dropped", " sent twice", " held back"] {
        proxy.wait_for(what)?;
    }
    proxy.kill()?.assert_no_panic()
}

/// Without a receiver the sender gives up in one line, exit 1.
#[test]
fn exercise1_gives_up_when_nobody_acknowledges() -> Result<()> {
    let dir = TempDir::with_prefix("lesson13-exercise1-nobody-")?;
    let file = dir.path().join("small.bin");
    std::fs::write(&file, b"hello")?;
    let nobody = course_tests::unused_udp_addr()?;
    cmd(EXERCISE1)?
        .arg(nobody.to_string())
        .arg("--send")
        .arg(&file)
        .assert()
        .code(1)
        .stdout("")
        .stderr(predicate::str::contains("was not acknowledged after"));
    Ok(())
}

// ---------------------------------------------------------------- the book's output
//
// The scenes of the chapter, recorded. The proxy runs with a fixed seed,
// so its choices are the same every run. Where a scene shows how a
// program's reads fell, the proxy holds each piece 200 ms, so that the
// reader is waiting when each one arrives.

/// Stops the proxy as a reader does, with Ctrl-C, and returns its log.
#[cfg(unix)]
fn stop(proxy: Server) -> Result<Vec<String>> {
    course_tests::chat_suite::interrupt(&proxy.proc)?;
    let done = proxy.wait_exit()?;
    done.assert_no_panic()?;
    ensure!(done.status.success(), "{:?}", done.status);
    Ok(done.stdout)
}

/// The proxy's command line as the chapter shows it.
fn proxy_command(to: &str, faults: &str) -> String {
    format!("cargo run -q -p lesson13-proxy -- --to {to} {faults}")
}

/// Lesson 02's server behind `--split 1 --delay 200`: its log shows one
/// `said` line per byte, while lesson 02's client, which reads exactly the
/// reply's length, prints the whole reply.
#[cfg(unix)]
#[test]
fn book_output_of_lesson02_through_split_1() -> Result<()> {
    let faults = "--split 1 --delay 200 --seed 1";
    let mut server = Server::start("lesson02-server", &[])?;
    let args: Vec<&str> = faults.split(' ').collect();
    let (mut proxy, _) = proxy(server.addr, &args)?;
    let client = run_with_stdin(lesson_client("lesson02-client", proxy.addr)?, "hello\n")?;
    ensure!(client.status.success(), "{client:?}");
    server.wait_for("disconnected")?;
    proxy.wait_for(" disconnected")?;
    let (proxy_addr, server_addr) = (proxy.addr, server.addr);
    let server_log = server.wait_exit()?.stdout;
    let proxy_log = stop(proxy)?;
    Transcript::new()
        .show_addr_as(proxy_addr, DEFAULT_ADDR)
        .show_addr_as(server_addr, "127.0.0.1:9002")
        .command(&proxy_command("127.0.0.1:9002", faults))
        .lines(&proxy_log[..3])
        .check("lesson13-split-proxy")?;
    Transcript::new()
        .show_addr_as(proxy_addr, DEFAULT_ADDR)
        .command("printf 'hello\\n' | cargo run -q -p lesson02-client -- 127.0.0.1:9013")
        .output(&String::from_utf8_lossy(&client.stdout))
        .check("lesson13-split-client")?;
    Transcript::new()
        .show_addr_as(server_addr, "127.0.0.1:9002")
        .command("cargo run -q -p lesson02-server")
        .lines(&server_log)
        .check("lesson13-split-server")
}

/// A lesson client's command, given the proxy's address.
fn lesson_client(name: &str, addr: SocketAddr) -> Result<Command> {
    let mut command = Command::new(course_tests::bin_path(name)?);
    command.arg(addr.to_string());
    Ok(command)
}

/// The "one `recv` is one message" client of many tutorials, through the
/// same proxy: its single `recv` returns the first piece of each reply.
#[cfg(unix)]
#[test]
fn book_output_of_a_single_recv_through_split_1() -> Result<()> {
    if !PYTHON3.is_here()? {
        return Ok(());
    }
    let server = Server::start("lesson03-server", &[])?;
    let (proxy, _) = proxy(
        server.addr,
        &["--split", "1", "--delay", "200", "--seed", "1"],
    )?;
    let script = NAIVE_CLIENT.replace("9013", &proxy.addr.port().to_string());
    let mut command = Command::new(course_tests::PYTHON);
    command.arg("-");
    let output = run_with_stdin(command, &script)?;
    ensure!(output.status.success(), "{output:?}");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    ensure!(stdout == "b'H'\nb'E'\n", "{stdout:?}");
    Transcript::new()
        .command(&format!("python3 - <<'EOF'\n{NAIVE_CLIENT}EOF"))
        .output(&stdout)
        .check("lesson13-single-recv")?;
    server.kill()?.assert_no_panic()?;
    proxy.kill()?.assert_no_panic()
}

const NAIVE_CLIENT: &str = r#"import socket
s = socket.create_connection(("127.0.0.1", 9013))
for word in [b"hello", b"world"]:
    s.sendall(word)
    print(s.recv(1024))    # one recv, as if it were one message
"#;

/// Lesson 07's framed client and server through `--split 3`, every frame
/// glued to the next (`--all-at-once`) and cut into pieces: whole frames.
#[cfg(unix)]
#[test]
fn book_output_of_lesson07_through_split_3() -> Result<()> {
    let faults = "--split 3 --seed 1";
    let mut server = Server::start("lesson07-server", &[])?;
    let args: Vec<&str> = faults.split(' ').collect();
    let (mut proxy, _) = proxy(server.addr, &args)?;
    let mut client = lesson_client("lesson07-client", proxy.addr)?;
    client.arg("--all-at-once");
    let output = run_with_stdin(client, "hello\n你好\nbye\n")?;
    ensure!(output.status.success(), "{output:?}");
    server.wait_for("closed the connection")?;
    proxy.wait_for(" disconnected")?;
    let pieces = pieces(proxy.proc.seen(), "->");
    ensure!(pieces.len() > 5, "the frames were not split: {pieces:?}");
    let server_addr = server.addr;
    Transcript::new()
        .show_addr_as(proxy.addr, DEFAULT_ADDR)
        .command(
            "printf 'hello\\n你好\\nbye\\n' | cargo run -q -p lesson07-client -- --all-at-once 127.0.0.1:9013",
        )
        .output(&String::from_utf8_lossy(&output.stdout))
        .check("lesson13-framing-client")?;
    let log = server.kill()?.stdout;
    Transcript::new()
        .show_addr_as(server_addr, "127.0.0.1:9007")
        .command("cargo run -q -p lesson07-server")
        .lines(&log)
        .check("lesson13-framing-server")?;
    proxy.kill()?.assert_no_panic()
}

/// Lesson 04's endings on demand: a cut, a reset and a stall, each by its
/// own proxy in front of lesson 04's server (idle timeout 3 s). The cut and
/// the reset reach lesson 04's client; the stall only a client with a clock
/// notices, lesson 13's, and the server's own idle timeout.
#[cfg(unix)]
#[test]
fn book_output_of_lesson04_cut_reset_and_stalled() -> Result<()> {
    let mut server = Server::start("lesson04-server", &["--idle-timeout", "3"])?;
    let mut clients = Transcript::new();
    let mut proxies = Transcript::new();
    for (fault, client, extra) in [
        ("--cut-after 10", "lesson04-client", None),
        ("--reset-after 10", "lesson04-client", None),
        ("--stall-after 10", CLIENT, Some("--timeout 2")),
    ] {
        let line = format!("{fault} --seed 1");
        let args: Vec<&str> = line.split(' ').collect();
        let (mut proxy, _) = proxy(server.addr, &args)?;
        let mut command = lesson_client(client, proxy.addr)?;
        command.args(
            extra
                .map(|e| e.split(' ').collect())
                .unwrap_or_else(Vec::new),
        );
        let output = run_with_stdin(command, "hello\nworld\n")?;
        ensure!(output.status.code() == Some(1), "{output:?}");
        let shown = match extra {
            Some(extra) => format!("{extra} 127.0.0.1:9013"),
            None => "127.0.0.1:9013".to_string(),
        };
        clients
            .command(&format!(
                "printf 'hello\\nworld\\n' | cargo run -q -p {client} -- {shown}"
            ))
            .output(&String::from_utf8_lossy(&output.stdout))
            .output(&String::from_utf8_lossy(&output.stderr));
        proxy.wait_for(" disconnected")?;
        let addr = proxy.addr;
        let log = stop(proxy)?;
        proxies
            .show_addr_as(addr, DEFAULT_ADDR)
            .show_addr_as(server.addr, "127.0.0.1:9004")
            .command(&proxy_command(
                "127.0.0.1:9004",
                &format!("{fault} --seed 1"),
            ))
            .lines(&log);
        server.wait_for(match fault {
            "--cut-after 10" => "closed the connection",
            "--reset-after 10" => "reset the connection",
            _ => "was idle for 3 s",
        })?;
    }
    clients.check("lesson13-endings-client")?;
    proxies.check("lesson13-endings-proxy")?;
    let server_addr = server.addr;
    let log = server.kill()?.stdout;
    Transcript::new()
        .show_addr_as(server_addr, "127.0.0.1:9004")
        .command("cargo run -q -p lesson04-server -- --idle-timeout 3")
        .lines(&log)
        .check("lesson13-endings-server")
}

/// Lesson 05's client through `--udp --drop 20 --duplicate 20`: a lost
/// datagram is asked again, and a doubled reply is taken as the answer to
/// the next question.
#[cfg(unix)]
#[test]
fn book_output_of_lesson05_through_drop_and_duplicate() -> Result<()> {
    let faults = "--udp --drop 20 --duplicate 20 --seed 8";
    let server = Server::start("lesson05-server", &[])?;
    let args: Vec<&str> = faults.split(' ').collect();
    let (proxy, _) = proxy(server.addr, &args)?;
    let output = run_with_stdin(
        lesson_client("lesson05-client", proxy.addr)?,
        "one\ntwo\nthree\nfour\nfive\n",
    )?;
    let addr = proxy.addr;
    let log = stop(proxy)?;
    Transcript::new()
        .show_addr_as(addr, DEFAULT_ADDR)
        .command("printf 'one\\ntwo\\nthree\\nfour\\nfive\\n' | cargo run -q -p lesson05-client -- 127.0.0.1:9013")
        .output(&String::from_utf8_lossy(&output.stdout))
        .output(&String::from_utf8_lossy(&output.stderr))
        .check("lesson13-udp-client")?;
    Transcript::new()
        .show_addr_as(addr, DEFAULT_ADDR)
        .show_addr_as(server.addr, "127.0.0.1:9005")
        .command(&proxy_command("127.0.0.1:9005", faults))
        .lines(&log)
        .check("lesson13-udp-proxy")?;
    server.kill()?.assert_no_panic()
}
