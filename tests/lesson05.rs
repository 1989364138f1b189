//! Lesson 05: UDP. Datagrams instead of a connection, a server that no
//! sender can stop, and a client that waits, retries and gives up.

use std::io::{ErrorKind, Write};
use std::net::{SocketAddr, UdpSocket};
use std::process::Command;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail, ensure};
use course_tests::chaos;
use course_tests::contract;
use course_tests::tools::{IPV6, NC, PYTHON3};
use course_tests::transcript::Transcript;
use course_tests::{
    Proc, Server, TIMEOUT, assert_no_datagram, cmd, python, udp_ask, udp_socket, unused_udp_addr,
};
use predicates::prelude::*;

const SERVER: &str = "lesson05-server";
const CLIENT: &str = "lesson05-client";
const EXERCISE1: &str = "lesson05-exercise1";
const LESSON: &str = "lesson05-udp";
const DEFAULT_ADDR: &str = "127.0.0.1:9005";

/// The largest UDP payload one IPv4 datagram can carry:
/// 65,535 (IP length field) - 20 (IPv4 header) - 8 (UDP header).
const MAX_IPV4_PAYLOAD: usize = 65_507;

/// A UDP peer written in the test, not ours: it runs `serve` on a socket
/// bound to `127.0.0.1:0` in a thread and hands back what `serve` returns.
struct PlainUdpPeer {
    addr: SocketAddr,
    handle: JoinHandle<Result<Vec<Vec<u8>>>>,
}

impl PlainUdpPeer {
    fn start<F>(serve: F) -> Result<PlainUdpPeer>
    where
        F: FnOnce(UdpSocket) -> Result<Vec<Vec<u8>>> + Send + 'static,
    {
        let socket = udp_socket()?;
        let addr = socket.local_addr()?;
        let handle = thread::spawn(move || serve(socket));
        Ok(PlainUdpPeer { addr, handle })
    }

    fn join(self) -> Result<Vec<Vec<u8>>> {
        self.handle
            .join()
            .map_err(|_| anyhow!("the plain UDP peer's thread panicked"))?
    }
}

/// Receives one datagram (or fails after the socket's timeout).
fn recv_one(socket: &UdpSocket) -> Result<(Vec<u8>, SocketAddr)> {
    let mut buf = vec![0u8; 65_535];
    let (n, from) = socket
        .recv_from(&mut buf)
        .context("waiting for a datagram")?;
    buf.truncate(n);
    Ok((buf, from))
}

// ---------------------------------------------------------------- command line

course_tests::test_table! {
    server_prints_help: contract::help_works(SERVER, DEFAULT_ADDR);
    client_prints_help: contract::help_shows(
        CLIENT,
        DEFAULT_ADDR,
        &["Usage: lesson05-client [OPTIONS] [ADDR]", "--buffer <BYTES>"],
    );
    server_dies_on_bad_address: contract::bad_address_is_refused(SERVER);
    client_dies_on_bad_address: contract::bad_address_is_refused(CLIENT);
}

#[test]
fn client_refuses_a_zero_byte_buffer() -> Result<()> {
    cmd(CLIENT)?
        .args(["--buffer", "0"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("--buffer"));
    Ok(())
}

#[test]
fn server_explains_when_the_address_is_taken() -> Result<()> {
    let taken = UdpSocket::bind("127.0.0.1:0")?;
    let addr = taken.local_addr()?.to_string();
    cmd(SERVER)?
        .arg(&addr)
        .assert()
        .code(1)
        .stderr(predicate::str::contains(format!(
            "could not listen on {addr}"
        )));
    Ok(())
}

// ------------------------------------------------------------ the exchange

#[test]
fn client_and_server_exchange_lines() -> Result<()> {
    let mut server = Server::start(SERVER, &[])?;
    cmd(CLIENT)?
        .arg(server.addr_arg())
        .write_stdin("hello\n你好 world\n")
        .assert()
        .success()
        .stdout("HELLO\n你好 WORLD\n")
        .stderr("");
    let line = server.wait_for(r#"said "hello""#)?;
    ensure!(line.starts_with("client 127.0.0.1:"), "log line: {line:?}");
    server.wait_for(r#"said "你好 world""#)?;
    Ok(())
}

#[test]
fn server_needs_no_connection_and_answers_the_sender() -> Result<()> {
    chaos::exempt(chaos::ADDRESS_IN_LOG);
    // What a Python client does: sendto(b"hello", addr), then recvfrom(1024).
    // No connect, no accept: the reply simply comes back from the server's
    // address to ours.
    let mut server = Server::start(SERVER, &[])?;
    let socket = udp_socket()?;
    let (reply, from) = udp_ask(&socket, server.addr, b"hello")?;
    ensure!(reply == b"HELLO", "reply {reply:?}");
    ensure!(from == server.addr, "reply came from {from}");
    let me = socket.local_addr()?;
    server.wait_for(&format!(r#"client {me} said "hello""#))?;
    Ok(())
}

#[test]
fn client_sends_an_empty_line_as_an_empty_datagram() -> Result<()> {
    let mut server = Server::start(SERVER, &[])?;
    cmd(CLIENT)?
        .arg(server.addr_arg())
        .write_stdin("a\n\nb\n")
        .assert()
        .success()
        .stdout("A\n\nB\n");
    server.wait_for(r#"said "a""#)?;
    server.wait_for(r#"said """#)?;
    server.wait_for(r#"said "b""#)?;
    Ok(())
}

#[test]
fn each_datagram_keeps_its_boundaries() -> Result<()> {
    // Three sends back to back, before reading anything: over TCP the three
    // could arrive glued together (粘包). Over UDP each is its own datagram,
    // so three separate replies come back, each exactly one message.
    let server = Server::start(SERVER, &[])?;
    let socket = udp_socket()?;
    for message in ["one", "two", "three"] {
        socket.send_to(message.as_bytes(), server.addr)?;
    }
    let mut replies = Vec::new();
    for _ in 0..3 {
        replies.push(recv_one(&socket)?.0);
    }
    // Loopback does not reorder, so the order is kept here too; on a real
    // network UDP would not promise even that.
    ensure!(
        replies == [b"ONE".to_vec(), b"TWO".to_vec(), b"THREE".to_vec()],
        "replies {replies:?}"
    );
    Ok(())
}

#[test]
fn many_clients_at_once_each_get_their_own_reply() -> Result<()> {
    let server = Server::start(SERVER, &[])?;
    let addr = server.addr;
    thread::scope(|scope| {
        let workers: Vec<_> = (0..20)
            .map(|who| {
                scope.spawn(move || -> Result<()> {
                    let socket = udp_socket()?;
                    for round in 0..5 {
                        let message = format!("client {who} message {round}");
                        let (reply, _) = udp_ask(&socket, addr, message.as_bytes())?;
                        let expected = message.to_uppercase();
                        ensure!(
                            reply == expected.as_bytes(),
                            "client {who} sent {message:?} and got {:?}",
                            String::from_utf8_lossy(&reply)
                        );
                    }
                    Ok(())
                })
            })
            .collect();
        for worker in workers {
            worker
                .join()
                .map_err(|_| anyhow!("a client thread panicked"))??;
        }
        Ok(())
    })
}

#[test]
fn many_lesson_clients_at_once_each_print_their_own_replies() -> Result<()> {
    let server = Server::start(SERVER, &[])?;
    let addr = server.addr_arg();
    let mut clients = Vec::new();
    for who in 0..5 {
        let mut client = Proc::spawn(CLIENT, &[&addr])?;
        for round in 0..3 {
            writeln!(client.stdin()?, "client {who} line {round}")?;
        }
        clients.push(client);
    }
    for (who, client) in clients.into_iter().enumerate() {
        let done = client.wait_exit()?;
        ensure!(done.status.success(), "client {who} failed: {done:?}");
        let expected: Vec<String> = (0..3)
            .map(|round| format!("CLIENT {who} LINE {round}"))
            .collect();
        ensure!(
            done.stdout == expected,
            "client {who} printed {:?}",
            done.stdout
        );
    }
    Ok(())
}

// ------------------------------------------------------------------- sizes

#[test]
#[cfg_attr(
    target_os = "macos",
    ignore = "macOS caps a UDP datagram at 9216 bytes unless SO_SNDBUF is raised"
)]
fn a_65507_byte_datagram_round_trips() -> Result<()> {
    let mut server = Server::start(SERVER, &[])?;
    let socket = udp_socket()?;
    let message: Vec<u8> = (0..MAX_IPV4_PAYLOAD)
        .map(|i| b"abcdefghijklmnopqrstuvwxyz"[i % 26])
        .collect();
    let (reply, _) = udp_ask(&socket, server.addr, &message)?;
    ensure!(
        reply.len() == MAX_IPV4_PAYLOAD,
        "reply had {} bytes",
        reply.len()
    );
    ensure!(reply == message.to_ascii_uppercase(), "reply differs");
    server.wait_for("... (65507 bytes)")?;
    Ok(())
}

#[test]
fn no_ipv4_datagram_can_carry_more_than_65507_bytes() -> Result<()> {
    // The limit belongs to the operating system, not to our server: the
    // send itself fails ("Message too long"), and nothing is sent.
    let socket = udp_socket()?;
    let target = unused_udp_addr()?;
    let result = socket.send_to(&vec![b'x'; MAX_IPV4_PAYLOAD + 1], target);
    ensure!(
        result.is_err(),
        "a 65,508-byte datagram was sent: {result:?}"
    );
    Ok(())
}

#[test]
#[cfg_attr(
    target_os = "macos",
    ignore = "macOS caps a UDP datagram at 9216 bytes unless SO_SNDBUF is raised"
)]
fn client_round_trips_a_65507_byte_line() -> Result<()> {
    let server = Server::start(SERVER, &[])?;
    let line = "q".repeat(MAX_IPV4_PAYLOAD);
    cmd(CLIENT)?
        .arg(server.addr_arg())
        .write_stdin(format!("{line}\n"))
        .assert()
        .success()
        .stdout(format!("{}\n", line.to_uppercase()));
    Ok(())
}

#[test]
fn client_reports_a_line_too_long_for_one_datagram() -> Result<()> {
    let server = Server::start(SERVER, &[])?;
    let line = "q".repeat(MAX_IPV4_PAYLOAD + 1);
    cmd(CLIENT)?
        .arg(server.addr_arg())
        .write_stdin(format!("{line}\n"))
        .assert()
        .code(1)
        .stdout("")
        .stderr(predicate::str::contains(
            "sending a 65508-byte datagram failed",
        ))
        .stderr(predicate::str::contains("panicked").not());
    Ok(())
}

#[test]
#[cfg_attr(
    windows,
    ignore = "Windows reports a datagram cut short as an error (WSAEMSGSIZE)"
)]
fn a_1024_byte_buffer_silently_truncates_a_bigger_datagram() -> Result<()> {
    // Python's recvfrom(1024) against a 2000-byte reply: 1024 bytes come back,
    // no error, and the other 976 are gone. The next recvfrom returns the
    // next datagram, not the rest of this one.
    let server = Server::start(SERVER, &[])?;
    let socket = udp_socket()?;
    socket.send_to(&[b'a'; 2000], server.addr)?;
    socket.send_to(b"next", server.addr)?;
    let mut buf = [0u8; 1024];
    let (n, _) = socket.recv_from(&mut buf)?;
    ensure!(n == 1024, "got {n} bytes");
    ensure!(buf.iter().all(|&b| b == b'A'));
    let (n, _) = socket.recv_from(&mut buf)?;
    ensure!(&buf[..n] == b"NEXT", "then got {:?}", &buf[..n]);
    Ok(())
}

#[test]
#[cfg_attr(
    windows,
    ignore = "Windows reports a datagram cut short as an error (WSAEMSGSIZE)"
)]
fn client_with_a_1024_byte_buffer_prints_only_the_first_1024_bytes() -> Result<()> {
    let mut server = Server::start(SERVER, &[])?;
    cmd(CLIENT)?
        .arg(server.addr_arg())
        .args(["--buffer", "1024"])
        .write_stdin(format!("{}\nok\n", "a".repeat(2000)))
        .assert()
        .success()
        .stdout(format!("{}\nOK\n", "A".repeat(1024)))
        .stderr("");
    // The server did get, and answer, all 2000 bytes.
    server.wait_for("... (2000 bytes)")?;
    Ok(())
}

// ------------------------------------------------------- the server survives

#[test]
fn server_answers_invalid_utf8_unchanged_and_logs_it() -> Result<()> {
    let mut server = Server::start(SERVER, &[])?;
    let socket = udp_socket()?;
    let (reply, _) = udp_ask(&socket, server.addr, &[0xff, b'a', 0xfe, 0x00])?;
    ensure!(reply == [0xff, b'A', 0xfe, 0x00], "reply {reply:?}");
    // Shown lossily (U+FFFD for each bad byte), control bytes escaped.
    server.wait_for("said \"\u{fffd}a\u{fffd}\\0\"")?;
    let (reply, _) = udp_ask(&socket, server.addr, b"ok")?;
    ensure!(reply == b"OK");
    Ok(())
}

#[test]
fn server_survives_a_flood() -> Result<()> {
    // One sender fires thousands of datagrams without reading a single
    // reply. Some are dropped (the server's queue is full, its replies
    // overflow the sender's queue): that is UDP. The server stays up.
    let server = Server::start(SERVER, &[])?;
    let flood = udp_socket()?;
    for i in 0..5_000 {
        flood.send_to(format!("flood {i}").as_bytes(), server.addr)?;
    }
    // A newcomer may lose a datagram in the crowd too, so it retries, as
    // every UDP client must; each try waits for a reply with a timeout.
    let socket = udp_socket()?;
    socket.set_read_timeout(Some(Duration::from_secs(1)))?;
    let deadline = Instant::now() + TIMEOUT;
    loop {
        match udp_ask(&socket, server.addr, b"hello?") {
            Ok((reply, _)) if reply == b"HELLO?" => break,
            Ok((reply, _)) => bail!("unexpected reply {reply:?}"),
            Err(_) if Instant::now() < deadline => continue,
            Err(err) => return Err(err).context("the server no longer answers"),
        }
    }
    server.kill()?.assert_no_panic()
}

#[test]
fn server_listens_on_ipv6_loopback_when_asked() -> Result<()> {
    // Not every machine has IPv6: skip in one line where ::1 is missing
    // (a failure under CI).
    if !IPV6.is_here()? {
        return Ok(());
    }
    let server = Server::start_on(SERVER, "[::1]:0", &[])?;
    ensure!(server.addr.is_ipv6());
    cmd(CLIENT)?
        .arg(server.addr_arg())
        .write_stdin("hello\n")
        .assert()
        .success()
        .stdout("HELLO\n");
    Ok(())
}

// ------------------------------------------- the client's timeout and retries

#[test]
fn client_gives_up_when_nothing_listens() -> Result<()> {
    // On Linux the connected socket hears "port unreachable" at once; where
    // it does not, the three 1-second waits run out. Same message either way.
    let addr = unused_udp_addr()?.to_string();
    cmd(CLIENT)?
        .arg(&addr)
        .write_stdin("hello\n")
        .assert()
        .code(1)
        .stdout("")
        .stderr(predicate::str::contains(format!(
            "no reply from {addr} (is lesson05-server running?)"
        )))
        .stderr(predicate::str::contains("panicked").not());
    Ok(())
}

#[test]
fn client_tries_three_times_then_gives_up_on_a_silent_peer() -> Result<()> {
    // A socket that is bound but never answers: no "port unreachable" comes
    // back, so only the timeout can end each wait.
    let silent = udp_socket()?;
    let addr = silent.local_addr()?.to_string();
    let started = Instant::now();
    cmd(CLIENT)?
        .arg(&addr)
        .write_stdin("anyone?\n")
        .assert()
        .code(1)
        .stdout("")
        .stderr(predicate::str::contains(format!(
            "no reply from {addr} (is lesson05-server running?)"
        )));
    let waited = started.elapsed();
    ensure!(
        waited >= Duration::from_millis(2_500),
        "gave up after only {waited:?}"
    );
    // The client is gone, so its three datagrams are already queued here.
    for _ in 0..3 {
        let (data, _) = recv_one(&silent)?;
        ensure!(data == b"anyone?", "got {data:?}");
    }
    assert_no_datagram(&silent, Duration::from_millis(200))
}

#[test]
fn client_sends_again_when_a_datagram_is_lost() -> Result<()> {
    // This peer "loses" the first datagram (reads it and does nothing) and
    // answers the second.
    let peer = PlainUdpPeer::start(|socket| {
        let (first, _) = recv_one(&socket)?;
        let (second, from) = recv_one(&socket)?;
        socket.send_to(b"got it the second time", from)?;
        Ok(vec![first, second])
    })?;
    cmd(CLIENT)?
        .arg(peer.addr.to_string())
        .write_stdin("ping\n")
        .assert()
        .success()
        .stdout("got it the second time\n")
        .stderr("");
    let received = peer.join()?;
    ensure!(received == [b"ping", b"ping"], "peer got {received:?}");
    Ok(())
}

#[test]
fn client_carries_on_after_an_unanswered_message_and_exits_1() -> Result<()> {
    // The peer ignores "lost" (all three tries) and answers "found".
    let peer = PlainUdpPeer::start(|socket| {
        let mut received = Vec::new();
        for _ in 0..4 {
            let (data, from) = recv_one(&socket)?;
            if data != b"lost" {
                socket.send_to(&data.to_ascii_uppercase(), from)?;
            }
            received.push(data);
        }
        Ok(received)
    })?;
    let addr = peer.addr.to_string();
    cmd(CLIENT)?
        .arg(&addr)
        .write_stdin("lost\nfound\n")
        .assert()
        .code(1)
        .stdout("FOUND\n")
        .stderr(predicate::str::contains(format!(
            "no reply from {addr} (is lesson05-server running?)"
        )))
        .stderr(predicate::str::contains("1 message(s) got no reply"));
    let received = peer.join()?;
    ensure!(
        received == [&b"lost"[..], b"lost", b"lost", b"found"],
        "peer got {received:?}"
    );
    Ok(())
}

// ------------------------------------------- the client against other peers

#[test]
fn client_talks_to_a_plain_udp_server() -> Result<()> {
    // Like a Python server: data, addr = recvfrom(1024); sendto(..., addr).
    let peer = PlainUdpPeer::start(|socket| {
        let (data, from) = recv_one(&socket)?;
        socket.send_to(b"got it", from)?;
        Ok(vec![data])
    })?;
    cmd(CLIENT)?
        .arg(peer.addr.to_string())
        .write_stdin("ping\n")
        .assert()
        .success()
        .stdout("got it\n");
    // One line, one datagram, without its newline.
    let received = peer.join()?;
    ensure!(received == [b"ping"], "peer got {received:?}");
    Ok(())
}

#[test]
fn client_ignores_datagrams_from_strangers() -> Result<()> {
    // Before the real reply, a stranger writes to the client's port. The
    // client's socket is connected to the server, so the system drops the
    // stranger's datagram and the client prints only the real reply.
    let peer = PlainUdpPeer::start(|socket| {
        let (data, client) = recv_one(&socket)?;
        let stranger = udp_socket()?;
        stranger.send_to(b"spam", client)?;
        socket.send_to(b"real reply", client)?;
        Ok(vec![data])
    })?;
    cmd(CLIENT)?
        .arg(peer.addr.to_string())
        .write_stdin("hi\n")
        .assert()
        .success()
        .stdout("real reply\n");
    peer.join()?;
    Ok(())
}

#[test]
fn client_shows_invalid_utf8_without_panicking() -> Result<()> {
    let peer = PlainUdpPeer::start(|socket| {
        let (data, from) = recv_one(&socket)?;
        socket.send_to(&[b'o', b'k', 0xff, 0xfe], from)?;
        Ok(vec![data])
    })?;
    cmd(CLIENT)?
        .arg(peer.addr.to_string())
        .write_stdin("hi\n")
        .assert()
        .success()
        .stdout("ok\u{fffd}\u{fffd}\n");
    peer.join()?;
    Ok(())
}

// ---------------------------------------------------------------- interop
// The Python twins (lessons/lesson05-udp/python/) and the Rust programs
// talk to each other. `cargo test -p course-tests interop` runs these for
// every lesson.

/// A lesson 05 Python twin as an `assert_cmd` command with a timeout.
fn python_twin(file: &str) -> assert_cmd::Command {
    let mut command = assert_cmd::Command::from_std(python(LESSON, file));
    command.timeout(TIMEOUT);
    command
}

#[test]
fn interop_python_client_with_rust_server() -> Result<()> {
    if !PYTHON3.is_here()? {
        return Ok(());
    }
    let mut server = Server::start(SERVER, &[])?;
    python_twin("client.py")
        .arg(server.addr_arg())
        .write_stdin("hello\n\n你好 udp\n")
        .assert()
        .success()
        .stdout("HELLO\n\n你好 UDP\n")
        .stderr("");
    server.wait_for(r#"said "hello""#)?;
    server.wait_for(r#"said """#)?;
    server.wait_for(r#"said "你好 udp""#)?;
    Ok(())
}

#[test]
fn interop_rust_client_with_python_server() -> Result<()> {
    if !PYTHON3.is_here()? {
        return Ok(());
    }
    let mut twin = python(LESSON, "server.py");
    twin.arg("127.0.0.1:0");
    let mut server = Server::start_command(twin)?;
    cmd(CLIENT)?
        .arg(server.addr_arg())
        .write_stdin("hello\n\n你好 udp\n")
        .assert()
        .success()
        .stdout("HELLO\n\n你好 UDP\n")
        .stderr("");
    // The twin logs in the same words as the Rust server.
    let line = server.wait_for(r#"said "hello""#)?;
    ensure!(line.starts_with("client 127.0.0.1:"), "log line: {line:?}");
    server.wait_for(r#"said """#)?;
    server.wait_for(r#"said "你好 udp""#)?;
    Ok(())
}

#[test]
fn interop_python_client_gives_up_like_the_rust_one() -> Result<()> {
    if !PYTHON3.is_here()? {
        return Ok(());
    }
    let addr = unused_udp_addr()?.to_string();
    python_twin("client.py")
        .arg(&addr)
        .write_stdin("hello\n")
        .assert()
        .code(1)
        .stdout("")
        .stderr(format!(
            "no reply from {addr} (is lesson05-server running?)\n\
             error: 1 message(s) got no reply from {addr}\n"
        ));
    Ok(())
}

#[test]
#[cfg_attr(
    windows,
    ignore = "Windows reports a datagram cut short as an error (WSAEMSGSIZE)"
)]
fn interop_python_client_cuts_replies_to_its_buffer() -> Result<()> {
    if !PYTHON3.is_here()? {
        return Ok(());
    }
    let server = Server::start(SERVER, &[])?;
    python_twin("client.py")
        .arg(server.addr_arg())
        .args(["--buffer", "1024"])
        .write_stdin(format!("{}\nok\n", "a".repeat(2000)))
        .assert()
        .success()
        .stdout(format!("{}\nOK\n", "A".repeat(1024)));
    Ok(())
}

// ------------------------------------------------------------ book output
// The book's "Run it" output (book/output/lesson05-*.txt) comes from these
// runs. Regenerate with `UPDATE_TRANSCRIPTS=1 cargo test -p course-tests --test lesson05`.
// Tests whose output holds Linux's own words (error texts and numbers, nc)
// run on Linux only; the behaviour itself is tested above on every system.

#[test]
fn book_output_of_a_first_run() -> Result<()> {
    let mut server = Server::start(SERVER, &[])?;
    let addr = server.addr;
    let client = cmd(CLIENT)?
        .arg(server.addr_arg())
        .write_stdin("hello\n\n你好 udp\n")
        .assert()
        .success();
    server.wait_for(r#"said "你好 udp""#)?;
    // The server never ends by itself: stop it, as a reader does with Ctrl-C.
    let log = server.kill()?;
    let mut t = Transcript::new();
    t.show_addr_as(addr, DEFAULT_ADDR)
        .command("cargo run -p lesson05-server")
        .lines(&log.stdout[..1])
        .check("lesson05-server-start")?;
    let mut t = Transcript::new();
    t.show_addr_as(addr, DEFAULT_ADDR)
        .command(r"printf 'hello\n\n你好 udp\n' | cargo run -p lesson05-client")
        .output(&String::from_utf8_lossy(&client.get_output().stdout))
        .check("lesson05-client")?;
    let mut t = Transcript::new();
    t.show_addr_as(addr, DEFAULT_ADDR)
        .command("cargo run -p lesson05-server")
        .lines(&log.stdout)
        .check("lesson05-server")
}

#[test]
#[cfg_attr(
    not(target_os = "linux"),
    ignore = "uses netcat-openbsd, as the book shows it on Linux"
)]
fn book_output_of_other_udp_clients() -> Result<()> {
    if !(NC.is_here()? && PYTHON3.is_here()?) {
        return Ok(());
    }
    // What the chapter shows with nc and with a Python one-liner, and what
    // the server logs for each.
    let one_liner = r#"import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.sendto(b"hello", ("127.0.0.1", 9005)); print(s.recvfrom(1024))"#;
    // Shown one statement a line, so that it fits the book's column.
    let one_liner = &one_liner.replace("; ", "\n");
    let mut server = Server::start(SERVER, &[])?;
    let addr = server.addr;
    let port = addr.port().to_string();
    let mut t = Transcript::new();
    let nc = assert_cmd::Command::new("sh")
        .arg("-c")
        .arg(format!("printf 'hello\\n' | nc -u -w1 127.0.0.1 {port}"))
        .timeout(TIMEOUT)
        .assert()
        .success();
    t.command(r"printf 'hello\n' | nc -u -w1 127.0.0.1 9005")
        .output(&String::from_utf8_lossy(&nc.get_output().stdout));
    server.wait_for(r#"said "hello\n""#)?;
    let py = assert_cmd::Command::new("python3")
        .arg("-c")
        .arg(one_liner.replace("9005", &port))
        .timeout(TIMEOUT)
        .assert()
        .success();
    // Python prints the sender as a tuple, which the normaliser does not
    // know: put the default port back by hand.
    let printed = String::from_utf8_lossy(&py.get_output().stdout)
        .replace(&format!("'127.0.0.1', {port})"), "'127.0.0.1', 9005)");
    t.command(&format!("python3 -c '\n{one_liner}'"))
        .output(&printed)
        .check("lesson05-other-clients")?;
    server.wait_for(r#"said "hello""#)?;
    let log = server.kill()?;
    let mut t = Transcript::new();
    t.show_addr_as(addr, DEFAULT_ADDR)
        .command("cargo run -p lesson05-server")
        .lines(&log.stdout)
        .check("lesson05-other-clients-server")
}

#[test]
#[cfg_attr(
    windows,
    ignore = "Windows reports a datagram cut short as an error (WSAEMSGSIZE)"
)]
fn book_output_of_truncation() -> Result<()> {
    if !PYTHON3.is_here()? {
        return Ok(());
    }
    // Python's recvfrom(1024), then our client with its default buffer and
    // with --buffer 1024. `wc -c` counts stdout's bytes; so do we.
    let one_liner = r#"import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.sendto(b"a" * 2000, ("127.0.0.1", 9005)); print(len(s.recvfrom(1024)[0]))"#;
    // Shown one statement a line, so that it fits the book's column.
    let one_liner = &one_liner.replace("; ", "\n");
    let mut server = Server::start(SERVER, &[])?;
    let addr = server.addr;
    let mut t = Transcript::new();
    let py = assert_cmd::Command::new("python3")
        .arg("-c")
        .arg(one_liner.replace("9005", &addr.port().to_string()))
        .timeout(TIMEOUT)
        .assert()
        .success();
    t.command(&format!("python3 -c '\n{one_liner}'"))
        .output(&String::from_utf8_lossy(&py.get_output().stdout));
    let line = format!("{}\n", "a".repeat(2000));
    for (shown, extra) in [
        ("", &[][..]),
        (" -- --buffer 1024", &["--buffer", "1024"][..]),
    ] {
        let client = cmd(CLIENT)?
            .arg(server.addr_arg())
            .args(extra)
            .write_stdin(line.clone())
            .assert()
            .success();
        t.command(&format!(
            "python3 -c 'print(\"a\" * 2000)' | cargo run -p lesson05-client{shown} | wc -c"
        ))
        .output(&client.get_output().stdout.len().to_string());
    }
    t.check("lesson05-truncation")?;
    for _ in 0..3 {
        server.wait_for("... (2000 bytes)")?;
    }
    let log = server.kill()?;
    let mut t = Transcript::new();
    t.show_addr_as(addr, DEFAULT_ADDR)
        .lines(&log.stdout[1..])
        .check("lesson05-truncation-server")
}

#[test]
#[cfg_attr(
    not(target_os = "linux"),
    ignore = "shows Linux's error text; macOS caps datagrams at 9216 bytes"
)]
fn book_output_of_the_largest_datagram() -> Result<()> {
    let server = Server::start(SERVER, &[])?;
    let mut t = Transcript::new();
    t.show_addr_as(server.addr, DEFAULT_ADDR);
    let fits = cmd(CLIENT)?
        .arg(server.addr_arg())
        .write_stdin(format!("{}\n", "a".repeat(MAX_IPV4_PAYLOAD)))
        .assert()
        .success();
    t.command("python3 -c 'print(\"a\" * 65507)' | cargo run -p lesson05-client | wc -c")
        .output(&fits.get_output().stdout.len().to_string());
    let too_big = cmd(CLIENT)?
        .arg(server.addr_arg())
        .write_stdin(format!("{}\n", "a".repeat(MAX_IPV4_PAYLOAD + 1)))
        .assert()
        .code(1);
    t.command("python3 -c 'print(\"a\" * 65508)' | cargo run -p lesson05-client")
        .output(&String::from_utf8_lossy(&too_big.get_output().stderr))
        .check("lesson05-largest")
}

#[test]
fn book_output_when_nobody_is_there() -> Result<()> {
    // Nothing bound at the address: on Linux the connected socket hears
    // "port unreachable" at once, so the client gives up at once.
    let nobody = unused_udp_addr()?;
    let started = Instant::now();
    let gone = cmd(CLIENT)?
        .arg(nobody.to_string())
        .write_stdin("hello\n")
        .assert()
        .code(1);
    let waited = started.elapsed();
    if cfg!(target_os = "linux") {
        ensure!(
            waited < Duration::from_millis(900),
            "the client waited {waited:?} although nothing was bound there"
        );
    }
    let mut t = Transcript::new();
    t.show_addr_as(nobody, DEFAULT_ADDR)
        .command(r"printf 'hello\n' | cargo run -p lesson05-client")
        .output(&String::from_utf8_lossy(&gone.get_output().stderr))
        .check("lesson05-nobody")
}

#[test]
fn book_output_when_a_socket_is_bound_but_silent() -> Result<()> {
    if !PYTHON3.is_here()? {
        return Ok(());
    }
    // The chapter's one-liner holds the port and reads nothing. Run with
    // port 0 instead of 9005, it prints the port it got, and the client is
    // started only once that line has arrived.
    let one_liner = r#"import socket, time; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1", 9005)); print("holding %s:%d" % s.getsockname(), flush=True); time.sleep(15)"#;
    // Shown one statement a line, so that it fits the book's column.
    let one_liner = &one_liner.replace("; ", "\n");
    let mut holder = Command::new("python3");
    holder.arg("-c").arg(one_liner.replace("9005", "0"));
    let mut holder = Proc::spawn_command(holder)?;
    let holding = holder.next_line()?;
    let addr: SocketAddr = holding
        .strip_prefix("holding ")
        .context("no holding line")?
        .parse()?;
    let started = Instant::now();
    let silent = cmd(CLIENT)?
        .arg(addr.to_string())
        .write_stdin("hello\n")
        .assert()
        .code(1);
    let waited = started.elapsed();
    ensure!(
        waited >= Duration::from_millis(2_500),
        "gave up after only {waited:?}"
    );
    let mut t = Transcript::new();
    t.show_addr_as(addr, DEFAULT_ADDR)
        .command(&format!("python3 -c '\n{one_liner}' &"))
        .lines(&[holding])
        .command(r"printf 'hello\n' | cargo run -p lesson05-client")
        .output(&String::from_utf8_lossy(&silent.get_output().stderr))
        .check("lesson05-silent")
}

#[test]
#[cfg_attr(
    not(target_os = "linux"),
    ignore = "shows Linux's error text (Windows says 10048, macOS 48)"
)]
fn book_output_of_the_errors() -> Result<()> {
    let mut t = Transcript::new();
    let taken = UdpSocket::bind("127.0.0.1:0")?;
    let busy = cmd(SERVER)?
        .arg(taken.local_addr()?.to_string())
        .assert()
        .code(1);
    t.show_addr_as(taken.local_addr()?, DEFAULT_ADDR)
        .command("cargo run -p lesson05-server")
        .output(&String::from_utf8_lossy(&busy.get_output().stderr));
    let bad = cmd(SERVER)?.arg("9005").assert().code(2);
    t.command("cargo run -p lesson05-server -- 9005")
        .output(&String::from_utf8_lossy(&bad.get_output().stderr))
        .check("lesson05-errors")
}

// ------------------------------------------------------ exercise solutions
// lessons/lesson05-udp/exercise1, and the facts behind exercise 2.

/// A peer that answers every datagram twice, in capitals: the second
/// answer stands for a late reply, or for the reply to a retry.
fn start_doubling_peer(datagrams: usize) -> Result<PlainUdpPeer> {
    PlainUdpPeer::start(move |socket| {
        let mut received = Vec::new();
        for _ in 0..datagrams {
            let (data, from) = recv_one(&socket)?;
            for _ in 0..2 {
                socket.send_to(&data.to_ascii_uppercase(), from)?;
            }
            received.push(data);
        }
        Ok(received)
    })
}

#[test]
fn exercise1_ignores_a_duplicate_reply_that_fools_the_lesson_client() -> Result<()> {
    // The lesson's client takes the second "A" for the answer to "b": the
    // known limit the chapter describes.
    let peer = start_doubling_peer(2)?;
    cmd(CLIENT)?
        .arg(peer.addr.to_string())
        .write_stdin("a\nb\n")
        .assert()
        .success()
        .stdout("A\nA\n");
    peer.join()?;
    // The solution numbers its datagrams and throws the stale reply away.
    let peer = start_doubling_peer(2)?;
    cmd(EXERCISE1)?
        .arg(peer.addr.to_string())
        .write_stdin("a\nb\n")
        .assert()
        .success()
        .stdout("A\nB\n")
        .stderr(predicate::str::contains(r#"ignored a stale reply "1:A""#));
    let received = peer.join()?;
    ensure!(received == [b"1:a", b"2:b"], "peer got {received:?}");
    Ok(())
}

#[test]
fn exercise1_numbers_each_line_for_the_lesson_server() -> Result<()> {
    let mut server = Server::start(SERVER, &[])?;
    cmd(EXERCISE1)?
        .arg(server.addr_arg())
        .write_stdin("hello\n\n你好 udp\n")
        .assert()
        .success()
        .stdout("HELLO\n\n你好 UDP\n")
        .stderr("");
    server.wait_for(r#"said "1:hello""#)?;
    server.wait_for(r#"said "2:""#)?;
    server.wait_for(r#"said "3:你好 udp""#)?;
    Ok(())
}

#[test]
fn exercise1_gives_up_like_the_lesson_client() -> Result<()> {
    let addr = unused_udp_addr()?.to_string();
    cmd(EXERCISE1)?
        .arg(&addr)
        .write_stdin("hello\n")
        .assert()
        .code(1)
        .stderr(predicate::str::contains(format!(
            "no reply from {addr} (is lesson05-server running?)"
        )));
    Ok(())
}

#[test]
fn exercise2_an_unconnected_socket_takes_datagrams_from_anyone() -> Result<()> {
    // Without `connect`, `recv_from` returns whatever arrives, with its
    // sender: the client itself must compare that sender with the server.
    let client = udp_socket()?;
    let stranger = udp_socket()?;
    stranger.send_to(b"fake", client.local_addr()?)?;
    let (data, from) = recv_one(&client)?;
    ensure!(data == b"fake", "got {data:?}");
    ensure!(from == stranger.local_addr()?, "from {from}");
    Ok(())
}

#[test]
#[cfg_attr(
    windows,
    ignore = "Windows reports port unreachable on unconnected sockets too"
)]
fn exercise2_only_a_connected_socket_hears_port_unreachable() -> Result<()> {
    let nobody = unused_udp_addr()?;
    // Unconnected: the ICMP message is dropped; only the timeout ends the wait.
    let unconnected = udp_socket()?;
    unconnected.send_to(b"hello", nobody)?;
    assert_no_datagram(&unconnected, Duration::from_millis(300))?;
    // Connected: the same datagram comes back as an error at once.
    let connected = udp_socket()?;
    connected.connect(nobody)?;
    connected.send(b"hello")?;
    let mut buf = [0u8; 16];
    let err = connected
        .recv(&mut buf)
        .err()
        .context("a datagram came from nowhere")?;
    ensure!(
        err.kind() == ErrorKind::ConnectionRefused,
        "expected ConnectionRefused, got {err:?}"
    );
    Ok(())
}
