"""The commands a document gives a reader: its ```shell blocks, line by line."""

from __future__ import annotations

import re
from pathlib import Path

BLOCK = re.compile(r"^```shell\n(.*?)^```", re.M | re.S)


def shell_lines(document: Path) -> list[str]:
    """Every non-blank line of the document's ```shell blocks, in order, stripped."""
    lines = []
    for block in BLOCK.findall(document.read_text()):
        lines.extend(line.strip() for line in block.splitlines() if line.strip())
    return lines
