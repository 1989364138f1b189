//! Lesson 10: lesson 06's chat room on one thread, with an event loop.
//!
//! The server speaks lesson 06's protocol exactly, so it runs lesson 06's
//! whole protocol suite (tests/src/chat_suite.rs), lesson06-client included.
//! The lesson's client, lesson10-client, is that same client with this
//! lesson's address: it gets the command-line contract, a chat of its own
//! through the server, and records the book's output. The other tests are
//! this lesson's own: one thread whatever the number of members, running
//! out of files, the Python twin, the exercise.

use anyhow::{Context, Result, anyhow, bail, ensure};
use course_tests::chaos;
use course_tests::chat_suite::{self, exit_with_stdin_open, interrupt, start_client_of, type_line};
use course_tests::contract;
use course_tests::tools::PYTHON3;
use course_tests::transcript::Transcript;
use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use course_tests::{Chatter, Proc, Server, cmd, connect, exchange, python, run_with_stdin};
use predicates::prelude::*;
use socket2::{Domain, Socket, Type};

const SERVER: &str = "lesson10-server";
/// The client of the lesson: lesson 06's code, with this lesson's address.
const CLIENT: &str = "lesson10-client";
const LESSON: &str = "lesson10-event-loop";
const DEFAULT_ADDR: &str = "127.0.0.1:9010";

// ---------------------------------------------------------------- the command line

course_tests::test_table! {
    server_prints_help: contract::help_shows(SERVER, DEFAULT_ADDR, &["--max-clients"]);
    client_prints_help: contract::help_shows(
        CLIENT,
        DEFAULT_ADDR,
        &["lesson 06's chat client, pointed at lesson 10's port"],
    );
    server_dies_on_bad_address: contract::bad_address_is_refused(SERVER);
    client_dies_on_bad_address: contract::bad_address_is_refused(CLIENT);
    client_explains_when_no_server_listens: contract::client_explains_no_server(CLIENT, SERVER);
}

#[test]
fn server_dies_on_bad_arguments() -> Result<()> {
    for (flag, bad) in [("--max-clients", "0"), ("--max-clients", "many")] {
        cmd(SERVER)?
            .args(["127.0.0.1:0", flag, bad])
            .assert()
            .code(2)
            .stdout("")
            .stderr(predicate::str::contains(flag))
            .stderr(predicate::str::contains("panicked").not());
    }
    Ok(())
}

// ---------------------------------------------------------------- the chat protocol
//
// Lesson 06's suite, run against lesson10-server.

course_tests::chat_suite_tests!(SERVER);

course_tests::test_table! {
    a_flood_from_one_member_neither_cuts_off_nor_drowns_the_others:
        chat_suite::a_flood_from_one_member_neither_cuts_off_nor_drowns_the_others(SERVER);

    client_sends_piped_lines_and_exits_at_end_of_input:
        chat_suite::client_sends_piped_lines_and_exits_at_end_of_input(SERVER);
    client_reports_when_the_server_goes_away:
        chat_suite::client_reports_when_the_server_goes_away(SERVER);
}

// ---------------------------------------------------------------- the client

/// lesson10-client in lesson 10's room: it joins, takes a name, hears alice,
/// talks to her, asks `/who`, and `/quit` alone ends it, with status 0.
#[test]
fn client_talks_with_the_room_and_quits() -> Result<()> {
    let mut server = Server::start(SERVER, &[])?;
    let mut alice = Chatter::named(server.addr, "alice")?;
    let mut client = start_client_of(CLIENT, &server)?;
    let me = welcomed_as(&client)?;
    alice.wait_for(&format!("* {me} joined"))?;
    type_line(&mut client, "/nick rusty")?;
    client.wait_for("* you are now rusty")?;
    alice.wait_for(&format!("* {me} is now rusty"))?;
    alice.say("hello rusty")?;
    client.wait_for("alice: hello rusty")?;
    type_line(&mut client, "hi alice, 你好")?;
    alice.expect("rusty: hi alice, 你好")?;
    type_line(&mut client, "/who")?;
    client.wait_for("* 2 in the room: alice, rusty")?;
    type_line(&mut client, "/quit")?;
    client.wait_for("* bye")?;
    // Its stdin is still open: the client ends because of /quit, not
    // because its input ended.
    client.wait_for_stdout_to_close()?;
    let done = client.wait_exit()?;
    ensure!(done.status.success(), "{done:?}");
    ensure!(done.stderr.is_empty(), "{done:?}");
    done.assert_no_panic()?;
    alice.expect("* rusty left")?;
    server.wait_for(&format!("client {me} left with /quit"))?;
    Ok(())
}

// ---------------------------------------------------------------- one thread

/// However many members the room has, the server has one thread, the one
/// that runs the event loop; even Ctrl-C comes to it through the poll (on
/// Unix). Lesson 06's server adds two threads per member.
#[cfg(target_os = "linux")]
#[test]
fn serves_every_member_on_one_thread() -> Result<()> {
    let server = Server::start(SERVER, &["--max-clients", "200"])?;
    let threads = || course_tests::threads(server.proc.id());
    let mut room = vec![Chatter::join(server.addr)?];
    let before = threads()?;
    ensure!(before == 1, "{before} threads with the first member");
    for _ in 0..99 {
        room.push(Chatter::join(server.addr)?);
    }
    // The last one's welcome came from the loop: all 100 are in the room.
    let mut last = Chatter::named(server.addr, "last")?;
    last.say("hello, all of you")?;
    for member in &mut room {
        member.wait_for("last: hello, all of you")?;
    }
    let during = threads()?;
    ensure!(during == before, "{during} threads with 101 members");
    Ok(())
}

// Out of files: "Too many open files" leaves the caller in the queue, and
// mio reports the listener only when somebody new calls, so the server must
// try again by itself. `tests/limits.rs` shows it does, for this server and
// its twin (`lesson10_survives_running_out_of_open_files`).

// ---------------------------------------------------------------- interop

#[test]
fn interop_lesson06_python_client_with_rust_server() -> Result<()> {
    if !PYTHON3.is_here()? {
        return Ok(());
    }
    let server = Server::start(SERVER, &[])?;
    let mut alice = Chatter::named(server.addr, "alice")?;
    let mut client = python("lesson06-threaded-chat", "client.py");
    client.arg(server.addr_arg());
    let done = run_with_stdin(client, "/nick py\nhello from python\n/who\n")?;
    ensure!(done.status.success(), "python client failed: {done:?}");
    let stdout = String::from_utf8_lossy(&done.stdout);
    ensure!(stdout.contains("* 2 in the room: alice, py\n"), "{stdout}");
    alice.wait_for("py: hello from python")?;
    alice.expect("* py left")?;
    Ok(())
}

#[test]
fn interop_rust_client_with_python_server() -> Result<()> {
    if !PYTHON3.is_here()? {
        return Ok(());
    }
    let mut server = chat_suite::python_server(LESSON, &[])?;
    let mut alice = Chatter::named(server.addr, "alice")?;
    cmd(CLIENT)?
        .arg(server.addr_arg())
        .write_stdin("/nick rusty\n/who\nhi from rust 你好\n")
        .assert()
        .success()
        .stdout(predicate::str::contains("* you are now rusty\n"))
        .stdout(predicate::str::contains("* 2 in the room: alice, rusty\n"));
    alice.wait_for("rusty: hi from rust 你好")?;
    alice.expect("* rusty left")?;
    server.wait_for(" disconnected")?;
    server.kill()?.assert_no_panic()
}

course_tests::chat_twin_tests!(LESSON);

course_tests::test_table! {
    interop_python_server_is_not_drowned_by_a_flood_either:
        chat_suite::twin_is_not_drowned_by_a_flood(LESSON);
}

// ---------------------------------------------------------------- the book's output
//
// Regenerate with
// `UPDATE_TRANSCRIPTS=1 cargo test -p course-tests --test lesson10`.

/// The client's own address, read from its welcome line.
fn welcomed_as(client: &Proc) -> Result<String> {
    client
        .seen()
        .iter()
        .find_map(|line| line.strip_prefix("* welcome, you are "))
        .and_then(|rest| rest.split(';').next())
        .map(str::to_string)
        .context("no welcome line yet")
}

/// lesson10-client (lesson 06's client) in lesson 10's room: two members
/// talk, bob leaves, Ctrl-C stops the server.
#[cfg(target_os = "linux")]
#[test]
fn book_output_of_a_chat() -> Result<()> {
    let mut server = Server::start(SERVER, &[])?;
    let mut alice = start_client_of(CLIENT, &server)?;
    type_line(&mut alice, "/nick alice")?;
    alice.wait_for("* you are now alice")?;
    let mut bob = start_client_of(CLIENT, &server)?;
    alice.wait_for(" joined")?;
    type_line(&mut bob, "/nick bob")?;
    bob.wait_for("* you are now bob")?;
    alice.wait_for(" is now bob")?;
    type_line(&mut bob, "hello alice")?;
    alice.wait_for("bob: hello alice")?;
    type_line(&mut alice, "/who")?;
    alice.wait_for("* 2 in the room: alice, bob")?;
    let names = [
        (welcomed_as(&alice)?, "127.0.0.1:50312"),
        (welcomed_as(&bob)?, "127.0.0.1:50314"),
    ];
    type_line(&mut bob, "/quit")?;
    alice.wait_for("* bob left")?;
    let bob = bob.wait_exit()?;
    ensure!(bob.status.success(), "bob: {bob:?}");
    interrupt(&server.proc)?;
    alice.wait_for("* server shutting down")?;
    let alice = exit_with_stdin_open(alice)?;
    ensure!(alice.status.code() == Some(1), "alice: {alice:?}");
    server.wait_for("server stopped")?;
    let addr = server.addr;
    let done = server.wait_exit()?;
    ensure!(done.status.success(), "{done:?}");

    let transcript = |name: &str, command: &str, lines: &[String], errors: &str| {
        let mut t = Transcript::new();
        t.show_addr_as(addr, DEFAULT_ADDR);
        for (real, shown) in &names {
            t.show_addr_as(real, shown);
        }
        t.command(command).lines(lines).output(errors).check(name)
    };
    transcript(
        "lesson10-alice",
        "(printf '/nick alice\\n'; sleep 5; printf '/who\\n'; sleep 600) |\n    cargo run -q -p lesson10-client",
        &alice.stdout,
        &alice.stderr,
    )?;
    transcript(
        "lesson10-bob",
        "(printf '/nick bob\\n'; sleep 1; printf 'hello alice\\n'; sleep 10; printf '/quit\\n') |\n    cargo run -q -p lesson10-client",
        &bob.stdout,
        &bob.stderr,
    )?;
    transcript(
        "lesson10-server",
        "cargo run -p lesson10-server",
        &done.stdout,
        "",
    )
}

// ---------------------------------------------------------------- the exercise
//
// Exercise solution (lessons/lesson10-event-loop/exercise1).

const EXERCISE: &str = "lesson10-exercise1";

#[test]
fn exercise1_echoes_to_every_caller_at_once_on_one_thread() -> Result<()> {
    let mut server = Server::start(EXERCISE, &[])?;
    let mut first = connect(server.addr)?;
    exchange(&mut first, b"first")?;
    // The second caller comes directly (in chaos mode the first comes
    // through a proxy), so that the log line below has its own address.
    let mut second = connect(server.direct)?;
    exchange(&mut second, b"second")?;
    exchange(&mut first, b"still me")?;
    #[cfg(target_os = "linux")]
    {
        let threads = course_tests::threads(server.proc.id())?;
        ensure!(threads == 1, "{threads} threads with two callers");
    }
    // With several callers at once, the log says which one hung up.
    let second_addr = second.local_addr()?;
    drop(second);
    server.wait_for(&format!("client {second_addr} disconnected"))?;
    server.kill()?.assert_no_panic()
}

/// How long the burst's sender may make no progress before it tells the
/// reader that the server has stopped taking the burst (see below).
const STALLED: Duration = Duration::from_millis(200);

/// What the burst's sender reports to the reader.
enum Burst {
    /// Nothing went out for [`STALLED`]: every buffer between the server
    /// and us is full, and the server keeps the rest of its replies itself.
    Stalled,
    /// Every byte went out.
    Sent,
}

/// Sends `data` from a second thread while the caller's thread reads
/// nothing, then shuts our sending side if `then_shut`. A blocking write
/// that took nothing for [`STALLED`] is how the sender sees that the server
/// stopped reading; it says so once, then goes on until all is sent, or
/// until TIMEOUT without progress.
fn send_in_background(
    conn: &TcpStream,
    data: Vec<u8>,
    then_shut: bool,
) -> Result<(mpsc::Receiver<Burst>, thread::JoinHandle<Result<()>>)> {
    let mut sender = conn.try_clone()?;
    sender.set_write_timeout(Some(STALLED))?;
    let (news, progress) = mpsc::channel();
    let sending = thread::spawn(move || -> Result<()> {
        let mut sent = 0;
        let mut stalled = Duration::ZERO;
        while sent < data.len() {
            match sender.write(&data[sent..]) {
                Ok(n) => {
                    sent += n;
                    stalled = Duration::ZERO;
                }
                Err(err) if matches!(err.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    if stalled.is_zero() {
                        let _ = news.send(Burst::Stalled); // the reader may be gone
                    }
                    stalled += STALLED;
                    ensure!(
                        stalled < course_tests::TIMEOUT,
                        "the server took nothing more after {sent} bytes"
                    );
                }
                Err(err) if err.kind() == ErrorKind::Interrupted => {}
                Err(err) => {
                    return Err(err).with_context(|| format!("sending, after {sent} bytes"));
                }
            }
        }
        if then_shut {
            sender
                .shutdown(std::net::Shutdown::Write)
                .context("shutting our sending side")?;
        }
        let _ = news.send(Burst::Sent);
        Ok(())
    });
    Ok((progress, sending))
}

/// Waits until the server has had to keep replies itself (the sender is
/// stuck), or the whole burst is out. Says which, for the messages.
fn wait_for_the_burst(
    progress: &mpsc::Receiver<Burst>,
    sending: thread::JoinHandle<Result<()>>,
) -> Result<(&'static str, thread::JoinHandle<Result<()>>)> {
    let Ok(first) = progress.recv_timeout(course_tests::TIMEOUT) else {
        // The sender ended without a word: its error says why.
        sending
            .join()
            .map_err(|_| anyhow!("the sender panicked"))??;
        bail!("the sender said nothing");
    };
    let when = match first {
        Burst::Stalled => "while the burst was stuck",
        Burst::Sent => "after the whole burst was sent",
    };
    Ok((when, sending))
}

#[test]
fn exercise1_echoes_a_burst_that_the_caller_reads_late() -> Result<()> {
    chaos::bulk(); // 8 MB
    // 8 MB, more than the buffers between the server and us can hold (on
    // Linux a send buffer grows to 4 MB by default, and ours receives 4 KB):
    // sooner or later `write` takes only part of a reply, or nothing, and
    // the server must keep the rest and send it when our socket has room.
    // A server that drops what `write` did not take loses bytes here; one
    // that does not try again when the socket becomes writable leaves us
    // waiting until TIMEOUT.
    const LEN: usize = 8 * 1024 * 1024;
    let server = Server::start(EXERCISE, &[])?;
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None)?;
    socket.set_recv_buffer_size(4096)?;
    socket.connect_timeout(&server.addr.into(), course_tests::TIMEOUT)?;
    let mut late: TcpStream = socket.into();
    late.set_read_timeout(Some(course_tests::TIMEOUT))?;
    // Random letters, so that a lost or repeated piece cannot line up with
    // the bytes around it (a repeating alphabet would hide a loss of 26).
    let mut rng = course_tests::Rng::new(0x5eed_0010);
    let burst: Vec<u8> = (0..LEN).map(|_| b'a' + rng.between(0, 25) as u8).collect();
    let expected = burst.to_ascii_uppercase();

    let (progress, sending) = send_in_background(&late, burst, false)?;

    // Read nothing until the server has had to keep replies itself: the
    // sender is stuck, or has sent all 8 MB (more than the buffers hold).
    // Whichever comes first, what follows must hold.
    let (when, sending) = wait_for_the_burst(&progress, sending)?;
    // Meanwhile the server still answers somebody else at once.
    let mut other = connect(server.addr)?;
    exchange(&mut other, b"not kept waiting").with_context(|| when.to_string())?;

    // Now every byte, in order, checked as it comes, so that bytes lost in
    // the middle are named where they went missing.
    let mut got = 0;
    let mut buf = vec![0; 64 * 1024];
    while got < LEN {
        let n = match late.read(&mut buf) {
            Ok(n) => n,
            Err(err) if err.kind() == ErrorKind::Interrupted => continue,
            Err(err) => {
                return Err(err).with_context(|| format!("reading the echo after {got} bytes"));
            }
        };
        ensure!(n > 0, "the server hung up after {got} of {LEN} bytes");
        ensure!(n <= LEN - got, "{} bytes more than we sent", got + n - LEN);
        if let Some(at) = (0..n).find(|&i| buf[i] != expected[got + i]) {
            bail!("the echo differs from what we sent at byte {}", got + at);
        }
        got += n;
    }
    sending
        .join()
        .map_err(|_| anyhow!("the sender panicked"))??;
    exchange(&mut other, b"and still served")?;
    server.kill()?.assert_no_panic()
}

#[test]
fn exercise1_sends_every_reply_to_a_caller_who_is_done_sending() -> Result<()> {
    chaos::bulk(); // 8 MB
    // A caller sends 8 MB and shuts its sending side, reading nothing until
    // the server has had to keep replies (as in the burst above). Every
    // reply must come back, and then the server must hang up. A server that
    // hangs up at Ok(0) loses what it still holds in `unsent`, when its
    // socket happens to be full at that moment (not every run); one that
    // forgets to hang up once `unsent` is empty keeps us waiting here.
    const LEN: usize = 8 * 1024 * 1024;
    let server = Server::start(EXERCISE, &[])?;
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None)?;
    socket.set_recv_buffer_size(4096)?;
    socket.connect_timeout(&server.addr.into(), course_tests::TIMEOUT)?;
    let mut caller: TcpStream = socket.into();
    caller.set_read_timeout(Some(course_tests::TIMEOUT))?;
    let mut rng = course_tests::Rng::new(0x5eed_0011);
    let data: Vec<u8> = (0..LEN).map(|_| b'a' + rng.between(0, 25) as u8).collect();
    let expected = data.to_ascii_uppercase();
    let (progress, sending) = send_in_background(&caller, data, true)?;
    let (when, sending) = wait_for_the_burst(&progress, sending)?;
    let got = course_tests::read_until_hung_up(&mut caller)?;
    sending
        .join()
        .map_err(|_| anyhow!("the sender panicked"))??;
    ensure!(
        got.len() == LEN,
        "{} of {LEN} bytes came back before the server hung up (reading began {when})",
        got.len()
    );
    ensure!(got == expected, "the echo differs from what we sent");
    server.kill()?.assert_no_panic()
}

#[test]
fn exercise1_prints_help() -> Result<()> {
    contract::help_works(EXERCISE, DEFAULT_ADDR)
}
