#!/usr/bin/env python3
"""Opens every page of the built book in headless Chromium and checks what a
reader would see, after the page's JavaScript has run.

A page fails when it shows a raw `{{#include`, an `ANCHOR` marker, an empty
code block, a mermaid diagram that did not become an SVG, an image that does
not load, or a link to a page or `#fragment` of the book that does not exist.

Every page is then laid out three times, in the windows readers use: a laptop
(1280 px), a smaller laptop (1200 px) and a phone (400 px, a touch screen).
In each, a page fails on

- a code block or a table wider than the text column on a laptop (the reader
  would have to scroll sideways to see the end of a line);
- on a phone, a code block or a table cut off at the edge of the column, or
  one that scrolls sideways without a visible cue that it does (the book's
  script marks such a box, and custom.css draws a shadow at the side where
  more of it is hidden);
- a long line of code that wraps and goes on at or left of where the line
  began, so that it no longer shows its indentation;
- a diagram whose text is drawn smaller than LEGIBLE_PX, unless (on a phone
  only) a tap on it opens it in a dialog where its text is full size and the
  dialog scrolls and closes again;
- a plot (an SVG image) whose smallest label is drawn smaller than LEGIBLE_PX
  at the size the page shows it;
- a copy button that would copy something other than the code shown.

Each problem is one line: the page, the window, what is wrong. Pictures of
three chapters are kept for a person to look at: SCREENSHOT_PNG (lesson 03
on a laptop) and, beside it, the same name ending in -400px-NAME.png for
lessons 06 and 09 and the performance appendix on a phone.

Usage: check-book-in-browser.py BOOK_HTML_DIR SCREENSHOT_PNG
Standard library only; needs `chromium` on the PATH. It drives one Chromium
through the DevTools protocol on a pipe (--remote-debugging-pipe).
"""

import base64
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from html.parser import HTMLParser
from urllib.parse import unquote, urldefrag, urlparse

# The flags this machine's Chromium needs to run headless without a network.
CHROMIUM = [
    "chromium",
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    "--remote-debugging-pipe",
]
# Pages that are not chapters of their own.
SKIP = {"404.html", "print.html", "toc.html"}
# The windows the book is laid out in: name, width, height, a phone?
WINDOWS = [(1280, 900, False), (1200, 900, False), (400, 860, True)]
# Text drawn smaller than this (CSS px, at the size the page shows it) is too
# small to read: mermaid draws its labels at 14 to 16 px, so a diagram may
# shrink to about three quarters before it fails.
LEGIBLE_PX = 11
# How long one page may take to load and draw its diagrams.
PAGE_TIMEOUT_S = 30
# Pictures for a person to look at: (window width, page prefix, file suffix,
# how much of the page, in px from the top).
SHOTS = [
    (1280, "lesson03", "", 2400),
    (400, "lesson06-threaded", "-400px-lesson06", 12000),
    (400, "lesson09", "-400px-lesson09", 12000),
    (400, "appendix-performance", "-400px-performance", 16000),
]

# Resolves once the page is drawn: mermaid has turned every diagram into an
# SVG (or given up), the fonts are loaded, and two frames have been painted.
READY = """
new Promise((done) => {
  const start = Date.now();
  const drawn = () => Array.from(document.querySelectorAll("pre.mermaid"))
    .every((el) => el.querySelector("svg") || el.getAttribute("data-processed"));
  const wait = () => {
    if ((document.readyState === "complete" && drawn()) || Date.now() - start > %d)
      document.fonts.ready.then(() =>
        requestAnimationFrame(() => requestAnimationFrame(() => done(true))));
    else setTimeout(wait, 50);
  };
  wait();
})
""" % (PAGE_TIMEOUT_S * 1000 - 5000)

# Measures what a reader sees in this window. Returns a list of problems
# (sentences) and the plots shown, for Python to check against their files.
MEASURE = r"""
(async (phone, legible) => {
  const main = document.querySelector("main");
  const column = main.getBoundingClientRect();
  const width = Math.round(column.width);
  const problems = [];
  const plots = [];
  const px = (v) => Math.round(v);
  const name = (el) => (el.textContent || "").trim().split("\n")[0].trim().slice(0, 50);
  const frame = () => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)));
  // A reader opens the folded solutions: measure them open.
  main.querySelectorAll("details").forEach((d) => { d.open = true; });
  await frame();

  // A box that scrolls sideways must show it: the book's script marks its
  // frame (the box's parent), and custom.css draws a shadow with ::after.
  const cue = (scroller) => {
    const after = getComputedStyle(scroller.parentElement, "::after");
    return after.content !== "none" && after.display !== "none" &&
      after.visibility !== "hidden" && parseFloat(after.opacity) > 0.1 &&
      parseFloat(after.width) >= 6;
  };
  const scrollable = (el) => ["auto", "scroll"].includes(getComputedStyle(el).overflowX);
  // What a wide box does in this window: null when all is well.
  const wide = (what, content, scroller) => {
    const w = Math.max(px(content.getBoundingClientRect().width), scroller.scrollWidth);
    const over = scroller.scrollWidth > scroller.clientWidth + 1;
    const out = scroller.getBoundingClientRect().right > column.right + 1;
    if (!phone && (over || out))
      return `${what} is ${w} px wide, the column ${width} px`;
    if (out)
      return `${what} is cut off at the right edge of the column (${w} px in ${width} px)`;
    if (over && !scrollable(scroller))
      return `${what} is cut off: ${scroller.scrollWidth} px in ${width} px, and it does not scroll`;
    if (over && !cue(scroller))
      return `${what} scrolls sideways with no visible cue that it does (${scroller.scrollWidth} px in ${width} px)`;
    return null;
  };

  // Text nodes of an element with their offsets, to find lines by position.
  const texts = (root) => {
    const walker = document.createTreeWalker(root, NodeFilter.SHOW_TEXT);
    const list = [];
    let at = 0;
    for (let n = walker.nextNode(); n; n = walker.nextNode()) {
      list.push([n, at]);
      at += n.data.length;
    }
    return list;
  };
  const point = (list, offset) => {
    for (let i = list.length - 1; i >= 0; i--)
      if (list[i][1] <= offset) return [list[i][0], offset - list[i][1]];
    return [list[0][0], 0];
  };
  // The first line of `code` that wraps and goes on at or left of where its
  // text began (it lost its indentation), or null.
  const lostIndent = (code) => {
    const ws = getComputedStyle(code).whiteSpace;
    if (ws === "pre" || ws === "nowrap") return null;
    const list = texts(code);
    if (!list.length) return null;
    const all = code.textContent;
    const range = document.createRange();
    let start = 0;
    let number = 0;
    for (const line of all.split("\n")) {
      number++;
      const end = start + line.length;
      const first = line.search(/\S/);
      if (first >= 0 && line.length > 20) {
        range.setStart(...point(list, start + first));
        range.setEnd(...point(list, end));
        const rects = Array.from(range.getClientRects()).filter((r) => r.width > 0);
        if (rects.length > 1) {
          const top = Math.min(...rects.map((r) => r.top));
          const begins = rects.find((r) => Math.abs(r.top - top) < 2).left;
          const later = rects.filter((r) => r.top > top + 2);
          if (later.length) {
            const goesOn = Math.min(...later.map((r) => r.left));
            if (goesOn <= begins + 1)
              return `line ${number} wraps, and goes on ` +
                (goesOn > begins - 1 ? "at the column where it began (it reads as a new line)"
                  : `${px(begins - goesOn)} px left of where it began (it loses its indentation)`) +
                `: ${line.trim().slice(0, 40)}`;
          }
        }
      }
      start = end + 1;
    }
    return null;
  };

  main.querySelectorAll("pre > code").forEach((code, i) => {
    if (code.closest(".mermaid")) return;
    const what = `code block ${i + 1}`;
    const problem = wide(what, code, code);
    if (problem) problems.push(`${problem}: ${name(code)}`);
    const lost = lostIndent(code);
    if (lost) problems.push(`${what} ${lost}`);
    const copied = code.innerText.replace(/\n+$/, "");
    if (copied !== code.textContent.replace(/\n+$/, ""))
      problems.push(`${what}: its copy button would copy other text than it shows: ${name(code)}`);
  });

  main.querySelectorAll("table").forEach((table, i) => {
    const scroller = table.closest(".table-wrapper") || table.parentElement;
    const problem = wide(`table ${i + 1}`, table, scroller);
    if (problem) problems.push(`${problem}: ${name(table.querySelector("th, td") || table)}`);
  });

  // The smallest text of an SVG as drawn, in CSS px.
  const smallest = (svg) => {
    const natural = svg.viewBox && svg.viewBox.baseVal && svg.viewBox.baseVal.width;
    const drawn = svg.getBoundingClientRect().width;
    if (!natural || !drawn) return null;
    let size = Infinity;
    svg.querySelectorAll("text, tspan, foreignObject div, foreignObject span, foreignObject p").forEach((t) => {
      if (!t.textContent.trim() || !t.getClientRects().length) return;
      size = Math.min(size, parseFloat(getComputedStyle(t).fontSize));
    });
    return size === Infinity ? null : (size * drawn) / natural;
  };

  const diagrams = Array.from(main.querySelectorAll(".mermaid svg"));
  for (const [i, svg] of diagrams.entries()) {
    const what = `diagram ${i + 1}`;
    const out = svg.getBoundingClientRect().right > column.right + 1;
    if (out) problems.push(`${what} is cut off at the right edge of the column`);
    const size = smallest(svg);
    if (size === null || size >= legible) continue;
    const seen = `${what} draws its text at ${size.toFixed(1)} px`;
    if (!phone) {
      problems.push(`${seen}, below ${legible} px`);
      continue;
    }
    // On a phone a tap must open it full size.
    svg.dispatchEvent(new MouseEvent("click", { bubbles: true }));
    await frame();
    const dialog = document.querySelector("dialog[open]");
    if (!dialog) {
      problems.push(`${seen}, below ${legible} px, and a tap on it opens nothing`);
      continue;
    }
    const big = dialog.querySelector("svg");
    const bigSize = big && smallest(big);
    if (!big || bigSize === null || bigSize < legible)
      problems.push(`${seen}, and opened with a tap still at ${bigSize ? bigSize.toFixed(1) : "?"} px`);
    const box = big && big.getBoundingClientRect();
    if (box && box.width > innerWidth + 1) {
      // Wider than the screen: something in the dialog must scroll.
      let el = big.parentElement;
      while (el && el !== dialog.parentElement && !(scrollable(el) && el.scrollWidth > el.clientWidth)) el = el.parentElement;
      if (!el || el === dialog.parentElement)
        problems.push(`${what}, opened with a tap, is ${px(box.width)} px wide and cannot be scrolled`);
    }
    const close = dialog.querySelector("button");
    if (close) close.click();
    await frame();
    if (!close || document.querySelector("dialog[open]")) {
      problems.push(`${what}, opened with a tap, has no button that closes it`);
      document.querySelectorAll("dialog[open]").forEach((d) => d.close());
    }
  }

  main.querySelectorAll("img").forEach((img, i) => {
    const rect = img.getBoundingClientRect();
    if (!rect.width) return;  // mdBook's copy for zooming, not shown
    if (!img.complete || !img.naturalWidth) {
      problems.push(`image ${i + 1} does not load: ${img.getAttribute("src")}`);
      return;
    }
    if (rect.right > column.right + 1) problems.push(`image ${i + 1} is cut off at the right edge of the column`);
    if (/\.svg$/.test(img.currentSrc)) plots.push({ src: img.currentSrc, shown: rect.width, number: i + 1 });
  });

  return { window: innerWidth, problems, plots };
})
"""


class Page(HTMLParser):
    """Collects what the checks need from one rendered page."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.ids = set()
        self.links = []
        self.text = []
        self.code_blocks = []  # text of each <pre><code>
        self.mermaid = []  # does each <pre class="mermaid"> hold an <svg>?
        self._stack = []
        self._code = None
        self._in_main = 0

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if "id" in attrs:
            self.ids.add(attrs["id"])
        if tag == "a" and attrs.get("href"):
            self.links.append(attrs["href"])
        classes = (attrs.get("class") or "").split()
        if tag == "pre" and "mermaid" in classes:
            self.mermaid.append(False)
            self._stack.append("mermaid")
        elif tag == "pre":
            self._stack.append("pre")
        elif tag == "svg" and "mermaid" in self._stack:
            # mermaid draws a syntax error as an SVG too; that is a failure.
            self.mermaid[-1] = attrs.get("aria-roledescription") != "error"
        if tag == "code" and self._stack and self._stack[-1] == "pre":
            self._code = []
        if tag == "main":
            self._in_main += 1

    def handle_endtag(self, tag):
        if tag == "pre" and self._stack:
            self._stack.pop()
        if tag == "code" and self._code is not None:
            self.code_blocks.append("".join(self._code))
            self._code = None
        if tag == "main":
            self._in_main -= 1

    def handle_data(self, data):
        if self._code is not None:
            self._code.append(data)
        if self._in_main:
            self.text.append(data)


class Browser:
    """One headless Chromium, driven through the DevTools protocol: JSON
    messages ending in a NUL byte, written to its fd 3, read from its fd 4."""

    def __init__(self, user_data):
        to_chromium, self._to = os.pipe()
        self._from, from_chromium = os.pipe()

        def pipes():
            os.dup2(to_chromium, 3)
            os.dup2(from_chromium, 4)

        self.proc = subprocess.Popen(
            CHROMIUM + [f"--user-data-dir={user_data}", "about:blank"],
            pass_fds=(3, 4),
            preexec_fn=pipes,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        os.close(to_chromium)
        os.close(from_chromium)
        self._buffer = b""
        self._next = 0
        self.events = []
        target = next(
            t for t in self.send("Target.getTargets")["targetInfos"] if t["type"] == "page"
        )
        self.session = self.send(
            "Target.attachToTarget", {"targetId": target["targetId"], "flatten": True}
        )["sessionId"]
        self.send("Page.enable", session=True)

    def _read(self, deadline):
        while b"\0" not in self._buffer:
            if time.monotonic() > deadline:
                raise SystemExit("chromium did not answer in time")
            chunk = os.read(self._from, 1 << 16)
            if not chunk:
                raise SystemExit("chromium quit")
            self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(message)

    def send(self, method, params=None, session=False, timeout=PAGE_TIMEOUT_S):
        self._next += 1
        message = {"id": self._next, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = self.session
        os.write(self._to, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            answer = self._read(deadline)
            if answer.get("id") == self._next:
                if "error" in answer:
                    raise SystemExit(f"chromium: {method}: {answer['error'].get('message')}")
                return answer.get("result", {})
            self.events.append(answer.get("method"))

    def evaluate(self, expression):
        result = self.send(
            "Runtime.evaluate",
            {"expression": expression, "awaitPromise": True, "returnByValue": True},
            session=True,
        )
        if "exceptionDetails" in result:
            details = result["exceptionDetails"]
            text = details.get("exception", {}).get("description") or details.get("text")
            raise SystemExit(f"the check's script failed in the page: {text}")
        return result["result"].get("value")

    def window(self, width, height, phone):
        self.send(
            "Emulation.setDeviceMetricsOverride",
            {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": phone},
            session=True,
        )
        self.send("Emulation.setTouchEmulationEnabled", {"enabled": phone}, session=True)

    def open(self, path):
        self.events.clear()
        self.send("Page.navigate", {"url": "file://" + os.path.abspath(path)}, session=True)
        deadline = time.monotonic() + PAGE_TIMEOUT_S
        while "Page.loadEventFired" not in self.events:
            answer = self._read(deadline)
            self.events.append(answer.get("method"))
        self.evaluate(READY)

    def screenshot(self, path, tallest):
        size = self.send("Page.getLayoutMetrics", session=True)["cssContentSize"]
        clip = {"x": 0, "y": 0, "width": size["width"], "height": min(size["height"], tallest), "scale": 1}
        shot = self.send(
            "Page.captureScreenshot",
            {"format": "png", "captureBeyondViewport": True, "clip": clip},
            session=True,
            timeout=120,
        )
        with open(path, "wb") as out:
            out.write(base64.b64decode(shot["data"]))

    def close(self):
        try:
            self.send("Browser.close", timeout=10)
        except SystemExit:
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def svg_text_size(path):
    """The natural width of an SVG file and the font size of its smallest
    text, in its own units."""
    with open(path, encoding="utf-8") as f:
        svg = f.read()
    head = re.search(r"<svg\b[^>]*>", svg).group(0)
    box = re.search(r'viewBox="[\d.\s-]+?\s([\d.]+)\s[\d.]+"', head)
    width = float(box.group(1)) if box else float(re.search(r'width="([\d.]+)', head).group(1))
    sizes = [float(s) for s in re.findall(r'font-size[=:]\s*"?([\d.]+)', svg)]
    return width, min(sizes) if sizes else None


def check_plots(plots):
    problems = []
    for plot in plots:
        path = unquote(urlparse(plot["src"]).path)
        width, size = svg_text_size(path)
        if size is None or not width:
            continue
        shown = size * plot["shown"] / width
        if shown < LEGIBLE_PX:
            problems.append(
                f"plot {os.path.basename(path)} (image {plot['number']}) draws its smallest "
                f"label at {shown:.1f} px, below {LEGIBLE_PX} px"
            )
    return problems


def main():
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    book, screenshot = sys.argv[1], sys.argv[2]
    pages = sorted(
        name for name in os.listdir(book) if name.endswith(".html") and name not in SKIP
    )
    if not pages:
        raise SystemExit(f"no pages in {book}: build the book first")
    os.makedirs(os.path.dirname(os.path.abspath(screenshot)), exist_ok=True)
    stem = screenshot[:-4] if screenshot.endswith(".png") else screenshot
    started = time.monotonic()

    problems = []
    parsed = {}
    shots = []
    with tempfile.TemporaryDirectory() as user_data:
        browser = Browser(user_data)
        try:
            for width, height, phone in WINDOWS:
                browser.window(width, height, phone)
                for name in pages:
                    browser.open(os.path.join(book, name))
                    if name not in parsed:
                        page = Page()
                        page.feed(browser.evaluate("document.documentElement.outerHTML"))
                        parsed[name] = page
                    found = browser.evaluate(f"({MEASURE})({json.dumps(phone)}, {LEGIBLE_PX})")
                    where = f"{name} at {width} px"
                    if found["window"] != width:
                        problems.append(f"{where}: laid out {found['window']} px wide, not {width}")
                    for problem in found["problems"] + check_plots(found["plots"]):
                        problems.append(f"{where}: {problem}")
                    for shot_width, prefix, suffix, tallest in SHOTS:
                        if shot_width == width and name.startswith(prefix):
                            path = stem + suffix + ".png"
                            browser.screenshot(path, tallest)
                            shots.append(path)
        finally:
            browser.close()

    for name, page in parsed.items():
        text = "".join(page.text)
        if "{{#" in text:
            problems.append(f"{name}: shows a raw {{{{# directive")
        if "ANCHOR:" in text or "ANCHOR_END:" in text:
            problems.append(f"{name}: shows an ANCHOR marker")
        for number, code in enumerate(page.code_blocks, 1):
            if not code.strip():
                problems.append(f"{name}: code block {number} is empty")
        for number, rendered in enumerate(page.mermaid, 1):
            if not rendered:
                problems.append(f"{name}: diagram {number} did not render to SVG")
        for href in page.links:
            url = urlparse(href)
            if url.scheme or href.startswith("//"):
                continue  # outside the book
            target, fragment = urldefrag(href)
            target = (
                os.path.normpath(os.path.join(os.path.dirname(name), unquote(target)))
                if target
                else name
            )
            if not os.path.exists(os.path.join(book, target)):
                problems.append(f"{name}: link to missing page {href}")
                continue
            if fragment and target.endswith(".html"):
                ids = parsed[target].ids if target in parsed else None
                if ids is not None and unquote(fragment) not in ids:
                    problems.append(f"{name}: link to missing fragment {href}")
        print(
            f"{name}: {len(page.code_blocks)} code blocks, "
            f"{len(page.mermaid)} diagrams, {len(page.links)} links"
        )
    for path in shots:
        print(f"screenshot: {path}")

    widths = ", ".join(str(w) for w, _, _ in WINDOWS[:-1]) + f" and {WINDOWS[-1][0]} px"
    seconds = time.monotonic() - started
    if problems:
        print("\n".join(problems), file=sys.stderr)
        raise SystemExit(f"{len(problems)} problem(s) in the rendered book")
    print(f"{len(pages)} pages checked in Chromium at {widths} in {seconds:.0f} s: no problems")


if __name__ == "__main__":
    main()
