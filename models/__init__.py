"""Encoders: CBraMod EEG encoder, ECG encoder, fused emotion model, checkpoint loading."""

from __future__ import annotations
