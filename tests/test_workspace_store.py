"""The workspace store: the same tests against SQLite and (where it can be started) PostgreSQL."""

from __future__ import annotations

import os
import shutil
import socket
import sqlite3
import subprocess
import tempfile
import threading
from pathlib import Path

import pytest

from cnnviz.workspace import ids
from cnnviz.workspace.store import (
    DAMAGED,
    DISK_FULL,
    Limits,
    PostgresStore,
    SQLiteStore,
    Store,
    StoreError,
    StoreFull,
    WorkspaceGone,
    open_store,
    workspaces_enabled,
)

PG_BIN = Path("/usr/lib/postgresql/15/bin")
DAY = 24 * 3600.0


def _pg_command(args: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root: run it as the ``postgres`` user then."""
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *args]
    return args


@pytest.fixture(scope="module")
def postgres():
    """A throwaway PostgreSQL cluster on a Unix socket in a temporary folder; its libpq conninfo."""
    if not (PG_BIN / "initdb").exists():
        pytest.skip(f"PostgreSQL is not installed here ({PG_BIN}/initdb missing)")
    pytest.importorskip("psycopg")
    if os.geteuid() == 0 and shutil.which("runuser") is None:
        pytest.skip("running as root without runuser: PostgreSQL cannot be started")
    # Not under pytest's own temporary folder: it is private to root, and PostgreSQL runs as postgres.
    base = Path(tempfile.mkdtemp(prefix="cnnviz-pg-"))
    data, sock = base / "data", base / "sock"
    sock.mkdir()
    if os.geteuid() == 0:
        shutil.chown(base, "postgres")
        shutil.chown(sock, "postgres")
        base.chmod(0o755)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    init = subprocess.run(
        _pg_command([str(PG_BIN / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres", "--no-sync"]),
        capture_output=True,
        text=True,
    )
    if init.returncode:
        pytest.skip(f"initdb failed: {init.stderr[-300:]}")
    opts = f"-k {sock} -p {port} -c listen_addresses='' -c fsync=off -c shared_buffers=16MB"
    start = subprocess.run(
        _pg_command([str(PG_BIN / "pg_ctl"), "-D", str(data), "-o", opts, "-l", str(base / "log"), "-w", "start"]),
        capture_output=True,
        text=True,
    )
    if start.returncode:
        pytest.skip(f"PostgreSQL did not start: {start.stderr[-300:]}")
    try:
        yield f"host={sock} port={port} dbname=postgres user=postgres"
    finally:
        subprocess.run(
            _pg_command([str(PG_BIN / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"]), capture_output=True
        )
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(params=["sqlite", "postgresql"])
def make_store(request, tmp_path):
    """``make_store(limits)`` → a fresh, empty store of the parametrised backend."""
    made: list = []

    def make(limits: Limits | None = None):
        limits = limits or Limits()
        store: Store
        if request.param == "sqlite":
            store = SQLiteStore(tmp_path / f"ws{len(made)}.sqlite3", limits)
        else:
            conninfo = request.getfixturevalue("postgres")
            store = PostgresStore(conninfo, limits)
            store._run(lambda cur: (cur.execute("DELETE FROM items"), cur.execute("DELETE FROM workspaces")))
        made.append(store)
        return store

    yield make
    for store in made:
        store.close()


def test_round_trip_of_every_kind(make_store):
    store = make_store()
    ws = ids.new_id()
    store.create(ws)
    items = [
        ("image", "a" * 32, os.urandom(30_000)),
        ("model", "My classifier 1", os.urandom(200_000)),
        ("card", "My classifier 1", b'{"name": "My classifier 1"}'),
        ("trainer", "session", b"{}"),
        ("audit", "result", bytes(range(256)) * 10),
        ("settings", "all", '{"trainer_epochs": 20, "name": "Gemälde"}'.encode()),
    ]
    store.write(ws, items)
    for kind, key, data in items:
        assert store.read(ws, kind, key) == data
    assert store.keys(ws, "image") == ["a" * 32]
    assert store.read_kind(ws, "card") == {"My classifier 1": items[2][2]}
    assert store.size(ws) == sum(len(d) for _, _, d in items) == store.total_size()
    store.write(ws, [("settings", "all", b"{}")], deletes=[("image", "a" * 32)])
    assert store.read(ws, "settings", "all") == b"{}" and store.read(ws, "image", "a" * 32) is None
    assert store.size(ws) == sum(len(d) for k, _, d in items if k not in {"image", "settings"}) + 2


def test_a_write_is_all_or_nothing(make_store):
    store = make_store(Limits(workspace_bytes=100_000))
    ws = ids.new_id()
    store.create(ws)
    store.write(ws, [("trainer", "session", b"before")])
    with pytest.raises(StoreFull) as err:  # the second item passes the cap: the first is not kept either
        store.write(ws, [("trainer", "session", b"after"), ("image", "big", b"x" * 200_000)])
    assert "limit of 0 MB" not in str(err.value) and "not saved" in str(err.value)
    assert store.read(ws, "trainer", "session") == b"before" and store.read(ws, "image", "big") is None

    class Crash(Exception):
        pass

    def crash_mid_write(cur):  # a process dying between two statements of one transaction
        store._exec(cur, "UPDATE items SET data = ? WHERE ws = ?", (b"half", ws))
        raise Crash

    with pytest.raises(Crash):
        store._run(crash_mid_write)
    assert store.read(ws, "trainer", "session") == b"before"


def test_wrong_or_guessed_ids_see_nothing(make_store):
    store = make_store()
    mine, other = ids.new_id(), ids.new_id()
    store.create(mine)
    store.write(mine, [("model", "m", b"secret")])
    for guess in [other, mine[:-1] + ("A" if mine[-1] != "A" else "B"), mine.lower(), "", "' OR 1=1 --", None]:
        assert not store.exists(guess)
        assert store.read(guess, "model", "m") is None
        assert store.read_kind(guess, "model") == {} and store.keys(guess, "model") == []
    with pytest.raises(WorkspaceGone):  # a guessed id cannot be written into being
        store.write(other, [("model", "m", b"planted")])
    assert store.read(mine, "model", "m") == b"secret" and store.workspace_ids() == [mine]
    assert len(mine) == 32 and ids.ID_BYTES * 8 >= 128


def test_expiry_since_last_use(make_store):
    store = make_store(Limits(expiry=2 * 3600.0))  # a public server's "2 hours"
    old, used, fresh = ids.new_id(), ids.new_id(), ids.new_id()
    t0 = 1_000_000.0
    for ws in (old, used):
        store.create(ws, now=t0)
        store.write(ws, [("settings", "all", b"{}")], now=t0)
    store.touch(used, now=t0 + 1.5 * 3600)
    store.create(fresh, now=t0 + 2.5 * 3600)
    assert not store.exists(old, now=t0 + 2.5 * 3600) and store.exists(used, now=t0 + 2.5 * 3600)
    with pytest.raises(WorkspaceGone):
        store.write(old, [("settings", "all", b"{}")], now=t0 + 2.5 * 3600)
    assert store.expire(now=t0 + 2.5 * 3600) == [old]
    assert sorted(store.workspace_ids()) == sorted([used, fresh]) and store.read(old, "settings", "all") is None


def test_store_cap_deletes_the_longest_unused_first(make_store):
    store = make_store(Limits(store_bytes=250_000, expiry=7 * DAY))
    a, b, c = ids.new_id(), ids.new_id(), ids.new_id()
    t0 = 2_000_000.0
    for i, ws in enumerate((a, b, c)):
        store.create(ws, now=t0 + i)
        store.write(ws, [("image", "x", b"x" * 80_000)], now=t0 + i)
    store.touch(a, now=t0 + 10)  # a was used again: b is now the longest unused
    d = ids.new_id()
    store.create(d, now=t0 + 20)
    store.write(d, [("image", "x", b"x" * 80_000)], now=t0 + 20)
    assert sorted(store.workspace_ids()) == sorted([a, c, d]) and store.total_size() <= 250_000
    with pytest.raises(StoreFull):  # one workspace alone over the store's cap: refused, nothing of d lost
        store.write(d, [("image", "y", b"y" * 300_000)], now=t0 + 30)
    assert store.read(d, "image", "x") == b"x" * 80_000


def test_delete_removes_everything_at_once(make_store):
    store = make_store()
    mine, other = ids.new_id(), ids.new_id()
    for ws in (mine, other):
        store.create(ws)
        store.write(ws, [("image", str(i), b"p" * 100) for i in range(20)] + [("model", "m", b"k")])
    store.delete_workspace(mine)
    assert not store.exists(mine) and store.keys(mine, "image") == [] and store.read(mine, "model", "m") is None
    assert len(store.keys(other, "image")) == 20 and store.total_size() == store.size(other) == 2001
    with pytest.raises(WorkspaceGone):  # another tab still open on the deleted workspace does not bring it back
        store.write(mine, [("settings", "all", b"{}")])


def test_threads_share_one_store(make_store):
    store = make_store()
    spaces = [ids.new_id() for _ in range(4)]
    for ws in spaces:
        store.create(ws)

    def work(ws: str) -> None:
        for i in range(10):
            store.write(ws, [("image", str(i), ws.encode())])

    threads = [threading.Thread(target=work, args=(ws,)) for ws in spaces]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for ws in spaces:
        assert store.read_kind(ws, "image") == {str(i): ws.encode() for i in range(10)}


@pytest.mark.parametrize("damage", ["garbage", "truncated", "empty-header"])
def test_a_damaged_file_gives_one_sentence_and_a_fresh_store(tmp_path, damage):
    path = tmp_path / "workspaces.sqlite3"
    store = SQLiteStore(path)
    ws = ids.new_id()
    store.create(ws)
    store.write(ws, [("image", str(i), os.urandom(5000)) for i in range(50)])
    store.close()
    for extra in ("-wal", "-shm"):
        Path(str(path) + extra).unlink(missing_ok=True)
    raw = path.read_bytes()
    if damage == "garbage":
        path.write_bytes(b"this is not a database" * 100)
    elif damage == "truncated":
        path.write_bytes(raw[: len(raw) // 3])
    else:
        path.write_bytes(b"\0" * 100 + raw[100:])
    again = SQLiteStore(path)
    assert again.notice == DAMAGED and not again.exists(ws)
    again.create(ws)  # the fresh store works
    again.write(ws, [("settings", "all", b"{}")])
    assert again.read(ws, "settings", "all") == b"{}"
    assert list(tmp_path.glob("workspaces.sqlite3.damaged-*")), "the damaged file is kept aside for the operator"


def test_a_file_damaged_while_open_gives_a_sentence_not_a_crash(tmp_path):
    path = tmp_path / "workspaces.sqlite3"
    store = SQLiteStore(path)
    ws = ids.new_id()
    store.create(ws)
    store.write(ws, [("image", str(i), os.urandom(5000)) for i in range(50)])
    assert store._conn is not None
    store._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # every page in the file itself
    with open(path, "r+b") as f:  # another program overwrites the pages under the open store
        f.seek(4096)
        f.write(os.urandom(len(path.read_bytes()) - 4096))
    try:
        store.read_kind(ws, "image")
    except StoreError as err:
        assert str(err) in {DAMAGED, DISK_FULL} or "store" in str(err)
    assert store.notice in ("", DAMAGED)
    store.create(ws)
    store.write(ws, [("settings", "all", b"{}")])  # still usable afterwards, fresh or not
    assert store.read(ws, "settings", "all") == b"{}"


def test_disk_full_is_one_sentence_and_the_store_goes_on(tmp_path):
    # SQLite's max_page_count: the database file cannot grow past 40 pages of 4 KB, as on a full disk.
    store = SQLiteStore(tmp_path / "workspaces.sqlite3", max_pages=40)
    ws = ids.new_id()
    store.create(ws)
    store.write(ws, [("settings", "all", b'{"a": 1}')])
    with pytest.raises(StoreFull) as err:
        store.write(ws, [("image", str(i), os.urandom(20_000)) for i in range(20)])
    assert str(err.value) == DISK_FULL
    assert "sqlite" not in str(err.value).lower() and "Error" not in str(err.value)
    assert store.read(ws, "settings", "all") == b'{"a": 1}' and store.keys(ws, "image") == []
    store.write(ws, [("settings", "all", b'{"a": 2}')])  # small writes still fit: the store kept running
    assert store.read(ws, "settings", "all") == b'{"a": 2}'


def test_postgres_reconnects_after_its_server_restarts(postgres):
    store = PostgresStore(postgres)
    ws = ids.new_id()
    store.create(ws)
    store.write(ws, [("settings", "all", b"{}")])
    store._conn.close()  # as after a database restart: the next call opens a new connection
    assert store.read(ws, "settings", "all") == b"{}"
    store.delete_workspace(ws)
    store.close()


def test_an_unreachable_postgres_is_one_sentence(tmp_path):
    pytest.importorskip("psycopg")
    with pytest.raises(StoreError) as err:
        open_store(f"host={tmp_path} port=1 dbname=none user=none connect_timeout=2")
    assert "could not reach" in str(err.value)


def test_settings_from_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("CNNVIZ_WORKSPACE_HOURS", "0.5")
    monkeypatch.setenv("CNNVIZ_WORKSPACE_MAX_MB", "abc")
    monkeypatch.setenv("CNNVIZ_STORE_MAX_MB", "1000")
    limits = Limits.from_env()
    assert limits.expiry == 1800 and limits.workspace_bytes == Limits().workspace_bytes
    assert limits.store_bytes == 1000 * 2**20
    monkeypatch.setenv("CNNVIZ_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("CNNVIZ_DATABASE_URL", raising=False)
    store = open_store()
    assert isinstance(store, SQLiteStore) and store.path == tmp_path / "data" / "workspaces.sqlite3"
    with sqlite3.connect(store.path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    store.close()
    for off in ("off", "0", "no", "FALSE"):
        monkeypatch.setenv("CNNVIZ_WORKSPACES", off)
        assert not workspaces_enabled()
    monkeypatch.setenv("CNNVIZ_WORKSPACES", "on")
    assert workspaces_enabled()


def test_the_writer_writes_in_order_and_flush_waits(tmp_path):
    from cnnviz.workspace.writer import Change, Writer

    store = SQLiteStore(tmp_path / "ws.sqlite3", max_pages=60)
    writer = Writer(store)
    ws = ids.new_id()
    store.create(ws)
    results: list = []
    slow = threading.Event()

    def make() -> bytes:  # a model being saved: slow, in the writer's thread
        slow.wait(5)
        return b"model"

    writer.submit(Change(ws, [("model", "m", make)], done=results.append))
    writer.submit(Change(ws, [("settings", "all", b"2")], done=results.append))
    assert not writer.flush(ws, timeout=0.2)  # still saving the model
    slow.set()
    assert writer.flush(ws, timeout=10) and results == [None, None]
    assert store.read(ws, "model", "m") == b"model" and store.read(ws, "settings", "all") == b"2"
    writer.submit(Change(ws, [("image", "big", os.urandom(400_000))], done=results.append))
    writer.submit(Change(ids.new_id(), [("settings", "all", b"{}")], done=results.append))
    writer.submit(Change(ws, [("settings", "all", b"3")], done=results.append))
    assert writer.flush(ws, timeout=10)
    full, gone, fine = results[2:]
    assert isinstance(full, StoreFull) and str(full) == DISK_FULL  # the disk is full: one sentence
    assert isinstance(gone, WorkspaceGone) and fine is None  # and the writer went on
    assert store.read(ws, "settings", "all") == b"3"
