"""Self-supervised pretraining of the encoders (entry point ``physio-train``).

- Corpora: WFDB ECG or EDF/BDF EEG folders preprocessed once into memory-mapped shards with a
  manifest (:func:`build_cache`, :class:`Corpus`), split by record.
- Objectives: CBraMod's masked-patch reconstruction (EEG) and ECG dual masking (intra-/inter-lead),
  see :mod:`physio_live.trainer._masking`.
- Loop: :func:`pretrain` (single process or ``torchrun``; DDP, exact resume, CSV metrics, export of
  the encoder in the app's checkpoint format).
- Fine-tuning (:func:`run_finetune`): data kinds in :mod:`._data` (``manifest``: labelled
  recordings cut by the app's own aligner, :mod:`._manifest`; DREAMER and exported windows,
  :mod:`._dreamer`), splits in :mod:`._splits`, metrics in :mod:`._metrics`, classical reference
  rows in :mod:`._baselines`; the rest-calibrated readout model in :mod:`._readout_fit`
  (:func:`run_readouts`).
"""

from __future__ import annotations

from ._baselines import LogisticRegression, band_power_features, heart_rate
from ._config import (
    DataConfig,
    MaskingConfig,
    MixConfig,
    ModelConfig,
    OptimConfig,
    PretrainConfig,
    RunConfig,
    TrainError,
    load_pretrain_config,
    pretrain_config_from_dict,
)
from ._corpus import (
    Corpus,
    build_cache,
    cache_key,
    cache_path,
    find_records,
    normalize_channel_name,
    preprocess_record,
)
from ._data import FinetuneDataConfig, ManifestConfig, WindowSet, load_windows
from ._dreamer import (
    load_dreamer,
    load_exported_windows,
    read_dreamer,
    write_synthetic_dreamer,
)
from ._finetune import (
    FinetuneConfig,
    finetune_config_from_dict,
    load_finetune_config,
    make_folds,
    run_evaluate,
    run_finetune,
)
from ._loop import BatchPlan, PretrainResult, build_model, evaluate, lr_at, pretrain
from ._manifest import aligner_config, build_manifest, load_manifest, recording_windows
from ._masking import (
    MaskBatch,
    baseline_interp,
    baseline_zeros,
    dual_mask,
    make_mask,
    masked_mse,
    patch_mask,
)
from ._metrics import (
    accuracy,
    auroc,
    average_precision,
    balanced_accuracy,
    binary_metrics,
    macro_f1,
)
from ._readout_fit import fit_readout_model, run_readouts, score_like_app
from ._score import RecordWindows, score, score_masks, scoring_windows
from ._splits import Fold, kfold_splits, loso_splits, subject_cv_splits, subject_split

__all__ = [
    "BatchPlan",
    "Corpus",
    "DataConfig",
    "FinetuneConfig",
    "FinetuneDataConfig",
    "Fold",
    "LogisticRegression",
    "ManifestConfig",
    "MaskBatch",
    "MaskingConfig",
    "MixConfig",
    "ModelConfig",
    "OptimConfig",
    "PretrainConfig",
    "PretrainResult",
    "RecordWindows",
    "RunConfig",
    "TrainError",
    "WindowSet",
    "accuracy",
    "aligner_config",
    "auroc",
    "average_precision",
    "balanced_accuracy",
    "band_power_features",
    "baseline_interp",
    "baseline_zeros",
    "binary_metrics",
    "build_cache",
    "build_manifest",
    "build_model",
    "cache_key",
    "cache_path",
    "dual_mask",
    "evaluate",
    "find_records",
    "finetune_config_from_dict",
    "fit_readout_model",
    "heart_rate",
    "kfold_splits",
    "load_dreamer",
    "load_exported_windows",
    "load_finetune_config",
    "load_manifest",
    "load_pretrain_config",
    "load_windows",
    "loso_splits",
    "lr_at",
    "macro_f1",
    "make_folds",
    "make_mask",
    "masked_mse",
    "normalize_channel_name",
    "patch_mask",
    "preprocess_record",
    "pretrain",
    "pretrain_config_from_dict",
    "read_dreamer",
    "recording_windows",
    "run_evaluate",
    "run_finetune",
    "run_readouts",
    "score",
    "score_like_app",
    "score_masks",
    "scoring_windows",
    "subject_cv_splits",
    "subject_split",
    "write_synthetic_dreamer",
]
