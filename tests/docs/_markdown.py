"""Reading the docs: fenced shell blocks, links and heading anchors (GitHub's rules)."""

from __future__ import annotations

import re
import shlex
import unicodedata
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
SHELL_LANGUAGES = ("sh", "bash", "shell")
NOT_RUN = "# not run in tests"
EXITS = re.compile(r"#\s*exits\s+(\d+)\s*$")
SHELL_OPERATORS = ("|", "||", "&&", ";", ">", ">>", "<", "2>&1")


def doc_files() -> list[Path]:
    """README.md and every Markdown file under docs/."""
    return [ROOT / "README.md", *sorted(DOCS.rglob("*.md"))]


def rel(path: Path) -> str:
    return str(path.relative_to(ROOT)) if ROOT in path.parents else str(path)


@dataclass(frozen=True)
class Example:
    """One ``powerbridge …`` line of a shell block."""

    path: Path
    line: int
    text: str
    argv: list[str]
    """Arguments after ``powerbridge`` (shell operators and comments cut off)."""
    runnable: bool
    """Starts with ``powerbridge`` itself (not ``sudo``, a path or an env assignment)."""
    marked: bool
    """Carries the comment ``# not run in tests`` (a reason may follow it)."""
    exit_code: int

    def where(self) -> str:
        return f"{rel(self.path)}:{self.line}: {self.text}"


def shell_blocks(path: Path) -> list[tuple[int, list[str]]]:
    """(first line number, lines) of every fenced ```sh block, continuation lines joined."""
    blocks: list[tuple[int, list[str]]] = []
    lines = path.read_text(encoding="utf-8").splitlines()
    i = 0
    while i < len(lines):
        fence = re.match(r"^(\s*)(`{3,}|~{3,})\s*([\w+-]*)", lines[i])
        if not fence:
            i += 1
            continue
        marker, language = fence.group(2), fence.group(3).lower()
        start = i + 1
        body: list[str] = []
        i += 1
        while i < len(lines) and not lines[i].strip().startswith(marker):
            body.append(lines[i])
            i += 1
        i += 1
        if language in SHELL_LANGUAGES:
            blocks.append((start + 1, _join_continuations(body)))
    return blocks


def _join_continuations(body: list[str]) -> list[str]:
    out: list[str] = []
    pending = ""
    for raw in body:
        if raw.rstrip().endswith("\\"):
            pending += raw.rstrip()[:-1] + " "
            out.append("")  # keep line numbers: the joined line is reported at its end
            continue
        out.append(pending + raw)
        pending = ""
    return out


def examples(path: Path) -> list[Example]:
    found: list[Example] = []
    for first, lines in shell_blocks(path):
        for offset, raw in enumerate(lines):
            text = raw.strip()
            if not text or text.startswith("#"):
                continue
            try:
                words = shlex.split(text, comments=True)
            except ValueError:
                continue
            runnable = bool(words) and words[0] == "powerbridge"
            argv = _powerbridge_argv(words)
            if argv is None:
                continue
            code = EXITS.search(text)
            found.append(
                Example(
                    path=path,
                    line=first + offset,
                    text=text,
                    argv=argv,
                    runnable=runnable,
                    marked=NOT_RUN in text,
                    exit_code=int(code.group(1)) if code else 0,
                )
            )
    return found


def _powerbridge_argv(words: list[str]) -> list[str] | None:
    """The arguments of the ``powerbridge`` command on a line, if it runs one."""
    i = 0
    while i < len(words):
        word = words[i]
        if word == "sudo":
            i += 1
            while i < len(words) and words[i].startswith("-"):
                i += 2 if words[i] in ("-u", "-g") else 1
            continue
        if re.match(r"^[A-Z_][A-Z0-9_]*=", word):  # VAR=value before the command
            i += 1
            continue
        break
    if i >= len(words) or Path(words[i]).name != "powerbridge":
        return None
    argv: list[str] = []
    for word in words[i + 1 :]:
        if word in SHELL_OPERATORS:
            break
        argv.append(word)
    return argv


# --------------------------------------------------------------------------- links

LINK = re.compile(r"!?\[(?:[^\]\[]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
REFERENCE = re.compile(r"^\s*\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+\"[^\"]*\")?\s*$")
HTML_ATTR = re.compile(r"""(?:href|src)\s*=\s*["']([^"']+)["']""")


def strip_code(text: str, *, keep_inline: bool = False) -> list[tuple[int, str]]:
    """Lines outside fenced blocks (inline code spans removed unless ``keep_inline``)."""
    out: list[tuple[int, str]] = []
    fence: str | None = None
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        match = re.match(r"^(`{3,}|~{3,})", stripped)
        if fence is None and match:
            fence = match.group(1)
            continue
        if fence is not None:
            if stripped.startswith(fence):
                fence = None
            continue
        out.append((number, line if keep_inline else re.sub(r"(`+)(?:(?!\1).)+?\1", "", line)))
    return out


def links(path: Path) -> list[tuple[int, str]]:
    found: list[tuple[int, str]] = []
    for number, line in strip_code(path.read_text(encoding="utf-8")):
        for pattern in (LINK, HTML_ATTR):
            found += [(number, m.group(1)) for m in pattern.finditer(line)]
        ref = REFERENCE.match(line)
        if ref:
            found.append((number, ref.group(1)))
    return found


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # links → their text
    text = text.replace("`", "").strip().lower()
    kept = []
    for char in text:
        category = unicodedata.category(char)
        if char in " -_" or category[0] in ("L", "N") or category == "Mn":
            kept.append(char)
    return "".join(kept).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    seen: dict[str, int] = {}
    out: set[str] = set()
    for _number, line in strip_code(path.read_text(encoding="utf-8"), keep_inline=True):
        match = re.match(r"^\s{0,3}(#{1,6})\s+(.*?)\s*#*\s*$", line)
        if not match:
            continue
        base = slug(match.group(2))
        count = seen.get(base, 0)
        seen[base] = count + 1
        out.add(base if count == 0 else f"{base}-{count}")
    return out


# --------------------------------------------------------------------------- system tier

SYSTEM_MARKER = re.compile(r"^\s*<!--\s*system-tier:\s*(.*?)\s*-->\s*$")
"""``<!-- system-tier: run -->``, ``<!-- system-tier: run on pc -->`` or
``<!-- system-tier: skip: REASON -->`` on the line before a ```sh block."""


@dataclass(frozen=True)
class GuideBlock:
    """One ```sh block of a guide, with its system-tier marker."""

    path: Path
    line: int
    """Line number of the opening fence."""
    script: str
    """The block's text exactly as in the page (continuations and heredocs intact)."""
    run: bool
    host: str
    """The machine it runs on (``run on NAME``), empty for the guide's default."""
    reason: str
    """Why it is not run (``skip: REASON``); empty when run."""

    def where(self) -> str:
        return f"{rel(self.path)}:{self.line}"


class MarkerError(ValueError):
    """A guide's marker is missing, malformed or not followed by a shell block."""


def guide_blocks(path: Path) -> list[GuideBlock]:
    """Every ```sh block of ``path`` with its marker; :class:`MarkerError` for any block
    without one (nothing is left out silently) and for a marker that marks nothing."""
    lines = path.read_text(encoding="utf-8").splitlines()
    blocks: list[GuideBlock] = []
    problems: list[str] = []
    pending: tuple[int, str] | None = None
    i = 0
    while i < len(lines):
        marker = SYSTEM_MARKER.match(lines[i])
        if marker:
            if pending is not None:
                problems.append(f"{rel(path)}:{pending[0]}: marker not followed by a sh block")
            pending = (i + 1, marker.group(1))
            i += 1
            continue
        fence = re.match(r"^(\s*)(`{3,}|~{3,})\s*([\w+-]*)", lines[i])
        if not fence:
            if lines[i].strip() and pending is not None:
                problems.append(f"{rel(path)}:{pending[0]}: marker not followed by a sh block")
                pending = None
            i += 1
            continue
        fence_line, marker_text, language = i + 1, pending, fence.group(3).lower()
        pending = None
        body: list[str] = []
        i += 1
        while i < len(lines) and not lines[i].strip().startswith(fence.group(2)):
            body.append(lines[i])
            i += 1
        i += 1
        if language not in SHELL_LANGUAGES:
            if marker_text is not None:
                problems.append(f"{rel(path)}:{marker_text[0]}: marker before a {language!r} block")
            continue
        if marker_text is None:
            problems.append(
                f"{rel(path)}:{fence_line}: sh block without a <!-- system-tier: … --> marker"
            )
            continue
        parsed = _parse_marker(marker_text[1])
        if parsed is None:
            problems.append(f"{rel(path)}:{marker_text[0]}: cannot read marker {marker_text[1]!r}")
            continue
        run, host, reason = parsed
        blocks.append(GuideBlock(path, fence_line, "\n".join(body) + "\n", run, host, reason))
    if pending is not None:
        problems.append(f"{rel(path)}:{pending[0]}: marker not followed by a sh block")
    if problems:
        raise MarkerError("\n".join(problems))
    return blocks


def _parse_marker(text: str) -> tuple[bool, str, str] | None:
    run = re.fullmatch(r"run(?:\s+on\s+([\w-]+))?", text)
    if run:
        return True, run.group(1) or "", ""
    skip = re.fullmatch(r"skip:\s*(\S.*)", text)
    if skip:
        return False, "", skip.group(1)
    return None
