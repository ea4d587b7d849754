"""Official CBraMod weights and the Hugging Face hub: find them in the hub's cache, download them
(``huggingface_hub``, optional), check and convert them into our checkpoint format
(``physio-live models pull cbramod``). The official file is a plain state_dict read without
unpickling (``torch.load(weights_only=True)``).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from physio_live.core import file_sha256

from ._cbramod import CBraMod
from ._checkpoint import PathLike, _one_line, read_state_dict, save_checkpoint
from ._errors import CheckpointError
from ._fused import ModalityConfig, Provenance
from ._official import checkpoint_filter_fn, load_strict

__all__ = [
    "CBRAMOD_HUB_FILENAME",
    "CBRAMOD_HUB_REPO",
    "CBRAMOD_URL",
    "hf_hub_cache_dir",
    "load_official_cbramod",
    "locate_official_cbramod",
    "pull_cbramod",
    "resolve_hub_file",
]

CBRAMOD_HUB_REPO = "weighting666/CBraMod"
CBRAMOD_HUB_FILENAME = "pretrained_weights.pth"
CBRAMOD_URL = f"https://huggingface.co/{CBRAMOD_HUB_REPO}/resolve/main/{CBRAMOD_HUB_FILENAME}"


def hf_hub_cache_dir() -> Path:
    """Where ``huggingface_hub`` caches files: ``$HF_HUB_CACHE``, else ``$HF_HOME/hub``."""
    if cache := os.environ.get("HF_HUB_CACHE") or os.environ.get("HUGGINGFACE_HUB_CACHE"):
        return Path(cache).expanduser()
    home = os.environ.get("HF_HOME")
    if not home:
        xdg = os.environ.get("XDG_CACHE_HOME") or "~/.cache"
        home = str(Path(xdg) / "huggingface")
    return Path(home).expanduser() / "hub"


def _hub_repo_dir(cache_dir: Path, repo_id: str) -> Path:
    return cache_dir / f"models--{repo_id.replace('/', '--')}"


def resolve_hub_file(
    repo_id: str,
    filename: str,
    *,
    revision: str = "main",
    cache_dir: PathLike | None = None,
) -> Path | None:
    """The cached file ``<cache>/models--owner--name/snapshots/<commit>/<filename>``, or None.

    ``revision`` is a branch or tag (looked up in ``refs/``) or a full commit hash. Works on a
    cache folder laid out by ``huggingface_hub`` without importing it.
    """
    cache = Path(cache_dir) if cache_dir is not None else hf_hub_cache_dir()
    repo_dir = _hub_repo_dir(cache, repo_id)
    if re.fullmatch(r"[0-9a-f]{40}", revision):
        commit: str | None = revision
    else:
        ref = repo_dir / "refs" / revision
        commit = ref.read_text().strip() if ref.is_file() else None
    if commit is not None:
        candidate = repo_dir / "snapshots" / commit / filename
        return candidate if candidate.is_file() else None
    return None


def _hf_hub_download(repo_id: str, filename: str, revision: str, cache_dir: Path | None) -> Path:
    """Download through ``huggingface_hub`` (optional dependency); the one networked call."""
    try:
        from huggingface_hub import hf_hub_download
    except ImportError as e:
        raise CheckpointError(
            f"huggingface_hub is not installed, so {repo_id}/{filename} cannot be downloaded: "
            f"`pip install huggingface_hub`, or download {CBRAMOD_URL} yourself and pass it "
            f"with --from PATH"
        ) from e
    try:
        return Path(
            hf_hub_download(
                repo_id=repo_id,
                filename=filename,
                revision=revision,
                cache_dir=None if cache_dir is None else str(cache_dir),
            )
        )
    except Exception as e:  # huggingface_hub raises many types (offline, HTTP, auth)
        raise CheckpointError(
            f"could not download {repo_id}/{filename} ({_one_line(e)}); offline? "
            f"download {CBRAMOD_URL} on a connected machine and pass it with --from PATH"
        ) from e


def _origin(path: Path, repo_id: str) -> str:
    """``hf://repo@commit/file`` for a file inside a hub snapshot, else ``file://...``."""
    parts = path.parts
    marker = f"models--{repo_id.replace('/', '--')}"
    if len(parts) >= 4 and parts[-4] == marker and parts[-3] == "snapshots":
        return f"hf://{repo_id}@{parts[-2]}/{parts[-1]}"
    return path.resolve().as_uri()


def locate_official_cbramod(
    source: PathLike | None = None,
    *,
    cache_dir: PathLike | None = None,
    revision: str = "main",
    download: bool = False,
) -> Path:
    """Find ``pretrained_weights.pth``: in ``source`` (the file, a folder holding it, or a hub
    cache folder), else in the hub cache, else (``download=True``) by downloading it."""
    repo, name = CBRAMOD_HUB_REPO, CBRAMOD_HUB_FILENAME
    if source is not None:
        src = Path(source).expanduser()
        if src.is_file():
            return src
        if src.is_dir():
            if (src / name).is_file():
                return src / name
            found = resolve_hub_file(repo, name, revision=revision, cache_dir=src)
            if found is not None:
                return found
        raise CheckpointError(
            f"{src} is neither {name} nor a folder holding it (directly or in the Hugging Face "
            f"cache layout models--weighting666--CBraMod/snapshots/<commit>/): check the path"
        )
    cache = Path(cache_dir) if cache_dir is not None else hf_hub_cache_dir()
    found = resolve_hub_file(repo, name, revision=revision, cache_dir=cache)
    if found is not None:
        return found
    if download:
        return _hf_hub_download(repo, name, revision, cache)
    raise CheckpointError(
        f"the official CBraMod weights are not in the Hugging Face cache ({cache}): run "
        f"`physio-live models pull cbramod` with network access, or download {CBRAMOD_URL} and "
        f"pass it with --from PATH"
    )


def load_official_cbramod(path: PathLike, *, head: bool = True) -> CBraMod:
    """Build the official-size CBraMod from an official ``pretrained_weights.pth`` (eval mode)."""
    path = Path(path)
    sd = read_state_dict(path)
    model = CBraMod()
    if not head:
        model.reset_head()
    # the filter refuses state_dicts of other models; load_strict names keys that do not fit
    sd = checkpoint_filter_fn(sd, model)
    try:
        load_strict(model, sd, what=str(path))
    except CheckpointError as e:
        raise CheckpointError(
            f"{e}; {path.name} should be the official CBraMod base model "
            f"(12 layers, width 200, {CBRAMOD_HUB_REPO})"
        ) from e
    return model.eval()


def pull_cbramod(
    out: PathLike,
    *,
    source: PathLike | None = None,
    cache_dir: PathLike | None = None,
    revision: str = "main",
    download: bool = True,
) -> Path:
    """Fetch the official CBraMod weights (cache, ``source``, or download) and save them in our
    format at ``out`` as an EEG encoder checkpoint with its reconstruction head."""
    path = locate_official_cbramod(
        source, cache_dir=cache_dir, revision=revision, download=download
    )
    model = load_official_cbramod(path)
    modality = ModalityConfig(name="eeg", channels=(), n_patches=30, encoder=model.config)
    provenance = Provenance(
        trained=True,
        source="official CBraMod pretrained weights (Wang et al., ICLR 2025), converted",
        parents=(f"{_origin(path, CBRAMOD_HUB_REPO)} sha256:{file_sha256(path)}",),
    )
    return save_checkpoint(out, model, provenance=provenance, modality=modality)
