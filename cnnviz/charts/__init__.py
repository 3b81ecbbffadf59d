"""Altair chart builders, one module per area. Each returns an ``alt.Chart``; none imports TensorFlow."""
