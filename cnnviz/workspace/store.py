"""Where a visitor's workspace is kept: one small interface, two databases.

A workspace is a set of *items*, each ``(kind, key) → bytes`` (``("image", <pixel hash>)``,
``("model", <name>)``, ``("settings", "all")``, …), under one unguessable id
(:mod:`cnnviz.workspace.ids`). :class:`Store` is the whole interface; two backends implement it
with the same SQL:

- :class:`SQLiteStore` (the default): the standard library's :mod:`sqlite3` in WAL mode, one
  file ``workspaces.sqlite3`` in ``$CNNVIZ_DATA_DIR`` (default ``~/.cnnviz``). Several app
  processes on one machine can share the file.
- :class:`PostgresStore`: ``$CNNVIZ_DATABASE_URL`` (``postgresql://…``), with psycopg 3, so
  app processes on several machines (or behind a load balancer without sticky sessions)
  share workspaces.

Rules every backend keeps (the same tests run against both):

- **Atomic.** :meth:`Store.write` puts and deletes many items in one transaction: a crash
  mid-write leaves the workspace as it was before that write.
- **Nothing without the id.** Every call checks the id's form first; a wrong or guessed id
  reads nothing, and writing to a workspace that does not exist (deleted, expired) raises
  :class:`WorkspaceGone` instead of bringing it back.
- **Limits.** A workspace expires ``expiry`` seconds after its last use
  (``$CNNVIZ_WORKSPACE_HOURS``, default 168 = 7 days); a write that would make one workspace
  larger than ``$CNNVIZ_WORKSPACE_MAX_MB`` (default 500) is refused; when the whole store
  would pass ``$CNNVIZ_STORE_MAX_MB`` (default 20 000), the workspaces unused the longest
  (so the expired ones first) are deleted to make room, never the one being written.
- **Never a crash.** A full disk, a refused write or a lost database connection raises
  :class:`StoreError`, whose ``str()`` is one sentence for the visitor. A damaged or truncated
  SQLite file is moved aside (``workspaces.sqlite3.damaged-<time>``) and a fresh store
  started; :attr:`Store.notice` then holds the sentence that says so.

Never imports Streamlit or TensorFlow.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

from cnnviz.workspace import ids

__all__ = [
    "Limits",
    "StoreError",
    "StoreFull",
    "WorkspaceGone",
    "Store",
    "SQLiteStore",
    "PostgresStore",
    "workspaces_enabled",
    "open_store",
    "DISK_FULL",
    "DAMAGED",
]

DISK_FULL = (
    "This server has no room left to save your work, so what you did just now is kept only in this "
    "tab until you close or reload it."
)
DAMAGED = (
    "The server's store of workspaces was damaged, so a fresh one was started: work saved there "
    "before is gone, what you do from now on is saved again."
)
UNREACHABLE = (
    "The server could not reach its store of workspaces, so what you did just now is kept only in this tab for now."
)
GONE = (
    "This workspace was deleted or has expired, so what you do in this tab is no longer saved; "
    "reload the page to start a new workspace."
)

#: How often (seconds) a store deletes expired workspaces while it is being used.
EXPIRE_EVERY = 600.0


class StoreError(Exception):
    """The store could not do what was asked; ``str()`` is one sentence for the visitor."""


class StoreFull(StoreError):
    """A write was refused: the disk, the workspace's cap or the store's cap is full."""


class WorkspaceGone(StoreError):
    """The workspace written to does not exist (any more): deleted, expired, or never made."""


@dataclass(frozen=True)
class Limits:
    """``expiry`` seconds since last use; ``workspace_bytes`` per workspace; ``store_bytes`` for all."""

    expiry: float = 7 * 24 * 3600.0
    workspace_bytes: int = 500 * 1024 * 1024
    store_bytes: int = 20_000 * 1024 * 1024

    @classmethod
    def from_env(cls) -> "Limits":
        """Limits a server sets: ``CNNVIZ_WORKSPACE_HOURS`` (may be a fraction), ``CNNVIZ_WORKSPACE_MAX_MB``,
        ``CNNVIZ_STORE_MAX_MB``; a value that is not a positive number is ignored."""
        default = cls()

        def number(name: str, fallback: float) -> float:
            try:
                value = float(os.environ.get(name, ""))
            except ValueError:
                return fallback
            return value if value > 0 and value != float("inf") else fallback

        return cls(
            expiry=number("CNNVIZ_WORKSPACE_HOURS", default.expiry / 3600) * 3600,
            workspace_bytes=int(number("CNNVIZ_WORKSPACE_MAX_MB", default.workspace_bytes / 2**20) * 2**20),
            store_bytes=int(number("CNNVIZ_STORE_MAX_MB", default.store_bytes / 2**20) * 2**20),
        )


def _mb(n: int) -> str:
    mb = n / 2**20
    return f"{mb:,.0f} MB" if mb >= 10 else f"{mb:.2g} MB"


_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS workspaces (id TEXT PRIMARY KEY, created DOUBLE PRECISION NOT NULL, "
    "last_used DOUBLE PRECISION NOT NULL, bytes BIGINT NOT NULL DEFAULT 0)",
    "CREATE TABLE IF NOT EXISTS items (ws TEXT NOT NULL, kind TEXT NOT NULL, key TEXT NOT NULL, "
    "size BIGINT NOT NULL, data {blob} NOT NULL, PRIMARY KEY (ws, kind, key))",
    "CREATE INDEX IF NOT EXISTS workspaces_last_used ON workspaces (last_used)",
)


class Store:
    """The interface both backends share (the SQL is the same; connections and errors differ).

    ``kind`` and ``key`` are short strings chosen by :mod:`cnnviz.workspace.contents`; ``data``
    is bytes. Times are seconds since the epoch (``now`` is for tests).
    """

    _blob = "BLOB"
    _param = "?"

    def __init__(self, limits: Limits | None = None) -> None:
        self.limits = limits or Limits.from_env()
        self.notice = ""  # one sentence for visitors when the store had to be started afresh
        self._lock = threading.RLock()
        self._last_expire = 0.0
        self._conn: Any = None  # the backend's connection, opened on first use

    def close(self) -> None:
        """Close the connection (the next call opens a new one)."""
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    # ------------------------------------------------------------ backend hooks
    @contextlib.contextmanager
    def _transaction(self) -> Iterator[Any]:  # pragma: no cover - each backend has its own
        raise NotImplementedError
        yield

    def _translate(self, err: Exception) -> StoreError | None:  # pragma: no cover
        raise NotImplementedError

    def _recover(self, err: Exception) -> bool:
        """After ``err``: repair the connection or the file; True when the call may be retried once."""
        return False

    # ------------------------------------------------------------ plumbing
    def _sql(self, text: str) -> str:
        return text if self._param == "?" else text.replace("?", self._param)

    def _run(self, work: Any) -> Any:
        """``work(cursor)`` in one transaction; database errors become one :class:`StoreError` sentence."""
        with self._lock:
            for attempt in (0, 1):
                try:
                    with self._transaction() as cur:
                        return work(cur)
                except StoreError:
                    raise
                except Exception as err:  # a database error, sorted below; anything else is a bug
                    translated = self._translate(err)
                    if translated is None:
                        raise
                    if attempt == 0 and self._recover(err):
                        continue
                    raise translated from err
        raise AssertionError("unreachable")  # pragma: no cover

    def _exec(self, cur: Any, sql: str, args: Sequence[Any] = ()) -> Any:
        cur.execute(self._sql(sql), tuple(args))
        return cur

    def _create_schema(self, cur: Any) -> None:
        for statement in _SCHEMA:
            self._exec(cur, statement.format(blob=self._blob))

    # ------------------------------------------------------------ workspaces
    def create(self, ws: str, *, now: float | None = None) -> None:
        """Make an empty workspace ``ws`` (an id from :func:`cnnviz.workspace.ids.new_id`)."""
        if not ids.is_valid(ws):
            raise ValueError("not a workspace id")
        now = time.time() if now is None else now
        self._run(
            lambda cur: self._exec(
                cur,
                "INSERT INTO workspaces (id, created, last_used, bytes) VALUES (?, ?, ?, 0) ON CONFLICT (id) DO NOTHING",
                (ws, now, now),
            )
        )
        self._maybe_expire(now)

    def exists(self, ws: object, *, now: float | None = None) -> bool:
        """Whether ``ws`` names a workspace that has not expired (a malformed id names none)."""
        if not ids.is_valid(ws):
            return False
        now = time.time() if now is None else now
        row = self._run(lambda cur: self._exec(cur, "SELECT last_used FROM workspaces WHERE id = ?", (ws,)).fetchone())
        return row is not None and now - float(row[0]) <= self.limits.expiry

    def touch(self, ws: str, *, now: float | None = None) -> None:
        """Mark ``ws`` as used now (expiry counts from the last use)."""
        if not ids.is_valid(ws):
            return
        now = time.time() if now is None else now
        self._run(lambda cur: self._exec(cur, "UPDATE workspaces SET last_used = ? WHERE id = ?", (now, ws)))
        self._maybe_expire(now)

    def delete_workspace(self, ws: str) -> None:
        """Remove ``ws`` and everything in it, at once (one transaction)."""
        if not ids.is_valid(ws):
            return

        def work(cur: Any) -> None:
            self._exec(cur, "DELETE FROM items WHERE ws = ?", (ws,))
            self._exec(cur, "DELETE FROM workspaces WHERE id = ?", (ws,))

        self._run(work)

    def expire(self, *, now: float | None = None) -> list[str]:
        """Delete every workspace unused for longer than the expiry; returns their ids."""
        now = time.time() if now is None else now
        cutoff = now - self.limits.expiry

        def work(cur: Any) -> list[str]:
            gone = [r[0] for r in self._exec(cur, "SELECT id FROM workspaces WHERE last_used < ?", (cutoff,))]
            for ws in gone:
                self._exec(cur, "DELETE FROM items WHERE ws = ?", (ws,))
                self._exec(cur, "DELETE FROM workspaces WHERE id = ?", (ws,))
            return gone

        self._last_expire = now
        return list(self._run(work))

    def _maybe_expire(self, now: float) -> None:
        if now - self._last_expire >= EXPIRE_EVERY:
            self.expire(now=now)

    def size(self, ws: str) -> int:
        """Bytes held by workspace ``ws`` (0 for none)."""
        if not ids.is_valid(ws):
            return 0
        row = self._run(lambda cur: self._exec(cur, "SELECT bytes FROM workspaces WHERE id = ?", (ws,)).fetchone())
        return int(row[0]) if row else 0

    def total_size(self) -> int:
        """Bytes held by all workspaces together."""
        row = self._run(lambda cur: self._exec(cur, "SELECT COALESCE(SUM(bytes), 0) FROM workspaces").fetchone())
        return int(row[0])

    def workspace_ids(self) -> list[str]:
        """Every workspace id, least recently used first (for operators and tests)."""
        return [
            r[0]
            for r in self._run(lambda cur: self._exec(cur, "SELECT id FROM workspaces ORDER BY last_used").fetchall())
        ]

    # ------------------------------------------------------------ items
    def write(
        self,
        ws: str,
        puts: Iterable[tuple[str, str, bytes]] = (),
        deletes: Iterable[tuple[str, str]] = (),
        *,
        now: float | None = None,
    ) -> None:
        """Put ``(kind, key, data)`` items and delete ``(kind, key)`` items of ``ws``, all or nothing.

        Raises :class:`WorkspaceGone` when ``ws`` does not exist, :class:`StoreFull` when the write
        would pass the workspace's cap, or the store's cap after the workspaces unused the
        longest were deleted, or when the disk is full.
        """
        if not ids.is_valid(ws):
            raise WorkspaceGone(GONE)
        now = time.time() if now is None else now
        puts, deletes = list(puts), list(deletes)
        limits = self.limits

        def work(cur: Any) -> None:
            row = self._exec(cur, "SELECT last_used FROM workspaces WHERE id = ?", (ws,)).fetchone()
            if row is None or now - float(row[0]) > limits.expiry:
                raise WorkspaceGone(GONE)
            for kind, key in deletes:
                self._exec(cur, "DELETE FROM items WHERE ws = ? AND kind = ? AND key = ?", (ws, kind, key))
            for kind, key, data in puts:
                self._exec(
                    cur,
                    "INSERT INTO items (ws, kind, key, size, data) VALUES (?, ?, ?, ?, ?) "
                    "ON CONFLICT (ws, kind, key) DO UPDATE SET size = excluded.size, data = excluded.data",
                    (ws, kind, key, len(data), bytes(data)),
                )
            used = int(self._exec(cur, "SELECT COALESCE(SUM(size), 0) FROM items WHERE ws = ?", (ws,)).fetchone()[0])
            if used > limits.workspace_bytes:
                raise StoreFull(
                    f"Your workspace has reached this server's limit of {_mb(limits.workspace_bytes)}, so what you "
                    "did just now was not saved; remove some images or models to save again."
                )
            self._exec(cur, "UPDATE workspaces SET bytes = ?, last_used = ? WHERE id = ?", (used, now, ws))
            total = int(self._exec(cur, "SELECT COALESCE(SUM(bytes), 0) FROM workspaces").fetchone()[0])
            if total > limits.store_bytes:
                oldest = self._exec(
                    cur, "SELECT id, bytes FROM workspaces WHERE id <> ? ORDER BY last_used", (ws,)
                ).fetchall()
                for other, size in oldest:
                    if total <= limits.store_bytes:
                        break
                    self._exec(cur, "DELETE FROM items WHERE ws = ?", (other,))
                    self._exec(cur, "DELETE FROM workspaces WHERE id = ?", (other,))
                    total -= int(size)
                if total > limits.store_bytes:
                    raise StoreFull(
                        "This server's storage for workspaces is full, so what you did just now is kept only in "
                        "this tab until you close or reload it."
                    )

        self._run(work)
        self._maybe_expire(now)

    def read(self, ws: object, kind: str, key: str) -> bytes | None:
        """One item's bytes, or ``None`` (no such item, workspace or id)."""
        if not ids.is_valid(ws):
            return None
        row = self._run(
            lambda cur: self._exec(
                cur, "SELECT data FROM items WHERE ws = ? AND kind = ? AND key = ?", (ws, kind, key)
            ).fetchone()
        )
        return None if row is None else bytes(row[0])

    def read_kind(self, ws: object, kind: str) -> dict[str, bytes]:
        """Every item of one kind in ``ws``: ``{key: bytes}`` (empty for a wrong id)."""
        if not ids.is_valid(ws):
            return {}
        rows = self._run(
            lambda cur: self._exec(cur, "SELECT key, data FROM items WHERE ws = ? AND kind = ?", (ws, kind)).fetchall()
        )
        return {str(k): bytes(d) for k, d in rows}

    def keys(self, ws: object, kind: str) -> list[str]:
        """The keys of one kind in ``ws`` (without reading their bytes)."""
        if not ids.is_valid(ws):
            return []
        rows = self._run(
            lambda cur: self._exec(
                cur, "SELECT key FROM items WHERE ws = ? AND kind = ? ORDER BY key", (ws, kind)
            ).fetchall()
        )
        return [str(r[0]) for r in rows]


class SQLiteStore(Store):
    """The embedded default: one SQLite file in WAL mode (``path``; its folder is created)."""

    def __init__(self, path: str | os.PathLike, limits: Limits | None = None, *, max_pages: int | None = None) -> None:
        super().__init__(limits)
        self.path = Path(path)
        self.max_pages = max_pages  # tests: SQLite's max_page_count makes a disk that is "full" at this size
        self._conn: sqlite3.Connection | None = None
        with self._lock:
            try:
                self._open()
            except sqlite3.DatabaseError as err:
                if not self._damaged(err):
                    raise StoreError(UNREACHABLE) from err
                self._start_afresh()
        self.expire()

    def _open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=10)
        try:
            conn.execute("PRAGMA busy_timeout = 10000")
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")  # WAL + NORMAL: a crashed app loses no committed write
            if self.max_pages is not None:
                conn.execute(f"PRAGMA max_page_count = {int(self.max_pages)}")
            check = conn.execute("PRAGMA quick_check(1)").fetchone()
            if check is None or check[0] != "ok":
                raise sqlite3.DatabaseError(f"quick_check: {check[0] if check else 'no answer'}")
            cur = conn.cursor()
            self._create_schema(cur)
        except BaseException:
            conn.close()
            raise
        self._conn = conn

    @staticmethod
    def _damaged(err: Exception) -> bool:
        """A file that is not (or no longer) a whole database, as opposed to a full disk or a lock."""
        text = str(err).lower()
        if isinstance(err, sqlite3.OperationalError) and not any(w in text for w in ("malformed", "not a database")):
            return False
        return isinstance(err, sqlite3.DatabaseError) and not any(w in text for w in ("full", "locked", "busy"))

    def _start_afresh(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):
                self._conn.close()
            self._conn = None
        stamp = time.strftime("%Y%m%d-%H%M%S")
        for suffix in ("", "-wal", "-shm"):
            part = Path(str(self.path) + suffix)
            if part.exists():
                part.replace(Path(f"{self.path}.damaged-{stamp}{suffix}"))
        self._open()
        self.notice = DAMAGED

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Cursor]:
        if self._conn is None:
            self._open()
        assert self._conn is not None
        cur = self._conn.cursor()
        cur.execute("BEGIN IMMEDIATE")
        try:
            yield cur
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                cur.execute("ROLLBACK")
            raise
        else:
            cur.execute("COMMIT")

    def _translate(self, err: Exception) -> StoreError | None:
        if not isinstance(err, sqlite3.Error):
            return None
        text = str(err).lower()
        if "full" in text:  # SQLITE_FULL: the disk (or max_page_count) is full
            return StoreFull(DISK_FULL)
        if self._damaged(err):
            return StoreError(DAMAGED)
        return StoreError(UNREACHABLE)

    def _recover(self, err: Exception) -> bool:
        if self._damaged(err):
            self._start_afresh()
            return True
        return False


class PostgresStore(Store):
    """Workspaces in PostgreSQL (``url`` as libpq takes it), shared by every app process that points there."""

    _blob = "BYTEA"
    _param = "%s"

    def __init__(self, url: str, limits: Limits | None = None) -> None:
        super().__init__(limits)
        import psycopg  # only a server that asks for PostgreSQL needs the driver

        self._psycopg = psycopg
        self.url = url
        self._conn: Any = None
        self._run(self._create_schema)
        self.expire()

    def _connect(self) -> None:
        self._conn = self._psycopg.connect(self.url, autocommit=False, connect_timeout=10)

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[Any]:
        if self._conn is None or self._conn.closed:
            self._connect()
        with self._conn.transaction(), self._conn.cursor() as cur:
            yield cur

    def _translate(self, err: Exception) -> StoreError | None:
        errors = self._psycopg.errors
        if isinstance(err, (errors.DiskFull, errors.OutOfMemory, errors.ProgramLimitExceeded)):
            return StoreFull(DISK_FULL)
        if isinstance(err, self._psycopg.Error):
            return StoreError(UNREACHABLE)
        return None

    def _recover(self, err: Exception) -> bool:
        if isinstance(err, self._psycopg.OperationalError):  # the server restarted or the link dropped
            with contextlib.suppress(Exception):
                if self._conn is not None:
                    self._conn.close()
            self._conn = None
            return True
        return False


def workspaces_enabled() -> bool:
    """False when the server sets ``CNNVIZ_WORKSPACES=off`` (or ``0``/``no``/``false``): nothing is kept."""
    return os.environ.get("CNNVIZ_WORKSPACES", "on").strip().lower() not in {"off", "0", "no", "false"}


def default_data_dir() -> Path:
    """``$CNNVIZ_DATA_DIR``, else ``~/.cnnviz``."""
    return Path(os.environ.get("CNNVIZ_DATA_DIR") or Path.home() / ".cnnviz")


def open_store(url: str | None = None, *, limits: Limits | None = None) -> Store:
    """The store this server uses: ``url`` or ``$CNNVIZ_DATABASE_URL`` (``postgresql://…`` or
    ``sqlite:///path``), else SQLite in :func:`default_data_dir`.

    Raises :class:`StoreError` (one sentence) when the database cannot be reached at all.
    """
    url = url if url is not None else os.environ.get("CNNVIZ_DATABASE_URL", "")
    if url.startswith(("postgresql://", "postgres://")) or (url and "=" in url and "://" not in url):
        try:
            return PostgresStore(url, limits)
        except StoreError:
            raise
        except Exception as err:  # the driver's own error: wrong URL, server down
            raise StoreError(UNREACHABLE) from err
    if url.startswith("sqlite:///"):
        return SQLiteStore(url[len("sqlite:///") :], limits)
    return SQLiteStore(default_data_dir() / "workspaces.sqlite3", limits)
