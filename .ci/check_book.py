#!/usr/bin/env python3
"""Check the built book in a real browser: every page loads, every image exists, no output shows a traceback or
stderr, every internal link (and #anchor) resolves. Screenshots of the pages go to ``_build/screenshots``.

Usage: ``python .ci/check_book.py [_build/html] [--screenshots DIR] [--max-screenshots N]``. Exit status 1 when a
problem is found (each printed on one line), 0 otherwise.

How: the site is served on 127.0.0.1 (random free port, ``http.server`` in a thread); headless Chromium renders
each page (``--dump-dom``, after scripts ran) and the rendered DOM is parsed with ``html.parser``. Images and
internal links are then requested from the local server. Links to other hosts are not followed (CI is offline).
Standard library only, plus a ``chromium`` binary (Debian: ``apt-get install -y chromium``).
"""

from __future__ import annotations

import argparse
import functools
import http.server
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Iterable, Iterator

CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--hide-scrollbars",
    "--mute-audio",
)
# Folders of a Sphinx build that hold assets, not pages.
SKIP_DIRS = {"_static", "_sources", "_images", "_sphinx_design_static", ".doctrees", "_panels_static"}
# Text that means an executed cell failed.
TRACEBACK_MARKERS = ("Traceback (most recent call last)",)
# TeX delimiters left in the visible text: MathJax did not typeset the formula (not loaded, e.g. offline with a CDN).
RAW_TEX = re.compile(r"\\\(|\\\[|\$\$")


@dataclass(frozen=True)
class Problem:
    page: str
    kind: str  # "load", "image", "link", "anchor", "traceback", "stderr", "tex"
    detail: str

    def __str__(self) -> str:
        return f"{self.page}: {self.kind}: {self.detail}"


@dataclass
class PageDom:
    """What the checker needs from one rendered page."""

    images: list[str] = field(default_factory=list)
    links: list[str] = field(default_factory=list)
    refresh: str | None = None  # target of a <meta http-equiv="refresh"> redirect page
    ids: set[str] = field(default_factory=set)
    traceback_outputs: int = 0
    stderr_outputs: int = 0
    text_markers: list[str] = field(default_factory=list)
    raw_tex: list[str] = field(default_factory=list)  # formulas MathJax did not render (shown as TeX source)


class _DomParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.dom = PageDom()
        self._skip_text = 0  # inside <script>/<style>
        self._code = 0  # inside <pre>/<code>: TeX there is code, not a formula
        self._math: list[str | int] = []  # [tag, depth] while inside an element of class "math"

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: (v or "") for k, v in attrs}
        if "id" in a:
            self.dom.ids.add(a["id"])
        if tag == "a" and "name" in a:
            self.dom.ids.add(a["name"])
        if tag == "meta" and a.get("http-equiv", "").lower() == "refresh" and "url=" in a.get("content", "").lower():
            content = a["content"]
            self.dom.refresh = content[content.lower().index("url=") + 4 :].strip().strip("'\"")
        if tag == "img" and "src" in a:
            self.dom.images.append(a["src"])
        if tag == "a" and a.get("href"):
            self.dom.links.append(a["href"])
        classes = set(a.get("class", "").split())
        if "output" in classes and "traceback" in classes:
            self.dom.traceback_outputs += 1
        if "output" in classes and "stderr" in classes:
            self.dom.stderr_outputs += 1
        if tag in ("script", "style"):
            self._skip_text += 1
        if tag in ("pre", "code"):
            self._code += 1
        if self._math and tag == self._math[0]:
            self._math[1] += 1
        elif not self._math and "math" in classes:
            self._math = [tag, 1]

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style") and self._skip_text:
            self._skip_text -= 1
        if tag in ("pre", "code") and self._code:
            self._code -= 1
        if self._math and tag == self._math[0]:
            self._math[1] -= 1
            if self._math[1] == 0:
                self._math = []

    def handle_data(self, data: str) -> None:
        if self._skip_text:
            return
        for marker in TRACEBACK_MARKERS:
            if marker in data:
                self.dom.text_markers.append(marker)
        if not self._code and (RAW_TEX.search(data) or (self._math and "\\" in data)):
            self.dom.raw_tex.append(data.strip()[:60])


def parse_dom(html: str) -> PageDom:
    """Images, links, element ids and failure markers of a rendered page."""
    parser = _DomParser()
    parser.feed(html)
    parser.close()
    return parser.dom


def content_problems(page: str, dom: PageDom) -> list[Problem]:
    """Problems visible in the page itself: failed cells and stderr output."""
    out = []
    if dom.traceback_outputs or dom.text_markers:
        out.append(Problem(page, "traceback", f"{max(dom.traceback_outputs, len(dom.text_markers))} output(s) show an error"))
    if dom.stderr_outputs:
        out.append(Problem(page, "stderr", f"{dom.stderr_outputs} output(s) written to stderr"))
    if dom.raw_tex:
        out.append(Problem(page, "tex", f"{len(dom.raw_tex)} formula(s) shown as raw TeX, e.g. {dom.raw_tex[0]!r}"))
    return out


def find_pages(root: Path) -> list[str]:
    """HTML pages of the site, as paths relative to ``root`` (asset folders skipped)."""
    pages = []
    for path in sorted(root.rglob("*.html")):
        rel = path.relative_to(root)
        if SKIP_DIRS.intersection(rel.parts[:-1]):
            continue
        pages.append(rel.as_posix())
    return pages


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args) -> None:  # noqa: A002 - signature from the base class
        pass


class _QuietServer(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address) -> None:
        """The browser closing a connection early (BrokenPipe, reset) is normal; anything else is reported."""
        if not isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
            super().handle_error(request, client_address)


class LocalServer:
    """Serve ``root`` on 127.0.0.1 at a free port in a background thread (a context manager)."""

    def __init__(self, root: Path) -> None:
        handler = functools.partial(_QuietHandler, directory=str(root))
        self.httpd = _QuietServer(("127.0.0.1", 0), handler)
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}/"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> "LocalServer":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def find_chromium() -> str | None:
    """The Chromium binary: ``$CHROMIUM`` or the first of chromium, chromium-browser, google-chrome on PATH."""
    env = os.environ.get("CHROMIUM")
    if env:
        return env
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        found = shutil.which(name)
        if found:
            return found
    return None


class Browser:
    """Headless Chromium, one process per call, with a fresh empty profile folder per checker run."""

    def __init__(self, binary: str, timeout: float = 90.0) -> None:
        self.binary = binary
        self.timeout = timeout
        self._profile = tempfile.TemporaryDirectory(prefix="check-book-chromium-")

    def _run(self, extra: list[str], url: str) -> subprocess.CompletedProcess:
        cmd = [self.binary, *CHROMIUM_FLAGS, f"--user-data-dir={self._profile.name}", *extra, url]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=self.timeout)

    def dump_dom(self, url: str) -> str:
        """The DOM after the page's scripts ran; raises RuntimeError when Chromium fails."""
        proc = self._run(["--virtual-time-budget=3000", "--dump-dom"], url)
        if proc.returncode != 0 or "<html" not in proc.stdout.lower():
            raise RuntimeError(f"chromium exit {proc.returncode}: {proc.stderr.strip()[-300:]}")
        return proc.stdout

    def screenshot(self, url: str, target: Path, size: str = "1280,2000") -> bool:
        target.parent.mkdir(parents=True, exist_ok=True)
        proc = self._run([f"--screenshot={target}", f"--window-size={size}", "--virtual-time-budget=3000"], url)
        return proc.returncode == 0 and target.exists()

    def close(self) -> None:
        self._profile.cleanup()


def http_status(url: str, timeout: float = 10.0) -> int:
    """HTTP status of ``url`` (0 when the server cannot be reached)."""
    try:
        with urllib.request.urlopen(urllib.request.Request(url, method="GET"), timeout=timeout) as resp:
            return resp.status
    except urllib.error.HTTPError as err:
        return err.code
    except (urllib.error.URLError, OSError):
        return 0


def internal_target(base: str, page_url: str, ref: str) -> tuple[str, str] | None:
    """``(absolute url without fragment, fragment)`` for a link into the local site, ``None`` for other hosts and
    non-HTTP schemes (mailto:, javascript:, data:)."""
    ref = ref.strip()
    if not ref or ref.startswith(("mailto:", "javascript:", "data:", "tel:")):
        return None
    absolute = urllib.parse.urljoin(page_url, ref)
    if not absolute.startswith(base):
        return None
    url, _, fragment = absolute.partition("#")
    return url, urllib.parse.unquote(fragment)


def check_site(
    root: Path,
    browser: Browser,
    screenshots: Path | None = None,
    max_screenshots: int = 40,
    pages: Iterable[str] | None = None,
    progress: bool = True,
) -> list[Problem]:
    """Render every page of the site at ``root`` and return the problems found (empty list: all good)."""
    root = Path(root)
    page_list = list(pages) if pages is not None else find_pages(root)
    problems: list[Problem] = []
    doms: dict[str, PageDom] = {}
    with LocalServer(root) as server:
        for i, page in enumerate(page_list):
            url = server.base + page
            if progress:
                print(f"[{i + 1}/{len(page_list)}] {page}", file=sys.stderr)
            status = http_status(url)
            if status != 200:
                problems.append(Problem(page, "load", f"HTTP {status}"))
                continue
            static = parse_dom((root / page).read_text(encoding="utf-8", errors="replace"))
            if static.refresh is not None:  # a redirect page (e.g. index.html): check its target, render nothing
                doms[url] = PageDom(links=[static.refresh])
                continue
            try:
                dom = parse_dom(browser.dump_dom(url))
            except (RuntimeError, subprocess.TimeoutExpired) as err:
                problems.append(Problem(page, "load", f"the browser could not render it ({err})"))
                continue
            doms[url] = dom
            problems.extend(content_problems(page, dom))
            if screenshots is not None and i < max_screenshots:
                shot = screenshots / (page.replace("/", "__").removesuffix(".html") + ".png")
                if not browser.screenshot(url, shot):
                    problems.append(Problem(page, "load", "screenshot failed"))
        problems.extend(_check_references(server.base, doms, root))
    return problems


def _check_references(base: str, doms: dict[str, PageDom], root: Path) -> Iterator[Problem]:
    statuses: dict[str, int] = {}
    target_ids: dict[str, set[str] | None] = {}

    def status(url: str) -> int:
        if url not in statuses:
            statuses[url] = http_status(url)
        return statuses[url]

    def ids_of(url: str) -> set[str] | None:
        if url not in target_ids:
            if url in doms:
                target_ids[url] = doms[url].ids
            elif url.endswith(".html"):
                path = root / urllib.parse.unquote(url[len(base):])
                target_ids[url] = parse_dom(path.read_text(encoding="utf-8", errors="replace")).ids if path.is_file() else None
            else:
                target_ids[url] = None  # not an HTML page: anchors are not checked
        return target_ids[url]

    for page_url, dom in doms.items():
        page = page_url[len(base):]
        dom.images = list(dict.fromkeys(dom.images))  # report each broken reference once per page
        dom.links = list(dict.fromkeys(dom.links))
        for src in dom.images:
            if src.startswith("data:"):
                if "," not in src or not src.split(",", 1)[1].strip():
                    yield Problem(page, "image", "empty inline image")
                continue
            target = internal_target(base, page_url, src)
            if target and status(target[0]) != 200:
                yield Problem(page, "image", f"{src} (HTTP {status(target[0])})")
        for href in dom.links:
            target = internal_target(base, page_url, href)
            if target is None:
                continue
            url, fragment = target
            if status(url) != 200:
                yield Problem(page, "link", f"{href} (HTTP {status(url)})")
            elif fragment:
                ids = ids_of(url)
                if ids is not None and fragment not in ids:
                    yield Problem(page, "anchor", f"{href} (no element with id {fragment!r})")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("site", nargs="?", default="_build/html", help="the built site (default: _build/html)")
    parser.add_argument("--screenshots", default=None, help="screenshot folder (default: <site>/../screenshots)")
    parser.add_argument("--max-screenshots", type=int, default=40)
    parser.add_argument("--no-screenshots", action="store_true")
    args = parser.parse_args(argv)
    root = Path(args.site)
    if not (root / "index.html").is_file() and not find_pages(root):
        print(f"check_book: no HTML pages under {root} (build the book first)", file=sys.stderr)
        return 1
    binary = find_chromium()
    if binary is None:
        print("check_book: no chromium binary found (apt-get install -y chromium, or set CHROMIUM)", file=sys.stderr)
        return 1
    shots = None if args.no_screenshots else Path(args.screenshots) if args.screenshots else root.parent / "screenshots"
    browser = Browser(binary)
    try:
        problems = check_site(root, browser, shots, args.max_screenshots)
    finally:
        browser.close()
    for problem in problems:
        print(problem)
    n_pages = len(find_pages(root))
    print(f"check_book: {n_pages} pages, {len(problems)} problem(s)" + (f"; screenshots in {shots}" if shots else ""))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
