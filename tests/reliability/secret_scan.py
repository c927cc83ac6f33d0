"""A small secret scanner: AWS keys, private keys and hard-coded passwords in the repository, the
template and the Dockerfiles. `python tests/reliability/secret_scan.py [PATH...]` exits 1 on a finding.

Allowed: the obviously-dummy credentials tests hand to moto (`testing`, `fake`, `dummy`, ...),
AWS's documented example keys, and values that are not literals (variables, `${...}`, `{{resolve:...}}`).
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

PATTERNS: dict[str, re.Pattern[str]] = {
    "aws-access-key-id": re.compile(r"\b(?:AKIA|ASIA|AGPA|AIDA|AROA|ANPA)[0-9A-Z]{16}\b"),
    "aws-secret-access-key": re.compile(
        r"(?i)aws_?secret_?access_?key['\"]?\s*[:=]\s*['\"]?([A-Za-z0-9/+=]{40})(?![A-Za-z0-9/+=])"
    ),
    "private-key": re.compile(r"-----BEGIN (?:RSA |EC |DSA |OPENSSH |ENCRYPTED |PGP )?PRIVATE KEY( BLOCK)?-----"),
    "password-literal": re.compile(
        r"(?i)\b(?:password|passwd|pwd|secret|token)\b['\"]?\s*[:=]\s*['\"]([^'\"\s$%{}<>()]{6,})['\"]"
    ),
    "url-credentials": re.compile(r"\b[a-z][a-z0-9+.-]*://[^/\s:@'\"]+:([^/\s:@'\"]{6,})@[^\s'\"]+"),
}

# Obviously-dummy values (moto accepts any key; tests use these on purpose).
DUMMY = re.compile(
    r"(?i)^(testing|test|tests?[-_a-z0-9]*|fake[-_a-z0-9]*|dummy[-_a-z0-9]*|example[-_a-z0-9]*|moto[-_a-z0-9]*|"
    r"x{6,}|\*{6,}|changeme|wrong[-_a-z0-9]*|not[-_a-z0-9]*|bad[-_a-z0-9]*|secret[-_a-z0-9]*|password[-_a-z0-9]*|"
    r"hunter2|s3cr3t|foobar[-_a-z0-9]*|placeholder|redacted|none|null)$"
)
AWS_EXAMPLE_KEYS = {"AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"}
SKIP_SUFFIXES = {".h5", ".npz", ".png", ".nc", ".gz", ".zip", ".whl", ".pyc", ".so", ".tar", ".jpg", ".pdf"}
MAX_BYTES = 2_000_000


@dataclass(frozen=True)
class Finding:
    where: str
    line: int
    kind: str
    excerpt: str

    def __str__(self) -> str:
        return f"{self.where}:{self.line}: {self.kind}: {self.excerpt}"


def _allowed(kind: str, match: re.Match[str]) -> bool:
    value = match.group(1) if match.groups() and match.group(1) else match.group(0)
    if value in AWS_EXAMPLE_KEYS or match.group(0) in AWS_EXAMPLE_KEYS:
        return True
    if kind in ("password-literal", "url-credentials", "aws-secret-access-key"):
        return bool(DUMMY.match(value))
    return False


def scan_text(text: str, where: str) -> Iterator[Finding]:
    for number, line in enumerate(text.splitlines(), start=1):
        for kind, pattern in PATTERNS.items():
            for match in pattern.finditer(line):
                if not _allowed(kind, match):
                    excerpt = line.strip()
                    yield Finding(where, number, kind, excerpt[:160])


def repository_files(root: Path = ROOT) -> list[Path]:
    """Tracked files plus untracked ones git does not ignore (what a commit could pick up)."""
    out = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=root,
        capture_output=True,
        check=True,
    ).stdout.decode()
    return [root / p for p in out.split("\0") if p]


def scan_paths(paths: Iterable[Path], root: Path = ROOT) -> list[Finding]:
    findings: list[Finding] = []
    for path in paths:
        if path.suffix in SKIP_SUFFIXES or not path.is_file() or path.stat().st_size > MAX_BYTES:
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue
        where = str(path.relative_to(root)) if path.is_relative_to(root) else str(path)
        findings.extend(scan_text(text, where))
    return findings


if __name__ == "__main__":
    targets = [Path(a).resolve() for a in sys.argv[1:]] or repository_files()
    found = scan_paths(targets)
    for f in found:
        print(f)
    sys.exit(1 if found else 0)
