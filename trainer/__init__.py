"""Self-supervised pretraining of the encoders (entry point ``physio-train``).

- Corpora: WFDB ECG or EDF/BDF EEG folders preprocessed once into memory-mapped shards with a
  manifest (:func:`build_cache`, :class:`Corpus`), split by record.
- Objectives: CBraMod's masked-patch reconstruction (EEG) and ECG dual masking (intra-/inter-lead),
  see :mod:`physio_live.trainer._masking`.
- Loop: :func:`pretrain` (single process or ``torchrun``; DDP, exact resume, CSV metrics, export of
  the encoder in the app's checkpoint format).
"""

from __future__ import annotations

from ._config import (
    DataConfig,
    MaskingConfig,
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
from ._dreamer import (
    WindowSet,
    load_dreamer,
    load_exported_windows,
    read_dreamer,
    write_synthetic_dreamer,
)
from ._finetune import (
    FinetuneConfig,
    accuracy,
    auroc,
    finetune_config_from_dict,
    kfold_splits,
    load_finetune_config,
    loso_splits,
    macro_f1,
    run_evaluate,
    run_finetune,
)
from ._loop import BatchPlan, PretrainResult, build_model, evaluate, lr_at, pretrain
from ._masking import (
    MaskBatch,
    baseline_interp,
    baseline_zeros,
    dual_mask,
    make_mask,
    masked_mse,
    patch_mask,
)

__all__ = [
    "BatchPlan",
    "Corpus",
    "DataConfig",
    "FinetuneConfig",
    "MaskBatch",
    "MaskingConfig",
    "ModelConfig",
    "OptimConfig",
    "PretrainConfig",
    "PretrainResult",
    "RunConfig",
    "TrainError",
    "WindowSet",
    "accuracy",
    "auroc",
    "baseline_interp",
    "baseline_zeros",
    "build_cache",
    "build_model",
    "cache_key",
    "cache_path",
    "dual_mask",
    "evaluate",
    "find_records",
    "finetune_config_from_dict",
    "kfold_splits",
    "load_dreamer",
    "load_exported_windows",
    "load_finetune_config",
    "load_pretrain_config",
    "loso_splits",
    "lr_at",
    "macro_f1",
    "make_mask",
    "masked_mse",
    "normalize_channel_name",
    "patch_mask",
    "preprocess_record",
    "pretrain",
    "pretrain_config_from_dict",
    "read_dreamer",
    "run_evaluate",
    "run_finetune",
    "write_synthetic_dreamer",
]
