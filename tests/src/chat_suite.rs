//! Lesson 06's chat protocol, as one suite of tests that every chat server
//! of the course must pass: lesson 06's threads, lesson 10's event loop and
//! lesson 11's tasks. Each function takes the name of the server binary;
//! `chat_suite_tests!(SERVER)` makes a named `#[test]` of each in a lesson's
//! test file, so a failure names the lesson and the behaviour. The real
//! client in these tests is always lesson06-client: it speaks the protocol,
//! whichever server runs it. Below the suite, checks that the Python twins
//! share (`python_server_...`), and the tools of the lessons' own tests.

/// The chat suite against `server`, one named test per behaviour: what
/// every chat room of the course does alike. A lesson's file adds what is
/// its own (lessons 10 and 11, for instance, also run
/// `a_flood_from_one_member_neither_cuts_off_nor_drowns_the_others`).
#[macro_export]
macro_rules! chat_suite_tests {
    ($server:expr) => {
        $crate::test_table! {
            three_clients_talk: $crate::chat_suite::three_clients_talk($server);
            a_silent_caller_does_not_keep_the_others_waiting:
                $crate::chat_suite::a_silent_caller_does_not_keep_the_others_waiting($server);
            newcomers_are_named_by_address_and_announced:
                $crate::chat_suite::newcomers_are_named_by_address_and_announced($server);
            nick_renames_and_tells_the_others:
                $crate::chat_suite::nick_renames_and_tells_the_others($server);
            nick_refuses_a_name_that_is_taken:
                $crate::chat_suite::nick_refuses_a_name_that_is_taken($server);
            nick_refuses_a_malformed_name: $crate::chat_suite::nick_refuses_a_malformed_name($server);
            who_lists_everybody_in_the_room:
                $crate::chat_suite::who_lists_everybody_in_the_room($server);
            nobody_hears_their_own_lines_and_unknown_commands_get_help:
                $crate::chat_suite::nobody_hears_their_own_lines_and_unknown_commands_get_help($server);
            lines_are_framed_by_newlines_whatever_the_chunks:
                $crate::chat_suite::lines_are_framed_by_newlines_whatever_the_chunks($server);
            invalid_utf8_is_shown_lossily: $crate::chat_suite::invalid_utf8_is_shown_lossily($server);
            control_characters_never_reach_the_others:
                $crate::chat_suite::control_characters_never_reach_the_others($server);
            quit_says_bye_hangs_up_and_is_announced:
                $crate::chat_suite::quit_says_bye_hangs_up_and_is_announced($server);
            hanging_up_without_a_word_is_announced:
                $crate::chat_suite::hanging_up_without_a_word_is_announced($server);
            a_client_that_resets_is_removed_and_announced:
                $crate::chat_suite::a_client_that_resets_is_removed_and_announced($server);
            a_client_that_never_reads_does_not_stall_the_others:
                $crate::chat_suite::a_client_that_never_reads_does_not_stall_the_others($server);
            a_member_for_whom_a_line_waits_too_long_is_hung_up:
                $crate::chat_suite::a_member_for_whom_a_line_waits_too_long_is_hung_up($server);
            an_over_long_line_gets_an_error_and_a_disconnection:
                $crate::chat_suite::an_over_long_line_gets_an_error_and_a_disconnection($server);
            a_line_of_exactly_8192_bytes_is_fine:
                $crate::chat_suite::a_line_of_exactly_8192_bytes_is_fine($server);
            an_endless_line_without_newline_is_cut_off:
                $crate::chat_suite::an_endless_line_without_newline_is_cut_off($server);
            the_room_turns_away_callers_beyond_max_clients:
                $crate::chat_suite::the_room_turns_away_callers_beyond_max_clients($server);
            #[cfg(unix)]
            ctrl_c_tells_everybody_then_the_server_exits:
                $crate::chat_suite::ctrl_c_tells_everybody_then_the_server_exits($server);
        }
    };
}

/// What the Python twins of the chat servers share, against the twin in
/// lesson folder `$lesson`: one named `interop_python_server_...` test each,
/// each skipped (or, with `CI` set, failed) when Python is missing. Lessons
/// 10 and 11 add `interop_python_server_is_not_drowned_by_a_flood_either`.
#[macro_export]
macro_rules! chat_twin_tests {
    ($lesson:expr) => {
        $crate::test_table! {
            interop_python_server_keeps_the_same_rules: $crate::chat_suite::on_twin(
                $lesson,
                &["--max-clients", "2"],
                $crate::chat_suite::python_server_keeps_the_same_rules,
            );
            interop_python_server_outlives_a_stuck_client_too:
                $crate::chat_suite::twin_outlives_a_stuck_client($lesson);
            interop_python_server_hangs_up_when_a_line_waits_too_long:
                $crate::chat_suite::twin_hangs_up_when_a_line_waits_too_long($lesson);
            #[cfg(unix)]
            interop_python_server_says_goodbye_on_ctrl_c:
                $crate::chat_suite::on_twin($lesson, &[], $crate::chat_suite::python_server_says_goodbye_on_ctrl_c);
        }
    };
}

use std::io::{BufReader, ErrorKind, Write};
use std::net::TcpStream;
use std::process::Command;
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail, ensure};
use predicates::prelude::*;
use socket2::{Domain, SockRef, Socket, Type};

use crate::{Chatter, Proc, Server, TIMEOUT, cmd, connect};

/// The chat client every chat server is tested with.
pub const CLIENT: &str = "lesson06-client";

/// A lesson06-client process, joined to `server`'s room.
pub fn start_client(server: &Server) -> Result<Proc> {
    start_client_of(CLIENT, server)
}

/// A process of the chat client `client` (lesson06-client, or lesson10-client,
/// which is the same program with lesson 10's address), joined to `server`'s
/// room.
pub fn start_client_of(client: &str, server: &Server) -> Result<Proc> {
    let mut client = Proc::spawn(client, &[&server.addr_arg()])?;
    client.wait_for("* welcome, you are ")?;
    Ok(client)
}

/// Types one line into a client.
pub fn type_line(client: &mut Proc, text: &str) -> Result<()> {
    writeln!(client.stdin()?, "{text}").context("typing into the client")
}

// ---------------------------------------------------------------- talking

pub fn three_clients_talk(server: &str) -> Result<()> {
    let mut server = Server::start(server, &[])?;
    let mut alice = start_client(&server)?;
    type_line(&mut alice, "/nick alice")?;
    alice.wait_for("* you are now alice")?;
    let mut bob = start_client(&server)?;
    type_line(&mut bob, "/nick bob")?;
    bob.wait_for("* you are now bob")?;
    alice.wait_for(" is now bob")?;
    let mut carol = start_client(&server)?;
    type_line(&mut carol, "/nick carol")?;
    carol.wait_for("* you are now carol")?;
    bob.wait_for(" is now carol")?;
    alice.wait_for(" is now carol")?;

    type_line(&mut alice, "hello everyone")?;
    bob.wait_for("alice: hello everyone")?;
    carol.wait_for("alice: hello everyone")?;
    type_line(&mut bob, "你好, alice")?;
    alice.wait_for("bob: 你好, alice")?;
    carol.wait_for("bob: 你好, alice")?;
    server.wait_for(r#"said "hello everyone""#)?;

    // /quit: the client says goodbye, the server hangs up, exit 0.
    type_line(&mut carol, "/quit")?;
    let carol = carol.wait_exit()?;
    ensure!(carol.status.success(), "carol: {carol:?}");
    ensure!(
        carol.stdout.last().map(String::as_str) == Some("* bye"),
        "{carol:?}"
    );
    alice.wait_for("* carol left")?;
    bob.wait_for("* carol left")?;

    // End of input works like /quit.
    let alice = alice.wait_exit()?;
    ensure!(alice.status.success(), "alice: {alice:?}");
    alice.assert_no_panic()?;
    // Nobody hears their own lines back.
    ensure!(
        !alice.stdout.iter().any(|l| l.contains("alice: hello")),
        "alice got her own line back: {:?}",
        alice.stdout
    );
    bob.wait_for("* alice left")?;
    let bob = bob.wait_exit()?;
    ensure!(bob.status.success(), "bob: {bob:?}");
    ensure!(
        !bob.stdout.iter().any(|l| l.starts_with("bob:")),
        "{:?}",
        bob.stdout
    );
    Ok(())
}

pub fn a_silent_caller_does_not_keep_the_others_waiting(server: &str) -> Result<()> {
    // Lesson 03's server would still be talking to `silent`; here the next
    // callers are picked up and talk at once.
    let server = Server::start(server, &[])?;
    let _silent = connect(server.addr)?;
    let mut alice = Chatter::named(server.addr, "alice")?;
    let mut bob = Chatter::named(server.addr, "bob")?;
    alice.say("anyone there?")?;
    bob.wait_for("alice: anyone there?")?;
    Ok(())
}

pub fn newcomers_are_named_by_address_and_announced(server: &str) -> Result<()> {
    let server = Server::start(server, &[])?;
    let mut alice = Chatter::named(server.addr, "alice")?;
    let mut other = Chatter::join(server.addr)?;
    alice.expect(&format!("* {} joined", other.addr))?;
    other.say("hi")?;
    alice.expect(&format!("{}: hi", other.addr))?;
    Ok(())
}

pub fn nick_renames_and_tells_the_others(server: &str) -> Result<()> {
    let mut server = Server::start(server, &[])?;
    let mut alice = Chatter::named(server.addr, "alice")?;
    let mut bob = Chatter::join(server.addr)?;
    let old = bob.addr;
    alice.expect(&format!("* {old} joined"))?;
    bob.nick("bob")?;
    alice.expect(&format!("* {old} is now bob"))?;
    server.wait_for(&format!("client {old} is now bob"))?;
    bob.say("王小明 says hi")?;
    alice.expect("bob: 王小明 says hi")?;
    // A name may be Chinese too: letters are letters.
    bob.nick("小明")?;
    alice.expect("* bob is now 小明")?;
    Ok(())
}

pub fn nick_refuses_a_name_that_is_taken(server: &str) -> Result<()> {
    let server = Server::start(server, &[])?;
    let mut alice = Chatter::named(server.addr, "alice")?;
    let mut bob = Chatter::named(server.addr, "bob")?;
    bob.say("/nick alice")?;
    bob.expect("* the name alice is taken")?;
    bob.say("still bob")?;
    alice.wait_for("bob: still bob")?;
    Ok(())
}

pub fn nick_refuses_a_malformed_name(server: &str) -> Result<()> {
    let server = Server::start(server, &[])?;
    let mut bob = Chatter::join(server.addr)?;
    let rule = "* a name is 1 to 20 letters, digits, _ or -";
    for bad in [
        "/nick",
        "/nick two words",
        "/nick 127.0.0.1:5000",
        "/nick abcdefghijklmnopqrstu",
    ] {
        bob.say(bad)?;
        bob.expect(rule)?;
    }
    Ok(())
}

pub fn who_lists_everybody_in_the_room(server: &str) -> Result<()> {
    let server = Server::start(server, &[])?;
    let _carol = Chatter::named(server.addr, "carol")?;
    let mut alice = Chatter::named(server.addr, "alice")?;
    let unnamed = Chatter::join(server.addr)?;
    alice.say("/who")?;
    alice.wait_for(&format!("* 3 in the room: {}, alice, carol", unnamed.addr))?;
    Ok(())
}

pub fn nobody_hears_their_own_lines_and_unknown_commands_get_help(server: &str) -> Result<()> {
    let server = Server::start(server, &[])?;
    let mut alice = Chatter::named(server.addr, "alice")?;
    let mut bob = Chatter::named(server.addr, "bob")?;
    bob.say("first")?;
    bob.say("/dance")?;
    // Bob's queue is in order: had his own line come back, it would be here.
    bob.expect("* unknown command /dance; try /nick NAME, /who or /quit")?;
    alice.wait_for("bob: first")?;
    Ok(())
}

pub fn lines_are_framed_by_newlines_whatever_the_chunks(server: &str) -> Result<()> {
    let server = Server::start(server, &[])?;
    let mut alice = Chatter::named(server.addr, "alice")?;
    let mut bob = Chatter::named(server.addr, "bob")?;
    bob.output.set_nodelay(true)?;
    // One line in pieces, two lines in one write, an empty line (says
    // nothing), a Windows line ending.
    for chunk in [
        &b"hel"[..],
        b"lo\nsecond",
        b" line\nthird\n",
        b"\n",
        b"crlf\r\n",
    ] {
        bob.send(chunk)?;
    }
    for expected in ["bob: hello", "bob: second line", "bob: third", "bob: crlf"] {
        alice.wait_for(expected)?;
    }
    Ok(())
}

pub fn invalid_utf8_is_shown_lossily(server: &str) -> Result<()> {
    let mut server = Server::start(server, &[])?;
    let mut alice = Chatter::named(server.addr, "alice")?;
    let mut bob = Chatter::named(server.addr, "bob")?;
    bob.send(&[b'o', b'k', 0xff, 0xfe, b'\n'])?;
    alice.wait_for("bob: ok\u{fffd}\u{fffd}")?;
    bob.say("still here")?;
    alice.expect("bob: still here")?;
    server.wait_for("said \"still here\"")?;
    Ok(())
}

pub fn control_characters_never_reach_the_others(server: &str) -> Result<()> {
    // An Escape sequence would be obeyed by the others' terminals: "\x1b[2J"
    // clears the screen. The server passes on only what is safe to print.
    let server = Server::start(server, &[])?;
    let mut alice = Chatter::named(server.addr, "alice")?;
    let mut bob = Chatter::named(server.addr, "bob")?;
    bob.send(b"\x1b[2Jgone\x08\x07\tstill\x7f\n")?;
    alice.wait_for("bob: \u{fffd}[2Jgone\u{fffd}\u{fffd}\tstill\u{fffd}")?;
    Ok(())
}

// ---------------------------------------------------------------- leaving

pub fn quit_says_bye_hangs_up_and_is_announced(server: &str) -> Result<()> {
    let mut server = Server::start(server, &[])?;
    let mut alice = Chatter::named(server.addr, "alice")?;
    let mut bob = Chatter::named(server.addr, "bob")?;
    bob.say("/quit")?;
    let last = bob.lines_until_closed()?;
    ensure!(last == ["* bye"], "bob got {last:?}");
    alice.wait_for("* bob left")?;
    server.wait_for(&format!("client {} left with /quit", bob.addr))?;
    Ok(())
}

pub fn hanging_up_without_a_word_is_announced(server: &str) -> Result<()> {
    let mut server = Server::start(server, &[])?;
    let mut alice = Chatter::named(server.addr, "alice")?;
    let bob = Chatter::named(server.addr, "bob")?;
    let bob_addr = bob.addr;
    drop(bob);
    alice.wait_for("* bob left")?;
    server.wait_for(&format!("client {bob_addr} disconnected"))?;
    Ok(())
}

pub fn a_client_that_resets_is_removed_and_announced(server: &str) -> Result<()> {
    let mut server = Server::start(server, &[])?;
    let mut alice = Chatter::named(server.addr, "alice")?;
    let bob = Chatter::named(server.addr, "bob")?;
    let bob_addr = bob.addr;
    // SO_LINGER with a zero timeout: closing sends a reset (RST) instead of
    // the polite FIN, as a crashed machine's network stack might.
    SockRef::from(&bob.output).set_linger(Some(Duration::ZERO))?;
    drop(bob);
    alice.wait_for("* bob left")?;
    server.wait_for(&format!("client {bob_addr} disconnected"))?;
    alice.say("/who")?;
    alice.expect("* 1 in the room: alice")?;
    Ok(())
}

// ---------------------------------------------------------------- abuse

/// Why the stuck-member and flood checks reach the server directly in chaos
/// mode: the proxy reads what the server sends and holds it, so the server
/// never sees the member stop reading.
pub const STUCK: &str = "a proxy's buffers hide a stuck or flooding member from the server";

pub fn a_client_that_never_reads_does_not_stall_the_others(server: &str) -> Result<()> {
    crate::chaos::exempt(STUCK);
    room_outlives_a_stuck_client(Server::start(server, &[])?)
}

/// Pushes at least 2 MB through the room while one client never reads: the
/// others must hear every line, and the stuck one must be hung up on.
pub fn room_outlives_a_stuck_client(mut server: Server) -> Result<()> {
    const LINE_BYTES: usize = 1000;
    const AT_LEAST: usize = 2 * 1024 * 1024;
    const AT_MOST: usize = 64 * 1024 * 1024;
    // Lines in flight: Bob waits for Alice to catch up before sending more,
    // so Alice's queue never fills however the test's threads are scheduled.
    const WINDOW: usize = 64;

    // The stuck client asks for a small receive buffer, so that the kernel
    // does not hide its stall by buffering megabytes for it.
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None)?;
    socket.set_recv_buffer_size(4096)?;
    socket.connect_timeout(&server.addr.into(), TIMEOUT)?;
    let mut stuck = Chatter::over(socket.into())?;
    stuck.nick("stuck")?;
    let stuck_addr = stuck.addr;
    let mut alice = Chatter::named(server.addr, "alice")?;
    let mut bob = Chatter::named(server.addr, "bob")?;
    alice.wait_for(&format!("* {} is now bob", bob.addr))?;

    // Alice reads everything in a thread of her own and reports progress.
    enum Heard {
        Line(usize),
        StuckLeft,
    }
    let (heard, progress) = mpsc::channel();
    let listener = thread::spawn(move || -> Result<usize> {
        let mut expected = 0;
        loop {
            let line = alice.line()?;
            if line == "bob: done" {
                return Ok(expected);
            } else if line == "* stuck left" {
                let _ = heard.send(Heard::StuckLeft);
            } else if let Some(text) = line.strip_prefix("bob: ") {
                let number: usize = text
                    .get(..8)
                    .and_then(|digits| digits.parse().ok())
                    .with_context(|| format!("no line number in {line:?}"))?;
                ensure!(
                    number == expected,
                    "line {number} came when {expected} was due"
                );
                ensure!(text.len() == LINE_BYTES, "line {number} was cut");
                expected += 1;
                let _ = heard.send(Heard::Line(expected));
            } else {
                bail!("unexpected line {line:?}");
            }
        }
    });

    let (mut sent, mut received, mut bytes, mut stuck_left) = (0, 0, 0, false);
    while bytes < AT_LEAST || !stuck_left {
        ensure!(
            bytes < AT_MOST,
            "sent {bytes} bytes and the stuck client is still in the room"
        );
        if sent - received >= WINDOW {
            // If the stuck client stalled the room, this is where we'd wait.
            match progress.recv_timeout(TIMEOUT) {
                Ok(Heard::Line(count)) => received = count,
                Ok(Heard::StuckLeft) => stuck_left = true,
                Err(_) => {
                    let why = listener.join();
                    bail!("alice stopped hearing bob after {received} of {sent} lines: {why:?}")
                }
            }
            continue;
        }
        let line = format!("{sent:08}{}", "x".repeat(LINE_BYTES - 8));
        bob.say(&line)?;
        sent += 1;
        bytes += LINE_BYTES + 1;
        while let Ok(news) = progress.try_recv() {
            match news {
                Heard::Line(count) => received = count,
                Heard::StuckLeft => stuck_left = true,
            }
        }
    }
    bob.say("done")?;
    let heard_lines = listener
        .join()
        .map_err(|_| anyhow!("alice's thread panicked"))??;
    ensure!(
        heard_lines == sent,
        "alice heard {heard_lines} of {sent} lines"
    );
    server.wait_for(&format!("client {stuck_addr} was too slow, disconnected"))?;
    // The stuck client, when it finally reads, finds the line hung up.
    stuck.lines_until_closed()?;
    server.kill()?.assert_no_panic()
}

/// A room with a member who never reads (and asked for a small receive
/// buffer), alice who reads, and bob who sends `lines` lines of 8000 bytes,
/// each heard by alice before the next. Stops early, returning how many
/// went out, if the server hangs up on the stuck member as too slow.
pub fn flood_a_stuck_member(
    server: &Server,
    lines: usize,
) -> Result<(std::net::TcpStream, Chatter, Chatter, usize)> {
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None)?;
    socket.set_recv_buffer_size(4096)?;
    socket.connect_timeout(&server.addr.into(), TIMEOUT)?;
    let mut stuck = Chatter::over(socket.into())?;
    stuck.nick("stuck")?;
    let mut alice = Chatter::named(server.addr, "alice")?;
    let mut bob = Chatter::named(server.addr, "bob")?;
    alice.wait_for(&format!("* {} is now bob", bob.addr))?;
    let long = "x".repeat(8000);
    for sent in 0..lines {
        bob.say(&long)?;
        let before = alice.wait_for(&format!("bob: {long}"))?;
        if before.iter().any(|line| line == "* stuck left") {
            return Ok((stuck.output, alice, bob, sent));
        }
    }
    Ok((stuck.output, alice, bob, lines))
}

/// A member who takes nothing while lines wait for them is hung up on once
/// a line has waited `SEND_DEADLINE` (5 s), even though their queue is not
/// full. A first room measures how many lines of 8000 bytes the stuck
/// member's buffers and queue take before the server hangs up on them;
/// the second sends 100 fewer, so that about 150 wait in the queue, then
/// waits for the hang-up.
pub fn a_member_for_whom_a_line_waits_too_long_is_hung_up(server: &str) -> Result<()> {
    crate::chaos::exempt(STUCK);
    member_for_whom_a_line_waits_too_long_is_hung_up(|| Server::start(server, &[]))
}

/// The same, for a server that `start` starts (a Python twin).
pub fn member_for_whom_a_line_waits_too_long_is_hung_up(
    start: impl Fn() -> Result<Server>,
) -> Result<()> {
    let measure = start()?;
    let (_, _, _, too_many) = flood_a_stuck_member(&measure, 5000)?;
    drop(measure);
    ensure!(too_many > 150, "hung up on after only {too_many} lines");
    let mut server = start()?;
    let (stuck, mut alice, _bob, sent) = flood_a_stuck_member(&server, too_many - 100)?;
    let stuck_addr = stuck.local_addr()?;
    ensure!(
        sent == too_many - 100,
        "hung up on after {sent} lines this time"
    );
    server.wait_for(&format!("client {stuck_addr} was too slow, disconnected"))?;
    alice.wait_for("* stuck left")?;
    drop(stuck);
    server.kill()?.assert_no_panic()
}

/// What the threads of the flood test below report.
enum Flood {
    /// The flooder's socket took nothing for [`STALLED`]: the server has
    /// stopped reading it, for now.
    Stalled,
    /// The flooder sent the most it may without the server ever stopping.
    Capped,
    /// The quiet member's line reached the reader, after this many lines
    /// of the flood.
    QuietHeard(usize),
}

/// How long a write of the flooder's may take nothing before the test
/// takes it that the server has stopped reading the flood.
const STALLED: Duration = Duration::from_millis(200);

/// One member sends lines as fast as loopback takes them. A second, the
/// reader, joins over a small socket and at first reads nothing, so that
/// its queue fills; a third, quiet, reads all the time. The server must
/// stop reading the flood while the reader's queue is full (backpressure:
/// the flooder's writes stall), not hang up on the reader. Then the reader
/// reads, quiet says one line, and that line must reach the reader while
/// the flood goes on (nobody may drown the others), and nobody may be hung
/// up on. The flood stops once quiet's line has arrived.
pub fn a_flood_from_one_member_neither_cuts_off_nor_drowns_the_others(server: &str) -> Result<()> {
    crate::chaos::exempt(STUCK);
    flood_neither_cuts_off_nor_drowns_the_others(Server::start(server, &[])?)
}

/// The same, against a server already started (a Python twin).
pub fn flood_neither_cuts_off_nor_drowns_the_others(server: Server) -> Result<()> {
    const LINE: usize = 100;
    // More than every buffer between the flooder and a reader holds.
    const CAP: usize = 64 * 1024 * 1024;
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None)?;
    socket.set_recv_buffer_size(4096)?;
    socket.connect_timeout(&server.addr.into(), TIMEOUT)?;
    let reader = Chatter::over(socket.into())?.renamed("reader")?;
    let quiet = Chatter::named(server.addr, "quiet")?;
    let mut flooder = Chatter::named(server.addr, "flood")?;
    flooder.output.set_write_timeout(Some(STALLED))?;
    let mut quiet_says = quiet.output;
    let (news, progress) = mpsc::channel();

    // The readers, each in a thread of its own, until the flood's end. The
    // reader reads nothing until `go` says so.
    let (go, start_reading) = mpsc::channel::<()>();
    let listen = |who: &'static str,
                  mut input: BufReader<TcpStream>,
                  news: Option<mpsc::Sender<Flood>>,
                  wait: Option<mpsc::Receiver<()>>| {
        thread::spawn(move || -> Result<usize> {
            if let Some(wait) = wait {
                wait.recv_timeout(TIMEOUT)?;
            }
            let mut flood = 0;
            loop {
                let line = crate::chat::read_line(&mut input)
                    .with_context(|| format!("{who}, after {flood} flood lines"))?
                    .with_context(|| {
                        format!("the server hung up on {who} after {flood} flood lines")
                    })?;
                if line == "flood: done" {
                    return Ok(flood);
                } else if line.starts_with("flood: ") {
                    flood += 1;
                } else if let (Some(news), "quiet: hello") = (&news, line.as_str()) {
                    let _ = news.send(Flood::QuietHeard(flood));
                }
            }
        })
    };
    let reading = listen(
        "reader",
        reader.input,
        Some(news.clone()),
        Some(start_reading),
    );
    let quiet_reading = listen("quiet", quiet.input, None, None);

    // The flooder: many lines per write, as fast as the socket takes them.
    // It gives its connection back at the end: closed with the lines it
    // never read (quiet's), it would reset, and the server would lose the
    // flood's last lines.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flooding = {
        let stop = std::sync::Arc::clone(&stop);
        let mut chunk = Vec::new();
        while chunk.len() < 64 * 1024 {
            chunk.extend_from_slice(&[b'x'; LINE - 1]);
            chunk.push(b'\n');
        }
        thread::spawn(move || -> Result<(usize, Chatter)> {
            let (mut sent, mut stalled, mut capped) = (0, Duration::ZERO, false);
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                if sent >= CAP && !capped {
                    capped = true;
                    let _ = news.send(Flood::Capped);
                }
                match flooder.output.write(&chunk[sent % chunk.len()..]) {
                    Ok(n) => (sent, stalled) = (sent + n, Duration::ZERO),
                    Err(err)
                        if matches!(err.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) =>
                    {
                        if stalled.is_zero() {
                            let _ = news.send(Flood::Stalled);
                        }
                        stalled += STALLED;
                        ensure!(
                            stalled < TIMEOUT,
                            "the flood stalled for good after {sent} bytes"
                        );
                    }
                    Err(err) if err.kind() == ErrorKind::Interrupted => {}
                    Err(err) => return Err(err).context("flooding"),
                }
            }
            flooder.output.set_write_timeout(Some(TIMEOUT))?;
            flooder.send(&chunk[sent % chunk.len()..])?; // the last whole line
            sent += chunk.len() - sent % chunk.len();
            flooder.say("done")?;
            Ok((sent, flooder))
        })
    };

    // While the reader reads nothing, its queue fills: the server must
    // stop reading the flood (its writes stall) rather than read past it.
    match progress.recv_timeout(TIMEOUT) {
        Ok(Flood::Stalled) => {}
        Ok(Flood::Capped) => {
            bail!("the server read {CAP} bytes of flood past a reader who read nothing")
        }
        other => bail!("the flood neither stalled nor ran on: {}", other.is_ok()),
    }
    go.send(())?;
    // Now the quiet member speaks; its line must come while the flood goes on.
    quiet_says.write_all(b"hello\n")?;
    let heard_after = loop {
        match progress.recv_timeout(TIMEOUT) {
            Ok(Flood::QuietHeard(lines)) => break lines,
            Ok(Flood::Stalled) => {} // the reader is still catching up
            Ok(Flood::Capped) => bail!("the quiet line did not come during {CAP} bytes of flood"),
            Err(_) => bail!(
                "the reader heard nothing for {TIMEOUT:?}: {:?}",
                reading.join()
            ),
        }
    };
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let (sent, _flooder) = flooding
        .join()
        .map_err(|_| anyhow!("the flooder panicked"))??;
    let heard = reading
        .join()
        .map_err(|_| anyhow!("the reader panicked"))??;
    let quiet_heard = quiet_reading
        .join()
        .map_err(|_| anyhow!("quiet panicked"))??;
    ensure!(
        heard == sent / LINE && quiet_heard == heard,
        "{sent} bytes of flood (quiet's line after {heard_after} lines): the reader heard \
         {heard} lines, quiet {quiet_heard}"
    );
    let log = server.kill()?;
    log.assert_no_panic()?;
    let cut: Vec<&String> = log
        .stdout
        .iter()
        .filter(|l| l.contains("too slow"))
        .collect();
    ensure!(cut.is_empty(), "the server cut members off: {cut:?}");
    Ok(())
}

pub fn an_over_long_line_gets_an_error_and_a_disconnection(server: &str) -> Result<()> {
    let mut server = Server::start(server, &[])?;
    let mut alice = Chatter::named(server.addr, "alice")?;
    let mut bob = Chatter::named(server.addr, "bob")?;
    let mut flood = vec![b'a'; 100_000];
    flood.push(b'\n');
    // The server stops reading after 8193 bytes; if it has already hung up
    // (and reset), our sending fails, which is fine: we check what came back.
    let _ = bob.send(&flood);
    let last = bob.lines_until_closed()?;
    ensure!(
        last == ["* line too long (max 8192 bytes), disconnecting"],
        "bob got {last:?}"
    );
    alice.wait_for("* bob left")?;
    server.wait_for("sent a line that was too long, disconnected")?;
    // The room goes on.
    let mut carol = Chatter::named(server.addr, "carol")?;
    carol.say("hello")?;
    alice.wait_for("carol: hello")?;
    Ok(())
}

pub fn a_line_of_exactly_8192_bytes_is_fine(server: &str) -> Result<()> {
    let server = Server::start(server, &[])?;
    let mut alice = Chatter::named(server.addr, "alice")?;
    let mut bob = Chatter::named(server.addr, "bob")?;
    let longest = "y".repeat(8192);
    bob.say(&longest)?;
    alice.wait_for(&format!("bob: {longest}"))?;
    Ok(())
}

pub fn an_endless_line_without_newline_is_cut_off(server: &str) -> Result<()> {
    // No `\n` ever: the server must not keep collecting bytes.
    let server = Server::start(server, &[])?;
    let mut bob = Chatter::named(server.addr, "bob")?;
    let chunk = vec![b'z'; 4096];
    for _ in 0..64 {
        if bob.send(&chunk).is_err() {
            break; // the server hung up (and reset) while we were still sending
        }
    }
    let last = bob.lines_until_closed()?;
    ensure!(
        last.is_empty() || last == ["* line too long (max 8192 bytes), disconnecting"],
        "bob got {last:?}"
    );
    Ok(())
}

pub fn the_room_turns_away_callers_beyond_max_clients(server: &str) -> Result<()> {
    let mut server = Server::start(server, &["--max-clients", "2"])?;
    let mut alice = Chatter::named(server.addr, "alice")?;
    let mut bob = Chatter::named(server.addr, "bob")?;
    let mut third = connect(server.addr)?;
    let reply = crate::read_to_close(&mut third)?;
    ensure!(reply == b"* server full\n", "got {reply:?}");
    server.wait_for("turned away: the room is full")?;
    // When someone leaves, there is space again.
    bob.say("/quit")?;
    alice.wait_for("* bob left")?;
    let mut carol = Chatter::named(server.addr, "carol")?;
    carol.say("made it")?;
    alice.wait_for("carol: made it")?;
    Ok(())
}

// ---------------------------------------------------------------- the client

pub fn client_sends_piped_lines_and_exits_at_end_of_input(server: &str) -> Result<()> {
    let server = Server::start(server, &[])?;
    let mut alice = Chatter::named(server.addr, "alice")?;
    cmd(CLIENT)?
        .arg(server.addr_arg())
        .write_stdin("/nick piped\nline one\nline two\n")
        .assert()
        .success()
        .stdout(predicate::str::starts_with("* welcome, you are 127.0.0.1:"))
        .stdout(predicate::str::contains("* you are now piped\n"))
        // No prompt when stdin is not a terminal.
        .stdout(predicate::str::contains(">>").not());
    alice.wait_for("piped: line one")?;
    alice.expect("piped: line two")?;
    alice.expect("* piped left")?;
    Ok(())
}

pub fn client_reports_when_the_server_goes_away(server: &str) -> Result<()> {
    let server = Server::start(server, &[])?;
    let client = start_client(&server)?;
    server.kill()?;
    // Its stdin is still open: only the listening thread can notice.
    let done = exit_with_stdin_open(client)?;
    ensure!(done.status.code() == Some(1), "{done:?}");
    ensure!(
        done.stderr.trim() == "error: server closed the connection",
        "{done:?}"
    );
    done.assert_no_panic()?;
    Ok(())
}

/// A client refuses a line from the server that never ends: after
/// `MAX_SERVER_LINE` bytes without `\n` it stops with one clear line
/// instead of reading on (its memory would grow with every byte).
pub fn client_refuses_an_endless_line_from_the_server(client: &str) -> Result<()> {
    let plain = crate::PlainServer::start(|mut stream| {
        let chunk = vec![b'x'; 64 * 1024];
        for _ in 0..(2 * crate::chat::MAX_SERVER_LINE / chunk.len()) {
            if stream.write_all(&chunk).is_err() {
                break; // the client hung up, as it should
            }
        }
        let _ = crate::read_to_close(&mut stream);
        Ok(Vec::new())
    })?;
    // Its stdin stays open: only the server's line can end it.
    let done = exit_with_stdin_open(Proc::spawn(client, &[&plain.addr.to_string()])?)?;
    ensure!(done.status.code() == Some(1), "{done:?}");
    ensure!(
        done.stderr.trim() == "error: the server sent a line longer than 1048576 bytes",
        "{:?}",
        done.stderr
    );
    done.assert_no_panic()?;
    plain.join()?;
    Ok(())
}

/// At a terminal the client shows `>> ` and waits for the keyboard; a line
/// that arrives meanwhile must take the prompt's place, with the prompt
/// drawn again below it, never `>> * welcome`. Python's `pty` gives the
/// client a real terminal (Linux only, like the book); a second member
/// joins while the client sits at its prompt.
#[cfg(target_os = "linux")]
pub fn client_at_a_terminal_redraws_the_prompt(client: &str, server: &str) -> Result<()> {
    let server = Server::start(server, &[])?;
    let at_a_terminal = r#"
import os, pty, select, socket, sys, time
pid, fd = pty.fork()
if pid == 0:
    os.execv(sys.argv[1], [sys.argv[1], sys.argv[2]])
seen = b""
deadline = time.time() + 15   # for it all: then the test shows what came
def read_until(*wanted):
    """Until each of `wanted` has shown up, in this order."""
    global seen
    while time.time() < deadline:
        at = 0
        for w in wanted:
            at = seen.find(w, at)
            if at < 0:
                break
            at += len(w)
        if at >= 0:
            return
        if select.select([fd], [], [], 0.1)[0]:
            try:
                seen += os.read(fd, 1024)
            except OSError:
                return
read_until(b"commands: /nick NAME, /who, /quit", b">> ")
os.write(fd, b"/nick tty\n")
read_until(b"* you are now tty", b">> ")
host, _, port = sys.argv[2].rpartition(":")
other = socket.create_connection((host, int(port)))
read_until(b" joined", b">> ")
os.write(fd, b"\x04")
read_until(b"never: read to the end")
os.kill(pid, 9)               # ended already, unless it hangs
os.waitpid(pid, 0)
sys.stdout.buffer.write(seen)
"#;
    let mut py = Command::new("python3");
    py.arg("-c")
        .arg(at_a_terminal)
        .arg(crate::bin_path(client)?)
        .arg(server.addr_arg());
    let done = crate::run_with_stdin(py, "")?;
    ensure!(done.status.success(), "python failed: {done:?}");
    let screen = String::from_utf8_lossy(&done.stdout);
    ensure!(
        !screen.contains(">> *"),
        "a line landed after the prompt: {screen:?}"
    );
    for redrawn in [
        "commands: /nick NAME, /who, /quit\r\n>> ",
        "* you are now tty\r\n>> ",
        " joined\r\n>> ",
    ] {
        ensure!(
            screen.contains(redrawn),
            "no prompt after the line: {screen:?}"
        );
    }
    Ok(())
}

/// Waits for a client to exit by itself while its stdin is still open.
/// (`Proc::wait_exit` closes stdin first, and end of input alone would end
/// the client with status 0.) Its stdout closes when it exits; if instead
/// reading times out, `wait_exit` ends it and the caller's status check fails.
pub fn exit_with_stdin_open(mut client: Proc) -> Result<crate::Finished> {
    while client.next_line().is_ok() {}
    client.wait_exit()
}

// ---------------------------------------------------------------- out of files

/// `command` with at most `files` open files: `sh` sets the limit, as
/// `ulimit -n` does in a terminal, then becomes the server (`exec`).
#[cfg(target_os = "linux")]
pub fn with_few_files(files: u32, command: &Command) -> Command {
    let mut shell = Command::new("sh");
    shell
        .arg("-c")
        .arg(format!("ulimit -n {files} && exec \"$@\""))
        .arg("sh")
        .arg(command.get_program())
        .args(command.get_args());
    for (key, value) in command.get_envs() {
        if let Some(value) = value {
            shell.env(key, value);
        }
    }
    shell
}

/// A chat server with few files (see [`with_few_files`]) lets a caller who
/// waited in the queue in once a member leaves.
#[cfg(target_os = "linux")]
pub fn lets_the_waiting_caller_in_when_a_member_leaves(server: Server) -> Result<()> {
    let (server, waiting) = runs_out_of_files_and_recovers(server, Chatter::over)?;
    Chatter::over(waiting)
        .context("a member left, but the caller waiting in the queue got no welcome")?;
    server.kill()?.assert_no_panic()
}

/// Fills `server`, which may open only a few files, with callers (each
/// served by `serve`, which keeps the connection) until `accept` fails and
/// a caller is left in the queue. That caller gets nothing while every file
/// is in use. Then one caller leaves: the waiting one must get in with
/// nobody else calling, and the log must say once that accept failed and
/// once that it works again, not a line for every retry (ten a second).
/// Returns the server, still running, and the waiting caller's connection,
/// now accepted.
#[cfg(target_os = "linux")]
pub fn runs_out_of_files_and_recovers<T>(
    mut server: Server,
    serve: impl Fn(TcpStream) -> Result<T>,
) -> Result<(Server, TcpStream)> {
    let mut served = Vec::new();
    let mut waiting = loop {
        ensure!(
            served.len() < 64,
            "accept never failed; log: {:?}",
            server.proc.seen()
        );
        let stream = connect(server.addr)?;
        let logged = loop {
            let line = server.proc.next_line()?;
            if line.contains(" connected") || line.starts_with("accept failed") {
                break line;
            }
        };
        if logged.starts_with("accept failed") {
            ensure!(
                logged.ends_with("; trying again every 100 ms"),
                "the failure is logged as {logged:?}"
            );
            break stream;
        }
        served.push(serve(stream)?);
    };
    // While every file is in use, the caller waits: nothing comes.
    crate::assert_silent(&mut waiting, Duration::from_millis(300))?;
    drop(served.remove(0)); // a file descriptor is free again
    let again = server.wait_for("accept works again after ")?;
    let failures: u64 = again
        .strip_prefix("accept works again after ")
        .and_then(|rest| rest.strip_suffix(" failures"))
        .and_then(|n| n.parse().ok())
        .with_context(|| format!("the recovery is logged as {again:?}"))?;
    // 300 ms and more of retries every 100 ms: a few, not thousands.
    ensure!(
        (2..100).contains(&failures),
        "{failures} failed accepts before the caller got in"
    );
    let logged = server
        .proc
        .seen()
        .iter()
        .filter(|line| line.starts_with("accept failed"))
        .count();
    ensure!(
        logged == 1,
        "accept failed was logged {logged} times for one episode"
    );
    server.wait_for(&format!("client {} connected", waiting.local_addr()?))?;
    Ok((server, waiting))
}

// ---------------------------------------------------------------- Ctrl-C

#[cfg(unix)]
pub fn ctrl_c_tells_everybody_then_the_server_exits(server: &str) -> Result<()> {
    let mut server = Server::start(server, &[])?;
    let mut alice = Chatter::named(server.addr, "alice")?;
    let mut bob = start_client(&server)?;
    let joined = alice.line()?;
    ensure!(joined.ends_with(" joined"), "alice got {joined:?}");
    interrupt(&server.proc)?;
    let last = alice.lines_until_closed()?;
    ensure!(last == ["* server shutting down"], "alice got {last:?}");
    bob.wait_for("* server shutting down")?;
    let bob = exit_with_stdin_open(bob)?;
    ensure!(bob.status.code() == Some(1), "{bob:?}");
    ensure!(
        bob.stderr.contains("server closed the connection"),
        "{bob:?}"
    );
    server.wait_for("server stopped")?;
    let done = server.wait_exit()?;
    ensure!(done.status.success(), "{done:?}");
    done.assert_no_panic()?;
    Ok(())
}

// ---------------------------------------------------------------- the Python twins

/// The Python twin server of lesson folder `lesson`, on port 0 with `extra`.
pub fn python_server(lesson: &str, extra: &[&str]) -> Result<Server> {
    let mut twin = crate::python(lesson, "server.py");
    twin.arg("127.0.0.1:0").args(extra);
    Server::start_command(twin)
}

/// Runs `check` on the twin of `lesson` started with `extra`, if Python is
/// here.
pub fn on_twin(lesson: &str, extra: &[&str], check: fn(Server) -> Result<()>) -> Result<()> {
    if !crate::tools::PYTHON3.is_here()? {
        return Ok(());
    }
    check(python_server(lesson, extra)?)
}

/// [`room_outlives_a_stuck_client`] on the twin of `lesson`, if Python is
/// here.
pub fn twin_outlives_a_stuck_client(lesson: &str) -> Result<()> {
    crate::chaos::exempt(STUCK);
    on_twin(lesson, &[], room_outlives_a_stuck_client)
}

/// [`flood_neither_cuts_off_nor_drowns_the_others`] on the twin of
/// `lesson`, if Python is here.
pub fn twin_is_not_drowned_by_a_flood(lesson: &str) -> Result<()> {
    crate::chaos::exempt(STUCK);
    on_twin(lesson, &[], flood_neither_cuts_off_nor_drowns_the_others)
}

/// [`member_for_whom_a_line_waits_too_long_is_hung_up`] on the twin of
/// `lesson`, if Python is here.
pub fn twin_hangs_up_when_a_line_waits_too_long(lesson: &str) -> Result<()> {
    crate::chaos::exempt(STUCK);
    if !crate::tools::PYTHON3.is_here()? {
        return Ok(());
    }
    member_for_whom_a_line_waits_too_long_is_hung_up(|| python_server(lesson, &[]))
}

/// A twin started with `--max-clients 2` keeps the rules of the Rust room:
/// names are unique, the third caller is turned away, an over-long line
/// gets the error and a hang-up.
pub fn python_server_keeps_the_same_rules(mut server: Server) -> Result<()> {
    let mut alice = Chatter::named(server.addr, "alice")?;
    let mut bob = Chatter::named(server.addr, "bob")?;
    bob.say("/nick alice")?;
    bob.expect("* the name alice is taken")?;
    let reply = crate::read_to_close(&mut connect(server.addr)?)?;
    ensure!(reply == b"* server full\n", "got {reply:?}");
    let mut flood = vec![b'a'; 100_000];
    flood.push(b'\n');
    let _ = bob.send(&flood);
    let last = bob.lines_until_closed()?;
    ensure!(last == [crate::chat::TOO_LONG], "bob got {last:?}");
    alice.wait_for("* bob left")?;
    server.wait_for("sent a line that was too long, disconnected")?;
    server.kill()?.assert_no_panic()
}

/// A twin says goodbye on Ctrl-C and exits with status 0.
#[cfg(unix)]
pub fn python_server_says_goodbye_on_ctrl_c(mut server: Server) -> Result<()> {
    let mut alice = Chatter::named(server.addr, "alice")?;
    interrupt(&server.proc)?;
    let last = alice.lines_until_closed()?;
    ensure!(last == ["* server shutting down"], "alice got {last:?}");
    server.wait_for("server stopped")?;
    let done = server.wait_exit()?;
    ensure!(done.status.success(), "{done:?}");
    Ok(())
}

/// Sends SIGINT, what Ctrl-C sends, to a process.
#[cfg(unix)]
pub fn interrupt(proc: &Proc) -> Result<()> {
    let status = Command::new("kill")
        .args(["-INT", &proc.id().to_string()])
        .status()?;
    ensure!(status.success(), "kill -INT failed");
    Ok(())
}
