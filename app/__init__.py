"""physio-live application: CLI, inference worker, dashboard, sinks."""

from __future__ import annotations
