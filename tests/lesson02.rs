//! Lesson 02: the communication loop, many messages from one caller.

use std::io::{Read, Write};

use anyhow::{Result, ensure};
use course_tests::{PlainServer, Server, cmd, connect, read_exactly, reset, unused_addr};
use predicates::prelude::*;

const SERVER: &str = "lesson02-server";
const CLIENT: &str = "lesson02-client";

#[test]
fn server_prints_help() -> Result<()> {
    cmd(SERVER)?
        .arg("--help")
        .assert()
        .success()
        .stdout(predicate::str::contains("Usage: lesson02-server [ADDR]"))
        .stdout(predicate::str::contains("127.0.0.1:9002"));
    Ok(())
}

#[test]
fn client_prints_help() -> Result<()> {
    cmd(CLIENT)?
        .arg("--help")
        .assert()
        .success()
        .stdout(predicate::str::contains("Usage: lesson02-client [ADDR]"))
        .stdout(predicate::str::contains("127.0.0.1:9002"));
    Ok(())
}

#[test]
fn dies_on_bad_address() -> Result<()> {
    for bin in [SERVER, CLIENT] {
        cmd(bin)?
            .arg("127.0.0.1")
            .assert()
            .code(2)
            .stderr(predicate::str::contains("'127.0.0.1'"))
            .stderr(predicate::str::contains("IP:PORT"));
    }
    Ok(())
}

#[test]
fn client_explains_when_no_server_listens() -> Result<()> {
    let addr = unused_addr()?.to_string();
    cmd(CLIENT)?
        .arg(&addr)
        .write_stdin("hello\n")
        .assert()
        .code(1)
        .stderr(predicate::str::contains(format!(
            "could not connect to {addr}"
        )))
        .stderr(predicate::str::contains("cargo run -p lesson02-server"))
        .stderr(predicate::str::contains("panicked").not());
    Ok(())
}

#[test]
fn echoes_every_line_then_both_exit() -> Result<()> {
    let server = Server::start(SERVER, &[])?;
    cmd(CLIENT)?
        .arg(server.addr_arg())
        .write_stdin("hello\nworld\n你好 rust\n")
        .assert()
        .success()
        // Piped stdin: no `>> ` prompt, only the replies, one per line.
        .stdout("HELLO\nWORLD\n你好 RUST\n");
    let done = server.wait_exit()?;
    ensure!(done.status.success(), "server failed: {done:?}");
    let log = done.stdout.join("\n");
    ensure!(log.contains(r#"said "hello""#), "{log}");
    ensure!(log.contains(r#"said "你好 rust""#), "{log}");
    ensure!(
        done.stdout
            .last()
            .is_some_and(|l| l.ends_with(" disconnected")),
        "{log}"
    );
    done.assert_no_panic()?;
    Ok(())
}

#[test]
fn server_exits_when_the_client_hangs_up() -> Result<()> {
    // A server that kept calling `read` after `Ok(0)` would spin for ever and
    // never exit: waiting for its exit (with a timeout) proves it stops.
    let mut server = Server::start(SERVER, &[])?;
    let mut stream = connect(server.addr)?;
    stream.write_all(b"one")?;
    ensure!(read_exactly(&mut stream, 3)? == b"ONE");
    server.wait_for(r#"said "one""#)?;
    drop(stream);
    let done = server.wait_exit()?;
    ensure!(done.status.success(), "server failed: {done:?}");
    ensure!(
        done.stdout
            .last()
            .is_some_and(|l| l.ends_with(" disconnected")),
        "{done:?}"
    );
    Ok(())
}

#[test]
fn client_skips_blank_lines_and_sends_no_newline() -> Result<()> {
    // A plain server that records everything the client sends until it hangs up.
    let plain = PlainServer::start(|mut stream| {
        let mut got = Vec::new();
        let mut buf = [0u8; 64];
        loop {
            let n = stream.read(&mut buf)?;
            if n == 0 {
                return Ok(got);
            }
            got.extend_from_slice(&buf[..n]);
            stream.write_all(&buf[..n].to_ascii_uppercase())?;
        }
    })?;
    cmd(CLIENT)?
        .arg(plain.addr.to_string())
        .write_stdin("\n   \n  hi there  \n\t\r\nok\r\n")
        .assert()
        .success()
        .stdout("HI THERE\nOK\n");
    let got = plain.join()?;
    ensure!(
        got == b"hi thereok",
        "server got {:?}",
        String::from_utf8_lossy(&got)
    );
    Ok(())
}

#[test]
fn client_waits_for_a_reply_that_arrives_one_byte_at_a_time() -> Result<()> {
    let plain = PlainServer::start(|mut stream| {
        let mut message = [0u8; 5];
        stream.read_exact(&mut message)?;
        for byte in message.to_ascii_uppercase() {
            stream.write_all(&[byte])?;
            stream.flush()?;
        }
        Ok(Vec::new())
    })?;
    cmd(CLIENT)?
        .arg(plain.addr.to_string())
        .write_stdin("hello\n")
        .assert()
        .success()
        .stdout("HELLO\n");
    plain.join()?;
    Ok(())
}

#[test]
fn client_echoes_a_one_megabyte_line() -> Result<()> {
    let server = Server::start(SERVER, &[])?;
    let line = "ab".repeat(512 * 1024);
    cmd(CLIENT)?
        .arg(server.addr_arg())
        .write_stdin(format!("{line}\n"))
        .assert()
        .success()
        .stdout(format!("{}\n", line.to_ascii_uppercase()));
    let done = server.wait_exit()?;
    ensure!(done.status.success(), "server failed: {done:?}");
    Ok(())
}

#[test]
fn client_says_so_when_the_server_hangs_up_without_replying() -> Result<()> {
    let plain = PlainServer::start(|mut stream| {
        let mut buf = [0u8; 5];
        stream.read_exact(&mut buf)?;
        Ok(buf.to_vec()) // returning drops the stream: no reply, hang up
    })?;
    cmd(CLIENT)?
        .arg(plain.addr.to_string())
        .write_stdin("hello\n")
        .assert()
        .code(1)
        .stdout("")
        .stderr(predicate::str::contains(
            "closed the connection before it replied",
        ))
        .stderr(predicate::str::contains("panicked").not());
    plain.join()?;
    Ok(())
}

#[test]
fn server_answers_whatever_each_read_returns() -> Result<()> {
    // A plain client, as in Python: send, then receive the same length. A
    // multi-byte character split across two writes still comes back whole.
    let server = Server::start(SERVER, &[])?;
    let mut stream = connect(server.addr)?;
    let text = "hello 哈哈哈".as_bytes();
    let (first, second) = text.split_at(7); // inside the first 哈
    stream.write_all(first)?;
    ensure!(read_exactly(&mut stream, first.len())? == b"HELLO \xe5");
    stream.write_all(second)?;
    let mut reply = b"HELLO \xe5".to_vec();
    reply.extend(read_exactly(&mut stream, second.len())?);
    ensure!(
        reply == "HELLO 哈哈哈".as_bytes(),
        "{:?}",
        String::from_utf8_lossy(&reply)
    );
    // Invalid UTF-8 is echoed as bytes, letters upper-cased.
    stream.write_all(&[0xff, b'x', 0xfe])?;
    ensure!(read_exactly(&mut stream, 3)? == [0xff, b'X', 0xfe]);
    drop(stream);
    let done = server.wait_exit()?;
    ensure!(done.status.success(), "server failed: {done:?}");
    done.assert_no_panic()?;
    Ok(())
}

#[test]
fn server_reports_a_reset_in_one_line_without_panicking() -> Result<()> {
    // Lesson 02 serves one client; a reset ends it, but with a clear message.
    // (Lesson 03 keeps going; lesson 04 tells the kinds of hang-up apart.)
    let mut server = Server::start(SERVER, &[])?;
    let mut stream = connect(server.addr)?;
    stream.write_all(b"hi")?;
    ensure!(read_exactly(&mut stream, 2)? == b"HI");
    server.wait_for(r#"said "hi""#)?;
    reset(stream)?;
    let done = server.wait_exit()?;
    done.assert_no_panic()?;
    if done.status.success() {
        // Linux may report the reset as a plain end of stream.
        ensure!(
            done.stdout
                .last()
                .is_some_and(|l| l.ends_with(" disconnected")),
            "{done:?}"
        );
    } else {
        ensure!(
            done.stderr.starts_with("error: reading from client"),
            "{done:?}"
        );
        ensure!(done.stderr.trim_end().lines().count() == 1, "{done:?}");
    }
    Ok(())
}
