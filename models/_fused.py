"""Fused EEG + ECG emotion model: two CBraMod encoders, embeddings concatenated, an MLP head.

The "simple fusion" of Ghallab et al. (2025, "Leveraging Foundational Models and Simple Fusion for
Multi-modal Physiological Signal Analysis"): an EEG CBraMod and a symmetric ECG CBraMod each embed
their window, the two embeddings are concatenated and a small MLP gives one logit per target
(default: valence, arousal, dominance; logit > 0 means "high", i.e. a rating above the label
threshold, DREAMER-style 1-5 ratings).

Missing modality fallback: when a window lacks a modality (``eeg=None``, or a per-window
``*_present`` flag is false), that modality's embedding is replaced by a learned "missing"
embedding, and the prediction flags it. A model never trained says so in every prediction.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Literal

import numpy as np
import torch
from torch import Tensor, nn

from physio_live.core import BANDS

from ._cbramod import CBraMod, CBraModConfig
from ._errors import CheckpointError, ModelInputError

__all__ = [
    "UNTRAINED_WARNING",
    "EmotionPrediction",
    "FusedEmotionConfig",
    "FusedEmotionModel",
    "ModalityConfig",
    "Provenance",
    "inference_context",
]

UNTRAINED_WARNING = "untrained model: estimates are meaningless"

DREAMER_EEG_CHANNELS = (
    "AF3", "F7", "F3", "FC5", "T7", "P7", "O1", "O2", "P8", "T8", "FC6", "F4", "F8", "AF4",
)  # fmt: skip
DREAMER_ECG_CHANNELS = ("ECG1", "ECG2")

Pooling = Literal["mean", "channels", "flatten"]
POOLINGS = ("mean", "channels", "flatten")
Fusion = Literal["concat", "late"]
FUSIONS = ("concat", "late")
#: measurements of the ECG window a fused model can take beside the ECG encoder's embedding
ECG_FEATURES = ("heart_rate",)
_HR_CENTER, _HR_SCALE = 75.0, 15.0  # beats/min -> the head's input scale
#: measurements of the EEG window a fused model can take beside the EEG encoder's embedding
EEG_FEATURES = ("band_powers", "relative_band_powers")


def eeg_feature_values(eeg: Tensor, names: Sequence[str]) -> Tensor:
    """Raw values ``[B, C * 5 per name]`` (float32, on ``eeg``'s device) of EEG windows
    ``[B, C, P, 200]`` in model units: ``band_powers`` is the classical row's and the readout
    model's feature, log10 band powers of each channel (:func:`band_power_features`: the app's
    Welch band powers, delta..gamma), channel by channel; ``relative_band_powers`` the same
    minus log10 of the channel's total over the five bands (each band's share: blind to the
    channel's gain). Computed on the CPU."""
    from ._readout import band_power_features

    unknown = [n for n in names if n not in EEG_FEATURES]
    if unknown:
        raise ValueError(f"unknown EEG features {unknown}; known: {list(EEG_FEATURES)}")
    x = eeg.detach().float().cpu().numpy()
    logp = band_power_features(x)  # [B, C * 5]
    cols = []
    for name in names:
        if name == "band_powers":
            cols.append(logp)
        else:
            per = logp.reshape(len(x), -1, len(BANDS))
            total = np.log10(np.sum(10.0**per, axis=2, keepdims=True))
            cols.append((per - total).reshape(len(x), -1))
    return torch.tensor(np.concatenate(cols, axis=1), dtype=torch.float32, device=eeg.device)


def eeg_feature_count(names: Sequence[str], n_channels: int) -> int:
    """How many values :func:`eeg_feature_values` gives per window."""
    return len(names) * n_channels * len(BANDS)


def ecg_feature_values(ecg: Tensor, names: Sequence[str]) -> Tensor:
    """Raw values ``[B, len(names)]`` (float32, on ``ecg``'s device) of ECG windows
    ``[B, C, P, 200]`` in model units: ``heart_rate`` is the app's R-peak detector and heart-rate
    readout on the window (:func:`~physio_live.models.heart_rate`; NaN when it finds too few
    beats). Computed on the CPU."""
    from ._readout import heart_rate

    cols = []
    for name in names:
        if name != "heart_rate":
            raise ValueError(f"unknown ECG feature {name!r}; known: {list(ECG_FEATURES)}")
        cols.append(heart_rate(ecg.detach().float().cpu().numpy()))
    return torch.tensor(np.stack(cols, axis=1), dtype=torch.float32, device=ecg.device)


def encode_ecg_features(raw: Tensor) -> Tensor:
    """The head's input for raw ECG feature values: heart rate as (bpm - 75) / 15, clipped to
    +/-5; 0 where the value is missing (NaN)."""
    z = ((raw - _HR_CENTER) / _HR_SCALE).clamp(-5.0, 5.0)
    return torch.nan_to_num(z, nan=0.0)


def pool_features(feats: Tensor, pooling: str) -> Tensor:
    """An encoder's per-patch features ``[B, C, P, D]`` -> the embedding a head sees: ``mean``
    over channels and patches ``[B, D]``, ``channels``: mean over patches, each channel kept
    ``[B, C * D]``, or ``flatten`` ``[B, C * P * D]``."""
    if pooling == "mean":
        return feats.mean(dim=(1, 2))
    if pooling == "channels":
        return feats.mean(dim=2).flatten(1)
    return feats.flatten(1)


def _from_dict(cls: type, d: object, what: str) -> dict[str, object]:
    """Check a config mapping against a dataclass's fields; unknown keys are an error."""
    if not isinstance(d, dict):
        raise CheckpointError(f"{what} config is not a JSON object: the checkpoint is damaged")
    unknown = sorted(set(d) - set(cls.__dataclass_fields__))
    if unknown:
        raise CheckpointError(
            f"{what} config has unknown keys {unknown}: the checkpoint was written by another "
            f"version of physio-live; re-export it with this version"
        )
    return dict(d)


def _model_kwargs(
    cls: type, d: object, what: str, tuples: tuple[str, ...] = ("targets",)
) -> dict[str, object]:
    """A model config mapping as constructor arguments: its ``eeg``/``ecg`` modalities rebuilt,
    the ``tuples`` keys as tuples (JSON has lists); unknown keys are an error."""
    kw = _from_dict(cls, d, what)
    for key in ("eeg", "ecg"):
        if key in kw:
            kw[key] = ModalityConfig.from_dict(kw[key])
    for key in tuples:
        if key in kw:
            kw[key] = tuple(kw[key])  # type: ignore[call-overload]
    return kw


@dataclass(frozen=True)
class ModalityConfig:
    """What one encoder expects as input, so the app can feed it the way it was trained."""

    name: str
    channels: tuple[str, ...]
    """Channel (lead) names in model order; empty means any number of channels."""
    n_patches: int = 4
    """Window length in patches (one patch = ``patch_size`` samples at ``sampling_rate``)."""
    sampling_rate: float = 200.0
    patch_size: int = 200
    units: str = "uV"
    scale: float = 0.01
    """Model input = signal in ``units`` x ``scale`` (CBraMod takes units of 100 uV)."""
    encoder: CBraModConfig = field(default_factory=lambda: CBraModConfig(out_dim=None))

    @property
    def window_seconds(self) -> float:
        return self.n_patches * self.patch_size / self.sampling_rate

    def to_dict(self) -> dict[str, object]:
        d = asdict(self)
        d["channels"] = list(self.channels)
        d["encoder"] = self.encoder.to_dict()
        return d

    @classmethod
    def from_dict(cls, d: object) -> ModalityConfig:
        kw = _from_dict(cls, d, "modality")
        kw["channels"] = tuple(kw.get("channels", ()))  # type: ignore[arg-type]
        if "encoder" in kw:
            kw["encoder"] = CBraModConfig.from_dict(kw["encoder"])  # type: ignore[arg-type]
        return cls(**kw)  # type: ignore[arg-type]


@dataclass(frozen=True)
class FusedEmotionConfig:
    """Architecture, inputs and targets of a fused model: all a checkpoint needs to rebuild it."""

    eeg: ModalityConfig = field(
        default_factory=lambda: ModalityConfig(name="eeg", channels=DREAMER_EEG_CHANNELS)
    )
    ecg: ModalityConfig = field(
        default_factory=lambda: ModalityConfig(name="ecg", channels=DREAMER_ECG_CHANNELS)
    )
    targets: tuple[str, ...] = ("valence", "arousal", "dominance")
    label_threshold: float = 3.0
    """A rating above this is "high" (the positive class); DREAMER rates 1-5."""
    pooling: Pooling = "mean"
    """``mean`` over channels and patches; ``channels``: mean over patches, each channel's
    features kept (fixes the channel count, any window length); or ``flatten`` every
    channel-patch feature (as the official fine-tuning heads do; fixes channels and patches)."""
    hidden_dims: tuple[int, ...] = (256,)
    dropout: float = 0.1
    name: str = "cbramod-fusion"
    fusion: Fusion = "concat"
    """``concat``: one MLP head on both embeddings side by side; ``late``: one MLP head per
    modality on its own embedding, their logits added (:class:`LateFusionHead`)."""
    ecg_features: tuple[str, ...] = ()
    """Measurements of each ECG window appended to the ECG embedding (``heart_rate``: the app's
    R-peak detector on the window, :func:`ecg_feature_values`). The model computes them from its
    ECG input, so the app feeds it as before."""
    eeg_features: tuple[str, ...] = ()
    """Measurements of each EEG window appended to the EEG embedding (``band_powers``: log10 band
    powers of each channel, :func:`eeg_feature_values`), standardized with the training windows'
    mean and spread (kept in the weights). The model computes them from its EEG input."""
    feature_skip: bool = False
    """A linear term on the measured features alone beside the head (:class:`FeatureSkipHead`):
    the trainer starts it at the classical logistic regression on those features, so the deep
    part learns what the features miss. Needs ``eeg_features`` or ``ecg_features``."""

    def __post_init__(self) -> None:
        if self.pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {list(POOLINGS)}, got {self.pooling!r}")
        if self.fusion not in FUSIONS:
            raise ValueError(f"fusion must be one of {list(FUSIONS)}, got {self.fusion!r}")
        unknown = [f for f in self.ecg_features if f not in ECG_FEATURES]
        if unknown:
            raise ValueError(f"ecg_features {unknown} unknown; known: {list(ECG_FEATURES)}")
        unknown = [f for f in self.eeg_features if f not in EEG_FEATURES]
        if unknown:
            raise ValueError(f"eeg_features {unknown} unknown; known: {list(EEG_FEATURES)}")
        if self.eeg_features and not self.eeg.channels:
            raise ValueError("eeg_features need the EEG channel names (one feature per channel)")
        if self.feature_skip and not (self.eeg_features or self.ecg_features):
            raise ValueError("feature_skip needs measured features (eeg_features, ecg_features)")
        if not self.targets:
            raise ValueError("a fused model needs at least one target")
        if self.pooling != "mean" and not (self.eeg.channels and self.ecg.channels):
            raise ValueError(f"pooling={self.pooling!r} needs the channel names of both modalities")

    def to_dict(self) -> dict[str, object]:
        return {
            "eeg": self.eeg.to_dict(),
            "ecg": self.ecg.to_dict(),
            "targets": list(self.targets),
            "label_threshold": self.label_threshold,
            "pooling": self.pooling,
            "hidden_dims": list(self.hidden_dims),
            "dropout": self.dropout,
            "name": self.name,
            "fusion": self.fusion,
            "ecg_features": list(self.ecg_features),
            "eeg_features": list(self.eeg_features),
            "feature_skip": self.feature_skip,
        }

    @classmethod
    def from_dict(cls, d: object) -> FusedEmotionConfig:
        return cls(
            **_model_kwargs(
                cls, d, "fused model", ("targets", "hidden_dims", "ecg_features", "eeg_features")
            )
        )


@dataclass(frozen=True)
class Provenance:
    """Where the weights come from; ``trained=False`` makes every prediction say so."""

    trained: bool = False
    source: str = "random initialisation"
    parents: tuple[str, ...] = ()
    """Checkpoints the weights started from (e.g. ``hf://weighting666/CBraMod@<rev>/...``)."""
    datasets: tuple[str, ...] = ()
    created: str = ""
    software: str = ""
    notes: str = ""

    def to_dict(self) -> dict[str, object]:
        d = asdict(self)
        d["parents"], d["datasets"] = list(self.parents), list(self.datasets)
        return d

    @classmethod
    def from_dict(cls, d: object) -> Provenance:
        kw = _from_dict(cls, d, "provenance")
        for key in ("parents", "datasets"):
            if key in kw:
                kw[key] = tuple(kw[key])  # type: ignore[arg-type]
        return cls(**kw)  # type: ignore[arg-type]


@dataclass(frozen=True)
class EmotionPrediction:
    """One batch of estimates: ``probabilities[b, t]`` = P(target t is high) for window b."""

    targets: tuple[str, ...]
    probabilities: Tensor
    eeg_missing: Tensor
    ecg_missing: Tensor
    untrained: bool
    model_id: str
    #: per window, what the model says about it ("" = nothing), e.g. that it is calibrating
    notes: tuple[str, ...] | None = None

    @property
    def warning(self) -> str | None:
        return UNTRAINED_WARNING if self.untrained else None


def _mlp(in_dim: int, hidden: tuple[int, ...], out_dim: int, dropout: float) -> nn.Sequential:
    layers: list[nn.Module] = []
    for width in hidden:
        layers += [nn.Linear(in_dim, width), nn.ELU(), nn.Dropout(dropout)]
        in_dim = width
    layers.append(nn.Linear(in_dim, out_dim))
    return nn.Sequential(*layers)


class LateFusionHead(nn.Module):
    """Late fusion: an MLP on the EEG embedding plus an MLP on the ECG embedding, logits added.

    Takes the concatenated embedding ``[B, eeg_dim + ecg_dim]`` like the ``concat`` head, so every
    caller of ``model.head`` works with either. No term mixes the modalities: each logit is what
    its modality says, and a missing modality adds its learned constant.
    """

    def __init__(
        self, eeg_dim: int, ecg_dim: int, hidden: tuple[int, ...], out_dim: int, dropout: float
    ) -> None:
        super().__init__()
        self.eeg_dim = eeg_dim
        self.eeg = _mlp(eeg_dim, hidden, out_dim, dropout)
        self.ecg = _mlp(ecg_dim, hidden, out_dim, dropout)

    def forward(self, emb: Tensor) -> Tensor:
        return self.eeg(emb[:, : self.eeg_dim]) + self.ecg(emb[:, self.eeg_dim :])


class FeatureSkipHead(nn.Module):
    """A head plus a linear term on the measured-feature columns of the embedding alone ("wide and
    deep"): ``logits = head(emb) + skip(emb[:, columns])``. Trained from the classical logistic
    regression on those features (:func:`physio_live.trainer` sets ``skip`` to it and the head's
    last layer to zero), the deep part learns what the features miss."""

    def __init__(self, head: nn.Module, columns: Sequence[int], out_dim: int) -> None:
        super().__init__()
        self.head = head
        self.register_buffer("columns", torch.as_tensor(list(columns)), persistent=False)
        self.skip = nn.Linear(len(columns), out_dim)

    def forward(self, emb: Tensor) -> Tensor:
        return self.head(emb) + self.skip(emb.index_select(1, self.columns))


class FusedEmotionModel(nn.Module):
    """EEG encoder ++ ECG encoder -> MLP head with one logit per target."""

    def __init__(
        self,
        config: FusedEmotionConfig | None = None,
        *,
        eeg_encoder: CBraMod | None = None,
        ecg_encoder: CBraMod | None = None,
        provenance: Provenance | None = None,
    ) -> None:
        super().__init__()
        config = config or FusedEmotionConfig()
        self.eeg_encoder = self._encoder(eeg_encoder, config.eeg)
        self.ecg_encoder = self._encoder(ecg_encoder, config.ecg)
        # The configs record the encoders actually used (e.g. those passed in).
        self.config = replace(
            config,
            eeg=replace(config.eeg, encoder=self.eeg_encoder.config),
            ecg=replace(config.ecg, encoder=self.ecg_encoder.config),
        )
        self.provenance = provenance or Provenance()
        n_eeg_feat = eeg_feature_count(self.config.eeg_features, len(self.config.eeg.channels))
        eeg_dim = self._embed_dim(self.config.eeg) + n_eeg_feat
        ecg_dim = self._embed_dim(self.config.ecg) + len(self.config.ecg_features)
        if n_eeg_feat:  # the training windows' mean and spread of each raw EEG feature
            self.register_buffer("eeg_feature_center", torch.zeros(n_eeg_feat))
            self.register_buffer("eeg_feature_scale", torch.ones(n_eeg_feat))
        self.eeg_missing = nn.Parameter(torch.zeros(eeg_dim))
        self.ecg_missing = nn.Parameter(torch.zeros(ecg_dim))
        nn.init.normal_(self.eeg_missing, std=0.02)
        nn.init.normal_(self.ecg_missing, std=0.02)
        n_out = len(config.targets)
        self.head: nn.Module = (
            LateFusionHead(eeg_dim, ecg_dim, config.hidden_dims, n_out, config.dropout)
            if config.fusion == "late"
            else _mlp(eeg_dim + ecg_dim, config.hidden_dims, n_out, config.dropout)
        )
        if config.feature_skip:
            self.head = FeatureSkipHead(self.head, self.feature_columns("eeg", "ecg"), n_out)
        self._model_id: str | None = None

    def feature_columns(self, *mods: Literal["eeg", "ecg"]) -> list[int]:
        """Where the measured features of modalities ``mods`` lie in the concatenated embedding
        (:meth:`forward_embeddings`), in order."""
        cfg = self.config
        n_eeg = eeg_feature_count(cfg.eeg_features, len(cfg.eeg.channels))
        eeg_end = self._embed_dim(cfg.eeg) + n_eeg
        cols: list[int] = []
        if "eeg" in mods:
            cols += range(eeg_end - n_eeg, eeg_end)
        if "ecg" in mods:
            start = eeg_end + self._embed_dim(cfg.ecg)
            cols += range(start, start + len(cfg.ecg_features))
        return cols

    @staticmethod
    def _encoder(encoder: CBraMod | None, spec: ModalityConfig) -> CBraMod:
        if encoder is None:
            encoder = CBraMod.from_config(spec.encoder)
        if not isinstance(encoder.head, nn.Identity):
            encoder.reset_head()  # fusion uses features; the reconstruction head stays unused
        return encoder

    def _embed_dim(self, spec: ModalityConfig) -> int:
        d = spec.encoder.embed_dim
        if self.config.pooling == "channels":
            return len(spec.channels) * d
        return d if self.config.pooling == "mean" else len(spec.channels) * spec.n_patches * d

    @property
    def untrained(self) -> bool:
        return not self.provenance.trained

    @property
    def model_id(self) -> str:
        """``<name>-<12 hex of the weights' SHA-256>``: set when saved or loaded, else computed
        on first use (it does not follow later weight updates until the model is saved)."""
        if self._model_id is None:
            self._model_id = f"{self.config.name}-{weights_fingerprint(self)[:12]}"
        return self._model_id

    def _check(self, x: Tensor, spec: ModalityConfig) -> None:
        n_ch = len(spec.channels)
        ok = x.ndim == 4 and x.shape[-1] == spec.patch_size and (not n_ch or x.shape[1] == n_ch)
        if ok and self.config.pooling == "flatten":
            ok = x.shape[2] == spec.n_patches
        if not ok:
            want = f"(batch, {n_ch or 'channels'}, {spec.n_patches}, {spec.patch_size})"
            raise ModelInputError(
                f"{spec.name} input has shape {tuple(x.shape)} but this model expects {want} "
                f"(channels {', '.join(spec.channels) or 'any'}): configure the {spec.name} stream "
                f"with these channels in this order and a {spec.window_seconds:g}-s window"
            )

    def _embed(
        self,
        x: Tensor | None,
        present: Tensor | None,
        batch: int,
        encoder: CBraMod,
        missing: Tensor,
        spec: ModalityConfig,
        mod: Literal["eeg", "ecg"],
        extra_raw: Tensor | None = None,
    ) -> tuple[Tensor, Tensor]:
        if x is None:
            flags = torch.ones(batch, dtype=torch.bool, device=missing.device)
            return missing.expand(batch, -1), flags
        self._check(x, spec)
        if present is not None:
            present = present.to(device=x.device, dtype=torch.bool).reshape(batch)
            x = torch.where(present[:, None, None, None], x, 0.0)  # no NaN from absent windows
        feats = encoder.forward_features(x)
        emb = pool_features(feats, self.config.pooling)
        emb = self.append_features(mod, emb, x, extra_raw)
        if present is None:
            return emb, torch.zeros(batch, dtype=torch.bool, device=x.device)
        return torch.where(present[:, None], emb, missing.to(emb.dtype)), ~present

    def append_features(
        self, mod: Literal["eeg", "ecg"], emb: Tensor, x: Tensor, raw: Tensor | None = None
    ) -> Tensor:
        """The pooled embedding ``emb`` of modality ``mod`` (input ``x``) with that modality's
        measured features appended (:meth:`append_eeg_features`, :meth:`append_ecg_features`);
        ``emb`` itself when the model takes none. ``raw``: the features precomputed (the
        trainer's cache)."""
        if mod == "eeg" and self.config.eeg_features:
            return self.append_eeg_features(emb, x, raw)
        if mod == "ecg" and self.config.ecg_features:
            return self.append_ecg_features(emb, x, raw)
        return emb

    def append_ecg_features(self, emb: Tensor, ecg: Tensor, raw: Tensor | None = None) -> Tensor:
        """The pooled ECG embedding ``emb`` with ``config.ecg_features`` appended: ``raw`` values
        when given (precomputed, as the trainer caches them), else measured on ``ecg``."""
        if raw is None:
            raw = ecg_feature_values(ecg, self.config.ecg_features)
        return torch.cat((emb, encode_ecg_features(raw.to(emb.device).float()).to(emb.dtype)), 1)

    def append_eeg_features(self, emb: Tensor, eeg: Tensor, raw: Tensor | None = None) -> Tensor:
        """The pooled EEG embedding ``emb`` with ``config.eeg_features`` appended, standardized
        (:meth:`set_eeg_feature_stats`), clipped to +/-5, 0 where missing; ``raw`` values when
        given (precomputed), else measured on ``eeg``."""
        if raw is None:
            raw = eeg_feature_values(eeg, self.config.eeg_features)
        raw = raw.to(emb.device).float()
        z = ((raw - self.eeg_feature_center) / self.eeg_feature_scale).clamp(-5.0, 5.0)
        return torch.cat((emb, torch.nan_to_num(z, nan=0.0).to(emb.dtype)), 1)

    @torch.no_grad()
    def set_eeg_feature_stats(self, raw: Tensor) -> None:
        """Standardize the EEG features with the mean and spread of ``raw`` ``[N, F]``, the
        training windows' raw values (NaN ignored; a constant feature keeps spread 1)."""
        raw = raw.double()
        ok = torch.isfinite(raw)
        n = ok.sum(0).clamp_min(1)
        mu = torch.where(ok, raw, 0.0).sum(0) / n
        var = (torch.where(ok, raw - mu, 0.0) ** 2).sum(0) / (n - 1).clamp_min(1)
        sd = var.sqrt()
        self.eeg_feature_center.copy_(mu.float())
        self.eeg_feature_scale.copy_(torch.where(sd > 1e-6, sd, 1.0).float())

    def forward_embeddings(
        self,
        eeg: Tensor | None,
        ecg: Tensor | None,
        *,
        eeg_present: Tensor | None = None,
        ecg_present: Tensor | None = None,
        ecg_extra: Tensor | None = None,
        eeg_extra: Tensor | None = None,
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Concatenated embedding [B, E] and the missing flags [B] of EEG and ECG.
        ``ecg_extra`` / ``eeg_extra``: the raw ``config.ecg_features`` / ``eeg_features`` of the
        windows, when already computed (the trainer's cache); else the model computes them."""
        if eeg is None and ecg is None:
            raise ModelInputError("the fused model got neither EEG nor ECG: pass at least one")
        batch = (eeg if eeg is not None else ecg).shape[0]  # type: ignore[union-attr]
        if eeg is not None and ecg is not None and ecg.shape[0] != batch:
            raise ModelInputError(
                f"EEG batch {batch} != ECG batch {ecg.shape[0]}: pass the same windows to both"
            )
        cfg = self.config
        e, e_miss = self._embed(
            eeg, eeg_present, batch, self.eeg_encoder, self.eeg_missing, cfg.eeg, "eeg", eeg_extra
        )  # fmt: skip
        c, c_miss = self._embed(
            ecg, ecg_present, batch, self.ecg_encoder, self.ecg_missing, cfg.ecg, "ecg", ecg_extra
        )  # fmt: skip
        return torch.cat((e, c.to(e.dtype)), dim=1), e_miss, c_miss

    def forward(
        self,
        eeg: Tensor | None,
        ecg: Tensor | None,
        *,
        eeg_present: Tensor | None = None,
        ecg_present: Tensor | None = None,
        ecg_extra: Tensor | None = None,
        eeg_extra: Tensor | None = None,
    ) -> Tensor:
        """``eeg`` [B, C_eeg, P, 200], ``ecg`` [B, C_ecg, P, 200] (either may be None) ->
        logits [B, n_targets]."""
        emb, _, _ = self.forward_embeddings(
            eeg, ecg, eeg_present=eeg_present, ecg_present=ecg_present, ecg_extra=ecg_extra,
            eeg_extra=eeg_extra,
        )  # fmt: skip
        return self.head(emb)

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
        """Probabilities and flags under inference mode (bf16 autocast if asked). ``t_end``, the
        windows' end times, is part of the worker's contract; a fused model keeps no state from
        window to window and does not need them (a readout model's baseline does)."""
        del t_end
        device = next(self.parameters()).device
        with inference_context(device, bf16=bf16):
            emb, e_miss, c_miss = self.forward_embeddings(
                eeg, ecg, eeg_present=eeg_present, ecg_present=ecg_present
            )
            logits = self.head(emb)
        return EmotionPrediction(
            targets=self.config.targets,
            probabilities=torch.sigmoid(logits.float()),
            eeg_missing=e_miss,
            ecg_missing=c_miss,
            untrained=self.untrained,
            model_id=self.model_id,
        )


@contextlib.contextmanager
def inference_context(device: torch.device | str, *, bf16: bool = False) -> Iterator[None]:
    """``torch.inference_mode()``, plus bfloat16 autocast when ``bf16`` (CUDA or CPU).

    On CPUs with AVX512-BF16 or AMX the encoders' inference path then runs its linears in bfloat16
    on oneDNN (see :mod:`._kernels`); results differ from float32 by a few thousandths, so replays
    are only bit-identical to live runs made with the same setting.
    """
    dev = torch.device(device).type
    autocast = (
        torch.autocast(dev, torch.bfloat16)
        if bf16 and dev in ("cuda", "cpu")
        else contextlib.nullcontext()
    )
    with torch.inference_mode(), autocast:
        yield


def weights_fingerprint(model: nn.Module) -> str:
    """SHA-256 over the names, shapes, dtypes and bytes of a model's state_dict."""
    h = hashlib.sha256()
    for name, t in sorted(model.state_dict().items()):
        t = t.detach().cpu().contiguous()
        h.update(f"{name}:{tuple(t.shape)}:{t.dtype};".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()
