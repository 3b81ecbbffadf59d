"""Run generated hostile files through cnnviz in child processes inside one temporary folder.

``run_files(jobs)`` writes nothing itself: the generators in :mod:`tests.bad_inputs.hostile`
write each file into ``tmp_path``, and the child runs with its working folder, ``TMPDIR`` and
``HOME`` inside that folder too. After every run the fixture checks that the child wrote no file
into the repository and left nothing in its temporary folder.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHILD = Path(__file__).with_name("child.py")
#: A sentence for a visitor names no exception class and shows no traceback.
JARGON = re.compile(r"\b\w*(Error|Exception|Warning)\b|Traceback|errno|Errno|0x[0-9a-f]{4,}|\bline \d+\b")


def _repo_state() -> str:
    # Untracked files included: a file the child wrote into the checkout would show here.
    return subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=all"], cwd=ROOT, capture_output=True, text=True
    ).stdout


def plain_sentence(sentence: str | None) -> str:
    """Assert ``sentence`` reads as one or two plain sentences for a visitor; return it."""
    assert sentence, "a refusal needs a sentence"
    assert not JARGON.search(sentence), f"jargon in: {sentence!r}"
    assert sentence.rstrip().endswith((".", ")")), f"not a full sentence: {sentence!r}"
    assert len(sentence) < 400
    return sentence


def runner(tmp_path: Path, *, check_repo: bool = True):
    """``run([{"kind", "call", "path", "args"}], env={...}, timeout=60)`` → ``{kind: report}``.

    ``check_repo=False`` skips the repository check (a benchmark running while files are edited).

    The reports are those of :mod:`tests.bad_inputs.child`; ``report["baseline_mb"]`` is the
    child's memory after its imports, before any hostile byte.
    """

    def run(jobs: list[dict], *, env: dict | None = None, timeout: float = 60, code_root: Path = ROOT) -> dict:
        sandbox = tmp_path / f"child-{len(list(tmp_path.glob('child-*')))}"
        for sub in ("work", "tmp", "home"):
            (sandbox / sub).mkdir(parents=True)
        jobs_file = sandbox / "jobs.json"
        jobs_file.write_text(json.dumps([{**job, "path": str(job["path"])} for job in jobs]))
        child_env = {k: v for k, v in os.environ.items() if not k.startswith("CNNVIZ_MAX")}
        child_env.update(
            TMPDIR=str(sandbox / "tmp"),
            HOME=str(sandbox / "home"),
            PYTHONHASHSEED="0",
            TF_CPP_MIN_LOG_LEVEL="3",
            CUDA_VISIBLE_DEVICES="",
            **(env or {}),
        )
        before = _repo_state() if check_repo else ""
        done = subprocess.run(
            [sys.executable, str(CHILD), str(code_root), str(jobs_file)],
            cwd=sandbox / "work",
            env=child_env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        assert not check_repo or _repo_state() == before, "the child wrote into the repository"
        left = [p for p in (sandbox / "tmp").rglob("*")]
        assert not left, f"the child left temporary files behind: {left[:5]}"
        lines = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
        assert lines and "baseline_mb" in lines[0], f"child failed:\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
        reports = {r["kind"]: r for r in lines[1:]}
        missing = [job["kind"] for job in jobs if job["kind"] not in reports]
        assert not missing, f"child stopped before {missing}:\n{done.stderr[-3000:]}"
        for r in reports.values():
            r["baseline_mb"] = lines[0]["baseline_mb"]
            r["extra_mb"] = round(r["peak_mb"] - lines[0]["baseline_mb"], 1)
        return reports

    return run


@pytest.fixture()
def run_files(tmp_path):
    """:func:`runner` in this test's temporary folder."""
    return runner(tmp_path)
