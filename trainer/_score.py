"""``physio-train score``: masked reconstruction of an exported encoder on any WFDB/EDF folder.

The encoder checkpoint says what it takes (leads in model order, window in patches, rate, units);
every record of ``data.root`` is read and preprocessed exactly as for pretraining (the live
aligner's causal filters and grid, :func:`~physio_live.trainer._corpus.preprocess_record`, no
cache), cut into non-overlapping windows, masked with the dual masking of the recipe (seeded), and
scored against the two baselines on the very same masks (:mod:`physio_live.trainer._masking`).

Leads: the checkpoint's leads that a record has, in the checkpoint's order, then the record's
other ECG leads (e.g. Challenge 2015's unnamed chest lead ``V``), up to the checkpoint's lead
count; a record with one lead is scored intra-lead only (nothing to infer a whole lead from).
``each_lead=true`` scores every lead of the record (up to ``data.n_channels``) on its own, as a
one-lead input, and pools them (intra-lead masks only): how a one-lead ECG, or leads that do not
relate (Challenge 2015 v102s), go through ``ecg-anylead``.

``each_lead=auto`` decides that per record and per set of masks, from what the masks leave
visible only. The record is masked as usual (its leads together); then every visible patch is
hidden in turn, in every lead at once, and the encoder rebuilds those visible patches twice: with
the leads together and with each lead on its own. The record's intra-lead masks are scored lead by
lead only when that way rebuilt the visible patches clearly better, window for window (a one-sided
paired t-test over the record's windows at 2.5 %); otherwise its leads stay together. With
``repeats``, every set of masks decides for itself, so no choice rests on samples its masks hide.
Inter-lead masks (a whole lead hidden) always go in with the leads together, since only the other
leads can rebuild a whole lead. The hidden samples are zeroed before the probe. Each record's
``lead_mode`` (``together``, ``each``, or ``mixed`` when its repeats chose differently) and, per
repeat, the choice, both probe errors, t and the t it needed (``probes``) are in ``per_record``.

Result: one JSON object (one line on stdout): masked MSE in model units squared for the model,
``zeros`` and ``interp``, per mask kind (``intra``, ``inter``, ``all``), with the masked-sample
count and the percentage below the better baseline, plus the numbers of windows and records.
"""

from __future__ import annotations

import dataclasses
import json
import math
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from physio_live.core import (
    ConfigError,
    SourceError,
    apply_overrides,
    open_recording,
    unit_scale_uv,
)
from physio_live.models import CBraMod, load_checkpoint, resolve_checkpoint

from ._config import DataConfig, MaskingConfig, TrainError, recipe_from_dict
from ._corpus import find_records, normalize_channel_name, preprocess_record, record_matches
from ._loop import error_sums_to_mse, masked_error_sums
from ._masking import MaskBatch, make_mask

__all__ = [
    "PROBE_ALPHA",
    "LeadByLead",
    "RecordWindows",
    "ScoreConfig",
    "probe_lead_mode",
    "resolve_encoder",
    "score",
    "score_config",
    "score_masks",
    "scoring_windows",
]

KINDS = (("intra", "_intra"), ("inter", "_inter"), ("all", ""))


def _recipe_masking() -> MaskingConfig:
    """The masks scores are reported on: the paper's dual masking at the recipes' ratios."""
    return MaskingConfig(kind="dual", ratio=0.5, inter_prob=0.5)


@dataclass
class ScoreConfig:
    """What ``physio-train score`` reads and how it masks (any key: ``--set key=value``)."""

    data: DataConfig
    masking: MaskingConfig = field(default_factory=_recipe_masking)
    #: records to score (names relative to data.root without extension, globs, ``{a..b}``
    #: ranges); empty: all
    records: list[str] = field(default_factory=list)
    #: seed of the masks; ``repeats`` sets of masks (seeds ``seed``, ``seed + 1`` ...) are pooled
    seed: int = 0
    repeats: int = 1
    batch_size: int = 64
    #: score each lead of a record on its own (one-lead windows, intra-lead masks only); ``auto``:
    #: per record, whichever way rebuilds its visible patches better (module docstring)
    each_lead: bool | Literal["auto"] = False
    device: str = "cpu"
    path: str = "<score>"

    def validate(self) -> None:
        self.data.validate(f"{self.path}: data")
        self.masking.validate(f"{self.path}: masking")
        if self.repeats < 1 or self.batch_size < 1:
            raise ConfigError(f"{self.path}: repeats and batch_size must be >= 1")


def resolve_encoder(spec: str | Path) -> Path:
    """A shipped encoder name (``ecg-ludb``) or a path -> the checkpoint file
    (:func:`physio_live.models.resolve_checkpoint`)."""
    return resolve_checkpoint(spec)


def score_config(encoder: CBraMod | Any, modality: Any, overrides: list[str]) -> ScoreConfig:
    """The scoring config of an encoder's :class:`~physio_live.models.ModalityConfig`, with
    ``--set`` overrides; ``data.kind`` defaults to what ``data.root`` holds."""
    to_uv = unit_scale_uv(modality.units, None) or 1.0
    ecg = modality.name == "ecg"
    channels = list(modality.channels) or None
    data: dict[str, Any] = {
        "kind": "wfdb" if ecg else "edf",
        "root": "",
        "signal": "ecg" if ecg else "eeg",
        "channels": channels,
        "n_channels": len(channels) if channels else 2,
        "rate": modality.sampling_rate,
        "patch_size": modality.patch_size,
        "sample_patches": modality.n_patches,
        "unit_uv": to_uv / modality.scale,
        "max_abs_uv": 20000.0 if ecg else None,
        "dtype": "float32",
    }
    # the recipe's masking spelled out, so that ``--set masking.ratio=...`` changes one key of it
    masking = dataclasses.asdict(_recipe_masking())
    raw = apply_overrides({"data": data, "masking": masking}, overrides)
    if not raw["data"].get("root"):
        raise ConfigError("score: give the folder to score with --set data.root=DIR")
    if not any(o.strip().startswith("data.kind=") for o in overrides):
        root = Path(str(raw["data"]["root"])).expanduser()
        has_hea = root.is_dir() and next(root.rglob("*.hea"), None) is not None
        raw["data"]["kind"] = "wfdb" if has_hea else "edf"
    del encoder
    return recipe_from_dict(ScoreConfig, raw, "score", "data:, masking:")


def _leads(path: Path, cfg: DataConfig) -> list[str]:
    """The leads a record is scored on (see the module docstring); empty when unreadable."""
    role = cfg.signal or ("ecg" if cfg.kind == "wfdb" else "eeg")
    try:
        rec = open_recording(path)
    except (SourceError, Exception):  # third-party readers raise many kinds on damaged files
        return []
    streams = [s for s in rec.streams if s.info.role == role]
    if not streams:
        return []
    s = max(streams, key=lambda s: (len(s.info.channel_labels), s.info.nominal_srate))
    labels = list(s.info.channel_labels)
    norm = [normalize_channel_name(x) for x in labels]
    picked: list[int] = []
    for want in cfg.channels or []:
        w = normalize_channel_name(want)
        if w in norm and norm.index(w) not in picked:
            picked.append(norm.index(w))
    picked += [i for i in range(len(labels)) if i not in picked]
    return [labels[i] for i in picked[: cfg.n_channels]]


@dataclass(frozen=True)
class RecordWindows:
    """One record as scored: its leads (in model order) and its windows ``[N, C, P, S]`` in
    model units (``each_lead``: ``[N * C, 1, P, S]``, window by window, lead by lead)."""

    record: str
    leads: list[str]
    windows: np.ndarray


def scoring_windows(
    checkpoint: str | Path, overrides: list[str]
) -> tuple[Path, Any, ScoreConfig, list[RecordWindows], list[dict[str, str]]]:
    """What :func:`score` scores: ``(checkpoint path, loaded checkpoint, config, records,
    skipped)``, every record of ``data.root`` read and preprocessed as for pretraining."""
    path = resolve_encoder(checkpoint)
    ck = load_checkpoint(path)
    model = ck.model
    if not isinstance(model, CBraMod) or model.config.out_dim != ck.config.patch_size:
        raise TrainError(
            f"{path}: score needs a pretrained encoder with its reconstruction head (an "
            "encoder.safetensors written by physio-train pretrain), not a fused model"
        )
    cfg = score_config(model, ck.config, overrides)
    records = find_records(cfg.data)
    root = Path(cfg.data.root).expanduser()
    if cfg.records:
        records = [
            p
            for p in records
            if record_matches(p.relative_to(root).with_suffix("").as_posix(), cfg.records)
        ]
        if not records:
            raise TrainError(f"score: no record under {root} matches records={cfg.records}")
    used: list[RecordWindows] = []
    skipped: list[dict[str, str]] = []
    for rec in records:
        leads = _leads(rec, cfg.data)
        if not leads:
            skipped.append({"record": rec.name, "why": "no readable channel of the right type"})
            continue
        rcfg = dataclasses.replace(cfg.data, channels=leads, n_channels=len(leads))
        info = preprocess_record(rec, rcfg)
        if info["samples"] is None:
            skipped.append({"record": info["record"], "why": info["skipped"]})
            continue
        x = info["samples"]
        # each_lead=true: [N, C, P, S] -> [N * C, 1, P, S], lead by lead, window by window (auto
        # keeps the leads together here and decides per record in score())
        if cfg.each_lead is True:
            x = x.reshape(-1, 1, *x.shape[2:])
        used.append(RecordWindows(info["record"], list(info["channels"]), x))
    if not used:
        reasons = "; ".join(f"{s['record']}: {s['why']}" for s in skipped[:3])
        raise TrainError(f"score: no record under {root} could be scored ({reasons})")
    return path, ck, cfg, used, skipped


def score_masks(
    cfg: ScoreConfig, windows: np.ndarray, record_no: int, repeats: Sequence[int] | None = None
) -> Iterator[tuple[int, MaskBatch]]:
    """``(first window, masks)`` of every batch :func:`score` masks for one record's windows
    (``windows[first : first + cfg.batch_size]``), repeat by repeat (``repeats``: only those;
    default all ``cfg.repeats``), seeded by ``cfg.seed``, the repeat, the batch and the record's
    number from 1: any other predictor can be scored on the very same masks."""
    shape = windows.shape
    for r in range(cfg.repeats) if repeats is None else repeats:
        for j in range(0, shape[0], cfg.batch_size):
            n = min(cfg.batch_size, shape[0] - j)
            g = torch.Generator().manual_seed(
                (cfg.seed + r) * 1_000_003 + 7919 * (j // cfg.batch_size) + record_no
            )
            yield j, make_mask((n, shape[1], shape[2]), cfg.masking, g)


class LeadByLead(torch.nn.Module):
    """``encoder`` fed each lead of a window on its own (``[B, C, P, S]`` as ``[B * C, 1, P, S]``)
    for windows masked within leads; a window with a whole lead hidden (an inter-lead mask) goes in
    with its leads together, the only way to rebuild that lead."""

    def __init__(self, encoder: torch.nn.Module):
        super().__init__()
        self.encoder = encoder

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        _, c, p, s = x.shape
        whole_lead = mask.all(dim=-1).any(dim=-1)  # [B]: an inter-lead mask
        out = torch.empty_like(x)
        if bool(whole_lead.any()):
            out[whole_lead] = self.encoder(x[whole_lead], mask[whole_lead]).to(out.dtype)
        alone = ~whole_lead
        if bool(alone.any()):
            n = int(alone.sum())
            each = self.encoder(x[alone].reshape(n * c, 1, p, s), mask[alone].reshape(n * c, 1, p))
            out[alone] = each.reshape(n, c, p, s).to(out.dtype)
        return out


#: ``each_lead=auto`` feeds a record lead by lead only when its visible patches say so clearly: a
#: one-sided paired t-test over its probed windows at this level (t >= 1.98 for 100 windows,
#: 4.30 for 3; a record of 1-2 windows cannot show it)
PROBE_ALPHA = 0.025


@torch.no_grad()
def probe_lead_mode(
    model: torch.nn.Module,
    cfg: ScoreConfig,
    windows: np.ndarray,
    record_no: int,
    device: Any,
    repeat: int = 0,
) -> dict[str, Any]:
    """``each_lead=auto``'s choice for one record and one set of masks (``repeat``). On the
    record's intra-lead masked windows (:func:`score_masks`: the very masks scored, that repeat's
    only), each visible patch is hidden in turn in every lead and rebuilt with the leads together
    and lead by lead. The samples the masks hide are zeroed first, so the choice cannot depend on
    them. Lead by lead is chosen when it rebuilds the visible patches better, window for window,
    by a one-sided paired t-test over the windows at ``PROBE_ALPHA``; otherwise the leads stay
    together. Returns ``{"lead_mode", "probe_mse":
    {"together", "each"}, "probe_t", "probe_t_needed", "probe_windows"}``."""
    from scipy.stats import t as student_t

    ways = {"together": model, "each": LeadByLead(model)}
    per: dict[str, list[torch.Tensor]] = {name: [] for name in ways}
    count = 0.0
    for j, mb in score_masks(cfg, windows, record_no, [repeat]):
        intra = ~mb.inter
        if not bool(intra.any()):
            continue
        hidden = mb.mask[intra]
        x = torch.from_numpy(np.ascontiguousarray(windows[j : j + cfg.batch_size]))[intra]
        x = (x * (~hidden).unsqueeze(-1)).to(device)
        visible = ~hidden
        rank = visible.long().cumsum(dim=-1) * visible.long()  # 1, 2 ... along each lead's visible
        sums = {name: torch.zeros(x.shape[0], dtype=torch.float64) for name in ways}
        for k in range(1, int(rank.max()) + 1):
            probe = rank == k
            hide = (hidden | probe).to(device)
            w = probe.unsqueeze(-1).to(device, torch.float64)
            count += float(w.sum()) * x.shape[-1]
            for name, way in ways.items():
                err = (way(x, hide).double() - x.double()) ** 2
                sums[name] += (err * w).sum(dim=(1, 2, 3)).cpu()
        for name in ways:
            per[name].append(sums[name])
    if not per["together"] or count == 0:
        return {
            "lead_mode": "together",
            "probe_mse": {},
            "probe_t": math.nan,
            "probe_t_needed": math.nan,
            "probe_windows": 0,
        }
    together, each = (torch.cat(per[name]) for name in ways)
    gain = together - each  # > 0: lead by lead rebuilt that window's visible patches better
    n = len(gain)
    sd = float(gain.std()) if n > 1 else 0.0
    t = float(gain.mean()) / (sd / math.sqrt(n)) if sd > 0 else math.nan
    needed = float(student_t.ppf(1.0 - PROBE_ALPHA, n - 1)) if n > 1 else math.inf
    return {
        "lead_mode": "each" if t >= needed else "together",
        "probe_mse": {"together": float(together.sum()) / count, "each": float(each.sum()) / count},
        "probe_t": t,
        "probe_t_needed": needed,
        "probe_windows": n,
    }


@torch.no_grad()
def score(checkpoint: str | Path, overrides: list[str], *, log: Any = None) -> dict[str, Any]:
    """Score an exported encoder on a folder; returns the result (see the module docstring)."""
    path, ck, cfg, records, skipped = scoring_windows(checkpoint, overrides)
    model = ck.model
    device = torch.device(cfg.device)
    model.to(device).eval()
    root = Path(cfg.data.root).expanduser()
    sums = torch.zeros(2, 3, 2, dtype=torch.float64)
    n_windows = 0
    used = []
    for no, rec in enumerate(records, start=1):
        x_all = rec.windows
        entry: dict[str, Any] = {"record": rec.record, "leads": rec.leads, "windows": len(x_all)}
        auto = cfg.each_lead == "auto" and x_all.shape[1] > 1
        probes = []
        for r in range(cfg.repeats):
            way: torch.nn.Module = model
            if auto:  # each set of masks decides from what it leaves visible, and only for itself
                probes.append(probe_lead_mode(model, cfg, x_all, no, device, r))
                way = LeadByLead(model) if probes[-1]["lead_mode"] == "each" else model
            for j, mb in score_masks(cfg, x_all, no, [r]):
                x = torch.from_numpy(np.ascontiguousarray(x_all[j : j + cfg.batch_size]))
                sums += masked_error_sums(way, x, mb, device)
        if auto:
            modes = {p["lead_mode"] for p in probes}
            entry["lead_mode"] = modes.pop() if len(modes) == 1 else "mixed"
            entry["probes"] = probes
        used.append(entry)
        n_windows += len(x_all)
        if log is not None:
            how = f", {entry['lead_mode']}" if "lead_mode" in entry else ""
            log(f"score: {rec.record}: {len(x_all)} windows, leads {rec.leads}{how}")
    mse = error_sums_to_mse(sums)
    out: dict[str, Any] = {
        "checkpoint": str(path),
        "model_id": ck.model_id,
        "root": str(root.resolve()),
        "unit": f"({cfg.data.unit_uv:g} uV)^2",
        "seed": cfg.seed,
        "repeats": cfg.repeats,
        "records": len(used),
        "records_skipped": len(skipped),
        "samples": n_windows,
        "window_s": cfg.data.sample_patches * cfg.data.patch_size / cfg.data.rate,
    }
    for kind, part in KINDS:
        mode = {"intra": [0], "inter": [1], "all": [0, 1]}[kind]
        count = float(sums[mode, 0, 1].sum()) if sums.numel() else 0.0
        m, z, i = mse["mse" + part], mse["zeros" + part], mse["interp" + part]
        best = min(z, i)
        out[kind] = {
            "model": m,
            "zeros": z,
            "interp": i,
            "below_best_pct": 100.0 * (1.0 - m / best) if best > 0 else math.nan,
            "masked_samples": int(count),
        }
    out["per_record"] = used
    if skipped:
        out["skipped"] = skipped
    return out


def to_json_line(result: dict[str, Any]) -> str:
    """One JSON line (NaN as null)."""

    def clean(v: Any) -> Any:
        if isinstance(v, float) and not math.isfinite(v):
            return None
        if isinstance(v, dict):
            return {k: clean(x) for k, x in v.items()}
        if isinstance(v, list):
            return [clean(x) for x in v]
        return v

    return json.dumps(clean(result), separators=(",", ":"))


def main_score(checkpoint: str, overrides: list[str], quiet: bool) -> int:
    """The CLI body: print the JSON line; errors go through the CLI's handler."""
    log = None if quiet else (lambda m: print(m, file=sys.stderr, flush=True))
    print(to_json_line(score(checkpoint, overrides, log=log)), flush=True)
    return 0


def _brief(res: dict[str, Any]) -> dict[str, Any]:
    """The numbers of a score result that go into a checkpoint's provenance."""
    out: dict[str, Any] = {"records": res["records"], "windows": res["samples"]}
    for kind, _ in KINDS:
        r = res[kind]
        out[kind] = {k: r[k] for k in ("model", "zeros", "interp", "below_best_pct")}
    return out


_DATASETS = {
    "ludb": "LUDB 1.0.1 (PhysioNet, ODC-By 1.0), records 1-200 (train {train}, validation {val}, "
    "test {test})",
    "eegmat": "EEG During Mental Arithmetic Tasks 1.0.0 (PhysioNet, ODC-By 1.0), its ECG lead "
    "only, no labels read (train {train}, validation {val}, test {test})",
}


def corpus_name(root: str | Path) -> str:
    """A corpus's short name from its folder (``.../ludb/data`` -> ``ludb``)."""
    p = Path(root)
    return (p.parent.name if p.name == "data" else p.name).lower()


def ship_encoder(
    run_dir: str | Path,
    out: str | Path,
    *,
    other: list[str | Path] = (),  # type: ignore[assignment]
    repeats: int = 3,
    command: str = "",
    recipe: str = "configs/pretrain_ecg_ludb.yaml",
    log: Any = None,
) -> dict[str, Any]:
    """Score a finished run's ``encoder.safetensors`` on the train / val / test records
    (``data.split``) of its recipe's corpus and of each ``mix`` corpus (``NAME_train`` ...), and
    on ``other`` folders, and write it to ``out`` with those numbers, the data, split, unit and
    command in its provenance. A one-lead recipe (``data.n_channels: 1``) is scored lead by lead
    (``each_lead``) everywhere; any other on ``other`` folders three ways: the leads together,
    lead by lead (``NAME each lead``) and as ``each_lead=auto`` chooses (``NAME auto``). A corpus
    met twice (the same root) is scored once. Returns the numbers."""
    from physio_live.models import Provenance, save_checkpoint

    run_dir = Path(run_dir)
    enc = run_dir / "encoder.safetensors"
    conf = json.loads((run_dir / "config.json").read_text())
    summary = json.loads((run_dir / "summary.json").read_text())
    one_lead = conf["data"]["n_channels"] == 1
    corpora = [conf["data"], *({**conf["data"], **m["data"]} for m in conf.get("mix") or [])]

    def each_lead(n_leads: int) -> list[str]:
        return ["each_lead=true", f"data.n_channels={n_leads}"]

    metrics: dict[str, Any] = {}
    datasets: list[str] = []
    seen: set[str] = set()
    for data in corpora:
        name, split = corpus_name(data["root"]), data["split"]
        if name in seen:  # the same records again (e.g. LUDB cut to pairs of leads)
            continue
        seen.add(name)
        gain = data["wfdb_gain"] if data["wfdb_gain"] is not None else "null"
        base = [
            f"data.root={data['root']}",
            f"data.wfdb_gain={gain}",
            f"data.hop_patches={data['hop_patches']}",
            f"repeats={repeats}",
            *(each_lead(data["n_channels"]) if one_lead else []),
        ]
        for part in ("train", "val", "test"):
            if split[part]:
                res = score(enc, [*base, f"records={json.dumps(split[part])}"])
                metrics[f"{name}_{part}"] = _brief(res)
                if log:
                    log(f"{name} {part}: {to_json_line(metrics[f'{name}_{part}'])}")
        text = _DATASETS.get(name, f"{data['root']} ({{train}} / {{val}} / {{test}})")
        datasets.append(text.format(**{k: ", ".join(v) or "-" for k, v in split.items()}))
    for folder in other:
        # a one-lead encoder lead by lead; any other one on the record's leads together, lead by
        # lead too (``NAME each lead``) and the way ``each_lead=auto`` picks; up to 12 leads
        ways = [("", each_lead(12))]
        if not one_lead:
            ways = [("", []), (" each lead", each_lead(12)), (" auto", ["each_lead=auto"])]
        for suffix, sets in ways:
            key = Path(folder).name + suffix
            metrics[key] = _brief(score(enc, [f"data.root={folder}", f"repeats={repeats}", *sets]))
            if log:
                log(f"{key}: {to_json_line(metrics[key])}")
    ck = load_checkpoint(enc)
    cache = json.loads((Path(summary["cache"]) / "manifest.json").read_text())
    data = conf["data"]
    leads = (
        "one lead at a time (any lead; score with each_lead=true)"
        if one_lead
        else "leads I, II, III, aVR, aVL, aVF, V1-V6 in this order (any subset works)"
    )
    notes = {
        "what": "ECG encoder pretrained with dual masking (intra-lead patches / inter-lead "
        "whole leads) with its reconstruction head"
        + ("; one-lead input, intra-lead masks only" if one_lead else ""),
        "unit": "model input = microvolts x 0.01 (100 uV per unit); 200 Hz; 4-s windows of "
        f"1-s patches; {leads}",
        "preprocessing": {
            k: data[k] for k in ("bandpass", "notch", "notch_q", "order", "settle_s", "wfdb_gain")
        },
        "split": data["split"],
        "masking": conf["masking"],
        "augment": conf["augment"],
        "mix": conf.get("mix") or [],
        "steps": summary["step"],
        "train_seconds": round(summary["train_seconds"], 1),
        "metrics (masked MSE, (100 uV)^2; below_best_pct: % below the better baseline)": metrics,
        "command": command,
        "cache_key": cache["key"],
    }
    prov = Provenance(
        trained=True,
        source=f"physio-train pretrain (ECG dual masking), {recipe}",
        datasets=tuple(datasets),
        notes=json.dumps(notes, separators=(",", ":")),
    )
    save_checkpoint(out, ck.model, provenance=prov, modality=ck.config)
    return metrics


if __name__ == "__main__":
    # python -m physio_live.trainer._score RUN_DIR OUT [OTHER_DIR ...] [--recipe CONFIG]
    args = sys.argv[1:]
    cmd = "python -m physio_live.trainer._score " + " ".join(args)
    recipe = "configs/pretrain_ecg_ludb.yaml"
    if "--recipe" in args:
        i = args.index("--recipe")
        recipe = args[i + 1]
        del args[i : i + 2]
    res = ship_encoder(
        args[0],
        args[1],
        other=args[2:],
        command=cmd,
        recipe=recipe,
        log=lambda m: print(m, file=sys.stderr, flush=True),
    )
    print(to_json_line(res))
