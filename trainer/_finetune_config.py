"""The fine-tuning / evaluation recipe (``configs/finetune_*.yaml``) as typed dataclasses.

``data:`` is :class:`~physio_live.trainer._data.FinetuneDataConfig`; ``model:`` the two encoders
and the head; ``train:`` the optimisation (probe or full fine-tuning, checkpoint choice on
validation); ``eval:`` the protocols (kfold, loso, split, cv), seeds, modalities and baselines;
``run:`` the output folder, seed and threads.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from physio_live.core import ConfigError, read_config_file

from ._config import recipe_from_dict
from ._data import FinetuneDataConfig

__all__ = [
    "EncoderInit",
    "FinetuneConfig",
    "FinetuneModelConfig",
    "FinetuneRunConfig",
    "FinetuneTrainConfig",
    "Modality",
    "ProtocolConfig",
    "SplitConfig",
    "finetune_config_from_dict",
    "load_finetune_config",
]

Modality = Literal["eeg", "ecg", "fused"]


# --------------------------------------------------------------------------------------------------
# Config
# --------------------------------------------------------------------------------------------------


@dataclass
class EncoderInit:
    """One encoder: random (architecture below) or weights from a checkpoint."""

    #: ``random``, our encoder ``.safetensors`` (e.g. from ``physio-train pretrain``) or an
    #: official CBraMod ``.pth``; a checkpoint fixes the architecture
    init: str = "random"
    embed_dim: int = 200
    depth: int = 12
    num_heads: int = 8
    mlp_dim: int = 800
    drop_rate: float = 0.1
    #: the patch embedding's spectral input: ``linear`` |rFFT| (official) or ``log`` (random
    #: init only; a checkpoint fixes it)
    spectrum: Literal["linear", "log"] = "linear"


@dataclass
class FinetuneModelConfig:
    eeg: EncoderInit = field(default_factory=EncoderInit)
    ecg: EncoderInit = field(default_factory=EncoderInit)
    pooling: Literal["mean", "channels", "flatten"] = "mean"
    #: head widths; ``[]`` is a linear head (a linear probe in ``probe`` mode)
    hidden_dims: list[int] = field(default_factory=lambda: [256])
    dropout: float = 0.1
    name: str = "cbramod-fusion"
    #: ``concat``: one head on both embeddings; ``late``: a head per modality, logits added
    fusion: Literal["concat", "late"] = "concat"
    #: measurements of each ECG window beside the ECG embedding (``heart_rate``: the app's
    #: R-peak detector on the window); the exported model computes them itself
    ecg_features: list[Literal["heart_rate"]] = field(default_factory=list)
    #: measurements of each EEG window beside the EEG embedding (``band_powers``: log10 band
    #: powers per channel, the classical row's features; ``relative_band_powers``: each band's
    #: share of the channel's power), standardized on the training windows
    eeg_features: list[Literal["band_powers", "relative_band_powers"]] = field(default_factory=list)
    #: a linear term on the measured features beside the head, started at the classical
    #: logistic regression on them (fitted on the training windows, its L2 chosen on validation
    #: AUROC) with the head's last layer at zero: the deep part learns what the features miss
    feature_skip: bool = False


@dataclass
class FinetuneTrainConfig:
    mode: Literal["probe", "finetune"] = "finetune"
    #: optimizer steps per model (per fold and modality, and for the final model)
    steps: int = 1000
    batch_size: int = 32
    lr: float = 1e-3
    min_lr: float = 1e-5
    warmup_steps: int = 50
    #: encoder learning rate = lr x this (``finetune`` mode)
    encoder_lr_scale: float = 0.1
    #: the ECG encoder's own scale (null: ``encoder_lr_scale``); 0 keeps it as initialised
    ecg_encoder_lr_scale: float | None = None
    weight_decay: float = 0.05
    grad_clip: float = 1.0
    #: weight positives by negatives/positives per target (class imbalance)
    balance: bool = True
    #: fused models: probability per window that one modality is hidden during training (trains
    #: the missing-modality path the app uses when a stream drops out)
    modality_dropout: float = 0.1
    device: Literal["auto", "cpu", "cuda"] = "auto"
    #: batch size for computing embeddings and predictions
    eval_batch_size: int = 64
    #: folds with validation subjects: score validation AUROC every this many steps (and at the
    #: end) and keep the best weights (0: only at the end)
    eval_every: int = 50
    #: folds with validation subjects: after training, fit each target's logit a * z + b to the
    #: validation labels (class-balanced Platt scaling) and fold it into the head's last layer,
    #: so P = 0.5 is the decision point validation suggests; AUROC is unchanged (a > 0)
    recalibrate: bool = False
    #: ``model.feature_skip``: its learning rate = lr x this; 0 keeps the regression as fitted
    skip_lr_scale: float = 0.0


@dataclass
class SplitConfig:
    """A fixed split by subject (``protocols: [split]``); items may be ranges like ``"00-27"``
    (quote them in YAML); an empty ``train`` is every subject not in ``val`` or ``test``."""

    train: list[str] = field(default_factory=list)
    val: list[str] = field(default_factory=list)
    test: list[str] = field(default_factory=list)


@dataclass
class ProtocolConfig:
    #: ``kfold`` (subject-dependent, by trial/clip), ``loso``, ``split`` (fixed subject lists,
    #: ``split``) and ``cv`` (subject-wise, ``cv_folds`` groups; test k, validation k-1)
    protocols: list[Literal["kfold", "loso", "split", "cv"]] = field(
        default_factory=lambda: ["kfold", "loso"]
    )
    folds: int = 5
    split: SplitConfig = field(default_factory=SplitConfig)
    cv_folds: int = 9
    #: trainings per fold and modality (seeds run.seed, run.seed + 1 ...) for ``split`` / others
    seeds: int = 1
    cv_seeds: int = 1
    #: classical reference rows on the same windows and folds (EEG band powers + logistic
    #: regression; heart rate from the ECG + logistic regression)
    baselines: bool = False
    split_by: Literal["trial", "clip"] = "trial"
    modalities: list[Modality] = field(default_factory=lambda: ["eeg", "ecg", "fused"])
    #: run only the first this many folds of each protocol (null: all)
    max_folds: int | None = None
    #: save a fused model as ``model.safetensors``: with a ``split`` protocol, the fused model of
    #: the seed with the best validation AUROC; otherwise one trained on all the data
    final_model: bool = True
    #: also copy that model here (e.g. models/weights/eegmat-fused.safetensors)
    export: str | None = None
    #: ``physio-train evaluate``: the fused checkpoint to evaluate
    checkpoint: str | None = None


@dataclass
class FinetuneRunConfig:
    out_dir: str = "runs/finetune"
    seed: int = 0
    #: torch CPU threads (null: torch's default)
    threads: int | None = None


@dataclass
class FinetuneConfig:
    """A fine-tuning / evaluation recipe (``configs/finetune_*.yaml``)."""

    data: FinetuneDataConfig
    model: FinetuneModelConfig = field(default_factory=FinetuneModelConfig)
    train: FinetuneTrainConfig = field(default_factory=FinetuneTrainConfig)
    eval: ProtocolConfig = field(default_factory=ProtocolConfig)
    run: FinetuneRunConfig = field(default_factory=FinetuneRunConfig)
    path: str = "<dict>"

    def validate(self) -> None:
        w = self.path
        self.data.validate(f"{w}: data")
        t, e = self.train, self.eval
        if t.steps < 1 or t.batch_size < 1 or t.eval_batch_size < 1 or t.warmup_steps < 0:
            raise ConfigError(f"{w}: train: steps, batch sizes must be >= 1, warmup_steps >= 0")
        if (
            t.lr <= 0
            or not 0 <= t.min_lr <= t.lr
            or t.encoder_lr_scale < 0
            or (t.ecg_encoder_lr_scale or 0) < 0
        ):
            raise ConfigError(
                f"{w}: train: need lr > 0, 0 <= min_lr <= lr, encoder_lr_scale >= 0 and "
                "ecg_encoder_lr_scale >= 0 (or null)"
            )
        m = self.model
        if m.feature_skip and not (m.eeg_features or m.ecg_features):
            raise ConfigError(
                f"{w}: model.feature_skip: needs measured features to regress on; add "
                "model.eeg_features: [band_powers] or model.ecg_features: [heart_rate]"
            )
        if m.feature_skip and t.mode != "finetune":
            raise ConfigError(f"{w}: model.feature_skip: only with train.mode: finetune")
        if t.skip_lr_scale < 0:
            raise ConfigError(f"{w}: train.skip_lr_scale: must be >= 0")
        if not 0 <= t.modality_dropout < 1:
            raise ConfigError(f"{w}: train.modality_dropout: must be in [0, 1)")
        if e.folds < 2:
            raise ConfigError(f"{w}: eval.folds: need at least 2 folds")
        if e.seeds < 1 or e.cv_seeds < 1 or t.eval_every < 0:
            raise ConfigError(f"{w}: eval.seeds/cv_seeds must be >= 1, train.eval_every >= 0")
        if "split" in e.protocols and not e.split.test:
            raise ConfigError(
                f"{w}: eval.split.test: list the test subjects (protocols: [split]), e.g. "
                "test: ['32-35']"
            )
        if not e.modalities or not e.protocols:
            raise ConfigError(f"{w}: eval: list at least one protocol and one modality")
        if e.max_folds is not None and e.max_folds < 1:
            raise ConfigError(f"{w}: eval.max_folds: must be >= 1 or null")
        for name in ("eeg", "ecg"):
            enc: EncoderInit = getattr(self.model, name)
            if enc.init == "random" and (enc.embed_dim % enc.num_heads or enc.num_heads % 2):
                raise ConfigError(
                    f"{w}: model.{name}: embed_dim must divide by num_heads, and num_heads be even"
                )


def finetune_config_from_dict(data: Any, path: str = "<dict>") -> FinetuneConfig:
    """Build and validate a :class:`FinetuneConfig` from a raw mapping."""
    return recipe_from_dict(FinetuneConfig, data, path, "data:, model:, train:")


def load_finetune_config(path: str | Path, overrides: list[str] | None = None) -> FinetuneConfig:
    """Load a fine-tuning YAML (a path, or a shipped name like ``finetune_dreamer_smoke``)."""
    data, p = read_config_file(path, overrides, kind="train")
    return finetune_config_from_dict(data, str(p))
