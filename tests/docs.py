"""The documentation that tests run as written: README.md and docs/*.md."""

from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def doc(path: str) -> str:
    """The text of a document, by its path in the repository."""
    return (REPO / path).read_text()


def section(path: str, heading: str) -> str:
    """From `heading` (a whole line) to the next heading of its level or
    above, outside code blocks (where "# prints: …" is a comment)."""
    lines = doc(path).split("\n")
    start = lines.index(heading)
    level = len(heading) - len(heading.lstrip("#"))
    fenced = False
    for n in range(start + 1, len(lines)):
        line = lines[n]
        if line.startswith("```"):
            fenced = not fenced
        hashes = len(line) - len(line.lstrip("#"))
        if not fenced and 0 < hashes <= level and line[hashes : hashes + 1] == " ":
            return "\n".join(lines[start:n]) + "\n"
    return "\n".join(lines[start:]) + "\n"
