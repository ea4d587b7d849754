"""physio-live: live EEG + ECG acquisition, alignment and fused foundation-model estimates.

The installed package gathers the repository's top-level folders: ``core`` (streams, buffers,
aligner), ``models`` (encoders), ``trainer`` (pretraining, fine-tuning) and ``app`` (CLI, worker,
dashboard); ``configs`` holds the shipped YAML files.
"""

from __future__ import annotations

__version__ = "0.1.0"
__all__ = ["__version__"]
