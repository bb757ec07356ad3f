"""Using and shipping a trained model: ``load_model`` / ``load_onnx`` -> :class:`FERPredictor` on images,
faces and videos (``predictor``), the `fer-predict` task (``predict``) and `fer-export` (``export``,
``quantize``, ``onnx_io``).
Each module imports only those before it in ``INFERENCE_ORDER`` (tests/test_layout.py).
"""

__all__ = ["FERPredictor", "load_model", "load_onnx"]


def __getattr__(name: str):
    # lazy: importing one module of the package (say, prediction) does not import torch and the network
    if name in __all__:
        from fer_attention.inference import predictor

        return getattr(predictor, name)
    raise AttributeError(f"module 'fer_attention.inference' has no attribute {name!r}")
