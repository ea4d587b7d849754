"""Evidence that ECG pretraining works on patients it never saw.

Both shipped encoders, ``ecg-ludb`` (``configs/pretrain_ecg_ludb.yaml``: LUDB records 1-160 train,
161-180 validation, 181-200 test) and ``ecg-anylead`` (``configs/pretrain_ecg_anylead.yaml``: the
same LUDB split, plus eegmat's one ECG lead of subjects 00-27), are scored with fresh random dual
masks (seed from ``PHYSIO_LIVE_SEED`` or random, printed) against the two baselines on the very
same masks (zeros; interp: straight lines across a hidden stretch / the mean of the visible
leads):

- on the 20 LUDB test patients, masked MSE at least 50 % below the better baseline, for
  intra-lead and for inter-lead masks;
- on records of other databases in ``../shared/data`` (other patients, devices, rates, lead
  sets), at least 15 % below the better baseline for intra-lead masks (MIT-BIH 100: 2 leads at
  360 Hz; PTB s0010: 12 leads at 1000 Hz) and for inter-lead masks on the 12-lead PTB record;
- ``ecg-anylead`` only: at least 15 % on Challenge 2015 v102s scored lead by lead (its leads II
  and V barely relate, r = 0.19, so a hidden second can only come from the lead's own beats;
  ``ecg-ludb`` stays within 5 % of zeros there) and on the one ECG lead of eegmat's test subjects
  32-35;
- ``ecg-anylead`` with ``each_lead=auto`` (the record's leads given, the way to take them chosen
  per set of masks from the visible patches alone): mostly lead by lead on v102s, together on
  MIT-BIH 100 and PTB s0010, and at least 15 % on all three.

Not asserted because it does not hold (measured with ``physio-train score``, see the README "An
encoder for any number of leads"): MIT-BIH 100 inter-lead (the interp baseline, a copy of the
other lead, wins: its MLII and V5 look alike), and v102s with both leads fed together
(``ecg-ludb`` ~3 %, ``ecg-anylead`` ~8 % below zeros).

A fast training test checks that the loop learns at all (the loss falls on a small LUDB slice).
"""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest

from physio_live.trainer import load_pretrain_config, pretrain
from physio_live.trainer._score import resolve_encoder, score

ROOT = Path(__file__).resolve().parents[2]
DATASETS = Path(os.environ.get("PHYSIO_LIVE_DATASETS", ROOT.parent / "shared" / "datasets"))
SEED = int(os.environ.get("PHYSIO_LIVE_SEED", random.randrange(1_000_000)))


@pytest.fixture(scope="module")
def ludb_dir() -> Path:
    path = DATASETS / "ludb" / "data"
    if not path.is_dir():
        pytest.skip(f"LUDB not found at {path}; set PHYSIO_LIVE_DATASETS")
    return path


@pytest.fixture(scope="module", params=["ecg-ludb", "ecg-anylead"])
def encoder(request) -> Path:
    """Both shipped ECG encoders hold the LUDB and other-database bars below."""
    return resolve_encoder(request.param)


def _line(name: str, res: dict) -> str:
    cells = [
        f"{k} {res[k]['model']:.3f} (zeros {res[k]['zeros']:.3f}, interp {res[k]['interp']:.3f}; "
        f"{res[k]['below_best_pct']:.0f} % below)"
        for k in ("intra", "inter")
        if res[k]["model"] == res[k]["model"]
    ]
    return f"{name} [{res['samples']} windows, seed {SEED}]: " + " | ".join(cells)


def _score(encoder: Path, root: Path, *extra: str, repeats: int = 2) -> dict:
    res = score(encoder, [f"data.root={root}", f"seed={SEED}", f"repeats={repeats}", *extra])
    print(_line(root.name, res))
    return res


def _below(res: dict, kind: str) -> float:
    r = res[kind]
    return 1.0 - r["model"] / min(r["zeros"], r["interp"])


def test_beats_baselines_on_unseen_ludb_patients(encoder, ludb_dir):
    # the recipe's data path: LUDB's leads at one common gain (data.wfdb_gain), 4-s windows at
    # a 1-s hop (6 per 10-s record)
    res = _score(
        encoder, ludb_dir, "records=['{181..200}']", "data.hop_patches=1", "data.wfdb_gain=1000"
    )
    assert res["records"] == 20 and res["samples"] == 20 * 6
    for kind in ("intra", "inter"):
        assert _below(res, kind) >= 0.50, (kind, res[kind])


@pytest.mark.parametrize(
    ("record", "inter"), [("wfdb_ptbdb_s0010_re", True), ("wfdb_mitdb_100", False)]
)
def test_beats_baselines_on_other_databases(encoder, data_dir, record, inter):
    res = _score(encoder, data_dir / record, repeats=8 if "ptbdb" in record else 2)
    assert res["records"] == 1
    assert _below(res, "intra") >= 0.15, res["intra"]
    if inter:
        assert _below(res, "inter") >= 0.15, res["inter"]


def test_training_loss_falls_on_a_small_ludb_slice(ludb_dir, tmp_path):
    """The loop learns: a tiny encoder on 20 patients, 120 steps, the loss at least 20 % down."""
    cfg = load_pretrain_config(
        ROOT / "configs" / "pretrain_ecg_ludb.yaml",
        [
            f"data.root={ludb_dir}",
            f"data.cache_dir={tmp_path / 'cache'}",
            f"run.out_dir={tmp_path / 'run'}",
            "data.include=['1?.hea', '2?.hea']",
            "data.split.train=['{10..29}']",
            "data.split.val=[]",
            "data.split.test=[]",
            "model.embed_dim=40",
            "model.depth=2",
            "model.mlp_dim=80",
            "optim.steps=120",
            "optim.warmup_steps=10",
            "optim.batch_size=16",
            "run.log_every=10",
            "run.ckpt_every=1000",
            "run.tensorboard='off'",
        ],
    )
    res = pretrain(cfg, progress=False)
    assert res.finished
    rows = (res.out_dir / "train.csv").read_text().splitlines()[1:]
    losses = [float(r.split(",")[3]) for r in rows]
    print(f"train loss every 10 steps: {[round(x, 3) for x in losses]}")
    assert min(losses[-3:]) < 0.8 * losses[0], losses


def test_full_size_gpu_recipe_runs_end_to_end_in_miniature(ludb_dir, tmp_path):
    """``configs/pretrain_ecg_ludb_gpu.yaml`` as it stands (12 layers, d 200, dual masking on all
    12 leads, its augmentation), on the CPU for four steps of four samples on 20 patients: it
    trains, exports a full-size encoder, and ``physio-train score`` scores that encoder."""
    cfg = load_pretrain_config(
        ROOT / "configs" / "pretrain_ecg_ludb_gpu.yaml",
        [
            f"data.root={ludb_dir}",
            f"data.cache_dir={tmp_path / 'cache'}",
            f"run.out_dir={tmp_path / 'run'}",
            "data.include=['1?.hea', '2?.hea']",
            "data.split.train=['{10..25}']",
            "data.split.val=['{26..29}']",
            "data.split.test=[]",
            "optim.steps=4",
            "optim.warmup_steps=1",
            "optim.batch_size=4",
            "run.device=cpu",
            "run.eval_every=4",
            "run.eval_batches=1",
            "run.log_every=1",
            "run.ckpt_every=1000",
            "run.tensorboard='off'",
        ],
    )
    assert (cfg.model.depth, cfg.model.embed_dim, cfg.data.n_channels) == (12, 200, 12)
    res = pretrain(cfg, progress=False)
    assert res.finished
    from physio_live.models import load_checkpoint

    enc = res.out_dir / "encoder.safetensors"
    ck = load_checkpoint(enc)
    assert (ck.model.config.depth, ck.model.config.embed_dim) == (12, 200)
    assert len(ck.config.channels) == 12
    out = score(enc, [f"data.root={ludb_dir}", "records=['{26..29}']", "data.wfdb_gain=1000"])
    assert out["records"] == 4 and out["intra"]["masked_samples"] > 0
    assert out["intra"]["model"] > 0 and out["inter"]["model"] > 0


def test_shipped_encoder_states_unit_split_and_scores(encoder):
    """The file says what it takes and where its numbers come from (provenance)."""
    import json

    from physio_live.models import load_checkpoint

    ck = load_checkpoint(encoder)
    assert ck.kind == "cbramod_encoder" and ck.provenance.trained
    assert ck.config.units == "uV" and ck.config.scale == pytest.approx(0.01)  # 100 uV per unit
    assert (ck.config.sampling_rate, ck.config.n_patches, len(ck.config.channels)) == (200, 4, 12)
    notes = json.loads(ck.provenance.notes)
    assert notes["split"] == {"train": ["{1..160}"], "val": ["{161..180}"], "test": ["{181..200}"]}
    assert notes["preprocessing"]["wfdb_gain"] == 1000.0
    assert "physio_live.trainer._score" in notes["command"]
    metrics = next(v for k, v in notes.items() if k.startswith("metrics"))
    assert {"ludb_train", "ludb_val", "ludb_test", "wfdb_ptbdb_s0010_re"} <= set(metrics)
    for kind in ("intra", "inter"):
        assert metrics["ludb_test"][kind]["below_best_pct"] >= 50


@pytest.mark.parametrize(
    ("name", "below"), [("ecg-anylead", (0.15, 1.0)), ("ecg-ludb", (-0.1, 0.05))]
)
def test_a_lead_rebuilt_from_its_own_beats(data_dir, name, below):
    """v102s's two leads barely relate (r = 0.19): scored lead by lead (``each_lead``), a hidden
    second can only come from the lead's own beats. ``ecg-anylead`` learned that (>= 15 % below
    the better baseline); ``ecg-ludb``, which only learned to read a lead off the others, did
    not (within a few % of zeros), which shows what the bar measures."""
    root = data_dir / "wfdb_challenge2015_v102s"
    res = _score(resolve_encoder(name), root, "each_lead=true", "data.n_channels=2")
    assert res["per_record"][0]["leads"] == ["II", "V"] and res["inter"]["masked_samples"] == 0
    assert below[0] <= _below(res, "intra") <= below[1], res["intra"]


@pytest.mark.parametrize(
    ("record", "mode", "repeats"),
    [
        ("wfdb_challenge2015_v102s", "each", 16),
        ("wfdb_mitdb_100", "together", 2),
        ("wfdb_ptbdb_s0010_re", "together", 8),
    ],
)
def test_anylead_decides_from_the_visible_patches_how_to_take_a_records_leads(
    data_dir, record, mode, repeats
):
    """``each_lead=auto``: for each set of masks, a record's leads go in together or one at a
    time, whichever rebuilds its *visible* patches clearly better (never its hidden ones). Most
    sets take v102s's two unrelated leads one at a time (about 17 in 20 with ~37 probed windows
    each) and keep MIT-BIH 100's and PTB's together, and every record is then at least 15 %
    below the better baseline for intra-lead masks: v102s with both its leads given, where
    feeding them together reaches only ~8 %."""
    res = _score(
        resolve_encoder("ecg-anylead"), data_dir / record, "each_lead=auto", repeats=repeats
    )
    rec = res["per_record"][0]
    chose = [p["lead_mode"] for p in rec["probes"]]
    print(f"{record}: {chose}, t {[round(p['probe_t'], 2) for p in rec['probes']]}")
    assert len(rec["leads"]) >= 2 and len(chose) == repeats
    assert chose.count(mode) > repeats / 2  # most sets (v102s: about 17 in 20 lead by lead)
    assert _below(res, "intra") >= 0.15, res["intra"]


def test_anylead_rebuilds_the_one_ecg_lead_of_unseen_eegmat_subjects():
    """eegmat's test subjects 32-35 (never trained on): their one ECG lead, intra-lead masks."""
    root = DATASETS / "eegmat"
    if not root.is_dir():
        pytest.skip(f"eegmat not found at {root}; set PHYSIO_LIVE_DATASETS")
    res = _score(
        resolve_encoder("ecg-anylead"),
        root,
        "data.kind=edf",
        "data.n_channels=1",
        "data.hop_patches=4",
        "records=['Subject3[2-5]_*']",
    )
    assert res["records"] == 8 and res["inter"]["masked_samples"] == 0
    assert _below(res, "intra") >= 0.15, res["intra"]
