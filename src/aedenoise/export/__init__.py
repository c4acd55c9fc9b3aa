"""Models outside PyTorch: ONNX export, and running an exported file with onnxruntime.

``onnx.py`` exports a learned denoiser (any size, the noise level as an input, the model
card in the metadata; checked against PyTorch on every export) and holds
:class:`OnnxDenoiser`, the onnxruntime backend behind the ``Denoiser`` contract. May import:
models and the top-level shared modules; onnx and onnxruntime only when used.
"""

from aedenoise.export.onnx import OnnxDenoiser, cached_onnx, export_onnx, read_onnx_metadata

__all__ = ["OnnxDenoiser", "cached_onnx", "export_onnx", "read_onnx_metadata"]
