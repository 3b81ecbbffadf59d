"""Streamlit-side helpers shared by the pages (the only package besides pages/ that imports Streamlit).

``cnnviz`` stays a plain library; what every page needs from Streamlit — the image
picker, the per-visitor stores — lives here so pages stay short.
"""
