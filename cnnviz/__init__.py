"""cnnviz: a plain Python library behind the cnnviz Streamlit app.

Importing the package imports nothing heavy: model-free modules never pull in
TensorFlow, so the Learn pages open fast.
"""

__version__ = "0.1.0"
