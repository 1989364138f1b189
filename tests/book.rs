//! The book check: the book shows code only through `{{#include}}` of anchored
//! regions of the real lesson sources, and mdBook does not fail on a broken
//! include (a missing anchor renders as an empty block). So this test does:
//!
//! - every chapter listed in `SUMMARY.md` exists, and every chapter file is listed;
//! - every include names an existing file and an anchor that file defines;
//! - no include takes a whole file that contains anchors (the markers would show);
//! - every anchor of every lesson source (and of the helper crate) is shown
//!   somewhere, and every line of lesson code lies inside an anchor: no lesson
//!   source region is left unexplained;
//! - the README gives the test command, and the book's tools are pinned in one
//!   script that both the README and CI use.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail, ensure};
use course_tests::workspace_dir;

/// One `{{#include path:anchor}}` found in a chapter.
#[derive(Debug)]
struct Include {
    chapter: PathBuf,
    file: PathBuf,
    anchor: Option<String>,
}

fn book_src() -> PathBuf {
    workspace_dir().join("book").join("src")
}

/// The chapter files `SUMMARY.md` links to, in order.
fn summary_chapters() -> Result<Vec<PathBuf>> {
    let summary =
        fs::read_to_string(book_src().join("SUMMARY.md")).context("reading SUMMARY.md")?;
    let mut chapters = Vec::new();
    for line in summary.lines() {
        if let Some(start) = line.find("](") {
            let rest = &line[start + 2..];
            let end = rest.find(')').context("unclosed link in SUMMARY.md")?;
            chapters.push(book_src().join(&rest[..end]));
        }
    }
    Ok(chapters)
}

/// Every `.md` file under `book/src` except `SUMMARY.md`.
fn chapter_files() -> Result<BTreeSet<PathBuf>> {
    let mut files = BTreeSet::new();
    for entry in fs::read_dir(book_src())? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "md") && !path.ends_with("SUMMARY.md") {
            files.insert(path);
        }
    }
    Ok(files)
}

/// Every `{{#include ...}}` in every chapter.
fn includes() -> Result<Vec<Include>> {
    let mut found = Vec::new();
    for chapter in chapter_files()? {
        let text = fs::read_to_string(&chapter)?;
        for (at, _) in text.match_indices("{{#") {
            let rest = &text[at + 3..];
            let end = rest.find("}}").context("unclosed {{# in a chapter")?;
            let directive = rest[..end].trim();
            let Some(arg) = directive
                .strip_prefix("include ")
                .or_else(|| directive.strip_prefix("rustdoc_include "))
            else {
                bail!(
                    "{}: unknown directive {{{{#{directive}}}}}",
                    chapter.display()
                );
            };
            let arg = arg.trim();
            let (path, anchor) = match arg.split_once(':') {
                Some((path, anchor)) => (path, Some(anchor.to_string())),
                None => (arg, None),
            };
            let file = chapter
                .parent()
                .context("chapter has no folder")?
                .join(path);
            found.push(Include {
                chapter: chapter.clone(),
                file,
                anchor,
            });
        }
    }
    Ok(found)
}

/// The anchors a source file defines, each checked to open and close once,
/// in order.
fn anchors_in(file: &Path) -> Result<BTreeMap<String, (usize, usize)>> {
    let text = fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    let mut open: BTreeMap<String, usize> = BTreeMap::new();
    let mut done = BTreeMap::new();
    for (number, line) in text.lines().enumerate() {
        let line = line.trim();
        if let Some(name) = line.strip_prefix("// ANCHOR: ") {
            ensure!(
                open.insert(name.to_string(), number).is_none() && !done.contains_key(name),
                "{}: anchor {name} opened twice",
                file.display()
            );
        } else if let Some(name) = line.strip_prefix("// ANCHOR_END: ") {
            let start = open
                .remove(name)
                .with_context(|| format!("{}: ANCHOR_END {name} without ANCHOR", file.display()))?;
            ensure!(
                number > start + 1,
                "{}: anchor {name} is empty",
                file.display()
            );
            done.insert(name.to_string(), (start, number));
        }
    }
    ensure!(
        open.is_empty(),
        "{}: anchors never closed: {open:?}",
        file.display()
    );
    Ok(done)
}

/// The lesson sources: every `.rs` file under `lessons/*/*/src/`.
fn lesson_sources() -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for lesson in fs::read_dir(workspace_dir().join("lessons"))? {
        let lesson = lesson?.path();
        if !lesson.is_dir() {
            continue;
        }
        for side in fs::read_dir(&lesson)? {
            let src = side?.path().join("src");
            if !src.is_dir() {
                continue;
            }
            for file in fs::read_dir(&src)? {
                let file = file?.path();
                if file.extension().is_some_and(|e| e == "rs") {
                    files.push(file);
                }
            }
        }
    }
    files.sort();
    ensure!(!files.is_empty(), "no lesson sources found");
    Ok(files)
}

fn canonical(path: &Path) -> Result<PathBuf> {
    path.canonicalize()
        .with_context(|| format!("{} does not exist", path.display()))
}

#[test]
fn every_chapter_in_the_summary_exists() -> Result<()> {
    let chapters = summary_chapters()?;
    ensure!(
        chapters.len() >= 2,
        "SUMMARY.md lists too few chapters: {chapters:?}"
    );
    for chapter in &chapters {
        ensure!(
            chapter.is_file(),
            "SUMMARY.md lists {} but it does not exist",
            chapter.display()
        );
        let text = fs::read_to_string(chapter)?;
        ensure!(
            text.trim().len() > 200,
            "{} is (nearly) empty",
            chapter.display()
        );
    }
    Ok(())
}

#[test]
fn every_chapter_file_is_in_the_summary() -> Result<()> {
    let listed: BTreeSet<PathBuf> = summary_chapters()?.into_iter().collect();
    for file in chapter_files()? {
        ensure!(
            listed.contains(&file),
            "{} is missing from SUMMARY.md",
            file.display()
        );
    }
    Ok(())
}

#[test]
fn every_include_names_an_existing_file_and_anchor() -> Result<()> {
    let found = includes()?;
    ensure!(!found.is_empty(), "the book includes no code at all");
    for include in &found {
        let place = format!(
            "{} includes {}",
            include.chapter.display(),
            include.file.display()
        );
        ensure!(include.file.is_file(), "{place}, which does not exist");
        let anchors = anchors_in(&include.file)?;
        match &include.anchor {
            Some(anchor) => {
                ensure!(
                    anchor.parse::<usize>().is_err() && !anchor.contains(':'),
                    "{place}:{anchor}: include by anchor name, not by line numbers"
                );
                ensure!(
                    anchors.contains_key(anchor),
                    "{place}:{anchor}, an anchor that file does not define (it has {:?})",
                    anchors.keys().collect::<Vec<_>>()
                );
            }
            None => ensure!(
                anchors.is_empty(),
                "{place} whole, but that file has anchors whose markers would show"
            ),
        }
    }
    Ok(())
}

#[test]
fn every_anchor_is_shown_in_the_book() -> Result<()> {
    let mut shown = BTreeSet::new();
    for include in includes()? {
        if let (Ok(file), Some(anchor)) = (canonical(&include.file), include.anchor) {
            shown.insert((file, anchor));
        }
    }
    let mut sources = lesson_sources()?;
    sources.push(workspace_dir().join("shared/src/lib.rs"));
    let mut missing = Vec::new();
    for source in sources {
        let file = canonical(&source)?;
        for anchor in anchors_in(&source)?.into_keys() {
            if !shown.contains(&(file.clone(), anchor.clone())) {
                missing.push(format!("{}:{anchor}", source.display()));
            }
        }
    }
    ensure!(missing.is_empty(), "anchors no chapter shows: {missing:#?}");
    Ok(())
}

#[test]
fn every_lesson_chapter_has_a_diagram_and_the_python_side_by_side() -> Result<()> {
    for chapter in summary_chapters()? {
        let name = chapter
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if !name.starts_with("lesson") {
            continue;
        }
        let text = fs::read_to_string(&chapter)?;
        ensure!(
            text.contains("```mermaid\nsequenceDiagram"),
            "{name} has no sequence diagram"
        );
        // The Python twin of the chapter's server: `python/server.py`,
        // `python/echo_server.py` for a step that has a server of its own,
        // or `python/proxy.py` for lesson 13, whose server is a proxy.
        ensure!(
            text.lines().any(|line| line.starts_with("{{#include ")
                && line.contains("/python/")
                && (line.ends_with("server.py}}") || line.ends_with("proxy.py}}"))),
            "{name} does not show its Python server twin"
        );
        ensure!(
            text.contains("<details>"),
            "{name} has no folded exercise solution"
        );
    }
    Ok(())
}

#[test]
fn every_checked_output_and_python_twin_is_shown() -> Result<()> {
    // Whole-file includes: book/output/*.txt (real runs, see
    // tests/src/transcript.rs) and each lesson's Python twin.
    let shown: BTreeSet<PathBuf> = includes()?
        .into_iter()
        .filter(|include| include.anchor.is_none())
        .filter_map(|include| canonical(&include.file).ok())
        .collect();
    let mut files = Vec::new();
    let outputs = course_tests::transcript::output_dir();
    if outputs.is_dir() {
        for entry in fs::read_dir(&outputs)? {
            files.push(entry?.path());
        }
    }
    for lesson in fs::read_dir(workspace_dir().join("lessons"))? {
        let python = lesson?.path().join("python");
        if python.is_dir() {
            for entry in fs::read_dir(&python)? {
                let path = entry?.path();
                if path.extension().is_some_and(|e| e == "py") {
                    files.push(path);
                }
            }
        }
    }
    let mut missing = Vec::new();
    for file in files {
        if !shown.contains(&canonical(&file)?) {
            missing.push(file.display().to_string());
        }
    }
    ensure!(
        missing.is_empty(),
        "files no chapter includes: {missing:#?}"
    );
    Ok(())
}

#[test]
fn every_line_of_lesson_code_is_inside_an_anchor() -> Result<()> {
    let mut unexplained = Vec::new();
    for source in lesson_sources()? {
        let text = fs::read_to_string(&source)?;
        let regions: Vec<(usize, usize)> = anchors_in(&source)?.into_values().collect();
        for (number, line) in text.lines().enumerate() {
            let code = line.trim();
            // Blank lines, comments and lone closing braces need no region.
            if code.is_empty() || code.starts_with("//") || code.chars().all(|c| "})];".contains(c))
            {
                continue;
            }
            if !regions
                .iter()
                .any(|&(start, end)| start < number && number < end)
            {
                unexplained.push(format!("{}:{}: {code}", source.display(), number + 1));
            }
        }
    }
    ensure!(
        unexplained.is_empty(),
        "lesson code outside every anchor: {unexplained:#?}"
    );
    Ok(())
}

#[test]
fn code_blocks_from_sources_are_not_run_as_doctests() -> Result<()> {
    // Included regions are fragments of programs (and servers never end), so
    // every Rust block must be marked `ignore`, the way the book is tested.
    for chapter in chapter_files()? {
        let text = fs::read_to_string(&chapter)?;
        for line in text.lines() {
            let Some(info) = line.trim().strip_prefix("```rust") else {
                continue;
            };
            ensure!(
                info.split(',').any(|word| word == "ignore"),
                "{}: a ```rust block without `ignore`: {line}",
                chapter.display()
            );
        }
    }
    Ok(())
}

#[test]
fn book_tools_are_pinned_in_one_place_that_readme_and_ci_use() -> Result<()> {
    let readme = fs::read_to_string(workspace_dir().join("README.md"))?;
    ensure!(
        readme.contains("cargo test --workspace"),
        "README lacks the test command"
    );
    ensure!(
        readme.contains("bash book/install-tools.sh"),
        "README must point at book/install-tools.sh"
    );
    ensure!(
        !readme.contains("--version 0."),
        "README pins a version itself; pin it in install-tools.sh only"
    );
    let ci = fs::read_to_string(workspace_dir().join(".ci/run"))?;
    ensure!(
        ci.contains("bash book/install-tools.sh"),
        ".ci/run must install the book tools with the script"
    );
    ensure!(
        ci.contains("cargo test --workspace"),
        ".ci/run must run the README's test command"
    );
    let script = fs::read_to_string(workspace_dir().join("book/install-tools.sh"))?;
    for pin in ["MDBOOK_VERSION=", "MDBOOK_MERMAID_VERSION="] {
        ensure!(
            script.matches(pin).count() == 1,
            "install-tools.sh must set {pin} once"
        );
    }
    Ok(())
}
