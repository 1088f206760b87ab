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
    return str(path.relative_to(ROOT))


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
