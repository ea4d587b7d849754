"""Encoders: CBraMod EEG encoder, ECG encoder, fused emotion model, checkpoint loading.

- :class:`CBraMod` (``cbramod_base``, ``cbramod_ecg``): the criss-cross transformer encoder, which
  loads the official weights through :func:`checkpoint_filter_fn`.
- :class:`FusedEmotionModel`: EEG ++ ECG embeddings -> MLP head, one logit per target.
- :class:`ReadoutModel`: the app's readouts (band powers, heart rate), calibrated against a
  resting baseline, -> logistic regression.
- Checkpoints: :func:`save_checkpoint` / :func:`load_checkpoint` (safetensors + JSON config),
  :func:`read_state_dict` (safe ``.pth`` reading), :func:`pull_cbramod` (official weights),
  :func:`resolve_checkpoint` (a shipped name such as ``eegmat-fused``, or a path).
"""

from __future__ import annotations

from ._cbramod import CBraMod, CBraModConfig, num_params
from ._checkpoint import (
    Checkpoint,
    checkpoint_summary,
    checkpoint_test_metrics,
    describe_checkpoint,
    format_checkpoint_info,
    load_checkpoint,
    read_state_dict,
    resolve_checkpoint,
    save_checkpoint,
    shipped_checkpoints,
)
from ._errors import CheckpointError, ModelInputError
from ._fused import (
    UNTRAINED_WARNING,
    EmotionPrediction,
    FeatureSkipHead,
    FusedEmotionConfig,
    FusedEmotionModel,
    LateFusionHead,
    ModalityConfig,
    Provenance,
    ecg_feature_values,
    eeg_feature_values,
    encode_ecg_features,
    inference_context,
    pool_features,
    weights_fingerprint,
)
from ._hub import (
    CBRAMOD_HUB_FILENAME,
    CBRAMOD_HUB_REPO,
    CBRAMOD_URL,
    hf_hub_cache_dir,
    load_official_cbramod,
    locate_official_cbramod,
    pull_cbramod,
    resolve_hub_file,
)
from ._kernels import CPU_LINEARS_ENV, cpu_bf16_native, cpu_linears, set_cpu_linears
from ._official import (
    cbramod_base,
    cbramod_ecg,
    checkpoint_filter_fn,
    config_from_official,
    load_strict,
    to_official_state_dict,
)
from ._readout import (
    ReadoutModel,
    ReadoutModelConfig,
    band_power_features,
    baseline_stats,
    heart_rate,
    in_baseline,
    readout_features,
)

__all__ = [
    "CBRAMOD_HUB_FILENAME",
    "CBRAMOD_HUB_REPO",
    "CBRAMOD_URL",
    "CPU_LINEARS_ENV",
    "UNTRAINED_WARNING",
    "CBraMod",
    "CBraModConfig",
    "Checkpoint",
    "CheckpointError",
    "EmotionPrediction",
    "FeatureSkipHead",
    "FusedEmotionConfig",
    "FusedEmotionModel",
    "LateFusionHead",
    "ModalityConfig",
    "ModelInputError",
    "Provenance",
    "ReadoutModel",
    "ReadoutModelConfig",
    "band_power_features",
    "baseline_stats",
    "cbramod_base",
    "cbramod_ecg",
    "checkpoint_filter_fn",
    "checkpoint_summary",
    "checkpoint_test_metrics",
    "config_from_official",
    "cpu_bf16_native",
    "cpu_linears",
    "describe_checkpoint",
    "ecg_feature_values",
    "eeg_feature_values",
    "encode_ecg_features",
    "format_checkpoint_info",
    "heart_rate",
    "hf_hub_cache_dir",
    "in_baseline",
    "inference_context",
    "load_checkpoint",
    "load_official_cbramod",
    "load_strict",
    "locate_official_cbramod",
    "num_params",
    "pool_features",
    "pull_cbramod",
    "read_state_dict",
    "readout_features",
    "resolve_checkpoint",
    "resolve_hub_file",
    "save_checkpoint",
    "set_cpu_linears",
    "shipped_checkpoints",
    "to_official_state_dict",
    "weights_fingerprint",
]
