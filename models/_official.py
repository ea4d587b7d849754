"""The official CBraMod checkpoint layout <-> ours, strict loading with one clear error, and the
constructors that take a state_dict (``cbramod_base``, ``cbramod_ecg``)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Literal

from torch import Tensor, nn

from ._cbramod import CBraMod, CBraModConfig
from ._errors import CheckpointError

__all__ = [
    "cbramod_base",
    "cbramod_ecg",
    "checkpoint_filter_fn",
    "config_from_official",
    "load_cbramod_state_dict",
    "load_strict",
    "to_official_state_dict",
]


_OFFICIAL_MARKER = "patch_embedding.proj_in.0.weight"
_OURS_MARKER = "patch_embed.conv1.weight"

# (official name, our name) for the fixed part; the per-layer part is handled by _LAYER_NAMES.
_FIXED_NAMES: tuple[tuple[str, str], ...] = (
    ("patch_embedding.proj_in.0", "patch_embed.conv1"),
    ("patch_embedding.proj_in.1", "patch_embed.norm1"),
    ("patch_embedding.proj_in.3", "patch_embed.conv2"),
    ("patch_embedding.proj_in.4", "patch_embed.norm2"),
    ("patch_embedding.proj_in.6", "patch_embed.conv3"),
    ("patch_embedding.proj_in.7", "patch_embed.norm3"),
    ("patch_embedding.spectral_proj.0", "patch_embed.spectral"),
    ("patch_embedding.positional_encoding.0", "patch_embed.pos_conv"),
    ("patch_embedding.mask_encoding", "patch_embed.mask_token"),
    ("proj_out.0", "head"),
)
_LAYER_NAMES: tuple[tuple[str, str], ...] = (
    ("self_attn_s.in_proj_weight", "attn.qkv_s.weight"),
    ("self_attn_s.in_proj_bias", "attn.qkv_s.bias"),
    ("self_attn_s.out_proj", "attn.proj_s"),
    ("self_attn_t.in_proj_weight", "attn.qkv_t.weight"),
    ("self_attn_t.in_proj_bias", "attn.qkv_t.bias"),
    ("self_attn_t.out_proj", "attn.proj_t"),
    ("linear1", "mlp.fc1"),
    ("linear2", "mlp.fc2"),
    ("norm1", "norm1"),
    ("norm2", "norm2"),
)
_OFFICIAL_LAYER = re.compile(r"^encoder\.layers\.(\d+)\.(.+)$")
_OUR_BLOCK = re.compile(r"^blocks\.(\d+)\.(.+)$")


def _rename(name: str, table: tuple[tuple[str, str], ...], src: int) -> str | None:
    dst = 1 - src
    for pair in table:
        prefix = pair[src]
        if name == prefix or name.startswith(prefix + "."):
            return pair[dst] + name[len(prefix) :]
    return None


def _official_to_ours(name: str) -> str | None:
    m = _OFFICIAL_LAYER.match(name)
    if m:
        rest = _rename(m.group(2), _LAYER_NAMES, 0)
        return None if rest is None else f"blocks.{m.group(1)}.{rest}"
    return _rename(name, _FIXED_NAMES, 0)


def _ours_to_official(name: str) -> str | None:
    m = _OUR_BLOCK.match(name)
    if m:
        rest = _rename(m.group(2), _LAYER_NAMES, 1)
        return None if rest is None else f"encoder.layers.{m.group(1)}.{rest}"
    return _rename(name, _FIXED_NAMES, 1)


def _strip_prefix(state_dict: Mapping[str, Tensor], prefix: str) -> dict[str, Tensor]:
    if state_dict and all(k.startswith(prefix) for k in state_dict):
        return {k[len(prefix) :]: v for k, v in state_dict.items()}
    return dict(state_dict)


def checkpoint_filter_fn(
    state_dict: Mapping[str, Tensor], model: CBraMod | None = None
) -> dict[str, Tensor]:
    """Map a state_dict in the official layout (or ours) onto this module's names.

    Accepts the plain official state_dict, one saved from ``nn.DataParallel`` (``module.`` prefix),
    or one already in our layout. Keys it does not know are kept as they are, so that
    ``load_state_dict`` names them as unexpected. When ``model`` has no reconstruction head the
    official ``proj_out`` weights are dropped, as the official fine-tuning does.
    """
    sd = _strip_prefix(state_dict, "module.")
    if _OFFICIAL_MARKER in sd:
        out = {}
        for k, v in sd.items():
            new = _official_to_ours(k)
            out[new if new is not None else k] = v
    elif _OURS_MARKER in sd:
        out = dict(sd)
    else:
        some = ", ".join(sorted(sd)[:4]) or "no keys at all"
        raise CheckpointError(
            f"this is not a CBraMod state_dict (it has {len(sd)} keys, e.g. {some}; expected "
            f"'{_OFFICIAL_MARKER}'): use the official pretrained_weights.pth from "
            f"huggingface.co/weighting666/CBraMod or a checkpoint saved by physio-live"
        )
    if model is not None and isinstance(model.head, nn.Identity):
        out = {k: v for k, v in out.items() if not (k == "head" or k.startswith("head."))}
    return out


def to_official_state_dict(state_dict: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Map one of our CBraMod state_dicts onto the official names (the inverse of the filter)."""
    out = {}
    for k, v in state_dict.items():
        new = _ours_to_official(k)
        if new is None:
            raise CheckpointError(
                f"'{k}' has no counterpart in the official CBraMod layout: only a bare CBraMod "
                f"encoder can be exported to the official format"
            )
        out[new] = v
    return out


def config_from_official(state_dict: Mapping[str, Tensor], num_heads: int = 8) -> CBraModConfig:
    """Read the architecture off an official state_dict (the head count is not stored in it)."""
    sd = checkpoint_filter_fn(state_dict)
    try:
        depth = 1 + max(int(m.group(1)) for k in sd if (m := _OUR_BLOCK.match(k)))
        embed_dim = sd["patch_embed.spectral.weight"].shape[0]
        patch_size = sd["patch_embed.mask_token"].shape[0]
        mlp_dim = sd["blocks.0.mlp.fc1.weight"].shape[0]
        pos_kernel = tuple(sd["patch_embed.pos_conv.weight"].shape[-2:])
    except (KeyError, ValueError) as e:
        raise CheckpointError(
            f"this CBraMod state_dict lacks {e}: the file is incomplete or from another model; "
            f"download pretrained_weights.pth again"
        ) from e
    head = sd.get("head.weight")
    return CBraModConfig(
        patch_size=patch_size,
        embed_dim=embed_dim,
        depth=depth,
        num_heads=num_heads,
        mlp_dim=mlp_dim,
        pos_kernel=pos_kernel,  # type: ignore[arg-type]
        out_dim=None if head is None else head.shape[0],
    )


def load_cbramod_state_dict(model: CBraMod, state_dict: Mapping[str, Tensor]) -> None:
    """Load an official-layout or our-layout state_dict into ``model``, strictly.

    Raises :class:`CheckpointError` naming the missing, unexpected and mis-shaped keys.
    """
    sd = checkpoint_filter_fn(state_dict, model)
    load_strict(model, sd, what="CBraMod checkpoint")


def load_strict(model: nn.Module, state_dict: Mapping[str, Tensor], *, what: str) -> None:
    """``load_state_dict(strict=True)`` with one clear error that names the offending keys."""
    own = model.state_dict()
    missing = sorted(set(own) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(own))
    shapes = sorted(
        f"{k} {tuple(state_dict[k].shape)} != {tuple(v.shape)}"
        for k, v in own.items()
        if k in state_dict and state_dict[k].shape != v.shape
    )
    problems = []
    for label, items in (("missing", missing), ("unexpected", unexpected), ("wrong shape", shapes)):
        if items:
            more = f" (+{len(items) - 5} more)" if len(items) > 5 else ""
            problems.append(f"{label}: {', '.join(items[:5])}{more}")
    if problems:
        raise CheckpointError(
            f"the {what} does not fit this model ({'; '.join(problems)}): it was saved for another "
            f"architecture; use the matching config or the right checkpoint file"
        )
    model.load_state_dict(state_dict, strict=True)


# --------------------------------------------------------------------------------------------------
# Constructors
# --------------------------------------------------------------------------------------------------


def cbramod_base(
    *,
    state_dict: Mapping[str, Tensor] | None = None,
    head: bool = True,
    drop_rate: float = 0.1,
    **kwargs: object,
) -> CBraMod:
    """The official CBraMod (12 x 200, 8 heads, ~4.9 M parameters).

    ``state_dict``: official or our layout (e.g. from :func:`load_official_cbramod`); ``head=False``
    drops the reconstruction head, for use as a feature extractor.
    """
    model = CBraMod(drop_rate=drop_rate, **kwargs)  # type: ignore[arg-type]
    if not head:
        model.reset_head()
    if state_dict is not None:
        load_cbramod_state_dict(model, state_dict)
    return model


def cbramod_ecg(
    *,
    init: Literal["random", "eeg"] = "random",
    eeg_state_dict: Mapping[str, Tensor] | None = None,
    head: bool = False,
    **kwargs: object,
) -> CBraMod:
    """The ECG encoder: the same architecture as the EEG one, its own weights, any lead count.

    ``init="eeg"`` starts from an EEG encoder's weights (official or our layout); nothing in the
    architecture depends on the number of leads, so 1, 2 or 12 leads all work.
    """
    if init not in ("random", "eeg"):
        raise ValueError(f"init must be 'random' or 'eeg', got {init!r}")
    if init == "eeg" and eeg_state_dict is None:
        raise ValueError("init='eeg' needs eeg_state_dict (e.g. the official CBraMod weights)")
    return cbramod_base(
        state_dict=eeg_state_dict if init == "eeg" else None,
        head=head,
        **kwargs,
    )
