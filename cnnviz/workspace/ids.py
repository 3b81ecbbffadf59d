"""Workspace ids: unguessable, and checked before they reach the database.

A workspace is found again only by its id in the address bar (``?ws=…``), so the id is the
only key to a visitor's work: 24 random bytes from :mod:`secrets` (192 bits, more than the
128 the issue asks for), written URL-safe in 32 characters. Anything else in ``?ws=`` (too
short, too long, other characters) is not an id and opens nothing.

Examples
--------
>>> ws = new_id()
>>> len(ws), is_valid(ws)
(32, True)
>>> is_valid("1234"), is_valid("../../etc/passwd"), is_valid(None)
(False, False, False)
"""

from __future__ import annotations

import re
import secrets

__all__ = ["ID_BYTES", "new_id", "is_valid"]

#: Random bytes per id: 192 bits, so guessing one is hopeless even for billions of workspaces.
ID_BYTES = 24
_ID = re.compile(r"[A-Za-z0-9_-]{32}")


def new_id() -> str:
    """A fresh workspace id (32 URL-safe characters)."""
    return secrets.token_urlsafe(ID_BYTES)


def is_valid(text: object) -> bool:
    """Whether ``text`` has the form of an id :func:`new_id` makes (it may still name no workspace)."""
    return isinstance(text, str) and _ID.fullmatch(text) is not None
