"""cnnviz for visitors: ``app.py`` with a warm start and a readiness check a proxy can use.

    .venv/bin/streamlit run serve.py --server.port 8501 --server.address 127.0.0.1

takes every flag ``streamlit run app.py`` takes (``make run`` and ``deploy/serve.sh`` use it).
Streamlit 1.67 finds the ``st.App`` below and serves ``app.py`` through it, with

* a **warm start**: when the server process starts, a background thread loads the shipped
  models, traces their feature-map functions (:mod:`cnnviz.model.shipped`) and reads the sample
  pictures, so the first visitor of a model page does not wait for TensorFlow and EfficientNet-Lite0;
* ``GET /_cnnviz/ready``: 200 once the default model is loaded and traced, 503 before (or when
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


@asynccontextmanager
async def warm_start(_app: Any) -> AsyncIterator[None]:
    # The lifespan runs once in the serving process, before the first request is answered.
    shipped.start_warm_up(also=[_warm_samples])
    yield


app = st.App("app.py", routes=[Route(READY_PATH, ready, methods=["GET", "HEAD"])], lifespan=warm_start)

if __name__ == "__main__":
    app.run()
