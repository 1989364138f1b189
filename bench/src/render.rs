//! Tables (Markdown) and plots (SVG) drawn from a results file.
//!
//! `write_all` writes the files the book includes from `book/src/perf/`:
//! `machine.md`, `echo.md`, `cost.md`, `sessions.md`, `fanout.md`,
//! `targets.md`, the sentences `notes-*.md` (see [`crate::notes`]), and
//! the plots `throughput.svg`, `waiting.svg` and `fanout.svg`, each also
//! drawn narrow for phones (`throughput-narrow.svg`, ...; see [`Canvas`]).

use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Context, anyhow};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::echo::RunStats;
use crate::fanout::FanoutStats;
use crate::provenance::Program;
use crate::results::{Entry, Log, Results};

/// `1234567.8` → `1,234,568`.
pub fn thousands(value: f64) -> String {
    let digits = format!("{:.0}", value.max(0.0));
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Microseconds as a readable time: `87 µs`, `1.52 ms`, `7.10 s`.
pub fn micros(us: Option<u64>) -> String {
    match us {
        None => "–".into(),
        Some(us) if us < 1000 => format!("{us} µs"),
        Some(us) if us < 1_000_000 => format!("{:.2} ms", us as f64 / 1e3),
        Some(us) => format!("{:.2} s", us as f64 / 1e6),
    }
}

fn millis(ms: Option<f64>) -> String {
    micros(ms.map(|ms| (ms * 1000.0).round() as u64))
}

/// Resident memory in MB (10^6 bytes).
pub fn rss(kb: Option<u64>) -> String {
    kb.map_or("–".into(), |kb| {
        format!("{:.1} MB", kb as f64 * 1024.0 / 1e6)
    })
}

fn count(n: Option<u64>) -> String {
    n.map_or("–".into(), |n| n.to_string())
}

/// One run, for `loadgen run`.
pub fn run_summary(s: &RunStats) -> String {
    let lat = s.latency;
    let mut text = format!(
        "{} msgs/s, {:.2} MB/s; latency p50 {}, p99 {}, max {}; {} of {} clients served",
        thousands(s.msgs_per_s),
        s.mb_per_s,
        micros(lat.map(|l| l.p50_us)),
        micros(lat.map(|l| l.p99_us)),
        micros(lat.map(|l| l.max_us)),
        s.served,
        s.clients,
    );
    if s.never_connected > 0 {
        let _ = write!(text, "; {} never got a connection", s.never_connected);
    }
    if s.waiting > 0 {
        let _ = write!(text, "; {} still waiting for a reply at the end", s.waiting);
    }
    if s.lost + s.late > 0 {
        let _ = write!(text, "; {} datagrams lost, {} late", s.lost, s.late);
    }
    if let (Some(first), Some(last)) = (
        s.first_reply_ms.first().copied().flatten(),
        s.first_reply_ms.iter().rev().find_map(|t| *t),
    ) {
        let _ = write!(
            text,
            "; first replies after {} to {}",
            millis(Some(first)),
            millis(Some(last))
        );
    }
    if let (Some(user), Some(system)) = (s.server_user_s, s.server_system_s) {
        let per = |cpu: f64| cpu * 1e6 / s.messages.max(1) as f64;
        let _ = write!(
            text,
            "; server CPU per message {:.1} µs in the program + {:.1} µs in the kernel",
            per(user),
            per(system)
        );
    }
    if let Some(cpu) = s.loadgen_cpu_s {
        let _ = write!(
            text,
            "; loadgen used {:.2} cores",
            cpu / s.seconds.max(1e-9)
        );
    }
    if let Some(rss_kb) = s.server_rss_kb {
        let _ = write!(
            text,
            "; server {} resident, {} threads",
            rss(Some(rss_kb)),
            count(s.server_threads)
        );
    }
    if s.wrong > 0 || s.broken > 0 {
        let _ = write!(
            text,
            "\nERRORS: {} wrong replies, {} broken connections; first: {}",
            s.wrong,
            s.broken,
            s.first_error.as_deref().unwrap_or("?")
        );
    }
    text
}

/// One fan-out run, for `loadgen fanout`.
pub fn fanout_summary(s: &FanoutStats) -> String {
    let lat = s.latency;
    format!(
        "{} clients joined in {:.0} ms; {} lines to {} receivers: {} deliveries, {} missing; latency p50 {}, p99 {}, max {}; server {} resident, {} threads",
        s.clients,
        s.join_ms,
        s.messages,
        s.clients.saturating_sub(1),
        s.deliveries,
        s.missing,
        micros(lat.map(|l| l.p50_us)),
        micros(lat.map(|l| l.p99_us)),
        micros(lat.map(|l| l.max_us)),
        rss(s.server_rss_kb),
        count(s.server_threads),
    )
}

/// The machine and the method, as a list.
pub fn machine_list(r: &Results) -> String {
    let m = &r.machine;
    let s = &r.settings;
    let mut text = String::new();
    let _ = writeln!(
        text,
        "- **Machine:** {} ({} cores), {} GiB of memory, {}",
        m.cpu, m.cores, m.memory_gib, m.os
    );
    let _ = writeln!(
        text,
        "- **Software:** {}, {}; loadgen and the lesson servers are {}s",
        m.rustc,
        m.python.as_deref().unwrap_or("no Python"),
        m.profile
    );
    let _ = write!(
        text,
        "- **Run on:** {} (UTC){}; load average (1, 5, 15 minutes) before the run {}",
        m.date,
        match &m.commit {
            Some(c) if m.dirty => format!(", at commit {c} with changes not yet committed"),
            Some(c) => format!(", at commit {c}"),
            None => ", at a commit not recorded".to_string(),
        },
        m.load_before
    );
    if !m.load_after.is_empty() {
        let _ = write!(text, ", after it {}", m.load_after);
    }
    if let Some(took) = r.took_s {
        let _ = write!(text, "; the run took {:.0} minutes", took / 60.0);
    }
    text.push('\n');
    let programs: Vec<&Program> = crate::report::PROGRAMS.iter().collect();
    if let Some(names) = m.provenance().changed(&programs) {
        let _ = writeln!(
            text,
            "- **Changed since that run:** the sources of {names}. Their figures describe them as they were then; `cargo run --release -p loadgen -- report` measures them as they are now"
        );
    }
    let _ = writeln!(
        text,
        "- **Echo load:** {} clients, {}-byte messages; per server a {} s warm-up, then {} runs of {} s; the median run's figures",
        s.clients, s.size, s.warmup_s, s.runs, s.duration_s
    );
    let _ = writeln!(
        text,
        "- **Sessions:** {} clients start at once, each sends {} messages and hangs up; at most {} s; {} runs",
        s.clients, s.session_messages, s.session_deadline_s, s.runs
    );
    let _ = writeln!(
        text,
        "- **Chat fan-out:** rooms of {} clients, {} lines from one sender, {} runs each on a fresh server",
        s.fanout_clients
            .iter()
            .map(usize::to_string)
            .collect::<Vec<_>>()
            .join(", "),
        s.fanout_messages,
        s.fanout_runs
    );
    if s.smoke {
        text.push_str("- **Smoke setting:** far too short to mean anything; run `cargo run --release -p loadgen -- report` for real figures\n");
    }
    text
}

/// The TCP and UDP echo tables.
pub fn echo_table(entries: &[Entry], r: &Results) -> String {
    let tokio = r
        .echo_entry("tokio")
        .map(|s| s.msgs_per_s)
        .filter(|&v| v > 0.0);
    let mut text = String::from(
        "| server | log | messages/s | MB/s | vs tokio | latency p50 / p99 / max | clients served |\n\
         | --- | --- | ---: | ---: | ---: | ---: | ---: |\n",
    );
    for e in entries {
        let Some(s) = &e.summary else {
            let _ = writeln!(
                text,
                "| {} | {} | not measured: {} | | | | |",
                e.label,
                e.log().short(),
                e.missing.as_deref().unwrap_or("?")
            );
            continue;
        };
        let latency = if s.p50_us.is_some() {
            format!(
                "{} / {} / {}",
                micros(s.p50_us),
                micros(s.p99_us),
                micros(s.max_us)
            )
        } else {
            "–".into()
        };
        let ratio = tokio.map_or("–".into(), |t| format!("{:.2}×", s.msgs_per_s / t));
        let served = if e.kind == "ceiling" {
            "–".to_string()
        } else {
            format!("{} of {}", s.served, s.clients)
        };
        let _ = writeln!(
            text,
            "| {} | {} | {} | {:.2} | {} | {} | {} |",
            e.label,
            e.log().short(),
            thousands(s.msgs_per_s),
            s.mb_per_s,
            ratio,
            latency,
            served,
        );
    }
    let problems = problems(entries);
    if !problems.is_empty() {
        text.push('\n');
        text.push_str(&problems);
    }
    text
}

/// Lesson 13's proxy: each path through it beside the same path straight,
/// and what the hop costs.
pub fn hop_table(r: &Results) -> String {
    if r.hop.is_empty() {
        return "Not measured: these results come from a run before the hop scenario \
                existed. `cargo run --release -p loadgen -- report` measures it.\n"
            .to_string();
    }
    let mut text = String::from(
        "| path | messages/s | MB/s | vs straight | latency p50 / p99 / max |\n\
         | --- | ---: | ---: | ---: | ---: |\n",
    );
    let straight = |key: &str| {
        let base = key.strip_suffix("-proxy").unwrap_or(key);
        r.hop
            .iter()
            .find(|e| e.key == base)
            .and_then(|e| e.summary.as_ref())
            .map(|s| s.msgs_per_s)
            .filter(|&v| v > 0.0)
    };
    for e in &r.hop {
        let Some(s) = &e.summary else {
            let _ = writeln!(
                text,
                "| {} | not measured: {} | | | |",
                e.label,
                e.missing.as_deref().unwrap_or("?")
            );
            continue;
        };
        let latency = if s.p50_us.is_some() {
            format!(
                "{} / {} / {}",
                micros(s.p50_us),
                micros(s.p99_us),
                micros(s.max_us)
            )
        } else {
            "–".into()
        };
        let ratio = straight(&e.key).map_or("–".into(), |t| format!("{:.2}×", s.msgs_per_s / t));
        let _ = writeln!(
            text,
            "| {} | {} | {:.2} | {} | {} |",
            e.label,
            thousands(s.msgs_per_s),
            s.mb_per_s,
            ratio,
            latency,
        );
    }
    let problems = problems(&r.hop);
    if !problems.is_empty() {
        text.push('\n');
        text.push_str(&problems);
    }
    text
}

/// Lesson 07's framed echo beside the thread-per-connection echo servers of
/// the same run (lesson 06's first step, the baseline, Python's
/// ThreadingTCPServer), which answer the same payloads without a length.
pub fn framed_table(r: &Results) -> String {
    let mut entries: Vec<Entry> = r.framed.clone();
    for key in ["lesson06-echo", "threads", "py-threading"] {
        if let Some(e) = r.echo.iter().find(|e| e.key == key) {
            let mut e = e.clone();
            e.label = format!("{} (no length)", e.label);
            entries.push(e);
        }
    }
    echo_table(&entries, r)
}

/// Lesson 09's web server beside hyper and Python's http.server: requests
/// per second, each over a new connection.
pub fn web_table(r: &Results) -> String {
    let hyper = r
        .web
        .iter()
        .find(|e| e.key == "hyper")
        .and_then(|e| e.summary.as_ref())
        .map(|s| s.msgs_per_s)
        .filter(|&v| v > 0.0);
    let mut text = String::from(
        "| server | log | requests/s | vs hyper | latency p50 / p99 / max | clients served |\n\
         | --- | --- | ---: | ---: | ---: | ---: |\n",
    );
    for e in &r.web {
        let log = e.log().short();
        let Some(s) = &e.summary else {
            let why = e.missing.as_deref().unwrap_or("?");
            let _ = writeln!(text, "| {} | {log} | not measured: {why} | | | |", e.label);
            continue;
        };
        let ratio = hyper.map_or("–".into(), |h| format!("{:.2}×", s.msgs_per_s / h));
        let _ = writeln!(
            text,
            "| {} | {log} | {} | {} | {} / {} / {} | {} of {} |",
            e.label,
            thousands(s.msgs_per_s),
            ratio,
            micros(s.p50_us),
            micros(s.p99_us),
            micros(s.max_us),
            s.served,
            s.clients,
        );
    }
    let problems = problems(&r.web);
    if !problems.is_empty() {
        text.push('\n');
        text.push_str(&problems);
    }
    text
}

/// What each server spent: CPU per message (in the program and in the
/// kernel), cores used by the server and by the load generator, memory and
/// threads.
pub fn cost_table(entries: &[Entry]) -> String {
    let mut text = String::from(
        "| server | log | server CPU per message: program + kernel | cores used: server + loadgen | server memory | threads |\n\
         | --- | --- | ---: | ---: | ---: | ---: |\n",
    );
    for e in entries {
        let Some(s) = &e.summary else { continue };
        let cpu = match (s.server_user_us_per_msg, s.server_system_us_per_msg) {
            (Some(user), Some(system)) => format!("{user:.1} + {system:.1} µs"),
            _ => "–".into(),
        };
        let used = match (s.server_cores, s.loadgen_cores) {
            (Some(server), Some(me)) => format!("{server:.2} + {me:.2}"),
            (None, Some(me)) => format!("{me:.2} (one process)"),
            _ => "–".into(),
        };
        let _ = writeln!(
            text,
            "| {} | {} | {} | {} | {} | {} |",
            e.label,
            e.log().short(),
            cpu,
            used,
            rss(s.server_rss_kb),
            count(s.server_threads),
        );
    }
    text
}

/// Lines about wrong replies, broken connections and lost datagrams.
fn problems(entries: &[Entry]) -> String {
    let mut text = String::new();
    for e in entries {
        let Some(s) = &e.summary else { continue };
        if s.wrong > 0 || s.broken > 0 {
            let _ = writeln!(
                text,
                "- {}: {} wrong replies, {} broken connections over all runs (first: {})",
                e.label,
                s.wrong,
                s.broken,
                s.first_error.as_deref().unwrap_or("?")
            );
        }
        if s.lost > 0 {
            let _ = writeln!(
                text,
                "- {}: {} datagrams lost (median run)",
                e.label, s.lost
            );
        }
    }
    text
}

pub fn sessions_table(r: &Results) -> String {
    let mut text = String::from(
        "| server | first reply: median client | last client | all clients done | served |\n\
         | --- | ---: | ---: | ---: | ---: |\n",
    );
    for e in &r.sessions {
        let Some(s) = &e.summary else {
            let _ = writeln!(
                text,
                "| {} | not measured: {} | | | |",
                e.label,
                e.missing.as_deref().unwrap_or("?")
            );
            continue;
        };
        let done = match s.all_done_ms {
            Some(ms) => millis(Some(ms)),
            None => format!("not within {} s", r.settings.session_deadline_s),
        };
        let _ = writeln!(
            text,
            "| {} | {} | {} | {} | {} of {} |",
            e.label,
            millis(s.first_reply_median_ms),
            millis(s.first_reply_last_ms),
            done,
            s.served,
            s.clients,
        );
    }
    let problems = problems(&r.sessions);
    if !problems.is_empty() {
        text.push('\n');
        text.push_str(&problems);
    }
    text
}

pub fn fanout_table(r: &Results) -> String {
    let mut text = String::from(
        "| room | delivery p50 / p99 / max | all joined after | missing | server memory | threads |\n\
         | --- | ---: | ---: | ---: | ---: | ---: |\n",
    );
    for f in &r.fanout {
        let Some(s) = &f.summary else {
            let _ = writeln!(
                text,
                "| {} clients | not measured: {} | | | | |",
                f.clients,
                f.missing.as_deref().unwrap_or("?")
            );
            continue;
        };
        let _ = writeln!(
            text,
            "| {} clients | {} / {} / {} | {} | {} | {} | {} |",
            f.clients,
            micros(s.p50_us),
            micros(s.p99_us),
            micros(s.max_us),
            millis(Some(s.join_ms)),
            s.missing,
            rss(s.server_rss_kb),
            count(s.server_threads),
        );
    }
    text
}

pub fn targets_table(r: &Results) -> String {
    let mut text = String::from("| target | wanted | measured | |\n| --- | --- | --- | --- |\n");
    for t in &r.targets {
        let verdict = match t.met {
            Some(true) => "met",
            Some(false) => "**missed**",
            None => "not run",
        };
        let _ = writeln!(
            text,
            "| {} | {} | {} | {} |",
            t.target, t.wanted, t.measured, verdict
        );
    }
    if let Some(b) = &r.build {
        let _ = writeln!(text, "\nBuild timed with `{}`.", b.command);
    }
    text
}

/// Writes every table and plot into `dir`.
pub fn write_all(r: &Results, dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let note = "<!-- generated by `cargo run --release -p loadgen -- report`; do not edit -->\n\n";
    let write = |name: &str, body: String| -> anyhow::Result<()> {
        let path = dir.join(name);
        std::fs::write(&path, format!("{note}{body}"))
            .with_context(|| format!("writing {}", path.display()))
    };
    write("machine.md", machine_list(r))?;
    let mut echo = echo_table(&r.echo, r);
    if !r.udp.is_empty() {
        echo.push_str("\nUDP, the same load (one datagram per message):\n\n");
        echo.push_str(&echo_table(&r.udp, r));
    }
    write("echo.md", echo)?;
    write("framed.md", framed_table(r))?;
    write("web.md", web_table(r))?;
    write("hop.md", hop_table(r))?;
    let all: Vec<Entry> = r
        .echo
        .iter()
        .chain(&r.udp)
        .chain(&r.framed)
        .cloned()
        .collect();
    write("cost.md", cost_table(&all))?;
    write("sessions.md", sessions_table(r))?;
    write("fanout.md", fanout_table(r))?;
    write("targets.md", targets_table(r))?;
    for (name, text) in crate::notes::all(r) {
        write(name, text)?;
    }
    Canvas::draw_both(dir, "throughput", |c, path| throughput_plot(r, c, path))?;
    Canvas::draw_both(dir, "waiting", |c, path| waiting_plot(r, c, path))?;
    Canvas::draw_both(dir, "fanout", |c, path| fanout_plot(r, c, path))?;
    Ok(())
}

/// The size of label text in every plot, in plotters' points; the SVG
/// writes a font of N points as N / 1.24 px, so 16 is 12.9 px.
pub const LABEL: u32 = 16;
/// The size of a plot's title.
pub const TITLE: u32 = 20;

/// Which of a plot's two drawings is being drawn. Text 12.9 px high in a
/// plot 820 px wide shrinks to 5.7 px in a phone's column (about 360 px), so
/// every plot is drawn twice: `NAME.svg` for a laptop's column, and
/// `NAME-narrow.svg`, 380 px wide with the same text sizes, that the
/// chapter shows (with `<picture>`) in windows up to 760 px wide. Either way
/// the labels are at least 11 px as the reader sees them.
#[derive(Clone, Copy, Debug)]
pub struct Canvas {
    pub width: u32,
    pub narrow: bool,
}

impl Canvas {
    pub const WIDE: Canvas = Canvas {
        width: 820,
        narrow: false,
    };
    pub const NARROW: Canvas = Canvas {
        width: 380,
        narrow: true,
    };

    /// Draws a plot both ways: `dir/NAME.svg` and `dir/NAME-narrow.svg`.
    pub fn draw_both(
        dir: &Path,
        name: &str,
        mut draw: impl FnMut(Canvas, &Path) -> anyhow::Result<()>,
    ) -> anyhow::Result<()> {
        draw(Canvas::WIDE, &dir.join(format!("{name}.svg")))?;
        draw(Canvas::NARROW, &dir.join(format!("{name}-narrow.svg")))
    }

    /// About how many characters of text `size` points high fit across the
    /// plot (an average character of a sans-serif font is about half as
    /// wide as the font is high).
    fn chars(self, size: u32) -> usize {
        let px = f64::from(size) / 1.24;
        ((f64::from(self.width) - 28.0) / (px * 0.52)) as usize
    }

    /// A title in as many lines as the width needs, split after a colon if
    /// that is enough, else between words.
    pub fn title_lines(self, title: &str) -> Vec<String> {
        let fit = self.chars(TITLE);
        if title.chars().count() <= fit {
            return vec![title.to_string()];
        }
        if let Some((head, tail)) = title.split_once(": ")
            && head.chars().count() < fit
            && tail.chars().count() <= fit
        {
            return vec![format!("{head}:"), tail.to_string()];
        }
        let mut lines: Vec<String> = vec![];
        for word in title.split(' ') {
            match lines.last_mut() {
                Some(line) if line.chars().count() + 1 + word.chars().count() <= fit => {
                    line.push(' ');
                    line.push_str(word);
                }
                _ => lines.push(word.to_string()),
            }
        }
        lines
    }
}

/// Draws `title` centred at the top of `root`, and returns the area under it.
pub fn titled<'a>(
    root: &DrawingArea<SVGBackend<'a>, Shift>,
    canvas: Canvas,
    title: &str,
) -> anyhow::Result<DrawingArea<SVGBackend<'a>, Shift>> {
    let lines = canvas.title_lines(title);
    let style = ("sans-serif", TITLE)
        .into_font()
        .into_text_style(root)
        .pos(Pos::new(HPos::Center, VPos::Top));
    let line_height = 22;
    for (i, line) in lines.iter().enumerate() {
        root.draw(&Text::new(
            line.clone(),
            (canvas.width as i32 / 2, 12 + line_height * i as i32),
            style.clone(),
        ))
        .map_err(plot_err)?;
    }
    let used = 12 + line_height as u32 * lines.len() as u32 + 6;
    Ok(root.split_vertically(used).1)
}

/// How tall [`legend_rows`] is for `n` series.
pub fn legend_height(n: usize) -> u32 {
    22 * n as u32 + 12
}

/// A legend in rows under a narrow plot (where one inside the plot would
/// hide its lines): a stroke of each series' colour, then its name.
pub fn legend_rows(
    area: &DrawingArea<SVGBackend<'_>, Shift>,
    entries: &[(String, RGBColor)],
) -> anyhow::Result<()> {
    let style = ("sans-serif", LABEL)
        .into_font()
        .into_text_style(area)
        .pos(Pos::new(HPos::Left, VPos::Center));
    for (i, (name, colour)) in entries.iter().enumerate() {
        let y = 12 + 22 * i as i32;
        area.draw(&PathElement::new(
            vec![(16, y), (40, y)],
            colour.stroke_width(3),
        ))
        .map_err(plot_err)?;
        area.draw(&Text::new(name.clone(), (48, y), style.clone()))
            .map_err(plot_err)?;
    }
    Ok(())
}

pub fn plot_err<E: std::fmt::Debug>(err: E) -> anyhow::Error {
    anyhow!("drawing a plot failed: {err:?}")
}

/// One labelled line with a dot at every point, on a chart of any scales.
pub fn dotted_line<'a, DB, X, Y>(
    chart: &mut ChartContext<'a, DB, Cartesian2d<X, Y>>,
    points: &[(f64, f64)],
    colour: RGBColor,
    label: &str,
) -> anyhow::Result<()>
where
    DB: DrawingBackend + 'a,
    X: Ranged<ValueType = f64>,
    Y: Ranged<ValueType = f64>,
{
    chart
        .draw_series(LineSeries::new(points.to_vec(), colour.stroke_width(2)))
        .map_err(plot_err)?
        .label(label)
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], colour.stroke_width(2)));
    chart
        .draw_series(points.iter().map(|&p| Circle::new(p, 4, colour.filled())))
        .map_err(plot_err)?;
    Ok(())
}

/// The legend of the lines, in a corner, in the plots' common style.
pub fn legend<'a, DB, X, Y>(
    chart: &mut ChartContext<'a, DB, Cartesian2d<X, Y>>,
    corner: SeriesLabelPosition,
) -> anyhow::Result<()>
where
    DB: DrawingBackend + 'a,
    X: Ranged<ValueType = f64>,
    Y: Ranged<ValueType = f64>,
{
    chart
        .configure_series_labels()
        .position(corner)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.3))
        .label_font(("sans-serif", LABEL))
        .draw()
        .map_err(plot_err)
}

/// The colour of a kind of server in every plot.
fn colour(kind: &str) -> RGBColor {
    match kind {
        "ceiling" => RGBColor(120, 120, 120),
        "baseline" => RGBColor(31, 119, 180),
        "lesson" => RGBColor(214, 96, 39),
        _ => RGBColor(44, 160, 44), // python
    }
}

/// Horizontal bars: messages per second of every TCP echo server. Wide,
/// each bar's label follows the bar; narrow, it stands above the bar, and the
/// figure follows it.
fn throughput_plot(r: &Results, canvas: Canvas, path: &Path) -> anyhow::Result<()> {
    let bars: Vec<(&Entry, f64)> = r
        .echo
        .iter()
        .filter_map(|e| e.summary.as_ref().map(|s| (e, s.msgs_per_s)))
        .collect();
    let top = bars.iter().map(|(_, v)| *v).fold(1.0, f64::max);
    let title = format!(
        "TCP echo, {} clients, {}-byte messages: messages per second",
        r.settings.clients, r.settings.size
    );
    let tokio = r
        .echo_entry("tokio")
        .map(|s| s.msgs_per_s)
        .filter(|&v| v > 0.0);
    let ratio = |value: f64| tokio.map_or(String::new(), |t| format!(" ({:.2}× tokio)", value / t));
    if canvas.narrow {
        return throughput_narrow(&bars, top, &title, &ratio, canvas, path);
    }
    let height = 90 + 48 * bars.len().max(1) as u32;
    let root = SVGBackend::new(path, (canvas.width, height)).into_drawing_area();
    root.fill(&WHITE).map_err(plot_err)?;
    let area = titled(&root, canvas, &title)?;
    let mut chart = ChartBuilder::on(&area)
        .margin(14)
        .margin_top(0)
        .x_label_area_size(36)
        .y_label_area_size(8)
        .build_cartesian_2d(0.0..top * 1.7, 0.0..bars.len().max(1) as f64)
        .map_err(plot_err)?;
    chart
        .configure_mesh()
        .disable_y_mesh()
        .disable_y_axis()
        .x_labels(6)
        .x_label_formatter(&|v| thousands(*v))
        .x_label_style(("sans-serif", LABEL))
        .draw()
        .map_err(plot_err)?;
    for (i, (entry, value)) in bars.iter().enumerate() {
        // The first bar at the top.
        let y = (bars.len() - 1 - i) as f64;
        let style = colour(&entry.kind).filled();
        chart
            .draw_series(std::iter::once(Rectangle::new(
                [(0.0, y + 0.18), (*value, y + 0.82)],
                style,
            )))
            .map_err(plot_err)?;
        let label = format!(
            "{}: {}{}",
            bar_label(entry),
            thousands(*value),
            ratio(*value)
        );
        chart
            .draw_series(std::iter::once(Text::new(
                label,
                (*value + top * 0.01, y + 0.66),
                ("sans-serif", LABEL),
            )))
            .map_err(plot_err)?;
    }
    root.present().map_err(plot_err)?;
    Ok(())
}

/// The narrow drawing of [`throughput_plot`]: per server, its name, then its
/// bar and figure, with no axis (the figures say it all).
fn throughput_narrow(
    bars: &[(&Entry, f64)],
    top: f64,
    title: &str,
    ratio: &dyn Fn(f64) -> String,
    canvas: Canvas,
    path: &Path,
) -> anyhow::Result<()> {
    let row = 50;
    let lines = canvas.title_lines(title).len() as u32;
    let height = 12 + 22 * lines + 6 + row * bars.len().max(1) as u32 + 8;
    let root = SVGBackend::new(path, (canvas.width, height)).into_drawing_area();
    root.fill(&WHITE).map_err(plot_err)?;
    let area = titled(&root, canvas, title)?;
    let text = ("sans-serif", LABEL)
        .into_font()
        .into_text_style(&area)
        .pos(Pos::new(HPos::Left, VPos::Center));
    let (left, longest) = (14, f64::from(canvas.width) - 28.0 - 170.0);
    for (i, (entry, value)) in bars.iter().enumerate() {
        let y = row as i32 * i as i32;
        area.draw(&Text::new(bar_label(entry), (left, y + 10), text.clone()))
            .map_err(plot_err)?;
        let end = left + (longest * value / top).round().max(2.0) as i32;
        area.draw(&Rectangle::new(
            [(left, y + 22), (end, y + 42)],
            colour(&entry.kind).filled(),
        ))
        .map_err(plot_err)?;
        let figure = format!("{}{}", thousands(*value), ratio(*value));
        area.draw(&Text::new(figure, (end + 6, y + 32), text.clone()))
            .map_err(plot_err)?;
    }
    root.present().map_err(plot_err)?;
    Ok(())
}

/// A bar's name in the throughput plot: the server, and where its log went
/// when that was not a pipe read line by line.
fn bar_label(entry: &Entry) -> String {
    match entry.log() {
        Log::DevNull if !entry.label.contains("/dev/null") => {
            format!("{}, log to /dev/null", entry.label)
        }
        Log::Blocks => format!("{}, log in blocks", entry.label),
        _ => entry.label.clone(),
    }
}

/// Sessions: each client's wait for its first reply, clients sorted by wait.
fn waiting_plot(r: &Results, canvas: Canvas, path: &Path) -> anyhow::Result<()> {
    // The median run (by the last client's wait) of every server.
    let series: Vec<(&Entry, Vec<(f64, f64)>)> = r
        .sessions
        .iter()
        .filter_map(|e| {
            let run = median_run(&e.runs)?;
            let points = run
                .first_reply_ms
                .iter()
                .enumerate()
                .filter_map(|(i, t)| t.map(|ms| ((i + 1) as f64, ms.max(0.01))))
                .collect();
            Some((e, points))
        })
        .collect();
    let clients = r.settings.clients.max(2) as f64;
    let top = series
        .iter()
        .flat_map(|(_, p)| p.iter().map(|&(_, ms)| ms))
        .fold(10.0, f64::max);
    let bottom = series
        .iter()
        .flat_map(|(_, p)| p.iter().map(|&(_, ms)| ms))
        .fold(top, f64::min)
        / 2.0;
    let title = format!(
        "{} clients at once, {} messages each: when does each get its first reply?",
        r.settings.clients, r.settings.session_messages
    );
    // Narrow, the legend goes under the plot, and the axes say less.
    let (plot_height, legend_h) = if canvas.narrow {
        (400, legend_height(series.len()))
    } else {
        (440, 0)
    };
    let root = SVGBackend::new(path, (canvas.width, plot_height + legend_h)).into_drawing_area();
    root.fill(&WHITE).map_err(plot_err)?;
    let (area, below) = titled(&root, canvas, &title)?
        .split_vertically(plot_height - 12 - 22 * canvas.title_lines(&title).len() as u32 - 6);
    let mut chart = ChartBuilder::on(&area)
        .margin(14)
        .margin_top(0)
        .x_label_area_size(48)
        .y_label_area_size(if canvas.narrow { 64 } else { 80 })
        // Room above the lines for the legend.
        .build_cartesian_2d(
            1.0..clients,
            (bottom..top * if canvas.narrow { 3.0 } else { 40.0 }).log_scale(),
        )
        .map_err(plot_err)?;
    chart
        .configure_mesh()
        .x_desc(if canvas.narrow {
            "clients, by their first reply"
        } else {
            "clients, in the order they got their first reply"
        })
        .y_desc("wait (ms, log scale)")
        .y_label_formatter(&|v| format!("{v}"))
        .x_labels((clients as usize).min(if canvas.narrow { 6 } else { 11 }))
        .x_label_formatter(&|v| format!("{v:.0}"))
        .label_style(("sans-serif", LABEL))
        .draw()
        .map_err(plot_err)?;
    let palette = [
        RGBColor(31, 119, 180),
        RGBColor(23, 190, 207),
        RGBColor(214, 96, 39),
        RGBColor(44, 160, 44),
        RGBColor(148, 103, 189),
        RGBColor(140, 86, 75),
    ];
    for (i, (entry, points)) in series.iter().enumerate() {
        let c = palette[i % palette.len()];
        chart
            .draw_series(LineSeries::new(points.iter().copied(), c.stroke_width(2)))
            .map_err(plot_err)?
            .label(entry.label.clone())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], c.stroke_width(2)));
    }
    if canvas.narrow {
        let entries: Vec<(String, RGBColor)> = series
            .iter()
            .enumerate()
            .map(|(i, (entry, _))| (entry.label.clone(), palette[i % palette.len()]))
            .collect();
        legend_rows(&below, &entries)?;
    } else {
        legend(&mut chart, SeriesLabelPosition::UpperLeft)?;
    }
    root.present().map_err(plot_err)?;
    Ok(())
}

/// The run whose last first reply is the median one.
fn median_run(runs: &[RunStats]) -> Option<&RunStats> {
    let mut sorted: Vec<&RunStats> = runs.iter().collect();
    let key = |r: &RunStats| {
        r.first_reply_ms
            .iter()
            .rev()
            .find_map(|t| *t)
            .unwrap_or(f64::INFINITY)
    };
    sorted.sort_by(|a, b| key(a).total_cmp(&key(b)));
    sorted.get(sorted.len().checked_sub(1)? / 2).copied()
}

/// Chat fan-out: delivery latency against the size of the room.
fn fanout_plot(r: &Results, canvas: Canvas, path: &Path) -> anyhow::Result<()> {
    let root = SVGBackend::new(path, (canvas.width, 400)).into_drawing_area();
    root.fill(&WHITE).map_err(plot_err)?;
    let points: Vec<(f64, f64, f64, String)> = r
        .fanout
        .iter()
        .filter_map(|f| {
            let s = f.summary.as_ref()?;
            // Narrow, the label of a point takes two lines.
            let label = if canvas.narrow {
                format!(
                    "{},\n{} threads",
                    rss(s.server_rss_kb),
                    count(s.server_threads)
                )
            } else {
                format!(
                    "server: {}, {} threads",
                    rss(s.server_rss_kb),
                    count(s.server_threads)
                )
            };
            Some((
                f.clients as f64,
                s.p50_us? as f64 / 1000.0,
                s.p99_us? as f64 / 1000.0,
                label,
            ))
        })
        .collect();
    let max_k = points.iter().map(|p| p.0).fold(10.0, f64::max);
    let top = points.iter().map(|p| p.2).fold(1.0, f64::max);
    let area = titled(
        &root,
        canvas,
        "Lesson 06 chat room: one line to everybody, delivery latency",
    )?;
    let mut chart = ChartBuilder::on(&area)
        .margin(14)
        .margin_top(0)
        .x_label_area_size(48)
        .y_label_area_size(if canvas.narrow { 52 } else { 64 })
        // Room on the right for the labels.
        .build_cartesian_2d((2.0..max_k * 8.0).log_scale(), 0.0..top * 1.3)
        .map_err(plot_err)?;
    chart
        .configure_mesh()
        .x_desc("clients in the room (log scale)")
        .y_desc("ms")
        .x_label_formatter(&|v| format!("{v:.0}"))
        .label_style(("sans-serif", LABEL))
        .draw()
        .map_err(plot_err)?;
    let blue = RGBColor(31, 119, 180);
    let orange = RGBColor(214, 96, 39);
    for (name, colour, pick) in [("p50", blue, 1usize), ("p99", orange, 2usize)] {
        let line: Vec<(f64, f64)> = points
            .iter()
            .map(|p| (p.0, if pick == 1 { p.1 } else { p.2 }))
            .collect();
        dotted_line(&mut chart, &line, colour, name)?;
    }
    // Labels stand above and right of their point, clear of the lines.
    let lift = if canvas.narrow { 0.15 } else { 0.08 };
    for p in &points {
        for (i, line) in p.3.lines().enumerate() {
            chart
                .draw_series(std::iter::once(Text::new(
                    line.to_string(),
                    (p.0 * 1.12, p.2 + top * (lift - 0.07 * i as f64)),
                    ("sans-serif", LABEL),
                )))
                .map_err(plot_err)?;
        }
    }
    legend(&mut chart, SeriesLabelPosition::UpperLeft)?;
    root.present().map_err(plot_err)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_read_well() {
        assert_eq!(thousands(1_234_567.8), "1,234,568");
        assert_eq!(thousands(999.0), "999");
        assert_eq!(micros(Some(87)), "87 µs");
        assert_eq!(micros(Some(1520)), "1.52 ms");
        assert_eq!(micros(Some(7_100_000)), "7.10 s");
        assert_eq!(micros(None), "–");
    }
}
