"""A visitor's workspace: what they made, kept server-side under an unguessable id (``?ws=…``).

:mod:`~cnnviz.workspace.ids` makes and checks ids, :mod:`~cnnviz.workspace.store` keeps items
(SQLite by default, PostgreSQL for several processes), :mod:`~cnnviz.workspace.contents` turns
what a visitor holds (the trainer's classes and images, models, audit results, settings) into
items and back. Never imports Streamlit.
"""
