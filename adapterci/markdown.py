"""Inert Markdown for text that comes from data rows (PR comments and step summaries).

GitHub renders a comment's Markdown and HTML, turns `@name` into a notification and URLs into links: a data row
could ping a team, add an image or imitate a report heading. `cell` makes such text plain inside a table cell,
`code` shows it verbatim as a code span."""

from __future__ import annotations

import html
import re
from typing import Any

_URL = re.compile(r"(?i)\b(https?|ftp)://|\bwww\.")


def cell(text: Any) -> str:
    """Text as plain words in a table cell: HTML escaped, link and image brackets escaped, a zero-width space
    after every `@` (no mentions) and inside URLs (no autolinks), no line breaks (nothing starts a heading)."""
    text = html.escape(" ".join(str(text).split()), quote=False)
    text = re.sub(r"([\\\[\]|])", r"\\\1", text)
    text = text.replace("@", "@\u200b")
    return _URL.sub(lambda m: m.group(0).replace(".", "\u200b.").replace(":", ":\u200b"), text)


def code(text: Any) -> str:
    """Text as an inline code span in a table cell (inert by construction; backticks and pipes replaced)."""
    return "`" + " ".join(str(text).split()).replace("`", "'").replace("|", "\\|") + "`"


def short(text: Any, width: int) -> str:
    """`text` on one line, cut to `width` characters with an ellipsis ("" for None)."""
    text = "" if text is None else " ".join(str(text).split())
    return text if len(text) <= width else text[:width - 1] + "…"


def tail(text: Any, width: int) -> str:
    """The end of `text` on one line, at most `width` characters (where a shared instruction is followed by what
    differs, as in a prompt)."""
    text = " ".join(str(text).split())
    return text if len(text) <= width else "…" + text[-(width - 1):]
