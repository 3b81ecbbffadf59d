"""How long the neuron page takes to answer a slider (target: under 100 ms per interaction).

Each section of pages/neuron.py is a keyed ``st.fragment``: in the browser, moving a slider
reruns only its own section. This benchmark runs the page under ``AppTest`` with
``st.fragment`` wrapped by a timer, changes one widget per section, and reports the median
time of each section's code (what a fragment rerun costs on the server), of the whole script
(a full rerun), and of a baseline page run the same way: one slider and one plain Altair line
chart through ``st.altair_chart`` (the least a charting page does). The ratio to that baseline
stays comparable when the machine is busy; the milliseconds do not.

Run:  .venv/bin/python -m bench.neuron
Last line: one JSON object.
"""

from __future__ import annotations

import json
import os
import statistics
import tempfile
import time
from pathlib import Path

from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parents[1]
from bench._setup import temporary_keras_home  # noqa: E402

temporary_keras_home()  # before Keras is imported, as tests and CI do

WRAPPER = """
import runpy, time
import streamlit as st

_fragment = st.fragment
timings = st.session_state.setdefault("_bench", {})

def timed_fragment(func=None, **kwargs):
    def wrap(f):
        name = kwargs.get("key") or f.__name__
        def timed(*a, **k):
            t = time.perf_counter()
            try:
                return f(*a, **k)
            finally:
                timings.setdefault(name, []).append(time.perf_counter() - t)
        timed.__name__ = f.__name__
        return _fragment(timed, **kwargs)
    return wrap(func) if func is not None else wrap

st.fragment = timed_fragment
t = time.perf_counter()
try:
    runpy.run_path(PAGE, run_name="__main__")
finally:
    st.fragment = _fragment
    timings.setdefault("page", []).append(time.perf_counter() - t)
"""

# One widget per section, stepped back and forth: (section, widget kind, key, values).
MOVES: list[tuple[str, str, str, list[float]]] = [
    ("neuron", "slider", "w1", [0.6, 0.7, 0.8, 0.9, 1.0, 1.1, 1.2, 1.3]),
    ("exercise", "number_input", "ex_w1", [1.1, 1.2, 1.3, 1.4, 1.5, 1.6, 1.7, 1.8]),
    ("two_layers", "slider", "hidden", [3, 4, 3, 4, 3, 4, 3, 4]),  # cached after the first visit
    ("softmax", "slider", "temperature", [1.1, 1.2, 1.3, 1.4, 1.5, 1.6, 1.7, 1.8]),
]


def wrapped_app(page: Path, workdir: Path) -> AppTest:
    script = workdir / f"run_{page.stem}.py"
    script.write_text(f"PAGE = {str(page)!r}\n" + WRAPPER)
    return AppTest.from_file(str(script), default_timeout=120)


def median_ms(values: list[float]) -> float:
    return round(statistics.median(values) * 1000, 1)


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        plain = Path(tmp) / "plain_chart_page.py"
        plain.write_text(
            "import altair as alt, numpy as np, pandas as pd, streamlit as st\n"
            "k = st.slider('x', 0, 10, key='x')\n"
            "df = pd.DataFrame({'a': np.arange(300), 'b': np.sin(np.arange(300) / 30 + k)})\n"
            "st.altair_chart(alt.Chart(df).mark_line().encode(x='a:Q', y='b:Q'), alt='a sine wave')\n"
        )
        baseline = wrapped_app(plain, Path(tmp))
        baseline.run()
        for v in [1, 2, 3, 4, 5, 6, 7, 8]:
            baseline.slider(key="x").set_value(v).run()
        plain_ms = median_ms(baseline.session_state["_bench"]["page"][1:])

        at = wrapped_app(ROOT / "pages" / "neuron.py", Path(tmp))
        t = time.perf_counter()
        at.run()
        first_ms = (time.perf_counter() - t) * 1000
        timings: dict[str, list[float]] = at.session_state["_bench"]
        for name in list(timings):
            timings[name].clear()  # the first run trains the cached networks: reported separately
        per_section: dict[str, float] = {}
        for section, kind, key, values in MOVES:
            for name in list(timings):
                timings[name].clear()
            for value in values:
                getattr(at, kind)(key=key).set_value(value).run()
                assert not at.exception, [e.value for e in at.exception]
            per_section[section] = median_ms(timings[section][1:])
        page_ms = median_ms(timings["page"][1:])

    for section, ms in per_section.items():
        print(f"section {section:<11} {ms:7.1f} ms per interaction (median)")
    print(f"whole page script   {page_ms:7.1f} ms (a full rerun)")
    print(f"baseline page       {plain_ms:7.1f} ms (same harness: one slider, one plain Altair chart)")
    print(f"first visit         {first_ms:7.1f} ms (incl. AppTest start and training both networks)")
    slowest = max(per_section.values())
    print(
        f"slowest section: {slowest:.1f} ms -> {'meets' if slowest < 100 else 'MISSES'} the 100 ms target "
        f"on this machine now (load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs)"
    )
    print(
        json.dumps(
            {
                "neuron_section_ms": per_section["neuron"],
                "exercise_section_ms": per_section["exercise"],
                "two_layers_section_ms": per_section["two_layers"],
                "softmax_section_ms": per_section["softmax"],
                "page_rerun_ms": page_ms,
                "baseline_chart_page_ms": plain_ms,
                "slowest_section_vs_baseline": round(slowest / max(plain_ms, 1e-3), 2),
            }
        )
    )


if __name__ == "__main__":
    main()
