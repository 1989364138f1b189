//! Lesson 03: the connection loop, callers served one after another.

use std::io::Write;
use std::time::Duration;

use anyhow::{Result, ensure};
use course_tests::{Server, assert_silent, cmd, connect, read_exactly, read_to_close, reset};
use predicates::prelude::*;

const SERVER: &str = "lesson03-server";
const CLIENT: &str = "lesson03-client";

/// Sends `message` on a plain connection and checks the upper-cased reply.
fn exchange(stream: &mut std::net::TcpStream, message: &[u8]) -> Result<()> {
    stream.write_all(message)?;
    let reply = read_exactly(stream, message.len())?;
    ensure!(reply == message.to_ascii_uppercase(), "got {reply:?}");
    Ok(())
}

#[test]
fn prints_help() -> Result<()> {
    for (bin, usage) in [
        (SERVER, "Usage: lesson03-server [ADDR]"),
        (CLIENT, "Usage: lesson03-client [ADDR]"),
    ] {
        cmd(bin)?
            .arg("--help")
            .assert()
            .success()
            .stdout(predicate::str::contains(usage))
            .stdout(predicate::str::contains("127.0.0.1:9003"));
    }
    Ok(())
}

#[test]
fn dies_on_bad_address() -> Result<()> {
    for bin in [SERVER, CLIENT] {
        cmd(bin)?
            .arg("localhost")
            .assert()
            .code(2)
            .stderr(predicate::str::contains("'localhost'"));
    }
    Ok(())
}

#[test]
fn client_explains_when_no_server_listens() -> Result<()> {
    let addr = course_tests::unused_addr()?.to_string();
    cmd(CLIENT)?
        .arg(&addr)
        .write_stdin("hi\n")
        .assert()
        .code(1)
        .stderr(predicate::str::contains(format!(
            "could not connect to {addr}"
        )))
        .stderr(predicate::str::contains("cargo run -p lesson03-server"));
    Ok(())
}

#[test]
fn serves_clients_one_after_another() -> Result<()> {
    let mut server = Server::start(SERVER, &[])?;
    for (input, output) in [
        ("first\n", "FIRST\n"),
        ("second\nthird\n", "SECOND\nTHIRD\n"),
    ] {
        cmd(CLIENT)?
            .arg(server.addr_arg())
            .write_stdin(input)
            .assert()
            .success()
            .stdout(output);
    }
    server.wait_for(r#"said "third""#)?;
    server.wait_for(" disconnected")?;
    // Still there for a third caller, a plain one this time.
    exchange(&mut connect(server.addr)?, b"still here")?;
    let done = server.kill()?;
    let connected = done
        .stdout
        .iter()
        .filter(|l| l.ends_with(" connected"))
        .count();
    ensure!(connected == 3, "expected three callers: {:?}", done.stdout);
    done.assert_no_panic()?;
    Ok(())
}

#[test]
fn second_client_waits_until_the_first_hangs_up() -> Result<()> {
    let mut server = Server::start(SERVER, &[])?;
    let mut first = connect(server.addr)?;
    exchange(&mut first, b"one")?;

    // The second caller's connect succeeds at once: the kernel completes the
    // handshake and queues the connection, whether or not we `accept` it.
    let mut second = connect(server.addr)?;
    second.write_all(b"two")?;
    // ...but nobody answers it while the server is busy with the first.
    assert_silent(&mut second, Duration::from_millis(300))?;
    exchange(&mut first, b"still me")?;

    // The first hangs up; now the server accepts the second and answers the
    // bytes that were waiting for it.
    drop(first);
    ensure!(read_exactly(&mut second, 3)? == b"TWO");

    drop(second);
    server.wait_for(r#"said "two""#)?;
    let log = server.kill()?.stdout;
    let pos = |needle: &str| log.iter().position(|l| l.contains(needle));
    let first_gone = pos(" disconnected").unwrap_or(usize::MAX);
    let second_said = pos(r#"said "two""#).unwrap_or(0);
    ensure!(first_gone < second_said, "order wrong: {log:?}");
    Ok(())
}

#[test]
fn survives_client_reset() -> Result<()> {
    let mut server = Server::start(SERVER, &[])?;
    let mut rude = connect(server.addr)?;
    exchange(&mut rude, b"bye")?;
    reset(rude)?;
    // Either way the server logs the caller as gone and takes the next one.
    server.wait_for(" disconnected")?;
    exchange(&mut connect(server.addr)?, b"next")?;
    server.kill()?.assert_no_panic()?;
    Ok(())
}

#[test]
fn survives_one_hundred_resets_in_a_row() -> Result<()> {
    let server = Server::start(SERVER, &[])?;
    for _ in 0..100 {
        let mut rude = connect(server.addr)?;
        rude.write_all(b"x")?;
        reset(rude)?;
    }
    exchange(&mut connect(server.addr)?, b"after the storm")?;
    server.kill()?.assert_no_panic()?;
    Ok(())
}

#[test]
fn echoes_invalid_utf8_and_keeps_serving() -> Result<()> {
    let server = Server::start(SERVER, &[])?;
    let mut stream = connect(server.addr)?;
    stream.write_all(&[0xff, 0xfe, b'a', 0x80])?;
    ensure!(read_exactly(&mut stream, 4)? == [0xff, 0xfe, b'A', 0x80]);
    drop(stream);
    exchange(&mut connect(server.addr)?, "ok 好".as_bytes())?;
    let done = server.kill()?;
    ensure!(
        done.stdout.iter().any(|l| l.contains('\u{fffd}')),
        "{:?}",
        done.stdout
    );
    done.assert_no_panic()?;
    Ok(())
}

#[test]
fn restarts_at_once_on_the_same_port() -> Result<()> {
    // The situation behind Python's "Address already in use": the server is
    // stopped while a caller is connected, so the server's side of that
    // connection closes first and stays in TIME_WAIT for a while.
    let first = Server::start(SERVER, &[])?;
    let addr = first.addr;
    let mut caller = connect(addr)?;
    exchange(&mut caller, b"hello")?;
    first.kill()?;
    // Wait for the kernel's FIN (end of stream), then close our side too.
    ensure!(read_to_close(&mut caller)?.is_empty());
    drop(caller);

    // Immediately start again on exactly the same address: SO_REUSEADDR lets
    // the new listener bind although the old connection is in TIME_WAIT.
    let second = Server::start_on(SERVER, &addr.to_string(), &[])?;
    ensure!(
        second.addr == addr,
        "bound {} instead of {addr}",
        second.addr
    );
    exchange(&mut connect(addr)?, b"again")?;
    Ok(())
}

/// On Linux, `listen(5)` lets at most 5 + 1 completed connections wait for
/// `accept`; further handshakes are not completed until room is made. std's
/// default backlog of 128 would let all 20 of these through.
#[cfg(target_os = "linux")]
#[test]
fn backlog_of_five_bounds_the_waiting_queue() -> Result<()> {
    let server = Server::start(SERVER, &[])?;
    let mut busy = connect(server.addr)?;
    exchange(&mut busy, b"keep the server busy")?;
    let mut waiting = Vec::new();
    for _ in 0..20 {
        // A refused or dropped handshake shows up as a connect timeout.
        match std::net::TcpStream::connect_timeout(&server.addr, Duration::from_millis(500)) {
            Ok(stream) => waiting.push(stream),
            Err(_) => break,
        }
    }
    ensure!(
        (5..=7).contains(&waiting.len()),
        "{} connections completed while the server was busy",
        waiting.len()
    );
    Ok(())
}

#[test]
fn client_is_lesson_two_client() -> Result<()> {
    let server = Server::start(SERVER, &[])?;
    cmd(CLIENT)?
        .arg(server.addr_arg())
        .write_stdin("\n  hello 哈哈哈  \n")
        .assert()
        .success()
        .stdout("HELLO 哈哈哈\n");
    Ok(())
}
