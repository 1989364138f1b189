// The course's additions to mdBook's pages, so that the book reads well in
// any window, from a phone to a laptop. custom.css styles what this script
// marks, and .ci/check-book-in-browser.py checks the result at 1280, 1200
// and 400 px. It runs after mdBook's own script has highlighted the code.
(() => {
    // 1. A long line of code that wraps keeps its indentation.
    //
    // Each line of a code block becomes its own span, told its indentation
    // (--indent, in characters). custom.css gives the span a hanging indent
    // of that much plus two, so that when the line wraps, the rest goes on
    // further right than the line began, never back at the left edge. On a
    // phone the code does not wrap at all: it scrolls sideways.
    function splitLines(code) {
        const lines = [[]];
        // Copies each piece of text with the highlighting spans around it,
        // starting a new line at every newline.
        const walk = (node, wrap) => {
            if (node.nodeType === Node.TEXT_NODE) {
                node.data.split("\n").forEach((piece, i) => {
                    if (i > 0) lines.push([]);
                    if (piece) lines[lines.length - 1].push(wrap(document.createTextNode(piece)));
                });
            } else if (node.nodeType === Node.ELEMENT_NODE) {
                const inner = (child) => {
                    const copy = node.cloneNode(false);
                    copy.appendChild(child);
                    return wrap(copy);
                };
                Array.from(node.childNodes).forEach((child) => walk(child, inner));
            }
        };
        Array.from(code.childNodes).forEach((child) => walk(child, (n) => n));
        const out = document.createDocumentFragment();
        lines.forEach((pieces, i) => {
            if (i > 0) out.appendChild(document.createTextNode("\n"));
            if (!pieces.length) return;
            const line = document.createElement("span");
            line.className = "line";
            const text = pieces.map((p) => p.textContent).join("");
            line.style.setProperty("--indent", `${text.search(/\S|$/)}ch`);
            pieces.forEach((p) => line.appendChild(p));
            out.appendChild(line);
        });
        code.replaceChildren(out);
    }

    // 2. A box wider than the column shows that it scrolls sideways.
    //
    // Its frame (the box's parent) is marked `scrolls-right` while more of it
    // is hidden on the right, `scrolls-left` while some is hidden on the
    // left, and custom.css draws a shadow on that side.
    function watchScrolling(scroller) {
        const frame = scroller.parentElement;
        const update = () => {
            const hidden = scroller.scrollWidth - scroller.clientWidth;
            frame.classList.toggle("scrolls-right", hidden > 1 && scroller.scrollLeft < hidden - 1);
            frame.classList.toggle("scrolls-left", hidden > 1 && scroller.scrollLeft > 1);
        };
        scroller.addEventListener("scroll", update, { passive: true });
        new ResizeObserver(update).observe(scroller);
        update();
    }

    // 3. A diagram drawn too small to read opens full size with a tap.
    //
    // mermaid draws its text at 14 to 16 px; a diagram shrunk to fit a
    // narrow column gets a button under it, and a tap on the diagram or the
    // button shows it at its natural size in a dialog that scrolls both
    // ways. Everything stays in the page: it works offline.
    const LEGIBLE_PX = 12;
    function smallestText(svg) {
        let size = Infinity;
        svg.querySelectorAll("text, foreignObject div, foreignObject span").forEach((t) => {
            if (t.textContent.trim()) size = Math.min(size, parseFloat(getComputedStyle(t).fontSize));
        });
        return size === Infinity ? 16 : size;
    }
    function naturalWidth(svg) {
        return (svg.viewBox && svg.viewBox.baseVal && svg.viewBox.baseVal.width) || 0;
    }
    let viewer = null;
    function openDiagram(svg) {
        if (!viewer) {
            viewer = document.createElement("dialog");
            viewer.className = "diagram-viewer";
            viewer.innerHTML =
                '<div class="diagram-viewer-bar"><span>The diagram at full size: scroll to see all of it.</span>' +
                '<button type="button">Close</button></div><div class="diagram-viewer-body"></div>';
            viewer.querySelector("button").addEventListener("click", () => viewer.close());
            viewer.addEventListener("close", () => viewer.querySelector(".diagram-viewer-body").replaceChildren());
            document.body.appendChild(viewer);
        }
        const copy = svg.cloneNode(true);
        copy.removeAttribute("width");
        copy.removeAttribute("height");
        copy.style.maxWidth = "none";
        copy.style.width = `${naturalWidth(svg)}px`;
        viewer.querySelector(".diagram-viewer-body").replaceChildren(copy);
        viewer.showModal();
        viewer.querySelector("button").focus();
    }
    function watchDiagram(pre) {
        let button = null;
        const update = () => {
            const svg = pre.querySelector(":scope > svg");
            const natural = svg && naturalWidth(svg);
            if (!natural) return;
            const drawn = svg.getBoundingClientRect().width;
            const small = drawn > 0 && (smallestText(svg) * drawn) / natural < LEGIBLE_PX;
            pre.classList.toggle("diagram-shrunk", small);
            if (small && !button) {
                button = document.createElement("button");
                button.type = "button";
                button.className = "diagram-open";
                button.textContent = "Open the diagram full size";
                button.addEventListener("click", (event) => {
                    event.stopPropagation();
                    openDiagram(pre.querySelector(":scope > svg"));
                });
                pre.after(button);
            }
            if (button) button.hidden = !small;
        };
        pre.addEventListener("click", () => {
            const svg = pre.querySelector(":scope > svg");
            if (svg && pre.classList.contains("diagram-shrunk")) openDiagram(svg);
        });
        // mermaid draws the SVG after the page has loaded.
        new MutationObserver(update).observe(pre, { childList: true });
        new ResizeObserver(update).observe(pre);
        update();
    }

    const main = document.querySelector("main");
    if (!main) return;
    main.querySelectorAll("pre > code").forEach((code) => {
        splitLines(code);
        watchScrolling(code);
    });
    main.querySelectorAll(".table-wrapper").forEach((wrapper) => {
        const frame = document.createElement("div");
        frame.className = "table-frame";
        wrapper.before(frame);
        frame.appendChild(wrapper);
        watchScrolling(wrapper);
    });
    main.querySelectorAll("pre.mermaid").forEach(watchDiagram);
})();
