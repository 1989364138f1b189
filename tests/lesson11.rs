//! Lesson 11: lesson 06's chat room as async tasks on tokio, and a client
//! that is one task with `select!`.
//!
//! The server speaks lesson 06's protocol exactly, so it runs lesson 06's
//! whole protocol suite (tests/src/chat_suite.rs), lesson06-client included.
//! Below the suite: lesson11-client against all three chat servers, the
//! graceful Ctrl-C with its deadline, the runtime's threads, the asyncio
//! twins, the book's output.

use std::io::Write;

use anyhow::{Context, Result, ensure};
use course_tests::chaos;
use course_tests::chat_suite::{self, exit_with_stdin_open, interrupt, type_line};
use course_tests::contract;
use course_tests::tools::PYTHON3;
use course_tests::transcript::Transcript;
use course_tests::{Chatter, PlainServer, Proc, Server, TIMEOUT, cmd, python, run_with_stdin};
use predicates::prelude::*;

const SERVER: &str = "lesson11-server";
const CLIENT: &str = "lesson11-client";
const LESSON: &str = "lesson11-async";
const DEFAULT_ADDR: &str = "127.0.0.1:9011";

// ---------------------------------------------------------------- the command line

course_tests::test_table! {
    server_prints_help: contract::help_shows(SERVER, DEFAULT_ADDR, &["--max-clients"]);
    client_prints_help: contract::help_works(CLIENT, DEFAULT_ADDR);
    server_dies_on_bad_address: contract::bad_address_is_refused(SERVER);
    client_dies_on_bad_address: contract::bad_address_is_refused(CLIENT);
    client_explains_when_no_server_listens: contract::client_explains_no_server(CLIENT, SERVER);
}

#[test]
fn server_dies_on_bad_arguments() -> Result<()> {
    cmd(SERVER)?
        .args(["127.0.0.1:0", "--max-clients", "0"])
        .assert()
        .code(2)
        .stdout("")
        .stderr(predicate::str::contains("--max-clients"))
        .stderr(predicate::str::contains("panicked").not());
    Ok(())
}

// ---------------------------------------------------------------- the chat protocol
//
// Lesson 06's suite, run against lesson11-server.

course_tests::chat_suite_tests!(SERVER);

course_tests::test_table! {
    a_flood_from_one_member_neither_cuts_off_nor_drowns_the_others:
        chat_suite::a_flood_from_one_member_neither_cuts_off_nor_drowns_the_others(SERVER);
}

// lesson06-client in this room; this lesson's own client has tests of the
// same names below.
course_tests::test_table! {
    lesson06_client_sends_piped_lines_and_exits_at_end_of_input:
        chat_suite::client_sends_piped_lines_and_exits_at_end_of_input(SERVER);
    lesson06_client_reports_when_the_server_goes_away:
        chat_suite::client_reports_when_the_server_goes_away(SERVER);
}

// ---------------------------------------------------------------- the client

/// A lesson11-client process in `server`'s room.
fn start_client(server: &Server) -> Result<Proc> {
    let mut client = Proc::spawn(CLIENT, &[&server.addr_arg()])?;
    client.wait_for("* welcome, you are ")?;
    Ok(client)
}

/// The one-task client talks and listens at once, in every chat room of
/// the course: lessons 06, 10 and 11.
fn client_talks_and_listens_in(server_bin: &str) -> Result<()> {
    let server = Server::start(server_bin, &[])?;
    let mut alice = Chatter::named(server.addr, "alice")?;
    let mut client = start_client(&server)?;
    let joined = alice.line()?;
    ensure!(joined.ends_with(" joined"), "alice got {joined:?}");
    type_line(&mut client, "/nick tokio")?;
    client.wait_for("* you are now tokio")?;
    // A line from the room arrives while the client waits for the keyboard.
    alice.say("hello tokio")?;
    client.wait_for("alice: hello tokio")?;
    type_line(&mut client, "hello alice")?;
    alice.wait_for("tokio: hello alice")?;
    type_line(&mut client, "/quit")?;
    let done = client.wait_exit()?;
    ensure!(done.status.success(), "{done:?}");
    ensure!(
        done.stdout.last().map(String::as_str) == Some("* bye"),
        "{done:?}"
    );
    done.assert_no_panic()?;
    alice.wait_for("* tokio left")?;
    Ok(())
}

course_tests::test_table! {
    client_talks_and_listens_with_lesson11_server: client_talks_and_listens_in(SERVER);
    client_talks_and_listens_with_lesson10_server: client_talks_and_listens_in("lesson10-server");
    client_talks_and_listens_with_lesson06_server: client_talks_and_listens_in("lesson06-server");
}

#[test]
fn client_sends_piped_lines_and_exits_at_end_of_input() -> Result<()> {
    let server = Server::start(SERVER, &[])?;
    let mut alice = Chatter::named(server.addr, "alice")?;
    cmd(CLIENT)?
        .arg(server.addr_arg())
        .write_stdin("/nick piped\nline one\nline two\n")
        .assert()
        .success()
        .stdout(predicate::str::starts_with("* welcome, you are 127.0.0.1:"))
        .stdout(predicate::str::contains("* you are now piped\n"))
        .stdout(predicate::str::contains(">>").not());
    alice.wait_for("piped: line one")?;
    alice.expect("piped: line two")?;
    alice.expect("* piped left")?;
    Ok(())
}

#[test]
fn client_reports_when_the_server_goes_away() -> Result<()> {
    let server = Server::start(SERVER, &[])?;
    let client = start_client(&server)?;
    server.kill()?;
    // Its stdin is still open: the select! sees the server's end.
    let done = exit_with_stdin_open(client)?;
    ensure!(done.status.code() == Some(1), "{done:?}");
    ensure!(
        done.stderr.trim() == "error: server closed the connection",
        "{done:?}"
    );
    done.assert_no_panic()?;
    Ok(())
}

#[test]
fn client_refuses_an_endless_line_from_the_server() -> Result<()> {
    chat_suite::client_refuses_an_endless_line_from_the_server(CLIENT)
}

#[cfg(target_os = "linux")]
#[test]
fn client_at_a_terminal_redraws_the_prompt_under_an_incoming_line() -> Result<()> {
    if !PYTHON3.is_here()? {
        return Ok(());
    }
    chat_suite::client_at_a_terminal_redraws_the_prompt(CLIENT, SERVER)
}

#[test]
fn client_shows_invalid_utf8_from_the_server() -> Result<()> {
    let plain = PlainServer::start(|mut stream| {
        stream.write_all(&[b'o', b'k', 0xff, b'\n'])?;
        let _ = course_tests::read_to_close(&mut stream)?;
        Ok(Vec::new())
    })?;
    cmd(CLIENT)?
        .arg(plain.addr.to_string())
        .assert()
        .success()
        .stdout("ok\u{fffd}\n");
    plain.join()?;
    Ok(())
}

/// A line from the server arrives in two pieces, and between them a typed
/// line wins the `select!`. The server branch's future is dropped with the
/// first piece read: with a cancellation-safe read, no byte is lost.
#[test]
fn client_loses_nothing_when_a_typed_line_wins_the_select() -> Result<()> {
    const ROUNDS: usize = 50;
    let (first_sent, first_piece) = std::sync::mpsc::channel();
    let plain = PlainServer::start(move |mut stream| {
        stream.set_nodelay(true)?;
        let mut typed = std::io::BufReader::new(stream.try_clone()?);
        for n in 0..ROUNDS {
            stream.write_all(format!("line {n:03} ").as_bytes())?;
            let _ = first_sent.send(n);
            // The rest only after the client sent a typed line.
            let mut line = String::new();
            std::io::BufRead::read_line(&mut typed, &mut line)?;
            stream.write_all(b"in two pieces\n")?;
        }
        let _ = course_tests::read_to_close(&mut stream)?;
        Ok(Vec::new())
    })?;
    let mut client = Proc::spawn(CLIENT, &[&plain.addr.to_string()])?;
    for n in 0..ROUNDS {
        first_piece.recv_timeout(TIMEOUT)?;
        type_line(&mut client, &format!("typed {n}"))?;
        client.wait_for(&format!("line {n:03} in two pieces"))?;
    }
    let done = client.wait_exit()?;
    ensure!(done.status.success(), "{done:?}");
    let expected: Vec<String> = (0..ROUNDS)
        .map(|n| format!("line {n:03} in two pieces"))
        .collect();
    ensure!(done.stdout == expected, "got {:?}", done.stdout);
    plain.join()?;
    Ok(())
}

// ---------------------------------------------------------------- Ctrl-C

/// Ctrl-C with a member who reads nothing and whose writer is stuck in
/// `write_all`: the others get the goodbye, and the server exits 0 at its
/// deadline (5 s) instead of waiting for the one who does not read.
///
/// A first room measures how many lines the stuck member's buffers and
/// queue take before the server hangs up; the second room sends 100 fewer,
/// so that the buffers are full and the queue is not.
#[cfg(unix)]
#[test]
fn ctrl_c_says_goodbye_and_a_member_who_does_not_read_cannot_hold_it_up() -> Result<()> {
    chaos::exempt(chat_suite::STUCK);
    let measure = Server::start(SERVER, &[])?;
    let (_, _, _, too_many) = chat_suite::flood_a_stuck_member(&measure, 5000)?;
    drop(measure);
    ensure!(too_many > 150, "hung up on after only {too_many} lines");

    let mut server = Server::start(SERVER, &[])?;
    let (stuck, mut alice, mut bob, sent) =
        chat_suite::flood_a_stuck_member(&server, too_many - 100)?;
    ensure!(
        sent == too_many - 100,
        "hung up on after {sent} lines this time"
    );
    interrupt(&server.proc)?;
    let last = alice.lines_until_closed()?;
    ensure!(last == ["* server shutting down"], "alice got {last:?}");
    bob.wait_for("* server shutting down")?;
    server.wait_for("server stopped")?;
    let done = server.wait_exit()?;
    ensure!(done.status.success(), "{done:?}");
    ensure!(
        !done.stdout.iter().any(|line| line.contains("too slow")),
        "the stuck member was hung up on before Ctrl-C: {:?}",
        done.stdout
    );
    done.assert_no_panic()?;
    drop(stuck);
    Ok(())
}

// ---------------------------------------------------------------- threads

/// However many members, the server runs on the runtime's threads: the
/// main thread and one worker per core. (Lesson 06 adds two per member.)
#[cfg(target_os = "linux")]
#[test]
fn serves_every_member_on_the_runtimes_few_threads() -> Result<()> {
    let server = Server::start(SERVER, &["--max-clients", "200"])?;
    let threads = || course_tests::threads(server.proc.id());
    let cores = std::thread::available_parallelism()?.get() as u64;
    let before = threads()?;
    ensure!(before <= cores + 1, "{before} threads on {cores} cores");
    let mut room = Vec::new();
    for _ in 0..100 {
        room.push(Chatter::join(server.addr)?);
    }
    let mut last = Chatter::named(server.addr, "last")?;
    last.say("hello, all of you")?;
    for member in &mut room {
        member.wait_for("last: hello, all of you")?;
    }
    let during = threads()?;
    ensure!(
        during == before,
        "{during} threads with 101 members, {before} before"
    );
    Ok(())
}

// ---------------------------------------------------------------- interop

#[test]
fn interop_python_client_with_rust_server() -> Result<()> {
    if !PYTHON3.is_here()? {
        return Ok(());
    }
    let server = Server::start(SERVER, &[])?;
    let mut alice = Chatter::named(server.addr, "alice")?;
    let mut client = python(LESSON, "client.py");
    client.arg(server.addr_arg());
    let done = run_with_stdin(client, "/nick py\nhello from python\n/who\n")?;
    ensure!(done.status.success(), "python client failed: {done:?}");
    let stdout = String::from_utf8_lossy(&done.stdout);
    ensure!(
        stdout.starts_with("* welcome, you are 127.0.0.1:")
            && stdout.contains("* you are now py\n")
            && stdout.contains("* 2 in the room: alice, py\n"),
        "{stdout}"
    );
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
// `UPDATE_TRANSCRIPTS=1 cargo test -p course-tests --test lesson11`.

fn welcomed_as(client: &Proc) -> Result<String> {
    client
        .seen()
        .iter()
        .find_map(|line| line.strip_prefix("* welcome, you are "))
        .and_then(|rest| rest.split(';').next())
        .map(str::to_string)
        .context("no welcome line yet")
}

/// lesson11-client and lesson06-client in lesson 11's room; Ctrl-C stops it.
#[cfg(target_os = "linux")]
#[test]
fn book_output_of_a_chat() -> Result<()> {
    let mut server = Server::start(SERVER, &[])?;
    let mut alice = start_client(&server)?;
    type_line(&mut alice, "/nick alice")?;
    alice.wait_for("* you are now alice")?;
    let mut bob = chat_suite::start_client(&server)?;
    alice.wait_for(" joined")?;
    type_line(&mut bob, "/nick bob")?;
    bob.wait_for("* you are now bob")?;
    alice.wait_for(" is now bob")?;
    type_line(&mut bob, "hello from lesson 06's client")?;
    alice.wait_for("bob: hello from lesson 06's client")?;
    type_line(&mut alice, "hello from one task")?;
    bob.wait_for("alice: hello from one task")?;
    let names = [
        (welcomed_as(&alice)?, "127.0.0.1:50312"),
        (welcomed_as(&bob)?, "127.0.0.1:50314"),
    ];
    interrupt(&server.proc)?;
    alice.wait_for("* server shutting down")?;
    bob.wait_for("* server shutting down")?;
    let alice = exit_with_stdin_open(alice)?;
    let bob = exit_with_stdin_open(bob)?;
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
        "lesson11-alice",
        "(printf '/nick alice\\n'; sleep 5; printf 'hello from one task\\n'; sleep 600) |\n    cargo run -q -p lesson11-client",
        &alice.stdout,
        &alice.stderr,
    )?;
    transcript(
        "lesson11-bob",
        "(printf '/nick bob\\n'; sleep 1; printf \"hello from lesson 06's client\\n\"; sleep 600) |\n    cargo run -q -p lesson06-client -- 127.0.0.1:9011",
        &bob.stdout,
        &bob.stderr,
    )?;
    transcript(
        "lesson11-server",
        "cargo run -p lesson11-server",
        &done.stdout,
        "",
    )
}
