"""A readout model: the app's own readouts (EEG band powers per channel, heart rate) and two
logistic regressions, one of them on features calibrated against the person's resting baseline.

Per window it computes, from the very window the fused model would get:

- log10 band powers of every EEG channel (:func:`band_power_features`: the app's Welch readout,
  delta..gamma, in model units squared);
- heart rate (:func:`heart_rate`: the app's streaming R-peak detector run over the window's ECG
  and flushed, then its heart-rate readout; a window with too few beats gets ``hr_fill``).

**Calibration.** The first ``calibrate_s`` seconds of a session (windows whose end lies within
``calibrate_s`` of the first window's start) are the person's resting baseline: they are scored by
the *uncalibrated* regression, and their features are kept. From the first window after that, every
feature is taken as a z-score against that baseline (its mean and standard deviation) and scored by
the *calibrated* regression, which was fitted on features calibrated the same way (the trainer's
:func:`physio_live.trainer.fit_readout_model`). A baseline can be saved
(:meth:`ReadoutModel.baseline_state`) and loaded into a later session
(:meth:`ReadoutModel.load_baseline`), for a rest recording made apart from the task.

The model is stateful (the baseline) and runs on the CPU in NumPy; it follows the fused model's
``predict`` contract, so the worker, sinks and dashboard need nothing else. Windows must reach it
in time order, as the worker gives them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from physio_live.core import BANDS, INFO, HeartRateTracker, StreamingRPeakDetector, band_powers

from ._errors import CheckpointError, ModelInputError
from ._fused import (
    EmotionPrediction,
    ModalityConfig,
    Provenance,
    _model_kwargs,
    weights_fingerprint,
)

__all__ = [
    "ReadoutModel",
    "ReadoutModelConfig",
    "band_power_features",
    "baseline_stats",
    "heart_rate",
    "in_baseline",
    "readout_features",
]

MODEL_RATE = 200.0


def band_power_features(eeg: np.ndarray, rate: float = MODEL_RATE) -> np.ndarray:
    """EEG windows ``[N, C, P, 200]`` (or ``[N, C, T]``) -> log10 band powers ``[N, C x 5]``: the
    app's own readout (:func:`physio_live.core.band_powers`, Welch over :data:`BANDS`)."""
    x = eeg.reshape(eeg.shape[0], eeg.shape[1], -1)
    return np.stack([np.log10(band_powers(w, rate) + 1e-12).ravel() for w in x])


def heart_rate(ecg: np.ndarray, rate: float = MODEL_RATE) -> np.ndarray:
    """Heart rate (beats/min) of each ECG window ``[N, C, P, 200]``: the app's own R-peak detector
    (:class:`physio_live.core.StreamingRPeakDetector`, lead picked by it) run over the window and
    flushed, then the app's heart-rate readout (60 / median RR); NaN where it finds too few
    beats."""
    x = ecg.reshape(ecg.shape[0], ecg.shape[1], -1).astype(np.float64)
    t = np.arange(x.shape[-1]) / rate
    out = np.full(len(x), math.nan)
    for i, w in enumerate(x):
        det = StreamingRPeakDetector(rate)
        det.push(w.T, t)
        det.flush()
        tracker = HeartRateTracker()
        tracker.add(np.asarray(det.peak_times))
        out[i] = tracker.readout(float(t[-1])).hr_bpm
    return out


def readout_features(eeg: np.ndarray, ecg: np.ndarray, hr_fill: float = math.nan) -> np.ndarray:
    """``[N, C_eeg x 5 + 1]``: band powers of every EEG channel, then heart rate (``hr_fill``
    where the window has too few beats), float64."""
    hr = heart_rate(ecg)
    hr = np.where(np.isfinite(hr), hr, hr_fill)
    return np.c_[band_power_features(eeg), hr].astype(np.float64)


def in_baseline(
    t_end: np.ndarray | float, first_t_end: float, window_s: float, calibrate_s: float
) -> np.ndarray | bool:
    """Whether windows ending at ``t_end`` lie in the resting baseline: within ``calibrate_s`` of
    the start of the first window (which ends at ``first_t_end``)."""
    return np.asarray(t_end) - (first_t_end - window_s) <= calibrate_s + 1e-6


def baseline_stats(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(mean, spread) of the baseline windows' features ``[n, F]``: every later window's features
    are taken as ``(x - mean) / spread``."""
    return rows.mean(0), rows.std(0) + 1e-9


def feature_names(eeg_channels: tuple[str, ...]) -> list[str]:
    return [f"{ch}:{band}" for ch in eeg_channels for band in BANDS] + ["hr_bpm"]


@dataclass(frozen=True)
class ReadoutModelConfig:
    """Inputs, targets and calibration of a readout model (what its checkpoint records)."""

    eeg: ModalityConfig
    ecg: ModalityConfig
    targets: tuple[str, ...] = ("arithmetic",)
    label_threshold: float = 0.5
    calibrate_s: float = 60.0
    """Seconds of resting baseline at the start of a session (0: never calibrate)."""
    name: str = "readout-lr"
    pooling: str = "mean"  # what the app's aligner check asks of a model (any window length)

    def __post_init__(self) -> None:
        if len(self.targets) != 1:
            raise ValueError("a readout model has exactly one target")
        if not self.eeg.channels:
            raise ValueError("a readout model needs its EEG channel names")
        if not (self.calibrate_s >= 0):
            raise ValueError(f"calibrate_s must be >= 0, got {self.calibrate_s}")

    @property
    def n_features(self) -> int:
        return len(self.eeg.channels) * len(BANDS) + 1

    def to_dict(self) -> dict[str, object]:
        return {
            "eeg": self.eeg.to_dict(),
            "ecg": self.ecg.to_dict(),
            "targets": list(self.targets),
            "label_threshold": self.label_threshold,
            "calibrate_s": self.calibrate_s,
            "name": self.name,
            "pooling": self.pooling,
        }

    @classmethod
    def from_dict(cls, d: object) -> ReadoutModelConfig:
        return cls(**_model_kwargs(cls, d, "readout model"))  # type: ignore[arg-type]


@dataclass
class _Baseline:
    rows: list[np.ndarray] = field(default_factory=list)
    t0: float | None = None
    mean: np.ndarray | None = None
    sd: np.ndarray | None = None
    windows: int = 0


class ReadoutModel(nn.Module):
    """Readouts -> P(target); see the module docstring. Parameters are buffers (fitted, not
    trained by gradient): ``*_mu``/``*_sd`` standardize, ``*_w``/``*_b`` the regression, for the
    uncalibrated (``raw_``) and the calibrated (``cal_``) features."""

    def __init__(self, config: ReadoutModelConfig, provenance: Provenance | None = None) -> None:
        super().__init__()
        self.config = config
        self.provenance = provenance or Provenance()
        f = config.n_features
        for part in ("raw", "cal"):
            self.register_buffer(f"{part}_mu", torch.zeros(f, dtype=torch.float64))
            self.register_buffer(f"{part}_sd", torch.ones(f, dtype=torch.float64))
            self.register_buffer(f"{part}_w", torch.zeros(f, dtype=torch.float64))
            self.register_buffer(f"{part}_b", torch.zeros((), dtype=torch.float64))
        self.register_buffer("hr_fill", torch.tensor(70.0, dtype=torch.float64))
        self._model_id: str | None = None
        self._base = _Baseline()
        #: what a session shows in its message log (baseline taken or loaded)
        self.messages: list[str] = []

    # -- identity --------------------------------------------------------------------------
    @property
    def untrained(self) -> bool:
        return not self.provenance.trained

    @property
    def model_id(self) -> str:
        if self._model_id is None:  # as save_checkpoint names it
            self._model_id = f"{self.config.name}-{weights_fingerprint(self)[:12]}"
        return self._model_id

    # -- fitting (the trainer) -------------------------------------------------------------
    def set_regression(self, part: str, mu, sd, w, b) -> None:
        """Set one regression: ``z = (x - mu) / sd``, ``logit = z @ w + b``."""
        if part not in ("raw", "cal"):
            raise ValueError(part)
        for name, value in (("mu", mu), ("sd", sd), ("w", w), ("b", b)):
            buf = getattr(self, f"{part}_{name}")
            buf.copy_(torch.as_tensor(np.asarray(value, np.float64)).reshape(buf.shape))
        self._model_id = None

    # -- the baseline ----------------------------------------------------------------------
    @property
    def calibrated(self) -> bool:
        return self._base.mean is not None

    def reset_baseline(self) -> None:
        self._base = _Baseline()

    def baseline_state(self) -> dict[str, Any] | None:
        """The person's baseline (JSON-ready), or None while it is still being taken."""
        b = self._base
        if b.mean is None or b.sd is None:
            return None
        return {
            "format": "physio-live-baseline",
            "model_id": self.model_id,
            "features": feature_names(self.config.eeg.channels),
            "windows": b.windows,
            "mean": b.mean.tolist(),
            "sd": b.sd.tolist(),
        }

    def load_baseline(self, state: object, where: str = "baseline") -> None:
        """Use a baseline saved by :meth:`baseline_state` (skips this session's calibration)."""
        names = feature_names(self.config.eeg.channels)
        if not isinstance(state, dict) or state.get("format") != "physio-live-baseline":
            raise CheckpointError(f"{where} is not a physio-live baseline file (format missing)")
        if state.get("features") != names:
            raise CheckpointError(
                f"{where} was taken for other features ({len(state.get('features') or [])} vs "
                f"this model's {len(names)}): take the baseline again with this model"
            )
        mean = np.asarray(state["mean"], np.float64)
        sd = np.asarray(state["sd"], np.float64)
        if mean.shape != (len(names),) or sd.shape != mean.shape or not (sd > 0).all():
            raise CheckpointError(f"{where} is damaged (shapes or spreads): take it again")
        self._base = _Baseline(mean=mean, sd=sd, windows=int(state.get("windows", 0)))
        self.messages.append(
            f"{INFO}resting baseline loaded from {where} ({self._base.windows} windows)"
        )

    def finish_baseline(self) -> bool:
        """End the calibration now with the windows taken so far (a session that stops within
        its baseline); False when there are none."""
        if self._base.mean is None and self._base.rows:
            self._finish_baseline()
        return self._base.mean is not None

    def _finish_baseline(self) -> None:
        b = self._base
        (b.mean, b.sd), b.windows, b.rows = baseline_stats(np.stack(b.rows)), len(b.rows), []
        self.messages.append(
            f"{INFO}resting baseline taken ({b.windows} windows, {self.config.calibrate_s:g} s): "
            "estimates are calibrated from now on"
        )

    def calibration_note(self, t_end: float = math.nan) -> str:
        """What an estimate says about the baseline while it is being taken (at ``t_end``)."""
        b = self._base
        if b.mean is not None:
            return ""
        total = f"{self.config.calibrate_s:g} s"
        if b.t0 is None or not math.isfinite(t_end):
            return f"calibrating: resting baseline of {total}, {len(b.rows)} windows so far"
        return f"calibrating: resting baseline, {t_end - b.t0:.0f} of {total}"

    # -- inference -------------------------------------------------------------------------
    def _logit(self, part: str, x: np.ndarray) -> float:
        """The ``raw`` or ``cal`` regression's logit of one window's features (one dot product
        per window: the same bits whatever the batch)."""
        mu, sd, w, b = (getattr(self, f"{part}_{n}").cpu().numpy() for n in ("mu", "sd", "w", "b"))
        return float(((x - mu) / sd) @ w + b)

    def predict(
        self,
        eeg: Tensor | None,
        ecg: Tensor | None,
        *,
        eeg_present: Tensor | None = None,
        ecg_present: Tensor | None = None,
        bf16: bool = False,
        t_end: Sequence[float] | None = None,
    ) -> EmotionPrediction:
        """P(target) of each window, in order; ``t_end`` (s) drives the calibration."""
        del bf16  # NumPy readouts; nothing to approximate
        if eeg is None or ecg is None:
            raise ModelInputError("the readout model needs both EEG and ECG windows")
        n = eeg.shape[0]
        if eeg.shape[1] != len(self.config.eeg.channels):
            raise ModelInputError(
                f"the readout model takes {len(self.config.eeg.channels)} EEG channels, got "
                f"{eeg.shape[1]}"
            )
        e_miss = (~eeg_present) if eeg_present is not None else torch.zeros(n, dtype=torch.bool)
        c_miss = (~ecg_present) if ecg_present is not None else torch.zeros(n, dtype=torch.bool)
        x = readout_features(eeg.detach().float().cpu().numpy(), ecg.detach().float().cpu().numpy())
        # a window missing a modality: no estimate, and it stays out of the baseline
        probs, notes = self.score_features(x, t_end, skip=e_miss.numpy() | c_miss.numpy())
        return EmotionPrediction(
            targets=self.config.targets,
            probabilities=torch.from_numpy(probs[:, None]),
            eeg_missing=e_miss,
            ecg_missing=c_miss,
            untrained=self.untrained,
            model_id=self.model_id,
            notes=notes,
        )

    def score_features(
        self,
        features: np.ndarray,
        t_end: Sequence[float] | None = None,
        skip: np.ndarray | None = None,
    ) -> tuple[np.ndarray, tuple[str, ...]]:
        """P(target) and notes of windows given their :func:`readout_features` (heart rate NaN
        where a window has too few beats: ``hr_fill``), in time order; without ``t_end`` nothing
        is calibrated (windows after a baseline are still scored against it). ``skip`` windows
        get NaN and stay out of the baseline."""
        x = np.array(features, dtype=np.float64)
        x[~np.isfinite(x[:, -1]), -1] = float(self.hr_fill)
        n = len(x)
        times = np.full(n, math.nan) if t_end is None else np.asarray(t_end, np.float64)
        skip = np.zeros(n, bool) if skip is None else np.asarray(skip, bool)
        window_s, calibrate_s = self.config.eeg.window_seconds, self.config.calibrate_s
        probs = np.empty(n)
        notes: list[str] = []
        for i in range(n):
            b = self._base
            note = ""
            if b.mean is None and calibrate_s > 0 and math.isfinite(times[i]):
                if b.t0 is None:
                    b.t0 = float(times[i]) - window_s
                if in_baseline(times[i], b.t0 + window_s, window_s, calibrate_s):
                    if not skip[i]:
                        b.rows.append(x[i])
                elif b.rows:
                    self._finish_baseline()
                else:
                    note = (
                        f"uncalibrated: no usable window in the first {calibrate_s:g}"
                        " s; restart at rest or load a baseline (model.baseline)"
                    )
            if self._base.mean is None:
                logit = self._logit("raw", x[i])
                notes.append(note or self.calibration_note(float(times[i])))
            else:
                logit = self._logit("cal", (x[i] - self._base.mean) / self._base.sd)
                notes.append("")
            probs[i] = 1.0 / (1.0 + math.exp(-max(min(logit, 30.0), -30.0)))
        probs[skip] = math.nan
        return probs, tuple(notes)

    def forward(self, eeg: Tensor, ecg: Tensor) -> Tensor:  # pragma: no cover - use predict
        raise ModelInputError("call ReadoutModel.predict (it keeps the baseline in time order)")
