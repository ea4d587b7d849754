"""Typed pretraining configs: YAML (``yaml.safe_load``) into validated dataclasses.

Same conventions as :mod:`physio_live.core._config_engine`: unknown keys, wrong types and bad values
give one :class:`~physio_live.core.ConfigError` line naming the file, the key and the fix;
command-line overrides use dotted keys (``--set optim.lr=3e-4``) and go through the same checks.

Relative paths in a config (``data.root``, ``data.cache_dir``, ``train.out_dir``, ``model.init``)
are resolved against the current working directory (the repository root in the docs and tests).
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from physio_live.core import (
    ConfigError,
    PhysioLiveError,
    build_dataclass,
    read_config_file,
    scientific_numbers,
)

__all__ = [
    "AugmentConfig",
    "DataConfig",
    "MaskingConfig",
    "MixConfig",
    "ModelConfig",
    "OptimConfig",
    "PretrainConfig",
    "RunConfig",
    "SplitConfig",
    "TrainError",
    "load_pretrain_config",
    "pretrain_config_from_dict",
]


class TrainError(PhysioLiveError):
    """A training run cannot go on (empty corpus, checkpoint that does not fit ...); the text
    says how to fix it."""


_RANGE = re.compile(r"\{(\d+)\.\.(\d+)\}")


def expand_record_pattern(pattern: str) -> list[str]:
    """``"data/{1..3}"`` -> ``["data/1", "data/2", "data/3"]`` (one numeric range per pattern at
    most); any other pattern is returned as it is (a glob on record names)."""
    ranges = _RANGE.findall(pattern)
    if not ranges:
        return [pattern]
    if len(ranges) > 1:
        raise ValueError(f"{pattern!r}: at most one {{a..b}} range per pattern")
    a, b = int(ranges[0][0]), int(ranges[0][1])
    if a > b:
        raise ValueError(f"{pattern!r}: range {{{a}..{b}}} is empty (give {{low..high}})")
    m = _RANGE.search(pattern)
    assert m is not None
    return [pattern[: m.start()] + str(i) + pattern[m.end() :] for i in range(a, b + 1)]


@dataclass
class SplitConfig:
    """A fixed split by record name (patient), written in the recipe.

    Each list holds record names relative to ``data.root`` without the extension (``"17"`` or
    ``"data/17"``), shell globs (``"p1*"``) or numeric ranges (``"{1..160}"``, bounds included).
    Records in no list are not used; a record in two lists is an error. When every list is empty
    the split falls back to ``val_records`` / ``val_fraction``. ``test`` is never used by
    training: it is scored once, at the end (``physio-train score``, the tests).
    """

    train: list[str] = field(default_factory=list)
    val: list[str] = field(default_factory=list)
    test: list[str] = field(default_factory=list)

    @property
    def active(self) -> bool:
        return bool(self.train or self.val or self.test)

    def validate(self, where: str) -> None:
        for name in ("train", "val", "test"):
            for pat in getattr(self, name):
                try:
                    expand_record_pattern(pat)
                except ValueError as exc:
                    raise ConfigError(f"{where}.{name}: {exc}") from None
        if self.active and not self.train:
            raise ConfigError(f"{where}.train: a fixed split needs training records")


@dataclass
class DataConfig:
    """Where the corpus is and how it is preprocessed into the cache."""

    #: ``wfdb`` (ECG records, ``.hea``) or ``edf`` (EEG, ``.edf``/``.bdf``)
    kind: Literal["wfdb", "edf"]
    #: folder scanned recursively for records (relative: to the working directory)
    root: str
    #: signal type read from each record; null: ECG for ``wfdb``, EEG for ``edf`` (set ``ecg``
    #: to read the ECG channel of EDF recordings, e.g. eegmat's)
    signal: Literal["ecg", "eeg"] | None = None
    #: glob patterns (relative to ``root``) restricting the records; empty: every record
    include: list[str] = field(default_factory=list)
    #: where the preprocessed shards and the manifest go (one sub-folder per parameter set)
    cache_dir: str = "runs/cache"
    #: channel (lead) names to use, in model order; null: the first ``n_channels`` of the right
    #: type in each record. Matching ignores case and ``EEG ``/``ECG ``/``Lead `` prefixes, and
    #: MLII/MLI/MLIII count as II/I/III.
    channels: list[str] | None = None
    #: channels per sample (records with fewer are skipped and listed in the manifest)
    n_channels: int = 2
    #: band-pass edges in Hz (causal Butterworth at the native rate, as the live aligner does)
    bandpass: list[float] = field(default_factory=lambda: [0.5, 45.0])
    #: notch in Hz (50 or 60) or null, and its quality factor (the live aligner's defaults)
    notch: float | None = 50.0
    notch_q: float = 30.0
    order: int = 4
    #: model sampling rate and patch length (CBraMod: 200 Hz, 200-sample patches)
    rate: float = 200.0
    patch_size: int = 200
    #: patches per sample (ECG: 10 = 10 s; CBraMod EEG: 30 = 30 s) and hop between samples
    sample_patches: int = 10
    hop_patches: int | None = None
    #: microvolts per model unit (CBraMod: 100 uV)
    unit_uv: float = 100.0
    #: WFDB only: one ADC gain (counts per mV) for every channel instead of the header's
    #: per-channel gains; null: the header's. LUDB needs 1000: its digital leads obey
    #: Einthoven's law exactly (III = II - I), so they share one gain, but its headers give every
    #: lead its own gain (each lead scaled to a ~1 mV range), which breaks the relations between
    #: leads that inter-lead masking learns; 1000 counts/mV (1 uV per count) gives the usual
    #: amplitudes (median lead II QRS range ~1.2 mV).
    wfdb_gain: float | None = None
    #: drop samples whose |amplitude| reaches this (uV) on any channel (CBraMod EEG: 100);
    #: null: keep all
    max_abs_uv: float | None = None
    #: NaN runs up to this long are interpolated; longer ones split the record
    max_gap_s: float = 0.05
    #: seconds dropped after each start (filter settling)
    settle_s: float = 1.0
    #: storage type of the shards
    dtype: Literal["float16", "float32"] = "float16"
    #: samples per shard file
    shard_samples: int = 4096
    #: validation split: records matching these globs (relative to ``root``); when empty, a
    #: stable hash of the patient id (or record) puts ``val_fraction`` of them in validation
    val_records: list[str] = field(default_factory=list)
    val_fraction: float = 0.1
    #: fixed train/validation/test split by record name (see :class:`SplitConfig`)
    split: SplitConfig = field(default_factory=SplitConfig)
    #: regex whose first group (or whole match) on the record path gives the patient id
    patient_regex: str | None = None
    #: worker processes for preprocessing (0: in this process)
    workers: int = 0
    #: training sampler: 0 draws every training sample equally often (a long record dominates);
    #: 1 draws every record equally often; in between, a record's share of the batches is
    #: proportional to its sample count to the power ``1 - balance``. With ``balance > 0`` the
    #: batches are drawn with replacement (seeded by the step, so resuming stays exact).
    balance: float = 0.0

    def validate(self, where: str) -> None:
        if self.n_channels < 1:
            raise ConfigError(f"{where}.n_channels: must be >= 1, got {self.n_channels}")
        if self.channels is not None and len(self.channels) < self.n_channels:
            raise ConfigError(
                f"{where}.channels: lists {len(self.channels)} names but n_channels is "
                f"{self.n_channels}; list at least n_channels names or set channels: null"
            )
        if len(self.bandpass) != 2 or not 0 <= self.bandpass[0] < self.bandpass[1]:
            raise ConfigError(f"{where}.bandpass: give [low, high] Hz, 0 <= low < high")
        if self.bandpass[1] >= self.rate / 2:
            raise ConfigError(
                f"{where}.bandpass: high edge {self.bandpass[1]} Hz must be below {self.rate / 2} "
                f"Hz (it is the anti-aliasing filter before resampling to {self.rate:g} Hz)"
            )
        if self.notch is not None and not 0 < self.notch < self.rate / 2:
            raise ConfigError(f"{where}.notch: must be between 0 and {self.rate / 2} Hz or null")
        if self.sample_patches < 1 or (self.hop_patches is not None and self.hop_patches < 1):
            raise ConfigError(f"{where}.sample_patches/hop_patches: must be >= 1")
        if self.unit_uv <= 0:
            raise ConfigError(f"{where}.unit_uv: must be > 0 microvolts per model unit")
        if self.wfdb_gain is not None and self.wfdb_gain <= 0:
            raise ConfigError(f"{where}.wfdb_gain: counts per mV, > 0 (or null: the header's)")
        if not 0 <= self.val_fraction < 1:
            raise ConfigError(f"{where}.val_fraction: must be in [0, 1), got {self.val_fraction}")
        if not 0 <= self.balance <= 1:
            raise ConfigError(f"{where}.balance: must be in [0, 1], got {self.balance}")
        if self.shard_samples < 1 or self.workers < 0:
            raise ConfigError(f"{where}.shard_samples must be >= 1 and workers >= 0")
        self.split.validate(f"{where}.split")


@dataclass
class MaskingConfig:
    """Masking objective (see :mod:`physio_live.trainer._masking` for the exact scheme)."""

    #: ``patch``: CBraMod (each patch masked with probability ``ratio``); ``dual``: ECG dual masking
    kind: Literal["patch", "dual"] = "patch"
    #: patch masking probability (``patch``) / exact fraction of patches per lead (``dual`` intra)
    ratio: float = 0.5
    #: ``dual``: probability that a sample is masked inter-lead (whole leads) instead of intra-lead
    inter_prob: float = 0.5
    #: ``dual``: fraction of leads hidden in an inter-lead sample (at least 1, at most all but one)
    inter_ratio: float = 0.5
    #: ``dual``: probability that an intra-lead sample hides the *same* patches in every lead
    #: (time-aligned), so no other lead shows the hidden instants and the stretch must be rebuilt
    #: from the rhythm and beat shape of the visible seconds; 0 is the paper's scheme. Scoring
    #: (``physio-train score``, evaluation) always uses the paper's independent intra-lead masks.
    intra_aligned: float = 0.0

    def validate(self, where: str) -> None:
        for name in ("ratio", "inter_prob", "inter_ratio", "intra_aligned"):
            v = getattr(self, name)
            if not 0 <= v <= 1:
                raise ConfigError(f"{where}.{name}: must be in [0, 1], got {v}")
        if self.ratio == 0:
            raise ConfigError(f"{where}.ratio: must be > 0 (nothing would be masked)")


@dataclass
class AugmentConfig:
    """Augmentation of training batches (validation is never augmented). ``scale`` and ``flip``
    treat all channels of a sample alike, so the relations between leads stay intact; the
    ``lead_*`` ones change each lead on its own."""

    #: amplitude factor drawn log-uniformly from [low, high] per sample; null: none
    scale: list[float] | None = None
    #: probability of flipping the sign of a whole sample
    flip: float = 0.0
    #: extra amplitude factor per lead, log-uniform from [low, high] (leads differ in gain
    #: between patients and electrode placements); null: none
    lead_scale: list[float] | None = None
    #: probability of flipping the sign of each lead on its own
    lead_flip: float = 0.0
    #: probability of putting the leads of a sample in a random order (lead order is a
    #: property of the record, not of the heart)
    lead_shuffle: float = 0.0
    #: time scaling: each sample is resampled by a factor drawn log-uniformly from [low, high]
    #: (> 1: faster rhythm, the content of a longer stretch squeezed into the sample; < 1:
    #: slower) from a random start (a random time shift). The stretch may run into the next
    #: sample of the same record when the two are contiguous (the factor is capped at what is
    #: available). null: none
    time_scale: list[float] | None = None
    #: probability that a training batch keeps only a random subset of its leads (how many:
    #: uniform in 1..C; which: uniform; their order kept), so the encoder also serves records
    #: and devices with fewer leads (a 2-lead Holter, the one lead of a chest strap)
    lead_subset: float = 0.0
    #: at most this many leads in such a batch (null: all but one), e.g. 3 to train mostly
    #: the few-lead case (1-3 leads), the one a record without a 12-lead ECG gives
    lead_subset_max: int | None = None
    #: probability that a sample's leads, all but one kept at random, are taken from another
    #: sample of the batch (another record or another time): leads that do not belong
    #: together, so the encoder learns to check a lead against the visible part of the others
    #: before it reads a hidden patch off them (Challenge 2015 v102s: II and V at r = 0.19).
    #: Applied after ``lead_subset``; a batch of one lead or one sample is left as it is
    lead_foreign: float = 0.0

    def validate(self, where: str) -> None:
        for name in ("scale", "lead_scale", "time_scale"):
            v = getattr(self, name)
            if v is not None and (len(v) != 2 or not 0 < v[0] <= v[1]):
                raise ConfigError(f"{where}.{name}: give [low, high] with 0 < low <= high, or null")
        if self.lead_subset_max is not None and self.lead_subset_max < 1:
            raise ConfigError(f"{where}.lead_subset_max: at least 1 lead, or null")
        for name in ("flip", "lead_flip", "lead_shuffle", "lead_subset", "lead_foreign"):
            if not 0 <= getattr(self, name) <= 1:
                raise ConfigError(f"{where}.{name}: must be a probability in [0, 1]")


@dataclass
class ModelConfig:
    """The encoder: CBraMod architecture and its initialisation."""

    #: ``random``, or a checkpoint to start from: ours (a ``.safetensors`` path or a shipped
    #: name such as ``ecg-ludb``) or an official ``.pth``
    init: str = "random"
    embed_dim: int = 200
    depth: int = 12
    num_heads: int = 8
    mlp_dim: int = 800
    pos_kernel: list[int] = field(default_factory=lambda: [19, 7])
    drop_rate: float = 0.1


@dataclass
class OptimConfig:
    """AdamW with linear warmup and cosine decay (a pure function of the step)."""

    lr: float = 5e-4
    min_lr: float = 1e-5
    weight_decay: float = 5e-2
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    warmup_steps: int = 1000
    #: total optimizer steps
    steps: int = 100000
    #: samples per process per micro-batch; global batch = batch_size x world size x accum_steps
    batch_size: int = 64
    accum_steps: int = 1
    #: gradient-norm clipping (0: none)
    grad_clip: float = 1.0

    def validate(self, where: str) -> None:
        if self.steps < 1 or self.batch_size < 1 or self.accum_steps < 1:
            raise ConfigError(f"{where}: steps, batch_size and accum_steps must be >= 1")
        if self.warmup_steps < 0 or self.lr <= 0 or not 0 <= self.min_lr <= self.lr:
            raise ConfigError(f"{where}: need warmup_steps >= 0 and 0 <= min_lr <= lr, lr > 0")
        if len(self.betas) != 2:
            raise ConfigError(f"{where}.betas: give two numbers, e.g. [0.9, 0.999]")


@dataclass
class RunConfig:
    """Run bookkeeping: output folder, seeds, logging, checkpoints, device."""

    out_dir: str = "runs/pretrain"
    seed: int = 0
    log_every: int = 10
    eval_every: int = 500
    #: validation batches per evaluation (0: the whole validation split)
    eval_batches: int = 20
    ckpt_every: int = 500
    #: stop after this many steps in this invocation (checkpoint first), e.g. for job time limits
    stop_after: int | None = None
    #: ``auto``: CUDA when present, else CPU
    device: Literal["auto", "cpu", "cuda"] = "auto"
    #: ``auto``: bf16 autocast on CUDA, float32 on CPU
    precision: Literal["auto", "fp32", "bf16", "fp16"] = "auto"
    compile: bool = False
    #: TensorBoard event files too (``auto``: when the tensorboard package is installed)
    tensorboard: Literal["auto", "on", "off"] = "auto"
    #: batches read ahead by a background thread
    prefetch: int = 2


@dataclass
class MixConfig:
    """One more corpus trained beside ``data`` (an item of ``mix:``), e.g. single-lead records
    beside 12-lead ones: whole batches come from it, so its lead count may differ.

    ``data``, ``masking`` and ``augment`` hold only what differs from the recipe's own sections
    (``root``, ``kind``, ``channels``, ``n_channels``, ``split``, ``scale`` ...; a key given
    replaces the recipe's whole value); filters, rate, patches and the rest are the recipe's.
    ``augment`` lets a corpus take augmentations the other would not bear, e.g. amplitude and
    sign changes on one lead, whose scale says nothing, beside 12-lead records. ``share`` is the
    fraction of steps whose batch comes from this corpus (drawn per step from the run's seed, so
    a resumed run sees the same batches). Its validation records are evaluated beside the main
    corpus's (``eval.csv`` columns ``mix1_mse``, ``mix1_zeros`` ...).
    """

    share: float
    data: dict[str, Any] = field(default_factory=dict)
    masking: dict[str, Any] = field(default_factory=dict)
    augment: dict[str, Any] = field(default_factory=dict)


@dataclass
class PretrainConfig:
    """A whole pretraining recipe (``configs/pretrain_*.yaml``)."""

    modality: Literal["ecg", "eeg"]
    data: DataConfig
    masking: MaskingConfig = field(default_factory=MaskingConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    run: RunConfig = field(default_factory=RunConfig)
    #: more corpora trained beside ``data``, each on its ``share`` of the steps
    mix: list[MixConfig] = field(default_factory=list)
    path: str = "<dict>"

    def validate(self) -> None:
        w = self.path
        self.data.validate(f"{w}: data")
        self.masking.validate(f"{w}: masking")
        self.augment.validate(f"{w}: augment")
        self.optim.validate(f"{w}: optim")
        _check_leads(self.data, self.masking, f"{w}: masking.inter_prob", "data.n_channels")
        if self.data.patch_size != 200:
            raise ConfigError(f"{w}: data.patch_size: CBraMod patches are 200 samples")
        total = 0.0
        for i, m in enumerate(self.mix):
            if not 0 < m.share < 1:
                raise ConfigError(f"{w}: mix[{i}].share: must be in (0, 1), got {m.share}")
            total += m.share
        if total >= 1:
            raise ConfigError(
                f"{w}: mix: the shares add up to {total:g}; they must leave the main corpus "
                "(data) a part of the steps (sum < 1)"
            )
        self.mixed()  # every source's sections are valid

    def mixed(self) -> list[tuple[float, DataConfig, MaskingConfig, AugmentConfig]]:
        """``(share, data, masking, augment)`` of each ``mix`` corpus, its sections filled in
        from the recipe's own."""
        out = []
        for i, m in enumerate(self.mix):
            where = f"{self.path}: mix[{i}]"
            raw = {**dataclasses.asdict(self.data), **m.data}
            data = build_dataclass(DataConfig, scientific_numbers(raw), f"{where}.data")
            data.validate(f"{where}.data")
            raw = {**dataclasses.asdict(self.masking), **m.masking}
            masking = build_dataclass(MaskingConfig, scientific_numbers(raw), f"{where}.masking")
            masking.validate(f"{where}.masking")
            _check_leads(data, masking, f"{where}.masking.inter_prob", f"mix[{i}].data.n_channels")
            raw = {**dataclasses.asdict(self.augment), **m.augment}
            augment = build_dataclass(AugmentConfig, scientific_numbers(raw), f"{where}.augment")
            augment.validate(f"{where}.augment")
            if data.patch_size != self.data.patch_size or data.rate != self.data.rate:
                raise ConfigError(
                    f"{where}.data: rate and patch_size must be the recipe's "
                    f"({self.data.rate:g} Hz, {self.data.patch_size}): one encoder takes both"
                )
            out.append((m.share, data, masking, augment))
        return out

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d.pop("path")
        return d


def _check_leads(data: DataConfig, masking: MaskingConfig, where: str, leads: str) -> None:
    if masking.kind == "dual" and data.n_channels < 2 and masking.inter_prob:
        raise ConfigError(
            f"{where}: inter-lead masking needs {leads} >= 2; "
            "set masking.inter_prob: 0 or use more leads"
        )


def recipe_from_dict(cls: type, data: Any, path: str, sections: str):
    """Build and validate a training recipe dataclass ``cls`` (with ``path`` and ``validate()``)
    from a raw mapping; ``sections`` names its top-level keys for the error message."""
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the file must hold a mapping ({sections} ...)")
    cfg = build_dataclass(cls, scientific_numbers(data), f"{path}:")
    cfg.path = path
    cfg.validate()
    return cfg


def pretrain_config_from_dict(data: Any, path: str = "<dict>") -> PretrainConfig:
    """Build and validate a :class:`PretrainConfig` from a raw mapping."""
    return recipe_from_dict(PretrainConfig, data, path, "modality:, data:, optim:")


def load_pretrain_config(path: str | Path, overrides: list[str] | None = None) -> PretrainConfig:
    """Load a pretraining YAML (a path, or a shipped name like ``pretrain_ecg_smoke``)."""
    data, p = read_config_file(path, overrides, kind="train")
    return pretrain_config_from_dict(data, str(p))
