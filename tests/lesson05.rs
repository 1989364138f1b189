//! Lesson 05: UDP. Datagrams instead of a connection, a server that no
//! sender can stop, and a client that waits, retries and gives up.

use std::io::{ErrorKind, Write};
use std::net::{SocketAddr, UdpSocket};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail, ensure};
use course_tests::{Proc, Server, TIMEOUT, cmd, udp_ask, udp_socket, unused_udp_addr};
use predicates::prelude::*;

const SERVER: &str = "lesson05-server";
const CLIENT: &str = "lesson05-client";

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

/// Asserts that no datagram arrives on `socket` for `window` (proving that
/// something does *not* happen needs a window of time).
fn assert_no_datagram(socket: &UdpSocket, window: Duration) -> Result<()> {
    socket.set_read_timeout(Some(window))?;
    let mut buf = [0u8; 64];
    let result = socket.recv_from(&mut buf);
    socket.set_read_timeout(Some(TIMEOUT))?;
    match result {
        Err(err) if matches!(err.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => Ok(()),
        Ok((n, from)) => bail!("unexpected datagram from {from}: {:?}", &buf[..n]),
        Err(err) => Err(err).context("waiting while expecting silence"),
    }
}

// ---------------------------------------------------------------- command line

#[test]
fn server_prints_help() -> Result<()> {
    cmd(SERVER)?
        .arg("--help")
        .assert()
        .success()
        .stdout(predicate::str::contains("Usage: lesson05-server [ADDR]"))
        .stdout(predicate::str::contains("127.0.0.1:9005"));
    Ok(())
}

#[test]
fn client_prints_help() -> Result<()> {
    cmd(CLIENT)?
        .arg("--help")
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "Usage: lesson05-client [OPTIONS] [ADDR]",
        ))
        .stdout(predicate::str::contains("--buffer <BYTES>"))
        .stdout(predicate::str::contains("127.0.0.1:9005"));
    Ok(())
}

#[test]
fn server_dies_on_bad_address() -> Result<()> {
    cmd(SERVER)?
        .arg("nowhere")
        .assert()
        .code(2)
        .stdout("")
        .stderr(predicate::str::contains("'nowhere'"))
        .stderr(predicate::str::contains("panicked").not());
    Ok(())
}

#[test]
fn client_dies_on_bad_address() -> Result<()> {
    cmd(CLIENT)?
        .arg("127.0.0.1:99999")
        .assert()
        .code(2)
        .stdout("")
        .stderr(predicate::str::contains("'127.0.0.1:99999'"));
    Ok(())
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
fn empty_datagram_gets_an_empty_reply() -> Result<()> {
    let mut server = Server::start(SERVER, &[])?;
    let socket = udp_socket()?;
    let (reply, from) = udp_ask(&socket, server.addr, b"")?;
    ensure!(reply.is_empty(), "reply {reply:?}");
    ensure!(from == server.addr, "reply came from {from}");
    server.wait_for(r#"said """#)?;
    // An empty datagram is a message, not a hang-up: the server goes on.
    let (reply, _) = udp_ask(&socket, server.addr, b"still here")?;
    ensure!(reply == b"STILL HERE", "reply {reply:?}");
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
fn server_survives_senders_that_vanish_before_the_reply() -> Result<()> {
    // Each of these senders is closed before its reply arrives, so the reply
    // bounces: the system answers it with ICMP "port unreachable". Windows
    // reports that on the server's next recv_from as ConnectionReset; either
    // way the next client must still be served.
    let mut server = Server::start(SERVER, &[])?;
    for round in 0..3 {
        let gone = udp_socket()?;
        gone.send_to(format!("bye {round}").as_bytes(), server.addr)?;
        drop(gone);
        server.wait_for(&format!(r#"said "bye {round}""#))?;
    }
    let socket = udp_socket()?;
    let (reply, _) = udp_ask(&socket, server.addr, b"anyone home?")?;
    ensure!(reply == b"ANYONE HOME?", "reply {reply:?}");
    let done = server.kill()?;
    done.assert_no_panic()?;
    ensure!(!done.stderr.contains("error"), "stderr: {}", done.stderr);
    Ok(())
}

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
    // Not every machine has IPv6; skip quietly where [::1] cannot be bound.
    if UdpSocket::bind("[::1]:0").is_err() {
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
