"""Pretraining and fine-tuning of the encoders (entry point ``physio-train``)."""

from __future__ import annotations
