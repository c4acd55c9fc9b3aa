"""Datasets: Fashion-MNIST idx files (:mod:`aedenoise.data.fashion_mnist`) and image folders.

Import the submodules directly; this package imports nothing heavy.
"""
