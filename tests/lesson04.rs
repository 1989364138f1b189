//! Lesson 04: disconnect handling. Every way a call can end is told apart
//! and logged, and none of them ends the server.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::thread;

use anyhow::{Result, ensure};
use course_tests::{
    PlainServer, Proc, Server, cmd, connect, read_exactly, read_to_close, reset, unused_addr,
};
use predicates::prelude::*;

const SERVER: &str = "lesson04-server";
const CLIENT: &str = "lesson04-client";

/// Sends `message` on a plain connection and checks the upper-cased reply.
fn exchange(stream: &mut TcpStream, message: &[u8]) -> Result<()> {
    stream.write_all(message)?;
    let reply = read_exactly(stream, message.len())?;
    ensure!(reply == message.to_ascii_uppercase(), "got {reply:?}");
    Ok(())
}

/// Checks that the server hung up on us: end of stream, nothing else sent.
fn assert_hung_up(stream: &mut TcpStream) -> Result<()> {
    let rest = read_to_close(stream)?;
    ensure!(rest.is_empty(), "expected end of stream, got {rest:?}");
    Ok(())
}

// --- the command line -------------------------------------------------------

#[test]
fn prints_help() -> Result<()> {
    for (bin, usage) in [
        (SERVER, "Usage: lesson04-server [OPTIONS] [ADDR]"),
        (CLIENT, "Usage: lesson04-client [ADDR]"),
    ] {
        cmd(bin)?
            .arg("--help")
            .assert()
            .success()
            .stdout(predicate::str::contains(usage))
            .stdout(predicate::str::contains("127.0.0.1:9004"));
    }
    cmd(SERVER)?
        .arg("--help")
        .assert()
        .success()
        .stdout(predicate::str::contains("--idle-timeout <SECS>"))
        .stdout(predicate::str::contains("[default: 60]"));
    Ok(())
}

#[test]
fn dies_on_bad_address() -> Result<()> {
    for bin in [SERVER, CLIENT] {
        cmd(bin)?
            .arg("127.0.0.1:port")
            .assert()
            .code(2)
            .stdout("")
            .stderr(predicate::str::contains("'127.0.0.1:port'"));
    }
    Ok(())
}

#[test]
fn server_refuses_a_bad_idle_timeout() -> Result<()> {
    for bad in ["0", "abc", "1.5", "99999999999999999999"] {
        cmd(SERVER)?
            .args(["127.0.0.1:0", "--idle-timeout", bad])
            .assert()
            .code(2)
            .stdout("")
            .stderr(predicate::str::contains(format!("'{bad}'")))
            .stderr(predicate::str::contains("--idle-timeout"))
            .stderr(predicate::str::contains("panicked").not());
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
        .stderr(predicate::str::contains("cargo run -p lesson04-server"));
    Ok(())
}

// --- the server tells every ending apart ----------------------------------

#[test]
fn logs_a_normal_close() -> Result<()> {
    let mut server = Server::start(SERVER, &[])?;
    let mut polite = connect(server.addr)?;
    let me = polite.local_addr()?;
    exchange(&mut polite, b"goodbye")?;
    drop(polite);
    let line = server.wait_for(" closed the connection")?;
    ensure!(
        line == format!("client {me} closed the connection"),
        "{line}"
    );
    exchange(&mut connect(server.addr)?, b"next")?;
    server.kill()?.assert_no_panic()?;
    Ok(())
}

#[test]
fn logs_a_reset() -> Result<()> {
    let mut server = Server::start(SERVER, &[])?;
    let mut rude = connect(server.addr)?;
    let me = rude.local_addr()?;
    exchange(&mut rude, b"bye")?;
    // SO_LINGER 0: closing sends an RST instead of a FIN.
    reset(rude)?;
    let line = server.wait_for(" the connection")?;
    ensure!(
        line == format!("client {me} reset the connection"),
        "{line}"
    );
    exchange(&mut connect(server.addr)?, b"next")?;
    server.kill()?.assert_no_panic()?;
    Ok(())
}

#[test]
fn hangs_up_on_an_idle_client_and_serves_the_next() -> Result<()> {
    let mut server = Server::start(SERVER, &["--idle-timeout", "1"])?;
    let mut silent = connect(server.addr)?;
    let me = silent.local_addr()?;
    exchange(&mut silent, b"hi")?;
    // A second caller queues behind the silent one...
    let mut next = connect(server.addr)?;
    next.write_all(b"next")?;
    // ...until the idle timeout runs out and the server hangs up on it.
    let line = server.wait_for(&format!("client {me} was idle"))?;
    ensure!(
        line == format!("client {me} was idle for 1 s, hanging up"),
        "{line}"
    );
    assert_hung_up(&mut silent)?;
    ensure!(read_exactly(&mut next, 4)? == b"NEXT");
    server.kill()?.assert_no_panic()?;
    Ok(())
}

#[test]
fn hangs_up_on_a_client_that_never_reads() -> Result<()> {
    let mut server = Server::start(SERVER, &["--idle-timeout", "1"])?;
    let flood = connect(server.addr)?;
    let me = flood.local_addr()?;
    // Send and send, never read: the replies fill every buffer between us,
    // the server's `write_all` blocks, and its write timeout must free it.
    let writer = thread::spawn(move || {
        let mut flood = flood;
        let chunk = [b'a'; 64 * 1024];
        // Ends when the server hangs up (the write fails), or after 256 MB.
        for _ in 0..4096 {
            if flood.write_all(&chunk).is_err() {
                return true;
            }
        }
        false
    });
    let line = server.wait_for("did not read our reply")?;
    ensure!(
        line == format!("client {me} did not read our reply for 1 s, hanging up"),
        "{line}"
    );
    let hung_up = writer
        .join()
        .map_err(|_| anyhow::anyhow!("writer panicked"))?;
    ensure!(hung_up, "the flooding client could write 256 MB");
    exchange(&mut connect(server.addr)?, b"next")?;
    server.kill()?.assert_no_panic()?;
    Ok(())
}

#[test]
fn hangs_up_when_asked_with_q() -> Result<()> {
    let mut server = Server::start(SERVER, &[])?;
    // The bare letter, either case, with spaces or a line ending around it.
    for quit in [&b"q"[..], b"  Q  ", b"q\r\n"] {
        let mut caller = connect(server.addr)?;
        let me = caller.local_addr()?;
        exchange(&mut caller, b"hello")?;
        caller.write_all(quit)?;
        // The server hangs up from its side: we read end of stream, with
        // our own write side still open.
        assert_hung_up(&mut caller)?;
        let line = server.wait_for(&format!("client {me} asked to quit"))?;
        ensure!(line.ends_with("asked to quit, hanging up"), "{line}");
    }
    // A message that merely starts with q is just a message.
    exchange(&mut connect(server.addr)?, b"quiet please")?;
    let done = server.kill()?;
    let quits = done.stdout.iter().filter(|l| l.contains("asked to quit"));
    ensure!(quits.count() == 3, "{:?}", done.stdout);
    done.assert_no_panic()?;
    Ok(())
}

#[test]
fn half_closed_client_still_gets_its_reply() -> Result<()> {
    let mut server = Server::start(SERVER, &[])?;
    let mut caller = connect(server.addr)?;
    let me = caller.local_addr()?;
    caller.write_all(b"last words")?;
    // "I am done talking, but still listening": our FIN goes out, our read
    // side stays open.
    caller.shutdown(Shutdown::Write)?;
    // The whole reply arrives, then the server's own end of stream.
    let all = read_to_close(&mut caller)?;
    ensure!(
        all == b"LAST WORDS",
        "got {:?}",
        String::from_utf8_lossy(&all)
    );
    server.wait_for(&format!("client {me} closed the connection"))?;
    server.kill()?.assert_no_panic()?;
    Ok(())
}

#[test]
fn survives_one_hundred_resets_in_a_row() -> Result<()> {
    let mut server = Server::start(SERVER, &[])?;
    for _ in 0..100 {
        let mut rude = connect(server.addr)?;
        rude.write_all(b"x")?;
        reset(rude)?;
    }
    let mut next = connect(server.addr)?;
    let me = next.local_addr()?;
    exchange(&mut next, b"after the storm")?;
    drop(next);
    server.wait_for(&format!("client {me} closed the connection"))?;
    let done = server.kill()?;
    done.assert_no_panic()?;
    let endings: Vec<&String> = done
        .stdout
        .iter()
        .filter(|l| l.contains(" closed the connection") || l.contains(" reset the connection"))
        .collect();
    ensure!(endings.len() == 101, "{:?}", done.stdout);
    // On Linux each rude caller is seen as a reset: its data was read and
    // its RST reported by the next read or write. Other systems may report
    // some of them as a close.
    if cfg!(target_os = "linux") {
        let resets = endings.iter().filter(|l| l.contains(" reset ")).count();
        ensure!(resets == 100, "{resets} resets: {:?}", done.stdout);
    }
    ensure!(
        !done.stdout.iter().any(|l| l.contains("error")),
        "{:?}",
        done.stdout
    );
    Ok(())
}

#[test]
fn notices_a_killed_client_and_serves_the_next() -> Result<()> {
    let mut server = Server::start(SERVER, &[])?;
    let mut client = Proc::spawn(CLIENT, &[&server.addr_arg()])?;
    client.stdin()?.write_all(b"hello\n")?;
    client.stdin()?.flush()?;
    ensure!(client.next_line()? == "HELLO");
    server.wait_for(r#"said "hello""#)?;
    // SIGKILL: the client gets no chance to close anything. Its kernel
    // closes the socket for it.
    client.kill()?;
    let line = server.wait_for("the connection")?;
    // On Linux and macOS the kernel closes a dead process's sockets with a
    // FIN, so it looks like a normal close; other systems may send a reset.
    if cfg!(unix) {
        ensure!(line.ends_with(" closed the connection"), "{line}");
    } else {
        ensure!(
            line.ends_with(" closed the connection") || line.ends_with(" reset the connection"),
            "{line}"
        );
    }
    cmd(CLIENT)?
        .arg(server.addr_arg())
        .write_stdin("next\n")
        .assert()
        .success()
        .stdout("NEXT\n");
    server.kill()?.assert_no_panic()?;
    Ok(())
}

#[test]
fn garbage_is_answered_and_logged_without_harm() -> Result<()> {
    let server = Server::start(SERVER, &[])?;
    let mut caller = connect(server.addr)?;
    exchange(&mut caller, &[0xff, 0xfe, b'q', 0x00, 0x80])?;
    exchange(&mut caller, "q 哈".as_bytes())?;
    drop(caller);
    exchange(&mut connect(server.addr)?, b"still here")?;
    server.kill()?.assert_no_panic()?;
    Ok(())
}

// --- the client -------------------------------------------------------------

#[test]
fn client_quits_with_q_and_the_server_serves_the_next() -> Result<()> {
    let mut server = Server::start(SERVER, &[])?;
    cmd(CLIENT)?
        .arg(server.addr_arg())
        .write_stdin("hello\nq\nnever sent\n")
        .assert()
        .success()
        .stdout("HELLO\nserver closed the connection\n")
        .stderr("");
    server.wait_for("asked to quit, hanging up")?;
    cmd(CLIENT)?
        .arg(server.addr_arg())
        .write_stdin("  Q  \n")
        .assert()
        .success()
        .stdout("server closed the connection\n");
    server.wait_for("asked to quit, hanging up")?;
    let done = server.kill()?;
    ensure!(
        !done.stdout.iter().any(|l| l.contains("never sent")),
        "{:?}",
        done.stdout
    );
    Ok(())
}

#[test]
fn client_q_does_not_hang_on_a_server_that_ignores_q() -> Result<()> {
    // A plain echo server that knows nothing about `q`: it answers until it
    // reads end of stream. The client's half-close is what ends the call.
    let plain = PlainServer::start(|mut stream| {
        let mut buf = [0u8; 1024];
        let mut heard = Vec::new();
        loop {
            let n = stream.read(&mut buf)?;
            if n == 0 {
                return Ok(heard);
            }
            heard.extend_from_slice(&buf[..n]);
            stream.write_all(&buf[..n].to_ascii_uppercase())?;
        }
    })?;
    cmd(CLIENT)?
        .arg(plain.addr.to_string())
        .write_stdin("q\n")
        .assert()
        .success()
        .stdout("Q\nserver closed the connection\n");
    ensure!(plain.join()? == b"q");
    Ok(())
}

#[test]
fn client_says_when_the_server_closes() -> Result<()> {
    // Reads the message, then hangs up without a reply.
    let plain = PlainServer::start(|mut stream| {
        let mut buf = [0u8; 5];
        stream.read_exact(&mut buf)?;
        Ok(buf.to_vec())
    })?;
    cmd(CLIENT)?
        .arg(plain.addr.to_string())
        .write_stdin("hello\nmore\n")
        .assert()
        .code(1)
        .stdout("")
        .stderr("error: server closed the connection\n");
    ensure!(plain.join()? == b"hello");
    Ok(())
}

#[test]
fn client_says_when_the_server_resets() -> Result<()> {
    // Reads the message, then closes with SO_LINGER 0: an RST.
    let plain = PlainServer::start(|mut stream| {
        let mut buf = [0u8; 5];
        stream.read_exact(&mut buf)?;
        reset(stream)?;
        Ok(buf.to_vec())
    })?;
    cmd(CLIENT)?
        .arg(plain.addr.to_string())
        .write_stdin("hello\n")
        .assert()
        .code(1)
        .stdout("")
        .stderr("error: server reset the connection\n");
    ensure!(plain.join()? == b"hello");
    Ok(())
}

#[test]
fn client_says_when_the_server_is_killed() -> Result<()> {
    let mut server = Server::start(SERVER, &[])?;
    let mut client = Proc::spawn(CLIENT, &[&server.addr_arg()])?;
    client.stdin()?.write_all(b"one\n")?;
    client.stdin()?.flush()?;
    ensure!(client.next_line()? == "ONE");
    server.wait_for(r#"said "one""#)?;
    server.kill()?;
    // The client learns of it when it next talks to the server.
    client.stdin()?.write_all(b"two\n")?;
    client.stdin()?.flush()?;
    let done = client.wait_exit()?;
    ensure!(done.status.code() == Some(1), "{done:?}");
    ensure!(
        done.stderr == "error: server closed the connection\n"
            || done.stderr == "error: server reset the connection\n",
        "{done:?}"
    );
    ensure!(done.stdout == ["ONE"], "{done:?}");
    done.assert_no_panic()?;
    Ok(())
}
