"""cnnviz for visitors: ``app.py`` with a warm start and a readiness check a proxy can use.

    .venv/bin/streamlit run serve.py --server.port 8501 --server.address 127.0.0.1

takes every flag ``streamlit run app.py`` takes (``make run`` and ``deploy/serve.sh`` use it).
Streamlit 1.67 finds the ``st.App`` below and serves ``app.py`` through it, with

* a **warm start**: when the server process starts, a background thread loads the shipped
  models, traces their feature-map functions (:mod:`cnnviz.model.shipped`), reads the sample
  pictures and computes the feature-map page's first view (:func:`ui.feature_view.warm_default_view`),
  so the first visitor of a model page does not wait for TensorFlow and EfficientNet-Lite0;
* ``GET /_cnnviz/ready``: 200 once the shipped models are loaded and traced, 503 before (or when
  it failed, with the reason), JSON either way. Streamlit's own ``/_stcore/health`` says "ok" as
  soon as the web server listens, seconds before a model page could be drawn.

The route lives outside Streamlit's reserved ``/_stcore/`` prefix (``st.App`` refuses routes there).
"""

from __future__ import annotations

from contextlib import asynccontextmanager
from typing import Any, AsyncIterator

import streamlit as st
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from cnnviz.model import shipped  # standard library only: TensorFlow is imported by the warm-up thread

READY_PATH = "/_cnnviz/ready"


async def ready(request: Request) -> JSONResponse:
    state = shipped.readiness()
    return JSONResponse(state, status_code=200 if state["ready"] else 503, headers={"Cache-Control": "no-store"})


def _warm_samples() -> None:
    from ui.widgets import warm_samples  # imports Streamlit's caches: in the warm-up thread, not at import

    warm_samples()


def _warm_default_view() -> None:
    from cnnviz.model import registry
    from ui.feature_view import warm_default_view
    from ui.widgets import samples

    # The feature-map page's first view (default model, first sample) for every visitor to come.
    warm_default_view(shipped.get(registry.DEFAULT_MODEL), samples())


def _warm_charts() -> None:
    from cnnviz.charts.features import top_k_chart

    # Altair reads and compiles Vega-Lite's JSON schema at its first check (≈ 0.15 s more than later ones).
    top_k_chart([("a", 0.6), ("b", 0.4)], highlight="a").to_dict()


@asynccontextmanager
async def warm_start(_app: Any) -> AsyncIterator[None]:
    # The lifespan runs once in the serving process, before the first request is answered.
    shipped.start_warm_up(also=[_warm_samples, _warm_charts, _warm_default_view])
    yield


app = st.App("app.py", routes=[Route(READY_PATH, ready, methods=["GET", "HEAD"])], lifespan=warm_start)

if __name__ == "__main__":
    app.run()
