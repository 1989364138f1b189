//! Lesson 06: a threaded chat room, and a client that listens while it talks.
//!
//! Most tests play the chat clients themselves with plain sockets (the
//! kit's `Chatter`), so they can do what a real client never would: stop
//! reading, reset, send garbage. The real lesson06-client is used where its
//! own behaviour is the point.

use std::io::Write;
use std::process::Command;

use anyhow::{Context, Result, ensure};
use course_tests::chaos;
use course_tests::chat_suite::{self, exit_with_stdin_open, interrupt, start_client, type_line};
use course_tests::contract;
use course_tests::tools::PYTHON3;
use course_tests::transcript::Transcript;
use course_tests::{
    Chatter, PlainServer, Proc, Server, cmd, connect, exchange, python, run_with_stdin, unused_addr,
};
use predicates::prelude::*;

const SERVER: &str = "lesson06-server";
/// Step 1 of the lesson: lesson 04's echo server with a thread per caller.
const ECHO: &str = "lesson06-echo-server";
/// Step 2: the room, every line to all the others, no commands yet.
const ROOM: &str = "lesson06-room";
const CLIENT: &str = "lesson06-client";
const EXERCISE: &str = "lesson06-exercise1";
const LESSON: &str = "lesson06-threaded-chat";
const DEFAULT_ADDR: &str = "127.0.0.1:9006";

// ---------------------------------------------------------------- step 1: a thread per caller
//
// lesson06-echo-server is lesson 04's echo server, with each call on a thread
// of its own. Lesson 03's experiment (`second_client_waits_until_the_first_hangs_up`
// in tests/lesson03.rs) now comes out the other way.

course_tests::test_table! {
    echo_server_prints_help: contract::help_shows(
        ECHO,
        DEFAULT_ADDR,
        &["--idle-timeout <SECS>", "--max-clients <MAX_CLIENTS>"],
    );
}

#[test]
fn echo_server_dies_on_bad_arguments() -> Result<()> {
    contract::bad_address_is_refused(ECHO)?;
    for bad in ["0", "soon"] {
        cmd(ECHO)?
            .args(["127.0.0.1:0", "--idle-timeout", bad])
            .assert()
            .code(2)
            .stderr(predicate::str::contains("--idle-timeout"))
            .stderr(predicate::str::contains("panicked").not());
    }
    cmd(ECHO)?
        .args(["127.0.0.1:0", "--max-clients", "0"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("--max-clients"))
        .stderr(predicate::str::contains("panicked").not());
    Ok(())
}

#[test]
fn echo_server_turns_away_callers_beyond_max_clients() -> Result<()> {
    chaos::exempt(chaos::ADDRESS_IN_LOG);
    turns_away_callers_beyond_two(Server::start(ECHO, &["--max-clients", "2"])?)
}

/// With two seats, two callers are served and a third hears one line and
/// is hung up on; once a caller leaves, the next one is served.
fn turns_away_callers_beyond_two(mut server: Server) -> Result<()> {
    let mut first = connect(server.addr)?;
    exchange(&mut first, b"one")?;
    let mut second = connect(server.addr)?;
    exchange(&mut second, b"two")?;
    let mut third = connect(server.addr)?;
    let reply = course_tests::read_to_close(&mut third)?;
    ensure!(reply == b"server full, try again later\n", "got {reply:?}");
    server.wait_for("turned away: all 2 seats are taken")?;
    let first_addr = first.local_addr()?;
    drop(first);
    server.wait_for(&format!("client {first_addr} closed the connection"))?;
    let mut fourth = connect(server.addr)?;
    exchange(&mut fourth, b"my turn")?;
    exchange(&mut second, b"still here")?;
    server.kill()?.assert_no_panic()
}

#[test]
fn interop_python_echo_server_turns_away_callers_beyond_max_clients_too() -> Result<()> {
    chaos::exempt(chaos::ADDRESS_IN_LOG);
    if !PYTHON3.is_here()? {
        return Ok(());
    }
    let mut twin = python(LESSON, "echo_server.py");
    twin.args(["127.0.0.1:0", "--max-clients", "2"]);
    turns_away_callers_beyond_two(Server::start_command(twin)?)
}

/// Out of file descriptors, `accept` fails while a caller waits; the
/// server says so once, serves the caller once a file is free, and says
/// that too (`chat_suite::runs_out_of_files_and_recovers`). The Rust
/// servers meet the same in `tests/limits.rs`; the Python twins, whose
/// `socketserver` queue holds only 5 callers, here, a caller at a time.
#[cfg(target_os = "linux")]
fn echo_recovers(server: Server) -> Result<()> {
    let (server, mut waiting) =
        chat_suite::runs_out_of_files_and_recovers(server, |mut stream| {
            exchange(&mut stream, b"hi").context("a caller before the files ran out")?;
            Ok(stream)
        })?;
    exchange(&mut waiting, b"in at last").context("the caller who waited")?;
    server.kill()?.assert_no_panic()
}

#[cfg(target_os = "linux")]
#[test]
fn interop_python_echo_server_logs_running_out_of_files_once_too() -> Result<()> {
    chaos::exempt(chaos::ADDRESS_IN_LOG);
    if !PYTHON3.is_here()? {
        return Ok(());
    }
    let twin = python(LESSON, "echo_server.py");
    let mut twin = chat_suite::with_few_files(16, &twin);
    twin.arg("127.0.0.1:0");
    echo_recovers(Server::start_command(twin)?)
}

#[test]
fn a_second_caller_is_served_while_the_first_is_still_connected() -> Result<()> {
    chaos::exempt(chaos::ADDRESS_IN_LOG);
    served_at_once(Server::start(ECHO, &[])?)
}

/// Lesson 03's waiting client, served at once: the first caller stays on the
/// line, and the second is answered meanwhile, then the first goes on.
fn served_at_once(mut server: Server) -> Result<()> {
    let mut first = connect(server.addr)?;
    exchange(&mut first, b"first")?;
    let mut second = connect(server.addr)?;
    // A sequential server would still be reading from `first`: this read
    // would time out.
    exchange(&mut second, b"second")?;
    exchange(&mut first, b"still me")?;
    exchange(&mut second, b"me too")?;
    let second_addr = second.local_addr()?;
    drop(second);
    server.wait_for(&format!("client {second_addr} closed the connection"))?;
    exchange(&mut first, b"last")?;
    server.kill()?.assert_no_panic()
}

#[test]
fn echo_server_hangs_up_on_an_idle_caller_and_serves_the_others() -> Result<()> {
    chaos::exempt(chaos::ADDRESS_IN_LOG);
    let mut server = Server::start(ECHO, &["--idle-timeout", "1"])?;
    let mut silent = connect(server.addr)?;
    let me = silent.local_addr()?;
    let mut talker = connect(server.addr)?;
    exchange(&mut talker, b"hello")?;
    server.wait_for(&format!("client {me} was idle for 1 s, hanging up"))?;
    ensure!(
        course_tests::read_to_close(&mut silent)?.is_empty(),
        "the silent caller got data"
    );
    Ok(())
}

#[test]
fn echo_server_survives_resets_quit_and_garbage() -> Result<()> {
    chaos::exempt(chaos::ADDRESS_IN_LOG);
    let mut server = Server::start(ECHO, &[])?;
    let mut rude = connect(server.addr)?;
    exchange(&mut rude, b"hi")?;
    let rude_addr = rude.local_addr()?;
    course_tests::reset(rude)?;
    server.wait_for(&format!("client {rude_addr} reset the connection"))?;

    let mut garbage = connect(server.addr)?;
    garbage.write_all(&[b'o', b'k', 0xff, 0xfe])?;
    let reply = course_tests::read_exactly(&mut garbage, 4)?;
    ensure!(reply == [b'O', b'K', 0xff, 0xfe], "got {reply:?}");
    garbage.write_all(b"q\n")?;
    ensure!(course_tests::read_to_close(&mut garbage)?.is_empty());
    server.wait_for("asked to quit, hanging up")?;

    let mut next = connect(server.addr)?;
    exchange(&mut next, b"still up")?;
    server.kill()?.assert_no_panic()
}

/// The exercise: one thread to accept, plus one per caller.
#[cfg(target_os = "linux")]
#[test]
fn echo_server_runs_one_thread_per_caller() -> Result<()> {
    let server = Server::start(ECHO, &[])?;
    let threads = || course_tests::threads(server.proc.id());
    ensure!(threads()? == 1, "{} threads before any caller", threads()?);
    let mut callers = Vec::new();
    for n in 1..=3 {
        let mut caller = connect(server.addr)?;
        // The reply comes from the caller's thread: it exists now.
        exchange(&mut caller, b"hi")?;
        callers.push(caller);
        ensure!(
            threads()? == 1 + n,
            "{} threads with {n} callers",
            threads()?
        );
    }
    Ok(())
}

#[test]
fn interop_python_echo_server_serves_callers_at_once_too() -> Result<()> {
    chaos::exempt(chaos::ADDRESS_IN_LOG);
    if !PYTHON3.is_here()? {
        return Ok(());
    }
    let mut twin = python(LESSON, "echo_server.py");
    twin.arg("127.0.0.1:0");
    served_at_once(Server::start_command(twin)?)
}

#[test]
fn interop_lesson04_clients_with_the_echo_servers() -> Result<()> {
    if !PYTHON3.is_here()? {
        return Ok(());
    }
    // Lesson 04's Rust client against the Python twin, its Python client
    // against the Rust server: `q` works as in lesson 04.
    let mut twin = python(LESSON, "echo_server.py");
    twin.arg("127.0.0.1:0");
    let server = Server::start_command(twin)?;
    cmd("lesson04-client")?
        .arg(server.addr_arg())
        .write_stdin("hello\n你好 rust\nq\n")
        .assert()
        .success()
        .stdout("HELLO\n你好 RUST\nserver hung up, as asked\n");
    server.kill()?;
    let mut server = Server::start(ECHO, &[])?;
    let mut client = python("lesson04-disconnect-handling", "client.py");
    client.arg(server.addr_arg());
    let done = run_with_stdin(client, "hello\nq\n")?;
    ensure!(done.status.success(), "python client failed: {done:?}");
    ensure!(
        done.stdout == b"HELLO\nserver hung up, as asked\n",
        "{:?}",
        String::from_utf8_lossy(&done.stdout)
    );
    server.wait_for("asked to quit, hanging up")?;
    Ok(())
}

// ---------------------------------------------------------------- step 2: the room
//
// lesson06-room passes every line to everybody else, under the limits of
// lesson06-protocol. Step 3, lesson06-server, adds the commands and Ctrl-C;
// the chat suite below runs against it.

course_tests::test_table! {
    room_prints_help: contract::help_works(ROOM, DEFAULT_ADDR);
    room_dies_on_bad_address: contract::bad_address_is_refused(ROOM);
}

#[test]
fn room_passes_every_line_to_the_others_and_says_who_comes_and_goes() -> Result<()> {
    let mut server = Server::start(ROOM, &[])?;
    let mut alice = Chatter::join(server.addr)?;
    let mut bob = Chatter::join(server.addr)?;
    let bob_addr = bob.addr;
    alice.expect(&format!("* {bob_addr} joined"))?;
    bob.output.set_nodelay(true)?;
    // A line in pieces, two in one write, an empty one (says nothing), a
    // Windows line ending, an Escape sequence and bytes that are not UTF-8.
    for chunk in [
        &b"hel"[..],
        b"lo\nsecond\n",
        b"\n",
        b"crlf\r\n",
        b"\x1b[2Jok\xff\n",
    ] {
        bob.send(chunk)?;
    }
    for expected in ["hello", "second", "crlf", "\u{fffd}[2Jok\u{fffd}"] {
        alice.expect(&format!("{bob_addr}: {expected}"))?;
    }
    // Nobody hears their own lines: bob's next line is alice's.
    alice.say("hi bob")?;
    bob.expect(&format!("{}: hi bob", alice.addr))?;
    drop(bob);
    alice.expect(&format!("* {bob_addr} left"))?;
    server.wait_for(&format!("client {bob_addr} disconnected"))?;
    server.kill()?.assert_no_panic()
}

#[test]
fn room_hangs_up_on_a_line_that_is_too_long() -> Result<()> {
    let mut server = Server::start(ROOM, &[])?;
    let mut alice = Chatter::join(server.addr)?;
    let mut bob = Chatter::join(server.addr)?;
    alice.expect(&format!("* {} joined", bob.addr))?;
    let _ = bob.send(&vec![b'a'; 100_000]); // the server may hang up midway
    let last = bob.lines_until_closed()?;
    ensure!(last == [course_tests::chat::TOO_LONG], "bob got {last:?}");
    alice.expect(&format!("* {} left", bob.addr))?;
    server.wait_for("sent a line that was too long, disconnected")?;
    Ok(())
}

#[test]
fn room_turns_away_callers_beyond_max_clients() -> Result<()> {
    let mut server = Server::start(ROOM, &["--max-clients", "1"])?;
    let _alice = Chatter::join(server.addr)?;
    let reply = course_tests::read_to_close(&mut connect(server.addr)?)?;
    ensure!(reply == b"* server full\n", "got {reply:?}");
    server.wait_for("turned away: the room is full")?;
    Ok(())
}

/// A member who reads nothing is hung up on when their queue is full, and
/// the others hear every line meanwhile (the chat suite's stuck-client
/// test, for a room without names).
#[test]
fn room_hangs_up_on_a_member_who_never_reads() -> Result<()> {
    chaos::exempt(chat_suite::STUCK);
    let mut server = Server::start(ROOM, &[])?;
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
    socket.set_recv_buffer_size(4096)?;
    socket.connect_timeout(&server.addr.into(), course_tests::TIMEOUT)?;
    let stuck = Chatter::over(socket.into())?;
    let mut alice = Chatter::join(server.addr)?;
    let mut bob = Chatter::join(server.addr)?;
    alice.expect(&format!("* {} joined", bob.addr))?;
    let long = "x".repeat(8000);
    let left = format!("* {} left", stuck.addr);
    for sent in 0.. {
        ensure!(
            sent < 5000,
            "{sent} lines and the stuck member is still in the room"
        );
        bob.say(&long)?;
        let before = alice.wait_for(&format!("{}: {long}", bob.addr))?;
        if before.contains(&left) {
            break;
        }
    }
    server.wait_for(&format!("client {} was too slow, disconnected", stuck.addr))?;
    server.kill()?.assert_no_panic()
}

/// Step 2's "Run it": alice at her client, bob says one line from a pipe.
#[cfg(target_os = "linux")]
#[test]
fn book_output_of_the_room() -> Result<()> {
    let mut server = Server::start(ROOM, &[])?;
    let mut alice = start_client(&server)?;
    let bob = cmd(CLIENT)?
        .arg(server.addr_arg())
        .write_stdin("hello, anybody there?\n")
        .assert()
        .success();
    alice.wait_for(" left")?;
    type_line(&mut alice, "you are gone already")?;
    server.wait_for(r#"said "you are gone already""#)?;
    let alice_addr = welcomed_as(&alice)?;
    let alice = alice.wait_exit()?;
    ensure!(alice.status.success(), "alice: {alice:?}");
    server.wait_for(&format!("client {alice_addr} disconnected"))?;
    let addr = server.addr;
    let log = server.kill()?.stdout;
    let bob_out = String::from_utf8_lossy(&bob.get_output().stdout).into_owned();
    let bob_addr = bob_out
        .strip_prefix("* welcome, you are ")
        .and_then(|rest| rest.split(';').next())
        .context("no welcome for bob")?
        .to_string();
    let transcript = |name: &str, command: &str, lines: &[String], text: &str| {
        let mut t = Transcript::new();
        t.show_addr_as(addr, DEFAULT_ADDR);
        t.show_addr_as(&alice_addr, "127.0.0.1:50312");
        t.show_addr_as(&bob_addr, "127.0.0.1:50314");
        t.command(command).lines(lines).output(text).check(name)
    };
    transcript(
        "lesson06-room-server",
        "cargo run -p lesson06-room",
        &log,
        "",
    )?;
    transcript(
        "lesson06-room-alice",
        "cargo run -q -p lesson06-client",
        &alice.stdout,
        "",
    )?;
    transcript(
        "lesson06-room-bob",
        "printf 'hello, anybody there?\\n' | cargo run -q -p lesson06-client",
        &[],
        &bob_out,
    )
}

// ---------------------------------------------------------------- the command line

course_tests::test_table! {
    server_prints_help: contract::help_shows(
        SERVER,
        DEFAULT_ADDR,
        &["Usage: lesson06-server [OPTIONS] [ADDR]", "--max-clients"],
    );
    client_prints_help: contract::help_works(CLIENT, DEFAULT_ADDR);
    server_dies_on_bad_address: contract::bad_address_is_refused(SERVER);
    client_dies_on_bad_address: contract::bad_address_is_refused(CLIENT);
    client_explains_when_no_server_listens: contract::client_explains_no_server(CLIENT, SERVER);
}

/// `--max-clients` must be at least 1: `0` is one clear error and exit
/// status 2. (The chapter names this test; a bad address is checked by
/// `server_dies_on_bad_address`.)
#[test]
fn server_dies_on_bad_arguments() -> Result<()> {
    cmd(SERVER)?
        .args(["--max-clients", "0"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("--max-clients"))
        .stderr(predicate::str::contains("panicked").not());
    Ok(())
}

// ---------------------------------------------------------------- the chat protocol
//
// The protocol tests live in tests/src/chat_suite.rs, shared with lessons 10
// and 11, whose servers speak the same protocol. Each runs here against
// lesson06-server.

course_tests::chat_suite_tests!(SERVER);

course_tests::test_table! {
    client_sends_piped_lines_and_exits_at_end_of_input:
        chat_suite::client_sends_piped_lines_and_exits_at_end_of_input(SERVER);
    client_reports_when_the_server_goes_away:
        chat_suite::client_reports_when_the_server_goes_away(SERVER);
}

#[cfg(target_os = "linux")]
#[test]
fn interop_python_server_logs_running_out_of_files_once_too() -> Result<()> {
    chaos::exempt(chaos::ADDRESS_IN_LOG);
    if !PYTHON3.is_here()? {
        return Ok(());
    }
    let twin = python(LESSON, "server.py");
    let mut twin = chat_suite::with_few_files(16, &twin);
    twin.arg("127.0.0.1:0");
    chat_suite::lets_the_waiting_caller_in_when_a_member_leaves(Server::start_command(twin)?)
}

// ---------------------------------------------------------------- the client

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
        // Wait for the client's end of input, then hang up.
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

// ---------------------------------------------------------------- interop
//
// The Python twins (lessons/lesson06-threaded-chat/python/) and the Rust
// programs talk to each other. `cargo test -p course-tests interop` runs
// these for every lesson.

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
        .stdout(predicate::str::starts_with("* welcome, you are 127.0.0.1:"))
        .stdout(predicate::str::contains("* you are now rusty\n"))
        .stdout(predicate::str::contains("* 2 in the room: alice, rusty\n"));
    alice.wait_for("rusty: hi from rust 你好")?;
    alice.expect("* rusty left")?;
    server.wait_for(" disconnected")?;
    server.kill()?.assert_no_panic()
}

course_tests::chat_twin_tests!(LESSON);

// ---------------------------------------------------------------- the book's output
//
// The book's "Run it" output (book/output/lesson06-*.txt) comes from these
// runs. Regenerate with
// `UPDATE_TRANSCRIPTS=1 cargo test -p course-tests --test lesson06`.

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

/// The chapter's four-terminal story: alice and bob talk, carol asks who is
/// there, bob quits, and Ctrl-C stops the server.
#[cfg(target_os = "linux")]
#[test]
fn book_output_of_a_chat() -> Result<()> {
    let mut server = Server::start(SERVER, &[])?;
    let mut alice = start_client(&server)?;
    type_line(&mut alice, "/nick alice")?;
    alice.wait_for("* you are now alice")?;
    let mut bob = start_client(&server)?;
    type_line(&mut bob, "/nick bob")?;
    bob.wait_for("* you are now bob")?;
    alice.wait_for(" is now bob")?;
    type_line(&mut alice, "hello bob")?;
    bob.wait_for("alice: hello bob")?;
    type_line(&mut bob, "你好 alice")?;
    alice.wait_for("bob: 你好 alice")?;
    let mut carol = start_client(&server)?;
    alice.wait_for(" joined")?;
    bob.wait_for(" joined")?;
    type_line(&mut carol, "/who")?;
    carol.wait_for("* 3 in the room")?;
    type_line(&mut bob, "/quit")?;
    alice.wait_for("* bob left")?;
    carol.wait_for("* bob left")?;
    let names = [
        (welcomed_as(&alice)?, "127.0.0.1:50312"),
        (welcomed_as(&bob)?, "127.0.0.1:50314"),
        (welcomed_as(&carol)?, "127.0.0.1:50316"),
    ];
    let bob = bob.wait_exit()?;
    ensure!(bob.status.success(), "bob: {bob:?}");
    interrupt(&server.proc)?;
    alice.wait_for("* server shutting down")?;
    carol.wait_for("* server shutting down")?;
    let alice = exit_with_stdin_open(alice)?;
    let carol = exit_with_stdin_open(carol)?;
    ensure!(alice.status.code() == Some(1), "alice: {alice:?}");
    server.wait_for("server stopped")?;
    let addr = server.addr;
    let log = server.wait_exit()?.stdout;

    let transcript = |name: &str, command: &str, lines: &[String], errors: &str| {
        let mut t = Transcript::new();
        t.show_addr_as(addr, DEFAULT_ADDR);
        for (real, shown) in &names {
            t.show_addr_as(real, shown);
        }
        t.command(command).lines(lines).output(errors).check(name)
    };
    transcript(
        "lesson06-server-start",
        "cargo run -p lesson06-server",
        &log[..1],
        "",
    )?;
    transcript(
        "lesson06-alice",
        "(printf '/nick alice\\n'; sleep 10; printf 'hello bob\\n'; sleep 600) |\n    cargo run -q -p lesson06-client",
        &alice.stdout,
        &alice.stderr,
    )?;
    transcript(
        "lesson06-bob",
        "(printf '/nick bob\\n'; sleep 10; printf '你好 alice\\n'; sleep 10; printf '/quit\\n') |\n    cargo run -q -p lesson06-client",
        &bob.stdout,
        &bob.stderr,
    )?;
    transcript(
        "lesson06-carol",
        "(printf '/who\\n'; sleep 600) | cargo run -q -p lesson06-client",
        &carol.stdout,
        &carol.stderr,
    )?;
    transcript("lesson06-server", "cargo run -p lesson06-server", &log, "")
}

/// Step 1: lesson 03's experiment against the threaded echo server. The
/// second client is answered while the first is still on the line.
#[cfg(target_os = "linux")]
#[test]
fn book_output_of_the_echo_server() -> Result<()> {
    let mut server = Server::start(ECHO, &[])?;
    let mut a = Proc::spawn("lesson03-client", &[&server.addr_arg()])?;
    type_line(&mut a, "first")?;
    a.wait_for("FIRST")?;
    server.wait_for(r#"said "first""#)?;
    let b = cmd("lesson03-client")?
        .arg(server.addr_arg())
        .write_stdin("second\n")
        .assert()
        .success();
    server.wait_for("closed the connection")?;
    type_line(&mut a, "still me")?;
    a.wait_for("STILL ME")?;
    let a = a.wait_exit()?;
    ensure!(a.status.success(), "{a:?}");
    server.wait_for("closed the connection")?;
    let addr = server.addr;
    let log = server.kill()?.stdout;
    Transcript::new()
        .show_addr_as(addr, DEFAULT_ADDR)
        .command("cargo run -p lesson06-echo-server")
        .lines(&log[..1])
        .check("lesson06-echo-server-start")?;
    Transcript::new()
        .command(
            "(printf 'first\\n'; sleep 30; printf 'still me\\n') |\n    cargo run -q -p lesson03-client -- 127.0.0.1:9006",
        )
        .lines(&a.stdout)
        .check("lesson06-echo-client-a")?;
    Transcript::new()
        .command(r"printf 'second\n' | cargo run -q -p lesson03-client -- 127.0.0.1:9006")
        .output(&String::from_utf8_lossy(&b.get_output().stdout))
        .check("lesson06-echo-client-b")?;
    Transcript::new()
        .show_addr_as(addr, DEFAULT_ADDR)
        .command("cargo run -p lesson06-echo-server")
        .lines(&log)
        .check("lesson06-echo-server")
}

/// A client fed by a pipe, and a Python one-liner that sends a line that is
/// far too long.
#[cfg(target_os = "linux")]
#[test]
fn book_output_of_other_clients() -> Result<()> {
    if !PYTHON3.is_here()? {
        return Ok(());
    }
    let mut server = Server::start(SERVER, &[])?;
    let mut t = Transcript::new();
    t.show_addr_as(server.addr, DEFAULT_ADDR);
    let piped = cmd(CLIENT)?
        .arg(server.addr_arg())
        .write_stdin("hi from a pipe\n")
        .assert()
        .success();
    t.command(r"printf 'hi from a pipe\n' | cargo run -q -p lesson06-client")
        .output(&String::from_utf8_lossy(&piped.get_output().stdout));
    server.wait_for(" disconnected")?;
    let one_liner = r#"import socket; s = socket.create_connection(("127.0.0.1", 9006)); s.sendall(b"x" * 10000 + b"\n"); print(s.makefile().read(), end="")"#;
    // Shown one statement a line, so that it fits the book's column.
    let one_liner = &one_liner.replace("; ", "\n");
    let mut py = Command::new("python3");
    py.arg("-c")
        .arg(one_liner.replace("9006", &server.addr.port().to_string()));
    let py = run_with_stdin(py, "")?;
    ensure!(py.status.success(), "python failed: {py:?}");
    t.command(&format!("python3 -c '\n{one_liner}'"))
        .output(&String::from_utf8_lossy(&py.stdout));
    server.wait_for("too long")?;
    let log = server.kill()?.stdout;
    t.check("lesson06-other-clients")?;
    Transcript::new()
        .show_addr_as(log[0].trim_start_matches("listening on "), DEFAULT_ADDR)
        .command("cargo run -p lesson06-server")
        .lines(&log)
        .check("lesson06-other-clients-server")
}

/// No server, and a full room (the server runs with `--max-clients 1` and
/// somebody is in).
#[cfg(target_os = "linux")]
#[test]
fn book_output_of_errors() -> Result<()> {
    let mut t = Transcript::new();
    let nobody = unused_addr()?;
    t.show_addr_as(nobody, DEFAULT_ADDR);
    let refused = cmd(CLIENT)?.arg(nobody.to_string()).assert().code(1);
    t.command("cargo run -q -p lesson06-client")
        .output(&String::from_utf8_lossy(&refused.get_output().stderr));

    let server = Server::start(SERVER, &["--max-clients", "1"])?;
    let _alice = Chatter::named(server.addr, "alice")?;
    // Its stdin stays open, as a person's terminal would.
    let turned_away = exit_with_stdin_open(Proc::spawn(CLIENT, &[&server.addr_arg()])?)?;
    ensure!(turned_away.status.code() == Some(1), "{turned_away:?}");
    let mut full = Transcript::new();
    full.show_addr_as(server.addr, DEFAULT_ADDR)
        .command("cargo run -q -p lesson06-client")
        .lines(&turned_away.stdout)
        .output(&turned_away.stderr);
    t.check("lesson06-errors")?;
    full.check("lesson06-full")
}

// ---------------------------------------------------------------- the exercise
//
// Exercise solutions (lessons/lesson06-threaded-chat/exercise1).

#[test]
fn exercise1_bot_answers_chat_lines_in_capitals() -> Result<()> {
    let server = Server::start(SERVER, &[])?;
    let mut alice = Chatter::named(server.addr, "alice")?;
    let mut bot = Proc::spawn(EXERCISE, &[&server.addr_arg()])?;
    bot.wait_for("* you are now shouter")?;
    let joined = alice.line()?;
    let renamed = alice.line()?;
    ensure!(
        joined.ends_with(" joined") && renamed.ends_with(" is now shouter"),
        "alice got {joined:?}, {renamed:?}"
    );
    alice.say("hello 你好")?;
    alice.expect("shouter: HELLO 你好")?;
    // Notices are not chat lines: bob's arrival gets no answer.
    let mut bob = Chatter::named(server.addr, "bob")?;
    alice.expect(&format!("* {} joined", bob.addr))?;
    alice.expect(&format!("* {} is now bob", bob.addr))?;
    bob.say("quiet please")?;
    alice.expect("bob: quiet please")?;
    alice.expect("shouter: QUIET PLEASE")?;
    bot.wait_for("bob: quiet please")?;
    let done = bot.kill()?;
    done.assert_no_panic()
}

course_tests::test_table! {
    exercise1_bot_refuses_an_endless_line_from_the_server:
        chat_suite::client_refuses_an_endless_line_from_the_server(EXERCISE);
    exercise1_bot_explains_when_no_server_listens:
        contract::client_explains_no_server(EXERCISE, SERVER);
}
