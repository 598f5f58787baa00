"""@mentions in a text: the posts service records them with a micropost, and the notifications
read model finds them in comments the same way, so both use this one definition."""

from __future__ import annotations

import re

from .errors import InvalidArgument

MAX_MENTIONS = 20
# @handle: employee ids ([A-Za-z0-9._-]), not preceded by a word character (e-mail addresses).
_MENTION = re.compile(r"(?<![\w@])@([A-Za-z0-9][A-Za-z0-9._-]{0,63})")


def parse_mentions(value: str) -> list[str]:
    found = list(dict.fromkeys(_MENTION.findall(value)))
    if len(found) > MAX_MENTIONS:
        raise InvalidArgument(f"at most {MAX_MENTIONS} distinct @mentions", field="text")
    return found
