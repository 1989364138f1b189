#!/usr/bin/env python3
"""Opens every page of the built book in headless Chromium and checks what a
reader would see, after the page's JavaScript has run.

A page fails when it shows a raw `{{#include`, an `ANCHOR` marker, an empty
code block, a mermaid diagram that did not become an SVG, or a link to a page
or `#fragment` of the book that does not exist. It also fails when, in a
window 1280 pixels wide, a code block or a table is wider than the text
column (the reader would have to scroll sideways, or would not see the end of
a line at all), or a diagram is shrunk so far that its text is too small to
read. One chapter is kept as a screenshot for a person to look at.

Usage: check-book-in-browser.py BOOK_HTML_DIR SCREENSHOT_PNG
Standard library only; needs `chromium` on the PATH.
"""

import json
import os
import subprocess
import sys
import tempfile
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
]
# Let the page's scripts (mermaid) run for up to this many virtual ms.
BUDGET_MS = "15000"
# Pages that are not chapters of their own.
SKIP = {"404.html", "print.html", "toc.html"}
# The window a reader's laptop gives the book.
WINDOW = "1280,900"
# A diagram drawn smaller than this share of its natural size has text under
# about 12 px (mermaid draws its text at 16 px).
SMALLEST_DIAGRAM_SCALE = 0.75
# Measures, once the page's scripts (mermaid) are done, what is wider than
# the text column, and leaves the answer on <body> for --dump-dom to show.
MEASURE = """
<script>
window.addEventListener("load", () => setTimeout(() => {
  const main = document.querySelector("main");
  const column = main.getBoundingClientRect();
  const found = [];
  const name = (el) => (el.textContent || "").trim().split("\\n")[0].slice(0, 60);
  main.querySelectorAll("pre > code").forEach((el, i) => {
    if (el.closest(".mermaid")) return;
    if (el.scrollWidth > el.clientWidth + 1 || el.getBoundingClientRect().right > column.right + 1)
      found.push(`code block ${i + 1} is ${el.scrollWidth} px wide, the column ${Math.round(column.width)} px: ${name(el)}`);
  });
  main.querySelectorAll("table").forEach((el, i) => {
    const box = el.parentElement;
    if (el.getBoundingClientRect().width > column.width + 1 || box.scrollWidth > box.clientWidth + 1)
      found.push(`table ${i + 1} is ${Math.round(el.getBoundingClientRect().width)} px wide, the column ${Math.round(column.width)} px: ${name(el)}`);
  });
  main.querySelectorAll(".mermaid svg").forEach((el, i) => {
    const natural = el.viewBox && el.viewBox.baseVal ? el.viewBox.baseVal.width : 0;
    const drawn = el.getBoundingClientRect().width;
    if (natural > 0 && drawn / natural < %(scale)s)
      found.push(`diagram ${i + 1} is drawn at ${Math.round(100 * drawn / natural)}%% of its size, its text about ${Math.round(16 * drawn / natural)} px`);
  });
  document.body.setAttribute("data-layout-width", String(window.innerWidth));
  document.body.setAttribute("data-layout-problems", JSON.stringify(found));
}, 3000));
</script>
""" % {"scale": SMALLEST_DIAGRAM_SCALE}


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
        self.layout_width = None  # set by MEASURE
        self.layout_problems = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if "id" in attrs:
            self.ids.add(attrs["id"])
        if tag == "body" and "data-layout-problems" in attrs:
            self.layout_width = attrs.get("data-layout-width")
            self.layout_problems = json.loads(attrs["data-layout-problems"])
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


def render(path, user_data):
    """The page's DOM after its scripts ran, as Chromium serialises it, with
    MEASURE's findings on <body>. The page is measured as a copy with MEASURE
    added, beside the original so that its relative links still work."""
    with open(path, encoding="utf-8") as page:
        html = page.read()
    copy = os.path.join(os.path.dirname(path), ".measure-" + os.path.basename(path))
    with open(copy, "w", encoding="utf-8") as page:
        page.write(html.replace("</body>", MEASURE + "</body>", 1))
    try:
        result = subprocess.run(
            CHROMIUM
            + [
                f"--user-data-dir={user_data}",
                f"--virtual-time-budget={BUDGET_MS}",
                f"--window-size={WINDOW}",
                "--dump-dom",
                "file://" + os.path.abspath(copy),
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
    finally:
        os.remove(copy)
    if result.returncode != 0 or "<html" not in result.stdout:
        raise SystemExit(f"chromium could not render {path}:\n{result.stderr[-2000:]}")
    return result.stdout


def main():
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    book, screenshot = sys.argv[1], sys.argv[2]
    pages = sorted(
        name for name in os.listdir(book) if name.endswith(".html") and name not in SKIP
    )
    if not pages:
        raise SystemExit(f"no pages in {book}: build the book first")

    problems = []
    parsed = {}
    with tempfile.TemporaryDirectory() as user_data:
        for name in pages:
            page = Page()
            page.feed(render(os.path.join(book, name), user_data))
            parsed[name] = page
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
            if page.layout_problems is None:
                problems.append(f"{name}: the layout could not be measured")
            else:
                if page.layout_width != WINDOW.split(",")[0]:
                    problems.append(f"{name}: measured at {page.layout_width} px, not {WINDOW}")
                for problem in page.layout_problems:
                    problems.append(f"{name}: at {WINDOW.split(',')[0]} px, {problem}")
            print(
                f"{name}: {len(page.code_blocks)} code blocks, "
                f"{len(page.mermaid)} diagrams, {len(page.links)} links"
            )

        for name, page in parsed.items():
            for href in page.links:
                url = urlparse(href)
                if url.scheme or href.startswith("//"):
                    continue  # outside the book
                target, fragment = urldefrag(href)
                target = os.path.normpath(os.path.join(os.path.dirname(name), unquote(target))) if target else name
                if not os.path.exists(os.path.join(book, target)):
                    problems.append(f"{name}: link to missing page {href}")
                    continue
                if fragment and target.endswith(".html"):
                    ids = parsed[target].ids if target in parsed else None
                    if ids is not None and unquote(fragment) not in ids:
                        problems.append(f"{name}: link to missing fragment {href}")

        # A picture of one chapter for a person to look at.
        chapter = next((p for p in pages if p.startswith("lesson03")), pages[0])
        os.makedirs(os.path.dirname(os.path.abspath(screenshot)), exist_ok=True)
        subprocess.run(
            CHROMIUM
            + [
                f"--user-data-dir={user_data}",
                f"--virtual-time-budget={BUDGET_MS}",
                "--window-size=1280,2400",
                f"--screenshot={os.path.abspath(screenshot)}",
                "file://" + os.path.abspath(os.path.join(book, chapter)),
            ],
            capture_output=True,
            timeout=120,
            check=True,
        )
        print(f"screenshot of {chapter}: {screenshot}")

    if problems:
        print("\n".join(problems), file=sys.stderr)
        raise SystemExit(f"{len(problems)} problem(s) in the rendered book")
    print(f"{len(pages)} pages checked in Chromium: no problems")


if __name__ == "__main__":
    main()
