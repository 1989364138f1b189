//! Support code of the end-to-end tests. The plumbing (fresh binaries,
//! servers on port 0, timed waits, the test's chat client, `/proc`, random
//! bytes, outside tools) is the test kit, `course-kit` in `tests/kit/`,
//! which the benchmark uses too; it is re-exported here whole. What only
//! these tests need sits beside it: `assert_cmd` commands, the command-line
//! contract and the book's transcripts.
//!
//! Every wait has a deadline; nothing sleeps and hopes.

use std::process::{Command, Output};

use anyhow::Result;

pub use course_kit::*;

pub mod chat_suite;
pub mod contract;
pub mod headers;
pub mod transcript;

/// A table of tests, one line each: `name: expression;` becomes
/// `#[test] fn name() -> anyhow::Result<()> { expression }`.
///
/// The suites that run the same check against many programs (the contract,
/// the hostile attacks, the chat suite) are written once as functions; this
/// gives each use its own named test, so a failure still names the lesson,
/// the program and the behaviour:
///
/// ```ignore
/// course_tests::test_table! {
///     server_prints_help: contract::help_works(SERVER, DEFAULT_ADDR);
///     client_prints_help: contract::help_works(CLIENT, DEFAULT_ADDR);
/// }
/// ```
#[macro_export]
macro_rules! test_table {
    ($($(#[$attr:meta])* $name:ident: $body:expr;)*) => {
        $(
            #[test]
            $(#[$attr])*
            fn $name() -> ::anyhow::Result<()> {
                $body
            }
        )*
    };
}

/// An `assert_cmd` command for the lesson binary `name`, with a timeout so a
/// hanging binary fails the test instead of hanging it.
pub fn cmd(name: &str) -> Result<assert_cmd::Command> {
    let mut cmd = assert_cmd::Command::new(bin_path(name)?);
    cmd.timeout(TIMEOUT);
    Ok(cmd)
}

/// Runs `command` with `input` on its stdin (with a timeout) and returns
/// what it printed.
pub fn run_with_stdin(command: Command, input: &str) -> Result<Output> {
    let mut command = assert_cmd::Command::from_std(command);
    command.timeout(TIMEOUT).write_stdin(input);
    Ok(command.output()?)
}
