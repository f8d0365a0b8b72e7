"""What one trial is, on both sides of its process boundary: the request (tuner.trial.request),
the files the parent and the trial process exchange (protocol, gate), the measurement protocol
(measurement) and the record a trial returns (result). Runners (tuner.runner) start and watch
the processes; engines (tuner.onnx, the kernel libraries) run inside them."""
