"""Error messages meant for a person: one line, bounded (a failure never prints a line of tens of
thousands of characters; where the whole text matters it is written to a file the line names)."""
from __future__ import annotations

ERROR_LINE_LIMIT = 600


def clip_line(text: str, limit: int = ERROR_LINE_LIMIT) -> str:
    """`text` on one line, cut to `limit` characters with what was cut said at the end."""
    line = " ".join(text.split())
    if len(line) <= limit:
        return line
    tail = f" ... [{len(line) - limit} more characters]"
    return line[:max(0, limit - len(tail))] + tail
