"""The same network in ONNX (ONNX Runtime and OpenVINO run it: the yardsticks of the anchors
benchmark)."""
