//! Checked output for the book.
//!
//! Every "Run it" block in the book is a file under `book/output/`, included
//! by the chapter. The test that runs the scenario builds the same text from
//! a real run of the binaries and compares it with the file, so the book can
//! never show output the programs do not produce.
//!
//! Ports differ from run to run (tests bind port 0, clients get ephemeral
//! ports), so they are normalised: the server's real address becomes the
//! lesson's default address, and each client port becomes a stable stand-in
//! (50312, 50314, ... in order of appearance).
//!
//! After changing a lesson, regenerate every file with
//!
//! ```text
//! UPDATE_TRANSCRIPTS=1 cargo test --workspace
//! ```
//!
//! and read `git diff book/output` before committing.

use std::collections::HashMap;
use std::fs;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};

use crate::workspace_dir;

/// The environment variable that turns checking into regenerating.
pub const UPDATE: &str = "UPDATE_TRANSCRIPTS";

/// A console session as a chapter shows it: commands and their output.
#[derive(Default)]
pub struct Transcript {
    text: String,
    /// Real address text -> what the book shows instead.
    fixed: Vec<(String, String)>,
    /// Any other real text (a temporary path, a process id) -> what the book
    /// shows instead, replaced before the addresses are normalised.
    replaced: Vec<(String, String)>,
}

impl Transcript {
    pub fn new() -> Transcript {
        Transcript::default()
    }

    /// Shows `real` (a server's actual address, port 0 chosen) as `shown`
    /// (the lesson's default address, as a reader would see it).
    pub fn show_addr_as(&mut self, real: impl ToString, shown: &str) -> &mut Self {
        self.fixed.push((real.to_string(), shown.to_string()));
        self
    }

    /// Shows any text `real` that differs from run to run (a temporary
    /// folder, a process id) as `shown`.
    pub fn show_text_as(&mut self, real: impl ToString, shown: &str) -> &mut Self {
        self.replaced.push((real.to_string(), shown.to_string()));
        self
    }

    /// A command line, shown with a `$ ` prompt.
    pub fn command(&mut self, command: &str) -> &mut Self {
        self.text.push_str("$ ");
        self.text.push_str(command);
        self.text.push('\n');
        self
    }

    /// Output lines, as printed.
    pub fn lines<S: AsRef<str>>(&mut self, lines: &[S]) -> &mut Self {
        for line in lines {
            self.text.push_str(line.as_ref());
            self.text.push('\n');
        }
        self
    }

    /// Output text, as printed (a missing final newline is added).
    pub fn output(&mut self, text: &str) -> &mut Self {
        self.text.push_str(text);
        if !text.is_empty() && !text.ends_with('\n') {
            self.text.push('\n');
        }
        self
    }

    /// The text with addresses normalised.
    pub fn normalised(&self) -> String {
        let mut text = self.text.clone();
        for (real, shown) in &self.replaced {
            text = text.replace(real, shown);
        }
        normalise(&text, &self.fixed)
    }

    /// Compares with `book/output/<name>.txt`, or writes it when
    /// `UPDATE_TRANSCRIPTS=1` is set.
    pub fn check(&self, name: &str) -> Result<()> {
        // The book's output is recorded on Linux; other systems word some
        // errors differently, so there the scenario runs but is not compared.
        if !cfg!(target_os = "linux") {
            return Ok(());
        }
        let path = output_dir().join(format!("{name}.txt"));
        let actual = self.normalised();
        if std::env::var_os(UPDATE).is_some_and(|v| v == "1") {
            fs::create_dir_all(output_dir())?;
            fs::write(&path, &actual).with_context(|| format!("writing {}", path.display()))?;
            return Ok(());
        }
        let expected = fs::read_to_string(&path).with_context(|| {
            format!(
                "reading {} (create it with {UPDATE}=1 cargo test --workspace)",
                path.display()
            )
        })?;
        if expected != actual {
            bail!(
                "the book's output {} differs from what the programs print now.\n\
                 --- book\n{expected}--- programs\n{actual}---\n\
                 If the change is intended, run `{UPDATE}=1 cargo test --workspace` \
                 and review `git diff book/output`.",
                path.display()
            );
        }
        Ok(())
    }
}

/// Where the expected output files live.
pub fn output_dir() -> PathBuf {
    workspace_dir().join("book").join("output")
}

/// Replaces each `127.0.0.1:PORT` / `[::1]:PORT` / `[::ffff:127.0.0.1]:PORT`: a `fixed` address by what
/// it is shown as, a lesson default port (9000-9099) or port 0 by itself, and any other
/// port by a stand-in, given in order of appearance.
fn normalise(text: &str, fixed: &[(String, String)]) -> String {
    let mut seen: HashMap<String, u16> = HashMap::new();
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some((start, host)) = find_host(rest) {
        let after_host = start + host.len();
        let digits = rest[after_host..]
            .bytes()
            .take_while(u8::is_ascii_digit)
            .count();
        let port = &rest[after_host..after_host + digits];
        let whole = format!("{host}{port}");
        if let Some((_, shown)) = fixed.iter().find(|(real, _)| *real == whole) {
            out.push_str(&rest[..start]);
            out.push_str(shown);
            rest = &rest[after_host + digits..];
            continue;
        }
        out.push_str(&rest[..after_host]);
        let keep = port
            .parse::<u16>()
            .map_or(true, |p| p == 0 || (9000..9100).contains(&p));
        if keep {
            out.push_str(port);
        } else {
            let next = 50312 + 2 * seen.len() as u16;
            let stand_in = *seen.entry(whole).or_insert(next);
            out.push_str(&stand_in.to_string());
        }
        rest = &rest[after_host + digits..];
    }
    out.push_str(rest);
    out
}

fn find_host(text: &str) -> Option<(usize, &'static str)> {
    // An IPv4 caller of a dual-stack server (lesson 12) is logged in its
    // IPv4-mapped IPv6 form.
    ["127.0.0.1:", "[::1]:", "[::ffff:127.0.0.1]:"]
        .into_iter()
        .filter_map(|host| text.find(host).map(|at| (at, host)))
        .min_by_key(|&(at, _)| at)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_ports_get_stable_stand_ins() {
        let text = "client 127.0.0.1:41234 connected\nclient 127.0.0.1:41234 said\nclient 127.0.0.1:5555 connected\n";
        assert_eq!(
            normalise(text, &[]),
            "client 127.0.0.1:50312 connected\nclient 127.0.0.1:50312 said\nclient 127.0.0.1:50314 connected\n"
        );
    }

    #[test]
    fn default_ports_and_server_address_are_kept_or_fixed() {
        let mut t = Transcript::new();
        t.show_addr_as("127.0.0.1:40001", "127.0.0.1:9003")
            .command("cargo run -p lesson03-server")
            .lines(&[
                "listening on 127.0.0.1:40001",
                "client [::1]:40500 connected",
            ]);
        assert_eq!(
            t.normalised(),
            "$ cargo run -p lesson03-server\nlistening on 127.0.0.1:9003\nclient [::1]:50312 connected\n"
        );
    }
}
