//! Lesson 04: disconnect handling. Every way a call can end is told apart
//! and logged, and none of them ends the server.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Result, ensure};
use course_tests::chaos;
use course_tests::contract;
use course_tests::tools::{NC, PYTHON3};
use course_tests::transcript::Transcript;
use course_tests::{
    PlainServer, Proc, Server, cmd, connect, exchange, python, read_exactly, read_to_close, reset,
    run_with_stdin, still_on_the_line, unused_addr,
};
use predicates::prelude::*;

const SERVER: &str = "lesson04-server";
const CLIENT: &str = "lesson04-client";
const LESSON: &str = "lesson04-disconnect-handling";
const DEFAULT_ADDR: &str = "127.0.0.1:9004";

/// Checks that the server hung up on us: end of stream, nothing else sent.
fn assert_hung_up(stream: &mut TcpStream) -> Result<()> {
    let rest = read_to_close(stream)?;
    ensure!(rest.is_empty(), "expected end of stream, got {rest:?}");
    Ok(())
}

// --- the command line -------------------------------------------------------

course_tests::test_table! {
    server_prints_help: contract::help_shows(
        SERVER,
        DEFAULT_ADDR,
        &["Usage: lesson04-server [OPTIONS] [ADDR]", "--idle-timeout <SECS>", "[default: 60]"],
    );
    client_prints_help: contract::help_works(CLIENT, DEFAULT_ADDR);
    server_dies_on_bad_address: contract::bad_address_is_refused(SERVER);
    client_dies_on_bad_address: contract::bad_address_is_refused(CLIENT);
    client_explains_when_no_server_listens: contract::client_explains_no_server(CLIENT, SERVER);
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

// --- the server tells every ending apart ----------------------------------

#[test]
fn logs_a_normal_close() -> Result<()> {
    chaos::exempt(chaos::ADDRESS_IN_LOG);
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
    chaos::exempt(chaos::ADDRESS_IN_LOG);
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
    chaos::exempt(chaos::ADDRESS_IN_LOG);
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
fn idle_timeout_counts_from_the_last_message() -> Result<()> {
    chaos::exempt(chaos::ADDRESS_IN_LOG);
    // The timeout limits each read, not the call: a caller who speaks more
    // often than the timeout is never hung up on, however long it talks.
    let mut server = Server::start(SERVER, &["--idle-timeout", "1"])?;
    let mut chatty = connect(server.addr)?;
    let me = chatty.local_addr()?;
    let started = Instant::now();
    for _ in 0..4 {
        exchange(&mut chatty, b"still here")?;
        ensure!(
            still_on_the_line(&mut chatty, Duration::from_millis(600))?,
            "hung up after {:?}",
            started.elapsed()
        );
    }
    ensure!(started.elapsed() >= Duration::from_millis(2400));
    drop(chatty);
    let line = server.wait_for(&format!("client {me} "))?;
    ensure!(line.ends_with(" connected"), "{line}");
    let mut line = server.wait_for(&format!("client {me} "))?;
    while line.contains(" said ") {
        line = server.wait_for(&format!("client {me} "))?;
    }
    ensure!(
        line == format!("client {me} closed the connection"),
        "{line}"
    );
    server.kill()?.assert_no_panic()
}

#[test]
fn hangs_up_on_a_client_that_never_reads() -> Result<()> {
    chaos::exempt(chaos::ADDRESS_IN_LOG);
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
    chaos::exempt(chaos::ADDRESS_IN_LOG);
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
    chaos::exempt(chaos::ADDRESS_IN_LOG);
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
    chaos::exempt(chaos::ADDRESS_IN_LOG);
    let mut server = Server::start(SERVER, &[])?;
    for _ in 0..100 {
        // Each rude caller waits for its answer before it resets, so the
        // reset hits a conversation in progress, and the callers come no
        // faster than the server takes them: a burst would overflow the
        // listen(5) queue, and the kernel's one-second SYN retries would
        // make this test slow without testing anything more.
        let mut rude = connect(server.addr)?;
        exchange(&mut rude, b"x")?;
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
    chaos::exempt(chaos::SAID_PER_READ);
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
    chaos::exempt(
        "a lone q byte is a quit: lesson 04 takes one read for one message, as its chapter shows",
    );
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
        .stdout("HELLO\nserver hung up, as asked\n")
        .stderr("");
    server.wait_for("asked to quit, hanging up")?;
    cmd(CLIENT)?
        .arg(server.addr_arg())
        .write_stdin("  Q  \n")
        .assert()
        .success()
        .stdout("server hung up, as asked\n");
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
        .stdout("Q\nserver hung up, as asked\n");
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
    chaos::exempt(chaos::SAID_PER_READ);
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

// Interop: the Python twins (lessons/lesson04-disconnect-handling/python/) and
// the Rust programs talk to each other. `cargo test -p course-tests interop`
// runs these for every lesson.

#[test]
fn interop_python_client_with_rust_server() -> Result<()> {
    if !PYTHON3.is_here()? {
        return Ok(());
    }
    let mut server = Server::start(SERVER, &["--idle-timeout", "1"])?;
    // The q path: replies, then the goodbye, and nothing after q is sent.
    let mut client = python(LESSON, "client.py");
    client.arg(server.addr_arg());
    let done = run_with_stdin(client, "hello\n\n  你好 rust  \nq\nnever sent\n")?;
    ensure!(done.status.success(), "python client failed: {done:?}");
    ensure!(
        done.stdout == "HELLO\n你好 RUST\nserver hung up, as asked\n".as_bytes(),
        "{done:?}"
    );
    server.wait_for("asked to quit, hanging up")?;
    // The server-gone path: the Rust server times the Python client out, and
    // the client says so when it next talks.
    let mut client = python(LESSON, "client.py");
    client.arg(server.addr_arg());
    let mut client = Proc::spawn_command(client)?;
    client.stdin()?.write_all(b"hello\n")?;
    client.stdin()?.flush()?;
    ensure!(client.next_line()? == "HELLO");
    server.wait_for("was idle for 1 s, hanging up")?;
    client.stdin()?.write_all(b"still there?\n")?;
    let done = client.wait_exit()?;
    ensure!(done.status.code() == Some(1), "{done:?}");
    // As with the Rust client, the FIN or the reset may come first.
    ensure!(
        done.stderr == "error: server closed the connection\n"
            || done.stderr == "error: server reset the connection\n",
        "{done:?}"
    );
    let log = server.kill()?;
    ensure!(
        !log.stdout.iter().any(|l| l.contains("never sent")),
        "{log:?}"
    );
    log.assert_no_panic()
}

#[test]
fn interop_python_client_says_when_the_server_resets() -> Result<()> {
    if !PYTHON3.is_here()? {
        return Ok(());
    }
    let plain = PlainServer::start(|mut stream| {
        let mut buf = [0u8; 5];
        stream.read_exact(&mut buf)?;
        reset(stream)?;
        Ok(buf.to_vec())
    })?;
    let mut client = python(LESSON, "client.py");
    client.arg(plain.addr.to_string());
    let done = run_with_stdin(client, "hello\n")?;
    ensure!(done.status.code() == Some(1), "{done:?}");
    ensure!(
        done.stderr == b"error: server reset the connection\n",
        "{done:?}"
    );
    ensure!(plain.join()? == b"hello");
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
        .write_stdin("hello\n你好 rust\nq\nnever sent\n")
        .assert()
        .success()
        .stdout("HELLO\n你好 RUST\nserver hung up, as asked\n")
        .stderr("");
    server.wait_for("asked to quit, hanging up")?;
    // End of input without q: a polite hang-up.
    cmd(CLIENT)?
        .arg(server.addr_arg())
        .write_stdin("bye\n")
        .assert()
        .success()
        .stdout("BYE\n");
    server.wait_for(" closed the connection")?;
    let log = server.kill()?;
    ensure!(
        !log.stdout.iter().any(|l| l.contains("never sent")),
        "{log:?}"
    );
    Ok(())
}

#[test]
fn interop_python_server_tells_every_ending_apart_like_ours() -> Result<()> {
    chaos::exempt(chaos::ADDRESS_IN_LOG);
    if !PYTHON3.is_here()? {
        return Ok(());
    }
    let mut twin = python(LESSON, "server.py");
    twin.args(["127.0.0.1:0", "--idle-timeout", "1"]);
    let mut server = Server::start_command(twin)?;
    let ended = |server: &mut Server, me: std::net::SocketAddr, how: &str| -> Result<()> {
        let line = server.wait_for(&format!("client {me} "))?;
        ensure!(line.ends_with(" connected"), "{line}");
        let mut line = server.wait_for(&format!("client {me} "))?;
        while line.contains(" said ") {
            line = server.wait_for(&format!("client {me} "))?;
        }
        ensure!(line == format!("client {me} {how}"), "{line}");
        Ok(())
    };
    // Closed.
    let mut polite = connect(server.addr)?;
    let me = polite.local_addr()?;
    exchange(&mut polite, b"goodbye")?;
    drop(polite);
    ended(&mut server, me, "closed the connection")?;
    // Reset.
    let mut rude = connect(server.addr)?;
    let me = rude.local_addr()?;
    exchange(&mut rude, b"bye")?;
    reset(rude)?;
    ended(&mut server, me, "reset the connection")?;
    // Quit.
    let mut quitter = connect(server.addr)?;
    let me = quitter.local_addr()?;
    quitter.write_all(b" Q\r\n")?;
    assert_hung_up(&mut quitter)?;
    ended(&mut server, me, "asked to quit, hanging up")?;
    // Idle.
    let mut silent = connect(server.addr)?;
    let me = silent.local_addr()?;
    exchange(&mut silent, b"hi")?;
    assert_hung_up(&mut silent)?;
    ended(&mut server, me, "was idle for 1 s, hanging up")?;
    // Not reading: send and send, never read, until the twin hangs up.
    let flood = connect(server.addr)?;
    let me = flood.local_addr()?;
    let writer = thread::spawn(move || {
        let mut flood = flood;
        let chunk = [b'a'; 64 * 1024];
        (0..4096).any(|_| flood.write_all(&chunk).is_err())
    });
    ended(
        &mut server,
        me,
        "did not read our reply for 1 s, hanging up",
    )?;
    let hung_up = writer
        .join()
        .map_err(|_| anyhow::anyhow!("writer panicked"))?;
    ensure!(hung_up, "the flooding client could write 256 MB");
    // And the next caller is served.
    exchange(&mut connect(server.addr)?, b"next")?;
    Ok(())
}

// The book's "Run it" output (book/output/lesson04-*.txt) comes from these
// runs. Regenerate with
// `UPDATE_TRANSCRIPTS=1 cargo test -p course-tests --test lesson04`.
// The book shows what Linux prints (error numbers, netcat-openbsd's `nc`).

/// The chapter's first story: a client that says `q`, then one that is
/// stopped with Ctrl-C (SIGINT) in the middle of a call; the server's log.
#[cfg(unix)]
#[test]
fn book_output_of_a_first_run() -> Result<()> {
    let mut server = Server::start(SERVER, &[])?;
    let addr = server.addr;
    let polite = cmd(CLIENT)?
        .arg(server.addr_arg())
        .write_stdin("hello\n你好 rust\nq\n")
        .assert()
        .success();
    server.wait_for("asked to quit")?;
    let mut stopped = Proc::spawn(CLIENT, &[&server.addr_arg()])?;
    stopped.stdin()?.write_all(b"hello\n")?;
    stopped.stdin()?.flush()?;
    ensure!(stopped.next_line()? == "HELLO");
    server.wait_for(r#"said "hello""#)?;
    // Ctrl-C in the client's terminal: SIGINT, and the process ends.
    let kill = Command::new("kill")
        .args(["-INT", &stopped.id().to_string()])
        .status()?;
    ensure!(kill.success(), "kill -INT failed");
    stopped.wait_for_stdout_to_close()?;
    let stopped = stopped.wait_exit()?;
    server.wait_for(" closed the connection")?;
    let log = server.kill()?.stdout;

    Transcript::new()
        .command("cargo run -p lesson04-server")
        .show_addr_as(addr, DEFAULT_ADDR)
        .lines(&log[..1])
        .check("lesson04-server-start")?;
    Transcript::new()
        .command(r"printf 'hello\n你好 rust\nq\n' | cargo run -q -p lesson04-client")
        .output(&String::from_utf8_lossy(&polite.get_output().stdout))
        .check("lesson04-client")?;
    Transcript::new()
        .command(r"(printf 'hello\n'; sleep 30) | cargo run -q -p lesson04-client")
        .lines(&stopped.stdout)
        .output(&stopped.stderr)
        .check("lesson04-client-stopped")?;
    Transcript::new()
        .command("cargo run -p lesson04-server")
        .show_addr_as(addr, DEFAULT_ADDR)
        .lines(&log)
        .check("lesson04-server")
}

/// nc says `q` after a reply; Python resets the connection, then half-closes.
#[cfg(target_os = "linux")]
#[test]
fn book_output_of_other_tcp_clients() -> Result<()> {
    if !(NC.is_here()? && PYTHON3.is_here()?) {
        return Ok(());
    }
    let mut server = Server::start(SERVER, &[])?;
    let addr = server.addr;
    let port = addr.port().to_string();
    let mut t = Transcript::new();

    // nc, without -N: the server hangs up on `q`, and nc ends with the call.
    let mut nc = Command::new("nc");
    nc.arg(addr.ip().to_string()).arg(&port);
    let mut nc = Proc::spawn_command(nc)?;
    nc.stdin()?.write_all(b"hello\n")?;
    nc.stdin()?.flush()?;
    ensure!(nc.next_line()? == "HELLO", "is netcat-openbsd installed?");
    nc.stdin()?.write_all(b"q\n")?;
    nc.close_stdin();
    let nc = nc.wait_exit()?;
    ensure!(nc.status.success(), "nc failed: {nc:?}");
    server.wait_for("asked to quit, hanging up")?;
    t.command(r"(printf 'hello\n'; sleep 1; printf 'q\n') | nc 127.0.0.1 9004")
        .lines(&nc.stdout);

    for script in [
        // A reset, on purpose: SO_LINGER on, with a time of 0.
        "
import socket, struct
s = socket.create_connection((\"127.0.0.1\", 9004))
s.sendall(b\"hello\")
print(s.recv(1024))
s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack(\"ii\", 1, 0))
s.close()",
        // A half-close: send, shut the writing side, read to the end.
        "
import socket
s = socket.create_connection((\"127.0.0.1\", 9004))
s.sendall(b\"last words\")
s.shutdown(socket.SHUT_WR)
while data := s.recv(1024):
    print(data)
s.close()",
    ] {
        let mut py = Command::new("python3");
        py.arg("-c").arg(script.replace("9004", &port));
        let py = run_with_stdin(py, "")?;
        ensure!(py.status.success(), "python failed: {py:?}");
        t.command(&format!("python3 -c '{script}'"))
            .output(&String::from_utf8_lossy(&py.stdout));
        server.wait_for(" the connection")?;
    }
    t.check("lesson04-other-clients")?;
    let log = server.kill()?;
    ensure!(
        log.stdout
            .iter()
            .any(|l| l.ends_with(" reset the connection")),
        "{log:?}"
    );
    Transcript::new()
        .command("cargo run -p lesson04-server")
        .show_addr_as(addr, DEFAULT_ADDR)
        .lines(&log.stdout)
        .check("lesson04-other-clients-server")
}

/// A caller falls silent; the server hangs up after its idle timeout. The
/// caller is `nc`, which reads the socket all the time and so ends at once.
#[cfg(target_os = "linux")]
#[test]
fn book_output_of_an_idle_client() -> Result<()> {
    if !NC.is_here()? {
        return Ok(());
    }
    let mut server = Server::start(SERVER, &["--idle-timeout", "2"])?;
    let addr = server.addr;
    // nc without -N: at the end of its input it keeps the line open, silent.
    let mut nc = Command::new("nc");
    nc.arg(addr.ip().to_string()).arg(addr.port().to_string());
    let mut nc = Proc::spawn_command(nc)?;
    nc.stdin()?.write_all(b"hello\n")?;
    nc.close_stdin();
    ensure!(nc.next_line()? == "HELLO", "is netcat-openbsd installed?");
    let started = Instant::now();
    server.wait_for("was idle for 2 s, hanging up")?;
    ensure!(started.elapsed() >= Duration::from_millis(1500));
    let nc = nc.wait_exit()?;
    ensure!(nc.status.success(), "nc failed: {nc:?}");
    let log = server.kill()?.stdout;

    Transcript::new()
        .command("cargo run -p lesson04-server -- --idle-timeout 2")
        .show_addr_as(addr, DEFAULT_ADDR)
        .lines(&log)
        .check("lesson04-idle-server")?;
    Transcript::new()
        .command(r"printf 'hello\n' | nc 127.0.0.1 9004")
        .lines(&nc.stdout)
        .check("lesson04-idle-nc")
}

#[test]
fn client_hears_of_an_idle_hang_up_when_it_next_talks() -> Result<()> {
    let mut server = Server::start(SERVER, &["--idle-timeout", "1"])?;
    let mut client = Proc::spawn(CLIENT, &[&server.addr_arg()])?;
    client.stdin()?.write_all(b"hello\n")?;
    client.stdin()?.flush()?;
    ensure!(client.next_line()? == "HELLO");
    server.wait_for("was idle for 1 s, hanging up")?;
    // The client waits for input and notices nothing until it talks. Then
    // its read meets the server's FIN, or the reset that the server's system
    // sends back for the new message: which comes first is a race, so both
    // sentences are right.
    client.stdin()?.write_all(b"still there?\n")?;
    let done = client.wait_exit()?;
    ensure!(done.status.code() == Some(1), "{done:?}");
    ensure!(
        done.stderr == "error: server closed the connection\n"
            || done.stderr == "error: server reset the connection\n",
        "{done:?}"
    );
    ensure!(done.stdout == ["HELLO"], "{done:?}");
    server.kill()?.assert_no_panic()
}

/// `hello` and `q` in one write arrive in one read: not a quit (粘包).
#[cfg(target_os = "linux")]
#[test]
fn book_output_of_quit_glued_to_a_message() -> Result<()> {
    if !NC.is_here()? {
        return Ok(());
    }
    let mut server = Server::start(SERVER, &[])?;
    let mut nc = Command::new("nc");
    nc.arg("-N")
        .arg(server.addr.ip().to_string())
        .arg(server.addr.port().to_string());
    let nc = run_with_stdin(nc, "hello\nq\n")?;
    ensure!(
        nc.status.success(),
        "nc failed (is netcat-openbsd installed?): {nc:?}"
    );
    let said = server.wait_for(" said ")?;
    ensure!(said.ends_with(r#" said "hello\nq\n""#), "{said}");
    server.wait_for(" closed the connection")?;
    server.kill()?.assert_no_panic()?;
    Transcript::new()
        .command(r"printf 'hello\nq\n' | nc -N 127.0.0.1 9004")
        .output(&String::from_utf8_lossy(&nc.stdout))
        .check("lesson04-glued")
}

#[test]
fn book_output_of_the_errors() -> Result<()> {
    let mut t = Transcript::new();
    let zero = cmd(SERVER)?.args(["--idle-timeout", "0"]).assert().code(2);
    t.command("cargo run -p lesson04-server -- --idle-timeout 0")
        .output(&String::from_utf8_lossy(&zero.get_output().stderr));
    let nobody = unused_addr()?;
    let refused = cmd(CLIENT)?
        .arg(nobody.to_string())
        .write_stdin("hello\n")
        .assert()
        .code(1);
    t.show_addr_as(nobody, DEFAULT_ADDR)
        .command(r"printf 'hello\n' | cargo run -q -p lesson04-client")
        .output(&String::from_utf8_lossy(&refused.get_output().stderr));
    t.check("lesson04-errors")
}

// Exercise solutions (lessons/lesson04-disconnect-handling/exercise1 and 2).

#[test]
fn exercise1_hangs_up_on_a_busy_caller_at_the_call_limit() -> Result<()> {
    chaos::exempt(chaos::ADDRESS_IN_LOG);
    let mut server = Server::start(
        "lesson04-exercise1",
        &["--idle-timeout", "5", "--max-call", "1"],
    )?;
    let mut busy = connect(server.addr)?;
    let me = busy.local_addr()?;
    let started = Instant::now();
    // Say something every 200 ms: never idle, yet hung up after 1 s.
    let mut answered = 0;
    loop {
        if busy.write_all(b"still talking").is_err() {
            break;
        }
        match read_exactly(&mut busy, 13) {
            Ok(reply) => ensure!(reply == b"STILL TALKING", "{reply:?}"),
            // Our message crossed the server's hang-up.
            Err(_) => break,
        }
        answered += 1;
        if !still_on_the_line(&mut busy, Duration::from_millis(200))? {
            break;
        }
    }
    let took = started.elapsed();
    ensure!(answered >= 3, "only {answered} messages answered");
    ensure!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(4),
        "the call lasted {took:?}"
    );
    let line = server.wait_for(&format!("client {me} reached"))?;
    ensure!(
        line == format!("client {me} reached the call limit of 1 s, hanging up"),
        "{line}"
    );
    exchange(&mut connect(server.addr)?, b"next")?;
    server.kill()?.assert_no_panic()
}

#[test]
fn exercise1_still_hangs_up_on_an_idle_caller() -> Result<()> {
    chaos::exempt(chaos::ADDRESS_IN_LOG);
    let mut server = Server::start(
        "lesson04-exercise1",
        &["--idle-timeout", "1", "--max-call", "60"],
    )?;
    let mut silent = connect(server.addr)?;
    let me = silent.local_addr()?;
    exchange(&mut silent, b"hi")?;
    assert_hung_up(&mut silent)?;
    let line = server.wait_for(&format!("client {me} was idle"))?;
    ensure!(line.ends_with("was idle for 1 s, hanging up"), "{line}");
    cmd("lesson04-exercise1")?
        .args(["--max-call", "0"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("--max-call"));
    server.kill()?.assert_no_panic()
}

#[test]
fn exercise2_says_at_once_when_the_server_hangs_up() -> Result<()> {
    let mut server = Server::start(SERVER, &["--idle-timeout", "1"])?;
    let mut client = Proc::spawn("lesson04-exercise2", &[&server.addr_arg()])?;
    client.stdin()?.write_all(b"hello\n")?;
    client.stdin()?.flush()?;
    ensure!(client.next_line()? == "HELLO");
    server.wait_for("was idle for 1 s, hanging up")?;
    // Nobody types anything more, and stdin stays open: the client ends by
    // itself, because its listening thread heard the server hang up.
    client.wait_for_stdout_to_close()?;
    let done = client.wait_exit()?;
    ensure!(done.status.code() == Some(1), "{done:?}");
    ensure!(
        done.stderr == "error: server closed the connection\n",
        "{done:?}"
    );
    server.kill()?.assert_no_panic()
}

#[test]
fn exercise2_talks_and_quits_like_the_lesson_client() -> Result<()> {
    chaos::bulk();
    let mut server = Server::start(SERVER, &[])?;
    let long = "x".repeat(300_000);
    cmd("lesson04-exercise2")?
        .arg(server.addr_arg())
        .write_stdin(format!("hello\n\n你好 rust\n{long}\nq\nnever sent\n"))
        .assert()
        .success()
        .stdout(format!(
            "HELLO\n你好 RUST\n{}\nserver hung up, as asked\n",
            long.to_uppercase()
        ))
        .stderr("");
    server.wait_for("asked to quit, hanging up")?;
    // End of input without q: every reply printed, then a polite hang-up.
    cmd("lesson04-exercise2")?
        .arg(server.addr_arg())
        .write_stdin("one\ntwo\n")
        .assert()
        .success()
        .stdout("ONE\nTWO\n")
        .stderr("");
    server.wait_for(" closed the connection")?;
    let log = server.kill()?;
    ensure!(
        !log.stdout.iter().any(|l| l.contains("never sent")),
        "{log:?}"
    );
    Ok(())
}

#[test]
fn exercise2_says_when_the_server_resets() -> Result<()> {
    let plain = PlainServer::start(|mut stream| {
        let mut buf = [0u8; 5];
        stream.read_exact(&mut buf)?;
        reset(stream)?;
        Ok(buf.to_vec())
    })?;
    let mut client = Proc::spawn("lesson04-exercise2", &[&plain.addr.to_string()])?;
    client.stdin()?.write_all(b"hello\n")?;
    client.stdin()?.flush()?;
    client.wait_for_stdout_to_close()?;
    let done = client.wait_exit()?;
    ensure!(done.status.code() == Some(1), "{done:?}");
    ensure!(
        done.stderr == "error: server reset the connection\n",
        "{done:?}"
    );
    ensure!(plain.join()? == b"hello");
    Ok(())
}
