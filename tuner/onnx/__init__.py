"""The same network in ONNX (ONNX Runtime is the yardstick of the anchors benchmark)."""
