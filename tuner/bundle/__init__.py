"""Bundles: a tuned network as a directory that deploys without a compiler.

``python -m tuner.export --bundle DIR`` writes the export (``best.json``), the program runtime
and kernel libraries compiled for this CPU, every program's spec and constants, a checkpoint
of the layers outside programs (if any) and ``bundle.json``, which lists each file's size and
sha256 and the instruction sets the libraries need. ``tuner.load(DIR)`` checks all of it and
runs the programs as they were planned: nothing is compiled or planned again.
"""
from tuner.bundle.load import bundle_directory, load_bundle
from tuner.bundle.manifest import BundleError, BundleManifest
from tuner.bundle.write import write_bundle

__all__ = ["BundleError", "BundleManifest", "bundle_directory", "load_bundle", "write_bundle"]
