"""The CPU kernel library at a trial's steps: its trial hooks (tuner.kernels.base), and what it
keeps for its trials in the study's assets:

- ``graph.json``: the captured graph of the untuned network, from the study's prepare step;
- ``kernel_references/``: the untuned outputs the hand-written convolution kernels (a file per
  workload, from the prepare step) and the programs' regions (``region-*``, from a process of
  their own without any trial's settings) are checked against, on inputs from
  ``VERIFICATION_SEED``;
- ``verified/``: each hand-written kernel choice's verdict (verification runs the slow builtin
  convolution: once a choice).
"""
from __future__ import annotations

import hashlib
import json
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Mapping

from tuner.kernels.base import PreparedInputs, Rejection, WorkloadSurvey
from tuner.kernels.cpu.program import step_times

GRAPH_FILE = "graph.json"
REFERENCES_DIR = "kernel_references"
VERDICTS_DIR = "verified"
VERIFICATION_SEED = 0


class TrialSteps:
    """The trial hooks of CpuKernelLibrary (``self``), which inherits them from here."""

    def prepare_study(self, net, input_shape: tuple[int, ...], assets: Path) -> WorkloadSurvey:
        """The workloads of ``net`` (its graph captured and saved for the trials), or why there
        are none. The builtin outputs of the convolutions a hand-written kernel can run are
        computed here, in this untuned process, as the trials' own settings may break them."""
        reason = self.unavailable_reason()
        if reason:
            return WorkloadSurvey(unavailable=reason)
        from tuner.graph.capture import CaptureError, capture

        try:
            graph = capture(net, input_shape)
        except CaptureError as error:
            return WorkloadSurvey(unavailable=str(error))
        (assets / GRAPH_FILE).write_text(json.dumps(graph.to_dict()))
        groups = self.find_workloads(net, input_shape, graph)
        for group in groups:
            if group.workload.op == "conv" and any(
                    not self.space(k).runtime_params for k in group.kernels):
                self.reference_output(group.workload, VERIFICATION_SEED, assets / REFERENCES_DIR)
        return WorkloadSurvey(tuple(groups))

    def prepare_trial(self, config, assets: Path) -> None:
        """Build the variants the kernel choices need, one compiler per core (the build cache
        makes the later, sequential lookups instant; a failed build is reported where it is
        used)."""
        if not config.programs.enabled:
            return

        def build(variant) -> None:
            try:
                self.build(variant[0], dict(variant[1]))
            except ValueError:  # parameters outside the kernel's space: verification says so
                pass

        variants = {(c.kernel, tuple(sorted(dict(c.params).items()))) for c in config.kernels}
        with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
            list(pool.map(build, variants))

    def check_choices(self, config, workloads: Mapping, network: str,
                      assets: Path) -> Rejection | None:
        """As the base's, for a configuration with programs (without, no choice runs)."""
        if not config.programs.enabled:
            return None
        return super().check_choices(config, workloads, network, assets)

    def check_choice(self, choice, workload, assets: Path) -> Rejection | None:
        """A hand-written convolution kernel's choice against MindSpore's convolution, its
        verdict kept in the assets; oneDNN's steps and the runtime's own kernels are checked
        with their programs (``apply``), so here they pass."""
        if workload.op != "conv" or self.space(choice.kernel).runtime_params:
            return None
        digest = hashlib.sha256(json.dumps(choice.to_dict(), sort_keys=True).encode())
        verdict_path = assets / VERDICTS_DIR / f"{digest.hexdigest()[:24]}.json"
        if verdict_path.exists():
            verdict = json.loads(verdict_path.read_text())
        else:
            result = self.verify(workload, dict(choice.params), seed=VERIFICATION_SEED,
                                 kernel=choice.kernel, reference_dir=assets / REFERENCES_DIR)
            verdict = {"ok": result.ok, "message": result.message,
                       "max_rel_error": result.max_rel_error, "build_failed": result.build_failed}
            verdict_path.parent.mkdir(exist_ok=True)
            verdict_path.write_text(json.dumps(verdict))
        if verdict["ok"]:
            return None
        return Rejection(verdict["message"], wrong_result=not verdict.get("build_failed"))

    def prepared_inputs(self, config, assets: Path) -> PreparedInputs:
        """For a configuration with programs: the saved graph, the references' directory."""
        if not config.programs.enabled:
            return PreparedInputs()
        from tuner.graph.graph import Graph

        path = assets / GRAPH_FILE
        graph = Graph.from_dict(json.loads(path.read_text())) if path.exists() else None
        return PreparedInputs(graph, assets / REFERENCES_DIR, VERIFICATION_SEED)

    def reset_timers(self, network) -> None:
        step_times.reset(network)

    def workload_times(self, network) -> dict[str, float]:
        return step_times.workload_times(network)

    def expand_profile(self, operators, network) -> tuple:
        return step_times.expand(tuple(operators), network)

    def write_call_trace(self, path: Path, network, starts, durations) -> str:
        return step_times.write_call_trace(path, network, list(starts), list(durations))
