//! Lesson 01: one caller, one message, one reply.

use std::io::Write;

use anyhow::{Result, ensure};
use course_tests::{PlainServer, Server, cmd, connect, read_to_close, unused_addr};
use predicates::prelude::*;

const SERVER: &str = "lesson01-server";
const CLIENT: &str = "lesson01-client";

#[test]
fn server_prints_help() -> Result<()> {
    cmd(SERVER)?
        .arg("--help")
        .assert()
        .success()
        .stdout(predicate::str::contains("Usage: lesson01-server [ADDR]"))
        .stdout(predicate::str::contains("127.0.0.1:9001"));
    Ok(())
}

#[test]
fn client_prints_help() -> Result<()> {
    cmd(CLIENT)?
        .arg("--help")
        .assert()
        .success()
        .stdout(predicate::str::contains("--message"))
        .stdout(predicate::str::contains("127.0.0.1:9001"));
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
        .stderr(predicate::str::contains("'127.0.0.1:99999'"));
    Ok(())
}

#[test]
fn client_refuses_an_empty_message() -> Result<()> {
    cmd(CLIENT)?
        .args(["--message", ""])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("--message"));
    Ok(())
}

#[test]
fn client_explains_when_no_server_listens() -> Result<()> {
    let addr = unused_addr()?.to_string();
    cmd(CLIENT)?
        .arg(&addr)
        .assert()
        .code(1)
        .stdout("")
        .stderr(predicate::str::contains(format!(
            "could not connect to {addr}"
        )))
        .stderr(predicate::str::contains("cargo run -p lesson01-server"))
        .stderr(predicate::str::contains("panicked").not());
    Ok(())
}

#[test]
fn server_explains_when_the_address_is_taken() -> Result<()> {
    let taken = std::net::TcpListener::bind("127.0.0.1:0")?;
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

#[test]
fn client_and_server_exchange_hello() -> Result<()> {
    let mut server = Server::start(SERVER, &[])?;
    cmd(CLIENT)?
        .arg(server.addr_arg())
        .assert()
        .success()
        .stdout("HELLO\n");
    server.wait_for(r#"said "hello""#)?;
    let done = server.wait_exit()?;
    ensure!(done.status.success(), "server failed: {done:?}");
    done.assert_no_panic()?;
    Ok(())
}

#[test]
fn server_logs_connect_message_and_hang_up_then_exits() -> Result<()> {
    let server = Server::start(SERVER, &[])?;
    let server_addr = server.addr;
    cmd(CLIENT)?.arg(server.addr_arg()).assert().success();
    let done = server.wait_exit()?;
    ensure!(done.status.success(), "server failed: {done:?}");
    let log = &done.stdout;
    ensure!(log.len() == 4, "expected four lines, got {log:?}");
    ensure!(log[0] == format!("listening on {}", server_addr), "{log:?}");
    ensure!(log[1].starts_with("client 127.0.0.1:") && log[1].ends_with(" connected"));
    ensure!(log[2].ends_with(r#" said "hello""#), "{log:?}");
    ensure!(
        log[3].starts_with("hung up on client 127.0.0.1:"),
        "{log:?}"
    );
    Ok(())
}

#[test]
fn chinese_bytes_pass_through_untouched() -> Result<()> {
    let server = Server::start(SERVER, &[])?;
    cmd(CLIENT)?
        .arg(server.addr_arg())
        .args(["--message", "hello 哈哈哈"])
        .assert()
        .success()
        .stdout("HELLO 哈哈哈\n");
    Ok(())
}

#[test]
fn server_answers_a_plain_tcp_client() -> Result<()> {
    // What a Python client does: send(b"hello"), then recv(1024).
    let server = Server::start(SERVER, &[])?;
    let mut stream = connect(server.addr)?;
    stream.write_all(b"hello")?;
    // The server hangs up after its one reply, so reading to the end
    // collects exactly what it sent.
    let reply = read_to_close(&mut stream)?;
    ensure!(
        reply == b"HELLO",
        "got {:?}",
        String::from_utf8_lossy(&reply)
    );
    let done = server.wait_exit()?;
    ensure!(done.status.success(), "server failed: {done:?}");
    Ok(())
}

#[test]
fn server_reads_at_most_1024_bytes_once() -> Result<()> {
    // One read is not one message: a 2000-byte message gets a reply for the
    // first read only, which holds at most 1024 bytes.
    let server = Server::start(SERVER, &[])?;
    let mut stream = connect(server.addr)?;
    stream.write_all(&[b'a'; 2000])?;
    let mut reply = Vec::new();
    // The server closes with bytes still unread, so the kernel may send a
    // reset after the reply: keep what arrived before it.
    let _ = std::io::Read::read_to_end(&mut stream, &mut reply);
    ensure!(
        !reply.is_empty() && reply.len() <= 1024,
        "reply had {} bytes",
        reply.len()
    );
    ensure!(reply.iter().all(|&b| b == b'A'));
    let done = server.wait_exit()?;
    ensure!(done.status.success(), "server failed: {done:?}");
    Ok(())
}

#[test]
fn server_copes_with_a_caller_who_says_nothing() -> Result<()> {
    let mut server = Server::start(SERVER, &[])?;
    drop(connect(server.addr)?);
    server.wait_for("hung up without saying anything")?;
    let done = server.wait_exit()?;
    ensure!(done.status.success(), "server failed: {done:?}");
    done.assert_no_panic()?;
    Ok(())
}

#[test]
fn client_talks_to_a_plain_tcp_server() -> Result<()> {
    // A server written here, not ours: it records what arrived and answers
    // with its own text, so we see the client sends no newline and prints
    // whatever comes back.
    let plain = PlainServer::start(|mut stream| {
        let mut buf = [0u8; 1024];
        let n = std::io::Read::read(&mut stream, &mut buf)?;
        stream.write_all(b"got it")?;
        Ok(buf[..n].to_vec())
    })?;
    cmd(CLIENT)?
        .arg(plain.addr.to_string())
        .args(["--message", "ping"])
        .assert()
        .success()
        .stdout("got it\n");
    let received = plain.join()?;
    ensure!(received == b"ping", "server got {received:?}");
    Ok(())
}

#[test]
fn client_shows_invalid_utf8_without_panicking() -> Result<()> {
    let plain = PlainServer::start(|mut stream| {
        let mut buf = [0u8; 16];
        let _ = std::io::Read::read(&mut stream, &mut buf)?;
        stream.write_all(&[b'o', b'k', 0xff, 0xfe])?;
        Ok(Vec::new())
    })?;
    cmd(CLIENT)?
        .arg(plain.addr.to_string())
        .assert()
        .success()
        .stdout("ok\u{fffd}\u{fffd}\n");
    plain.join()?;
    Ok(())
}

#[test]
fn server_listens_on_ipv6_loopback_when_asked() -> Result<()> {
    // Not every machine has IPv6; skip quietly where [::1] cannot be bound.
    if std::net::TcpListener::bind("[::1]:0").is_err() {
        return Ok(());
    }
    let server = Server::start_on(SERVER, "[::1]:0", &[])?;
    ensure!(server.addr.is_ipv6());
    cmd(CLIENT)?
        .arg(server.addr_arg())
        .assert()
        .success()
        .stdout("HELLO\n");
    Ok(())
}
