//! Lesson 02: the communication loop, many messages from one caller.

use std::io::{Read, Write};
use std::process::Command;

use anyhow::{Result, ensure};
use course_tests::chaos;
use course_tests::contract;
use course_tests::tools::{NC, PYTHON3};
use course_tests::transcript::Transcript;
use course_tests::{
    PlainServer, Server, cmd, connect, python, read_exactly, reset, run_with_stdin, unused_addr,
};
use predicates::prelude::*;

const SERVER: &str = "lesson02-server";
const CLIENT: &str = "lesson02-client";
const LESSON: &str = "lesson02-communication-loop";
const DEFAULT_ADDR: &str = "127.0.0.1:9002";

course_tests::test_table! {
    server_prints_help: contract::help_works(SERVER, DEFAULT_ADDR);
    client_prints_help: contract::help_works(CLIENT, DEFAULT_ADDR);
    server_dies_on_bad_address: contract::bad_address_is_refused(SERVER);
    client_dies_on_bad_address: contract::bad_address_is_refused(CLIENT);
    client_explains_when_no_server_listens: contract::client_explains_no_server(CLIENT, SERVER);
}

#[test]
fn echoes_every_line_then_both_exit() -> Result<()> {
    chaos::exempt(chaos::SAID_PER_READ);
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
    chaos::exempt(chaos::SAID_PER_READ);
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
    chaos::bulk();
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
    chaos::exempt(chaos::SAID_PER_READ);
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

// Interop: the Python twins (lessons/lesson02-communication-loop/python/) and
// the Rust programs talk to each other. `cargo test -p course-tests interop`
// runs these for every lesson.

#[test]
fn interop_python_client_with_rust_server() -> Result<()> {
    chaos::exempt(chaos::SAID_PER_READ);
    if !PYTHON3.is_here()? {
        return Ok(());
    }
    let server = Server::start(SERVER, &[])?;
    let mut client = python(LESSON, "client.py");
    client.arg(server.addr_arg());
    let output = run_with_stdin(client, "hello\n\n   \n你好 rust\n")?;
    ensure!(output.status.success(), "python client failed: {output:?}");
    ensure!(
        output.stdout == "HELLO\n你好 RUST\n".as_bytes(),
        "{output:?}"
    );
    let done = server.wait_exit()?;
    ensure!(done.status.success(), "server failed: {done:?}");
    ensure!(
        done.stdout.iter().filter(|l| l.contains(" said ")).count() == 2,
        "{done:?}"
    );
    Ok(())
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
    cmd(CLIENT)?
        .arg(server.addr_arg())
        .write_stdin("hello\n\nhow are you?\n你好 rust\n")
        .assert()
        .success()
        .stdout("HELLO\nHOW ARE YOU?\n你好 RUST\n");
    server.wait_for("said '你好 rust'")?;
    server.wait_for(" disconnected")?;
    let done = server.wait_exit()?;
    ensure!(done.status.success(), "python server failed: {done:?}");
    Ok(())
}

#[test]
fn interop_python_client_echoes_a_one_megabyte_line() -> Result<()> {
    chaos::bulk();
    if !PYTHON3.is_here()? {
        return Ok(());
    }
    // The twin sends in 64 KiB pieces too, or it would deadlock like the
    // chapter explains.
    let server = Server::start(SERVER, &[])?;
    let line = "ab".repeat(512 * 1024);
    let mut client = python(LESSON, "client.py");
    client.arg(server.addr_arg());
    let output = run_with_stdin(client, &format!("{line}\n"))?;
    ensure!(output.status.success(), "python client failed: {output:?}");
    ensure!(
        output.stdout == format!("{}\n", line.to_ascii_uppercase()).as_bytes(),
        "wrong reply of {} bytes",
        output.stdout.len()
    );
    ensure!(server.wait_exit()?.status.success());
    Ok(())
}

// The book's "Run it" output (book/output/lesson02-*.txt) comes from these
// runs. Regenerate with
// `UPDATE_TRANSCRIPTS=1 cargo test -p course-tests --test lesson02`.
// The book shows what Linux prints (error numbers, netcat-openbsd's `nc`).

#[cfg(target_os = "linux")]
#[test]
fn book_output_of_a_first_run() -> Result<()> {
    let server = Server::start(SERVER, &[])?;
    let addr = server.addr;
    let client = cmd(CLIENT)?
        .arg(server.addr_arg())
        .write_stdin("hello\nbye\n")
        .assert()
        .success();
    let log = server.wait_exit()?;
    ensure!(log.status.success(), "server failed: {log:?}");
    Transcript::new()
        .command("cargo run -p lesson02-server")
        .show_addr_as(addr, DEFAULT_ADDR)
        .lines(&log.stdout[..1])
        .check("lesson02-server-start")?;
    Transcript::new()
        .command(r"printf 'hello\nbye\n' | cargo run -q -p lesson02-client")
        .output(&String::from_utf8_lossy(&client.get_output().stdout))
        .check("lesson02-client")?;
    Transcript::new()
        .command("cargo run -p lesson02-server")
        .show_addr_as(addr, DEFAULT_ADDR)
        .lines(&log.stdout)
        .check("lesson02-server")
}

#[cfg(target_os = "linux")]
#[test]
fn book_output_of_blank_lines_and_chinese() -> Result<()> {
    let server = Server::start(SERVER, &[])?;
    let client = cmd(CLIENT)?
        .arg(server.addr_arg())
        .write_stdin("hello\n\n   \nhow are you?\n你好 rust\n")
        .assert()
        .success();
    ensure!(server.wait_exit()?.status.success());
    Transcript::new()
        .command(
            r"printf 'hello\n\n   \nhow are you?\n你好 rust\n' | cargo run -q -p lesson02-client",
        )
        .output(&String::from_utf8_lossy(&client.get_output().stdout))
        .check("lesson02-blank-lines")
}

/// At a terminal, Ctrl-D leaves the cursor after `>> `; the client ends that
/// line, so the shell's prompt starts on a line of its own. (Python's `pty`
/// module gives the client a real terminal; Linux only, like the book.)
#[cfg(target_os = "linux")]
#[test]
fn client_at_a_terminal_ends_the_prompt_line_at_end_of_input() -> Result<()> {
    if !PYTHON3.is_here()? {
        return Ok(());
    }
    let server = Server::start(SERVER, &[])?;
    let at_a_terminal = r#"
import os, pty, select, sys, time
pid, fd = pty.fork()
if pid == 0:
    os.execv(sys.argv[1], [sys.argv[1], sys.argv[2]])
seen = b""
def read_until(wanted):
    global seen
    deadline = time.time() + 20
    while wanted not in seen and time.time() < deadline:
        if select.select([fd], [], [], 0.1)[0]:
            try:
                seen += os.read(fd, 1024)
            except OSError:
                return
os.write(fd, b"hi\n")
read_until(b"HI\r\n>> ")
os.write(fd, b"\x04")
read_until(b"never: read to the end")
os.waitpid(pid, 0)
sys.stdout.buffer.write(seen)
"#;
    let mut py = Command::new("python3");
    py.arg("-c")
        .arg(at_a_terminal)
        .arg(course_tests::bin_path(CLIENT)?)
        .arg(server.addr_arg());
    let done = run_with_stdin(py, "")?;
    ensure!(done.status.success(), "python failed: {done:?}");
    let screen = String::from_utf8_lossy(&done.stdout);
    ensure!(
        screen.ends_with("HI\r\n>> \r\n"),
        "the terminal showed {screen:?}"
    );
    Ok(())
}

#[cfg(target_os = "linux")]
#[test]
fn book_output_of_other_tcp_clients() -> Result<()> {
    if !(NC.is_here()? && PYTHON3.is_here()?) {
        return Ok(());
    }
    // What the chapter shows with nc and with a Python one-liner. `nc -N`
    // shuts down its sending side at the end of its input, so the server's
    // `read` returns 0 and the server hangs up, which ends nc too.
    let mut t = Transcript::new();
    let server = Server::start(SERVER, &[])?;
    let mut nc = Command::new("nc");
    nc.arg("-N")
        .arg(server.addr.ip().to_string())
        .arg(server.addr.port().to_string());
    let nc = run_with_stdin(nc, "hello\nbye\n")?;
    ensure!(
        nc.status.success(),
        "nc failed (is netcat-openbsd installed?): {nc:?}"
    );
    let addr = server.addr;
    let log = server.wait_exit()?;
    ensure!(log.status.success(), "{log:?}");
    t.command(r"printf 'hello\nbye\n' | nc -N 127.0.0.1 9002")
        .output(&String::from_utf8_lossy(&nc.stdout));
    // nc sent both lines in one write, and one read got them both: 粘包.
    ensure!(
        log.stdout
            .iter()
            .any(|l| l.ends_with(r#"said "hello\nbye\n""#)),
        "expected one read of both lines: {:?}",
        log.stdout
    );
    Transcript::new()
        .show_addr_as(addr, DEFAULT_ADDR)
        .command("cargo run -p lesson02-server")
        .lines(&log.stdout)
        .check("lesson02-sticky")?;

    let one_liner = r#"import socket; s = socket.create_connection(("127.0.0.1", 9002)); s.sendall(b"one"); print(s.recv(1024)); s.sendall(b"two"); print(s.recv(1024))"#;
    // Shown one statement a line, so that it fits the book's column.
    let one_liner = &one_liner.replace("; ", "\n");
    let server = Server::start(SERVER, &[])?;
    let port = server.addr.port().to_string();
    let mut py = Command::new("python3");
    py.arg("-c").arg(one_liner.replace("9002", &port));
    let py = run_with_stdin(py, "")?;
    ensure!(py.status.success(), "python failed: {py:?}");
    ensure!(server.wait_exit()?.status.success());
    t.command(&format!("python3 -c '\n{one_liner}'"))
        .output(&String::from_utf8_lossy(&py.stdout));
    t.check("lesson02-other-clients")
}

#[cfg(target_os = "linux")]
#[test]
fn book_output_of_the_errors() -> Result<()> {
    // No server at all.
    let nobody = unused_addr()?;
    let refused = cmd(CLIENT)?
        .arg(nobody.to_string())
        .write_stdin("hello\n")
        .assert()
        .code(1);
    Transcript::new()
        .show_addr_as(nobody, DEFAULT_ADDR)
        .command(r"printf 'hello\n' | cargo run -q -p lesson02-client")
        .output(&String::from_utf8_lossy(&refused.get_output().stderr))
        .check("lesson02-no-server")?;
    // A server that reads the message and hangs up without a reply: the
    // test plays it, the client is the real one.
    let rude = PlainServer::start(|mut stream| {
        let mut buf = [0u8; 5];
        stream.read_exact(&mut buf)?;
        Ok(buf.to_vec())
    })?;
    let cut = cmd(CLIENT)?
        .arg(rude.addr.to_string())
        .write_stdin("hello\n")
        .assert()
        .code(1);
    let rude_addr = rude.addr;
    ensure!(rude.join()? == b"hello");
    Transcript::new()
        .show_addr_as(rude_addr, DEFAULT_ADDR)
        .command(r"printf 'hello\n' | cargo run -q -p lesson02-client")
        .output(&String::from_utf8_lossy(&cut.get_output().stderr))
        .check("lesson02-cut-off")
}

// Exercise solutions (lessons/lesson02-communication-loop/exercise1).

#[test]
fn exercise1_counts_reads_not_messages() -> Result<()> {
    chaos::exempt("counts the server's reads, which a proxy changes");
    let server = Server::start("lesson02-exercise1", &[])?;
    let mut stream = connect(server.addr)?;
    // One message, "hello", sent one byte at a time: each byte is answered
    // before the next is sent, so the server needs five reads for it.
    for byte in b"hello" {
        stream.write_all(&[*byte])?;
        ensure!(read_exactly(&mut stream, 1)? == [byte.to_ascii_uppercase()]);
    }
    // A second message in one piece: one read.
    stream.write_all(b"bye")?;
    ensure!(read_exactly(&mut stream, 3)? == b"BYE");
    drop(stream);
    let done = server.wait_exit()?;
    ensure!(done.status.success(), "{done:?}");
    ensure!(
        done.stdout
            .last()
            .is_some_and(|l| l.ends_with(" disconnected after 6 reads (8 bytes)")),
        "{done:?}"
    );
    Ok(())
}

#[test]
fn exercise1_counts_one_read_per_line_from_the_lesson_client() -> Result<()> {
    chaos::exempt("counts the server's reads, which a proxy changes");
    let server = Server::start("lesson02-exercise1", &[])?;
    cmd(CLIENT)?
        .arg(server.addr_arg())
        .write_stdin("hello\nbye\n")
        .assert()
        .success()
        .stdout("HELLO\nBYE\n");
    let done = server.wait_exit()?;
    ensure!(
        done.stdout
            .last()
            .is_some_and(|l| l.ends_with(" disconnected after 2 reads (8 bytes)")),
        "{done:?}"
    );
    Ok(())
}
