//! Lesson 03: the connection loop, callers served one after another.

use std::io::Write;
use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use course_tests::chaos;
use course_tests::contract;
use course_tests::tools::{NC, PYTHON3, SS};
use course_tests::transcript::Transcript;
use course_tests::{
    Proc, Server, TIMEOUT, assert_silent, cmd, connect, exchange, python, read_exactly,
    read_to_close, reset, run_with_stdin,
};
use predicates::prelude::*;

const SERVER: &str = "lesson03-server";
const CLIENT: &str = "lesson03-client";
const LESSON: &str = "lesson03-connection-loop";
const DEFAULT_ADDR: &str = "127.0.0.1:9003";

course_tests::test_table! {
    server_prints_help: contract::help_works(SERVER, DEFAULT_ADDR);
    client_prints_help: contract::help_works(CLIENT, DEFAULT_ADDR);
    server_dies_on_bad_address: contract::bad_address_is_refused(SERVER);
    client_dies_on_bad_address: contract::bad_address_is_refused(CLIENT);
    client_explains_when_no_server_listens: contract::client_explains_no_server(CLIENT, SERVER);
}

#[test]
fn serves_clients_one_after_another() -> Result<()> {
    chaos::exempt(chaos::SAID_PER_READ);
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
    chaos::exempt(chaos::SAID_PER_READ);
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
        // Each rude caller waits for its answer before it resets, so the
        // reset hits a conversation in progress, and the callers come no
        // faster than the server takes them: a burst would overflow the
        // listen(5) queue, and the kernel's one-second SYN retries would
        // make this test slow without testing anything more.
        let mut rude = connect(server.addr)?;
        exchange(&mut rude, b"x")?;
        reset(rude)?;
    }
    exchange(&mut connect(server.addr)?, b"after the storm")?;
    server.kill()?.assert_no_panic()?;
    Ok(())
}

#[test]
fn restarts_at_once_on_the_same_port() -> Result<()> {
    // The situation behind Python's "Address already in use": the server is
    // stopped while a caller is connected, so the server's side of that
    // connection closes first and stays in TIME_WAIT for a while.
    let first = Server::start(SERVER, &[])?;
    let addr = first.direct; // the server's own port, in chaos mode too
    let mut caller = connect(first.addr)?;
    exchange(&mut caller, b"hello")?;
    first.kill()?;
    // Wait for the kernel's FIN (end of stream), then close our side too.
    ensure!(read_to_close(&mut caller)?.is_empty());
    drop(caller);

    // Immediately start again on exactly the same address: SO_REUSEADDR lets
    // the new listener bind although the old connection is in TIME_WAIT.
    let second = Server::start_on(SERVER, &addr.to_string(), &[])?;
    ensure!(
        second.direct == addr,
        "bound {} instead of {addr}",
        second.direct
    );
    exchange(&mut connect(second.addr)?, b"again")?;
    Ok(())
}

/// On Linux, `listen(5)` lets at most 5 + 1 completed connections wait for
/// `accept`; further handshakes are not completed until room is made. std's
/// default backlog of 128 would let all 20 of these through.
#[cfg(target_os = "linux")]
#[test]
fn backlog_of_five_bounds_the_waiting_queue() -> Result<()> {
    chaos::exempt("counts connections in the server's listen queue: a proxy accepts them all");
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

/// The listening socket on `addr` as `ss -tln` shows it (Linux): `Recv-Q`,
/// the connections waiting in the queue for `accept`, and `Send-Q`, the
/// backlog. Waits until `waiting` connections are queued.
#[cfg(target_os = "linux")]
fn wait_for_queue(addr: SocketAddr, waiting: usize) -> Result<(usize, usize)> {
    let deadline = std::time::Instant::now() + TIMEOUT;
    loop {
        let mut ss = Command::new("ss");
        ss.args(["-tlnH", &format!("sport = :{}", addr.port())]);
        let out = run_with_stdin(ss, "").context("running ss (is iproute2 installed?)")?;
        let last = String::from_utf8_lossy(&out.stdout);
        // State, Recv-Q, Send-Q, Local Address:Port, Peer Address:Port
        let queue = last.lines().find_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            if fields.get(3) != Some(&addr.to_string().as_str()) {
                return None;
            }
            Some((fields.get(1)?.parse().ok()?, fields.get(2)?.parse().ok()?))
        });
        if let Some((queued, backlog)) = queue {
            if queued == waiting {
                return Ok((queued, backlog));
            }
        }
        ensure!(
            std::time::Instant::now() < deadline,
            "{waiting} connections never waited in the queue of {addr}; ss said {last:?}"
        );
        // Polling ss; the event we wait for is the queue's length.
        std::thread::sleep(Duration::from_millis(10));
    }
}

// Interop: the Python twins (lessons/lesson03-connection-loop/python/) and
// the Rust programs talk to each other. `cargo test -p course-tests interop`
// runs these for every lesson.

#[test]
fn interop_python_client_with_rust_server() -> Result<()> {
    chaos::exempt(chaos::SAID_PER_READ);
    if !PYTHON3.is_here()? {
        return Ok(());
    }
    let mut server = Server::start(SERVER, &[])?;
    for (input, output) in [
        ("first\n", "FIRST\n"),
        ("\n  second 你好  \nthird\n", "SECOND 你好\nTHIRD\n"),
    ] {
        let mut client = python(LESSON, "client.py");
        client.arg(server.addr_arg());
        let done = run_with_stdin(client, input)?;
        ensure!(done.status.success(), "python client failed: {done:?}");
        ensure!(done.stdout == output.as_bytes(), "{done:?}");
    }
    server.wait_for(r#"said "third""#)?;
    server.wait_for(" disconnected")?;
    server.kill()?.assert_no_panic()
}

#[test]
fn interop_rust_client_with_python_server() -> Result<()> {
    chaos::exempt(chaos::SAID_PER_READ);
    if !PYTHON3.is_here()? {
        return Ok(());
    }
    let mut twin = python(LESSON, "server.py");
    twin.arg("127.0.0.1:0");
    let mut server = Server::start_command(twin)?;
    // Two callers one after another: the twin has the connection loop too.
    for (input, output) in [
        ("first\n", "FIRST\n"),
        ("hello 哈哈哈\nbye\n", "HELLO 哈哈哈\nBYE\n"),
    ] {
        cmd(CLIENT)?
            .arg(server.addr_arg())
            .write_stdin(input)
            .assert()
            .success()
            .stdout(output);
    }
    server.wait_for("said 'bye'")?;
    server.wait_for(" disconnected")?;
    // A reset is logged and the twin takes the next caller, like ours.
    let mut rude = connect(server.addr)?;
    exchange(&mut rude, b"x")?;
    reset(rude)?;
    server.wait_for(" disconnected")?;
    exchange(&mut connect(server.addr)?, b"still here")?;
    let done = server.kill()?;
    let callers = done
        .stdout
        .iter()
        .filter(|l| l.ends_with(" connected"))
        .count();
    ensure!(callers == 4, "{done:?}");
    Ok(())
}

#[test]
fn interop_second_client_waits_for_the_python_server_too() -> Result<()> {
    if !PYTHON3.is_here()? {
        return Ok(());
    }
    let mut twin = python(LESSON, "server.py");
    twin.arg("127.0.0.1:0");
    let server = Server::start_command(twin)?;
    let mut first = connect(server.addr)?;
    exchange(&mut first, b"one")?;
    let mut second = connect(server.addr)?;
    second.write_all(b"two")?;
    assert_silent(&mut second, Duration::from_millis(300))?;
    drop(first);
    ensure!(read_exactly(&mut second, 3)? == b"TWO");
    Ok(())
}

// The book's "Run it" output (book/output/lesson03-*.txt) comes from these
// runs. Regenerate with
// `UPDATE_TRANSCRIPTS=1 cargo test -p course-tests --test lesson03`.
// The book shows what Linux prints (error numbers, `ss`, netcat-openbsd's `nc`).

/// The chapter's three-terminal story, in its order: A talks, B connects and
/// waits in the queue, A talks again and hangs up, and only then B is
/// answered. Each terminal's output is a file of its own.
#[cfg(target_os = "linux")]
#[test]
fn book_output_of_two_callers_in_line() -> Result<()> {
    if !SS.is_here()? {
        return Ok(());
    }
    let mut server = Server::start(SERVER, &[])?;
    let addr = server.addr;
    // Terminal 2: client A says "first" and stays on the line.
    let mut a = Proc::spawn(CLIENT, &[&server.addr_arg()])?;
    a.stdin()?.write_all(b"first\n")?;
    ensure!(a.next_line()? == "FIRST");
    server.wait_for(r#"said "first""#)?;
    // Terminal 3: client B connects and says "second"...
    let mut b = Proc::spawn(CLIENT, &[&server.addr_arg()])?;
    b.stdin()?.write_all(b"second\n")?;
    b.close_stdin();
    // ...and waits in the listen queue, as `ss -tln` shows: Recv-Q 1 (B),
    // Send-Q 5 (the backlog).
    let (_, backlog) = wait_for_queue(addr, 1)?;
    ensure!(backlog == 5, "ss shows a backlog of {backlog}");
    // A is still served while B waits; then A's input ends and A hangs up.
    a.stdin()?.write_all(b"still me\n")?;
    ensure!(a.next_line()? == "STILL ME");
    let a = a.wait_exit()?;
    ensure!(a.status.success(), "client A failed: {a:?}");
    // Only now is B accepted and answered.
    ensure!(b.next_line()? == "SECOND");
    let b = b.wait_exit()?;
    ensure!(b.status.success(), "client B failed: {b:?}");
    server.wait_for(r#"said "second""#)?;
    server.wait_for(" disconnected")?;
    let log = server.kill()?.stdout;

    Transcript::new()
        .command("cargo run -p lesson03-server")
        .show_addr_as(addr, DEFAULT_ADDR)
        .lines(&log[..1])
        .check("lesson03-server-start")?;
    Transcript::new()
        .command(
            r"(printf 'first\n'; sleep 30; printf 'still me\n') | cargo run -q -p lesson03-client",
        )
        .lines(&a.stdout)
        .check("lesson03-client-a")?;
    Transcript::new()
        .command(r"printf 'second\n' | cargo run -q -p lesson03-client")
        .lines(&b.stdout)
        .check("lesson03-client-b")?;
    Transcript::new()
        .command("cargo run -p lesson03-server")
        .show_addr_as(addr, DEFAULT_ADDR)
        .lines(&log)
        .check("lesson03-server")
}

#[cfg(target_os = "linux")]
#[test]
fn book_output_of_other_tcp_clients() -> Result<()> {
    if !(NC.is_here()? && PYTHON3.is_here()?) {
        return Ok(());
    }
    // nc and a Python one-liner, one after the other, served by one server
    // that keeps running. `nc -N` shuts down its sending side at the end of
    // its input, so the server's `read` returns 0 and it hangs up on nc.
    let server = Server::start(SERVER, &[])?;
    let mut t = Transcript::new();
    let mut nc = Command::new("nc");
    nc.arg("-N")
        .arg(server.addr.ip().to_string())
        .arg(server.addr.port().to_string());
    let nc = run_with_stdin(nc, "hello\n")?;
    ensure!(
        nc.status.success(),
        "nc failed (is netcat-openbsd installed?): {nc:?}"
    );
    t.command(r"printf 'hello\n' | nc -N 127.0.0.1 9003")
        .output(&String::from_utf8_lossy(&nc.stdout));
    let one_liner = r#"import socket; s = socket.create_connection(("127.0.0.1", 9003)); s.sendall(b"one"); print(s.recv(1024)); s.sendall(b"two"); print(s.recv(1024))"#;
    // Shown one statement a line, so that it fits the book's column.
    let one_liner = &one_liner.replace("; ", "\n");
    let mut py = Command::new("python3");
    py.arg("-c")
        .arg(one_liner.replace("9003", &server.addr.port().to_string()));
    let py = run_with_stdin(py, "")?;
    ensure!(py.status.success(), "python failed: {py:?}");
    t.command(&format!("python3 -c '\n{one_liner}'"))
        .output(&String::from_utf8_lossy(&py.stdout));
    server.kill()?.assert_no_panic()?;
    t.check("lesson03-other-clients")
}

/// Stop the server while a caller is connected, then restart at once: a
/// plain Python socket (no SO_REUSEADDR) cannot bind the port, our server
/// and the Python twin (both set SO_REUSEADDR) can.
#[cfg(target_os = "linux")]
#[test]
fn book_output_of_a_restart() -> Result<()> {
    if !PYTHON3.is_here()? {
        return Ok(());
    }
    let first = Server::start(SERVER, &[])?;
    let addr = first.direct; // the server's own port, in chaos mode too
    let mut caller = connect(first.addr)?;
    exchange(&mut caller, b"hello")?;
    first.kill()?; // Ctrl-C
    ensure!(read_to_close(&mut caller)?.is_empty());
    drop(caller);
    let mut t = Transcript::new();
    t.show_addr_as(addr, DEFAULT_ADDR);

    let bind = r#"import socket; s = socket.socket(); s.bind(("127.0.0.1", 9003))"#;
    let mut py = Command::new("python3");
    py.arg("-c")
        .arg(bind.replace("9003", &addr.port().to_string()));
    let py = run_with_stdin(py, "")?;
    ensure!(!py.status.success(), "a plain bind succeeded: {py:?}");
    let stderr = String::from_utf8_lossy(&py.stderr);
    t.command(&format!("python3 -c '{bind}' 2>&1 | tail -1"))
        .output(stderr.trim_end().lines().last().unwrap_or_default());

    let again = Server::start_on(SERVER, &addr.to_string(), &[])?;
    ensure!(again.addr == addr, "bound {} instead of {addr}", again.addr);
    t.command("cargo run -p lesson03-server")
        .lines(&again.kill()?.stdout[..1]);

    let mut twin = python(LESSON, "server.py");
    twin.arg(addr.to_string());
    let twin = Server::start_command(twin)?;
    ensure!(twin.addr == addr, "bound {} instead of {addr}", twin.addr);
    t.command("python3 lessons/lesson03-connection-loop/python/server.py")
        .lines(&twin.kill()?.stdout[..1]);
    t.check("lesson03-restart")
}

#[cfg(target_os = "linux")]
#[test]
fn book_output_of_two_servers_on_one_port() -> Result<()> {
    // SO_REUSEADDR does not let a second server listen on a port in use.
    let server = Server::start(SERVER, &[])?;
    let busy = cmd(SERVER)?.arg(server.addr_arg()).assert().code(1);
    Transcript::new()
        .show_addr_as(server.addr, DEFAULT_ADDR)
        .command("cargo run -p lesson03-server")
        .output(&String::from_utf8_lossy(&busy.get_output().stderr))
        .check("lesson03-errors")
}

// Exercise solutions (lessons/lesson03-connection-loop/exercise1).

#[test]
fn exercise1_serves_callers_with_a_chosen_backlog() -> Result<()> {
    chaos::exempt(chaos::SAID_PER_READ);
    let mut server = Server::start("lesson03-exercise1", &["--backlog", "2"])?;
    for (input, output) in [("first\n", "FIRST\n"), ("second\n", "SECOND\n")] {
        cmd(CLIENT)?
            .arg(server.addr_arg())
            .write_stdin(input)
            .assert()
            .success()
            .stdout(output);
    }
    server.wait_for(r#"said "second""#)?;
    server.kill()?.assert_no_panic()
}

/// With `--backlog 1`, Linux lets at most 1 + 1 completed connections wait.
#[cfg(target_os = "linux")]
#[test]
fn exercise1_backlog_of_one_bounds_the_queue() -> Result<()> {
    chaos::exempt("counts connections in the server's listen queue: a proxy accepts them all");
    if !SS.is_here()? {
        return Ok(());
    }
    let server = Server::start("lesson03-exercise1", &["--backlog", "1"])?;
    let mut busy = connect(server.addr)?;
    exchange(&mut busy, b"keep the server busy")?;
    let mut waiting = Vec::new();
    for _ in 0..10 {
        match std::net::TcpStream::connect_timeout(&server.addr, Duration::from_millis(500)) {
            Ok(stream) => waiting.push(stream),
            Err(_) => break,
        }
    }
    ensure!(
        (1..=3).contains(&waiting.len()),
        "{} connections completed while the server was busy",
        waiting.len()
    );
    let (_, backlog) = wait_for_queue(server.addr, waiting.len())?;
    ensure!(backlog == 1, "ss shows a backlog of {backlog}");
    Ok(())
}

#[test]
fn exercise1_rejects_a_bad_backlog() -> Result<()> {
    cmd("lesson03-exercise1")?
        .args(["--backlog", "lots"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("'lots'"));
    Ok(())
}
