"""Training data: Fashion-MNIST idx files, image folders cut into patches, noisy images, and what the loop consumes.

``fashion_mnist.py`` finds, verifies and downloads the idx files; ``images.py`` reads
image folders into patch sets; ``noisy.py`` patch sets of noisy images (no clean image,
or one fixed noisy copy of clean ones) for self-supervised training and ``aedenoise
adapt``; ``sources.py`` is the ``TrainingData`` protocol. Import the submodules directly;
this package imports nothing heavy. May import: config, io, noise, models and the
top-level shared modules.
"""
