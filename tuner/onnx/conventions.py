"""What the ONNX export (tuner.onnx.onnx_file) and the engines timed on its file (tuner.onnx.timing,
tuner.onnx.runtime) agree on: the model's file name in the study's assets and the ONNX Runtime
session options it is checked and timed with. Imports nothing of tuner's."""
from __future__ import annotations

ONNX_FILE = "model.onnx"


def session_options():
    """What a user of ONNX Runtime gets by default, its graph optimisations at their highest
    level (ORT_ENABLE_ALL, the default) stated rather than assumed."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
    return options
