"""cnnviz: how a convolutional neural network sees, learns and fails.

This file only routes: every page lives in pages/, every computation in cnnviz/.
Run with:  make run
"""

import streamlit as st

from ui import present, settings, workspace
from ui.background import keep_jobs_alive

st.set_page_config(page_title="cnnviz", page_icon="🧠", layout="wide")

PAGES = {
    "": [st.Page("pages/home.py", title="Start here", icon="🏠", default=True)],
    "Learn": [
        st.Page("pages/neuron.py", title="1 · Neuron and activation", icon="⚡", url_path="neuron"),
        st.Page("pages/convolution.py", title="2 · Convolution and pooling", icon="🔲", url_path="convolution"),
    ],
    "Model": [
        st.Page("pages/feature_maps.py", title="3 · Feature maps", icon="🔍", url_path="feature_maps"),
    ],
    "Train": [
        st.Page("pages/trainer.py", title="4 · Train your own classifier", icon="🎓", url_path="trainer"),
        st.Page("pages/scratch.py", title="Build and train a CNN from scratch", icon="🧱", url_path="scratch"),
    ],
    "Audit": [
        st.Page("pages/audit.py", title="5 · Audit where it fails", icon="🧪", url_path="audit"),
    ],
}

page = st.navigation(PAGES, expanded=True)
settings.begin_run()
workspace.begin_run()  # reopens ?ws=… (reload, second tab, server restart) before any page reads its state
try:
    present.frame(page.url_path or "home")  # presenter mode, steps, the lecture plan
    keep_jobs_alive()
    workspace.sidebar()
    workspace.show_notices()
    page.run()
finally:
    workspace.end_run()  # saves what this run changed, also when the page reran or stopped
