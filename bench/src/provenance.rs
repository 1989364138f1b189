//! Which run a figure file comes from: when, on what machine, from which
//! commit of the sources, and whether the programs it measured have changed
//! since. Every command that writes figures for the book stores this with
//! them (in its JSON file) and writes it, as a sentence, beside them.

use std::process::{Command, Stdio};

use serde::{Deserialize, Serialize};

use crate::procs;

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Provenance {
    /// UTC date of the run, YYYY-MM-DD.
    pub date: String,
    /// The machine in one phrase: processor, cores, memory, system.
    pub machine: String,
    /// The commit the sources were at (`git rev-parse --short HEAD`), if
    /// git could say.
    pub commit: Option<String>,
    /// The work tree had changes not committed yet.
    pub dirty: bool,
    /// The 1, 5 and 15 minute load averages just before the run.
    pub load_before: String,
    /// `release build` or `debug build`.
    pub profile: String,
}

/// A program the figures describe, and where its sources are.
pub struct Program {
    pub name: &'static str,
    pub paths: &'static [&'static str],
}

impl Provenance {
    /// This run: today, this machine, the work tree as it is.
    pub fn now() -> Provenance {
        let commit = git(&["rev-parse", "--short", "HEAD"]);
        let dirty = git(&["status", "--porcelain", "--untracked-files=no"])
            .is_some_and(|changes| !changes.is_empty());
        Provenance {
            date: crate::report::today(),
            machine: machine(),
            commit,
            dirty,
            load_before: crate::report::load_average(),
            profile: crate::report::profile().into(),
        }
    }

    /// "on 2026-12-01 (UTC), at commit abc1234, on AMD EPYC (2 cores), ...".
    pub fn phrase(&self) -> String {
        let mut text = format!("on {} (UTC)", self.date);
        match &self.commit {
            Some(commit) if self.dirty => {
                text.push_str(&format!(
                    ", at commit {commit} with changes not yet committed"
                ));
            }
            Some(commit) => text.push_str(&format!(", at commit {commit}")),
            None => {}
        }
        if !self.machine.is_empty() {
            text.push_str(&format!(", on {}", self.machine));
        }
        if !self.load_before.is_empty() {
            text.push_str(&format!(
                " (load average before the run {})",
                self.load_before
            ));
        }
        if self.profile.starts_with("debug") {
            text.push_str(", with debug builds, whose figures mean little");
        }
        text
    }

    /// A sentence naming the programs among `programs` whose sources have
    /// changed since this run, or an empty string when none has (or git
    /// cannot tell). Their figures then describe them as they were.
    pub fn changed_since(&self, programs: &[&Program], command: &str) -> String {
        match self.changed(programs) {
            Some(names) => format!(
                "Since that run the sources of {names} have changed: their figures here \
                 describe them as they were then, and `{command}` measures them as they are now."
            ),
            None => String::new(),
        }
    }

    /// The programs among `programs` whose sources have changed since this
    /// run, as a list in words, if any has.
    pub fn changed(&self, programs: &[&Program]) -> Option<String> {
        let changed: Vec<(&str, String)> = programs
            .iter()
            .filter_map(|p| self.change(p).map(|when| (p.name, when)))
            .collect();
        let first = changed.first()?.1.clone();
        // One date for all of them is said once.
        let names: Vec<String> = if changed.iter().all(|(_, when)| *when == first) {
            let mut names: Vec<String> = changed.iter().map(|(n, _)| n.to_string()).collect();
            if let Some(last) = names.last_mut() {
                last.push_str(&first);
            }
            names
        } else {
            changed
                .iter()
                .map(|(n, when)| format!("{n}{when}"))
                .collect()
        };
        Some(list(&names))
    }

    /// How `program` changed since this run: `Some("")` when it differs from
    /// the recorded commit, `Some(" (last on DATE)")` when a run with no
    /// commit recorded is older than its last change; `None` otherwise.
    fn change(&self, program: &Program) -> Option<String> {
        if let Some(commit) = &self.commit {
            let mut args = vec!["diff", "--quiet", commit.as_str(), "--"];
            args.extend(program.paths);
            return git_status(&args)
                .filter(|same| !same)
                .map(|_| String::new());
        }
        let mut args = vec!["log", "-1", "--format=%cs", "--"];
        args.extend(program.paths);
        let last = git(&args)?;
        (!last.is_empty() && last.as_str() > self.date.as_str())
            .then(|| format!(" (last on {last})"))
    }
}

/// The figures of a run that recorded only its date.
pub fn from_date(date: &str) -> Provenance {
    Provenance {
        date: date.to_string(),
        ..Provenance::default()
    }
}

/// `a`, `a and b`, `a, b and c`.
pub fn list(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .and_then(|rest| rest.split_once(':'))
        .map(|(_, name)| name.trim().to_string())
        .unwrap_or_else(|| "an unknown processor".into());
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let memory_kb: f64 = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0.0);
    let os = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|k| format!("Linux {}", k.trim()))
        .unwrap_or_else(|_| std::env::consts::OS.to_string());
    format!(
        "{cpu} ({cores} cores), {:.1} GiB of memory, {os}",
        memory_kb / 1024.0 / 1024.0
    )
}

fn git_command(args: &[&str]) -> Command {
    let mut command = Command::new("git");
    command
        .arg("-C")
        .arg(procs::workspace_dir())
        .args(args)
        .stdin(Stdio::null())
        .stderr(Stdio::null());
    command
}

/// What `git args` printed, trimmed, if it ran and succeeded.
fn git(args: &[&str]) -> Option<String> {
    let output = git_command(args).output().ok()?;
    output
        .status
        .success()
        .then(|| String::from_utf8_lossy(&output.stdout).trim().to_string())
}

/// Whether `git args` succeeded (`git diff --quiet`: no difference), if it
/// could run at all (status 0 or 1).
fn git_status(args: &[&str]) -> Option<bool> {
    let status = git_command(args).stdout(Stdio::null()).status().ok()?;
    match status.code() {
        Some(0) => Some(true),
        Some(1) => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_read_as_english() {
        let names = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(list(&names(&["a"])), "a");
        assert_eq!(list(&names(&["a", "b"])), "a and b");
        assert_eq!(list(&names(&["a", "b", "c"])), "a, b and c");
    }

    /// A run dated before a program's last change names it; a run dated
    /// after, or at the commit the sources are at, does not.
    #[test]
    fn names_what_changed_since_a_run() {
        let lesson03 = Program {
            name: "lesson 03",
            paths: &["lessons/lesson03-connection-loop/server"],
        };
        let program = [&lesson03];
        let here = procs::workspace_dir().join(program[0].paths[0]).exists();
        if git(&["rev-parse", "HEAD"]).is_none() || !here {
            return; // not a git checkout: nothing to compare with
        }
        let old = from_date("2000-01-01").changed_since(&program, "loadgen x");
        assert!(old.contains("lesson 03 (last on "), "{old}");
        let future = from_date("9999-12-31").changed_since(&program, "loadgen x");
        assert_eq!(future, "");
        let now = Provenance {
            commit: git(&["rev-parse", "--short", "HEAD"]),
            ..from_date("2000-01-01")
        };
        let dirty = git_status(&["diff", "--quiet", "HEAD", "--", program[0].paths[0]]);
        if dirty == Some(true) {
            assert_eq!(now.changed_since(&program, "loadgen x"), "");
        }
    }
}
