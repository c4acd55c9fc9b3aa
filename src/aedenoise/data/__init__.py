"""Training data: Fashion-MNIST idx files, image folders cut into patches, and what the loop consumes.

``fashion_mnist.py`` finds, verifies and downloads the idx files; ``images.py`` reads
image folders into patch sets; ``sources.py`` is the ``TrainingData`` protocol. Import
the submodules directly; this package imports nothing heavy. May import: config, io and
the top-level shared modules.
"""
