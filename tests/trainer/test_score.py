"""``physio-train score``: one JSON line with masked MSE per mask kind, on a real WFDB folder."""

from __future__ import annotations

import json

import numpy as np
import pytest

from physio_live.trainer._score import score, scoring_windows
from physio_live.trainer.cli import main


def _run(capsys, *args: str) -> tuple[int, str, str]:
    rc = main(["score", *args])
    out = capsys.readouterr()
    return rc, out.out, out.err


def _score(capsys, root, *sets: str) -> tuple[int, str, str]:
    """``physio-train score --checkpoint ecg-ludb --set data.root=ROOT --set ... --quiet``."""
    args = [a for kv in (f"data.root={root}", *sets) for a in ("--set", kv)]
    return _run(capsys, "--checkpoint", "ecg-ludb", *args, "--quiet")


def test_score_prints_one_json_line(capsys, data_dir):
    rc, out, _ = _score(capsys, data_dir / "wfdb_ptbdb_s0010_re", "repeats=4")
    assert rc == 0
    lines = out.strip().splitlines()
    assert len(lines) == 1
    res = json.loads(lines[0])
    assert res["records"] == 1 and res["samples"] == 9  # 38.4 s, 1 s settling, 4-s windows
    assert res["per_record"][0]["leads"] == [
        "i", "ii", "iii", "avr", "avl", "avf", "v1", "v2", "v3", "v4", "v5", "v6"
    ]  # fmt: skip
    for kind in ("intra", "inter", "all"):
        r = res[kind]
        assert set(r) == {"model", "zeros", "interp", "below_best_pct", "masked_samples"}
        assert r["masked_samples"] > 0
        assert 0 < r["model"] < r["zeros"], (kind, r)
        best = min(r["zeros"], r["interp"])
        assert r["below_best_pct"] == pytest.approx(100 * (1 - r["model"] / best))
    total = res["intra"]["masked_samples"] + res["inter"]["masked_samples"]
    assert res["all"]["masked_samples"] == total


def test_score_masking_overrides_change_one_key_of_the_dual_masks(capsys, data_dir):
    """``--set masking.inter_prob=0`` keeps dual masking (it once fell back to patch masking)."""
    rc, out, _ = _score(capsys, data_dir / "wfdb_ptbdb_s0010_re", "masking.inter_prob=0")
    assert rc == 0
    res = json.loads(out)
    assert res["inter"]["masked_samples"] == 0
    # dual intra-lead masks hide exactly 2 of the 4 patches of each of the 12 leads
    assert res["intra"]["masked_samples"] == res["samples"] * 12 * 2 * 200


def test_score_one_lead_record_has_no_inter_lead_masks(capsys, data_dir):
    rc, out, _ = _score(capsys, data_dir / "wfdb_mitdb_100", "data.n_channels=1")
    assert rc == 0
    res = json.loads(out)
    assert res["per_record"][0]["leads"] == ["MLII"]
    assert res["inter"]["masked_samples"] == 0 and res["inter"]["model"] is None
    assert res["intra"]["masked_samples"] == res["all"]["masked_samples"] > 0
    assert res["intra"]["model"] == pytest.approx(res["all"]["model"])


def test_score_errors_are_one_line(capsys, tmp_path):
    rc, out, err = _run(capsys, "--checkpoint", "no-such-encoder", "--set", f"data.root={tmp_path}")
    assert rc == 1 and not out
    assert err.startswith("physio-train: error: ") and "no-such-encoder" in err
    assert len(err.strip().splitlines()) == 1
    rc, out, err = _run(capsys, "--checkpoint", "ecg-ludb")
    assert rc == 1 and "data.root" in err and len(err.strip().splitlines()) == 1


def test_score_reads_the_ecg_of_an_edf_folder(capsys, data_dir):
    """eegmat: EEG + one ECG lead (mV, 500 Hz) in EDF; an ECG encoder scores the ECG channel."""
    rc, out, _ = _score(capsys, data_dir / "eeg_ecg_eegmat")
    assert rc == 0
    res = json.loads(out)
    assert res["per_record"] == [{"record": "Subject00_1", "leads": ["ECG"], "windows": 45}]
    assert res["intra"]["masked_samples"] == 45 * 2 * 200 and res["inter"]["masked_samples"] == 0
    assert res["intra"]["zeros"] > 0 and res["intra"]["model"] > 0


def test_each_lead_scores_every_lead_on_its_own(capsys, data_dir):
    """``each_lead=true`` (a one-lead encoder's use): MIT-BIH 100's two leads become one-lead
    windows, window by window and lead by lead, masked intra-lead only."""
    root = data_dir / "wfdb_mitdb_100"
    rc, out, _ = _score(capsys, root, "each_lead=true", "data.n_channels=2")
    assert rc == 0
    res = json.loads(out)
    both = scoring_windows("ecg-ludb", [f"data.root={root}", "data.n_channels=2"])[3][0]
    each = scoring_windows(
        "ecg-ludb", [f"data.root={root}", "data.n_channels=2", "each_lead=true"]
    )[3][0]
    assert both.leads == each.leads == ["MLII", "V5"]
    n = len(both.windows)
    assert res["samples"] == 2 * n and each.windows.shape == (2 * n, 1, *both.windows.shape[2:])
    assert np.array_equal(each.windows.reshape(both.windows.shape), both.windows)
    assert res["inter"]["masked_samples"] == 0
    assert res["intra"]["masked_samples"] == 2 * n * 2 * 200
    assert res["intra"]["model"] > 0 and res["intra"]["zeros"] > 0


def test_lead_by_lead_feeds_each_lead_alone_and_whole_lead_masks_together(data_dir):
    """``LeadByLead`` (``each_lead=auto``'s other way): a window masked within its leads goes in
    one lead at a time, exactly as ``each_lead=true`` feeds it; a window with a whole lead hidden
    goes in with its leads together, the only way that lead can be rebuilt."""
    import torch

    from physio_live.trainer._score import LeadByLead, score_masks

    root = data_dir / "wfdb_mitdb_100"
    _, ck, cfg, recs, _ = scoring_windows("ecg-anylead", [f"data.root={root}", "batch_size=16"])
    model = ck.model.eval()
    x_all = recs[0].windows
    _, mb = next(score_masks(cfg, x_all, 1))
    x = torch.from_numpy(np.ascontiguousarray(x_all[:16]))
    assert 0 < int(mb.inter.sum()) < 16  # both kinds in the batch
    with torch.no_grad():
        got = LeadByLead(model)(x, mb.mask)
        for i in range(16):
            if mb.inter[i]:
                want = model(x[i : i + 1], mb.mask[i : i + 1])[0]
            else:
                want = torch.stack(
                    [
                        model(x[i : i + 1, c : c + 1], mb.mask[i : i + 1, c : c + 1])[0, 0]
                        for c in (0, 1)
                    ]
                )
            torch.testing.assert_close(got[i], want, rtol=1e-4, atol=1e-5)


def test_auto_lead_mode_never_looks_at_the_hidden_samples(data_dir):
    """``each_lead=auto`` decides per record from what the masks leave visible: redrawing every
    hidden sample at random changes neither the probe's errors nor its choice; redrawing visible
    ones does."""
    import torch

    from physio_live.trainer._score import probe_lead_mode, score_masks

    root = data_dir / "wfdb_challenge2015_v102s"
    seed = int(np.random.default_rng().integers(1_000_000))
    _, ck, cfg, recs, _ = scoring_windows(
        "ecg-anylead", [f"data.root={root}", "each_lead=auto", f"seed={seed}"]
    )
    model = ck.model.eval()
    x = recs[0].windows
    assert x.shape[1] == 2  # auto keeps the leads together in the windows it scores
    base = probe_lead_mode(model, cfg, x, 1, torch.device("cpu"))
    assert base["lead_mode"] in ("each", "together") and base["probe_windows"] > 0
    hidden = np.zeros(x.shape, dtype=bool)
    for j, mb in score_masks(cfg, x, 1):  # one repeat: its masks cover every window once
        hidden[j : j + len(mb.mask)] = mb.mask.numpy()[..., None]
    rng = np.random.default_rng(seed)
    noise = rng.normal(0, 5, x.shape).astype(x.dtype)
    again = probe_lead_mode(model, cfg, np.where(hidden, noise, x), 1, torch.device("cpu"))
    assert again == base
    moved = probe_lead_mode(model, cfg, np.where(hidden, x, x + noise), 1, torch.device("cpu"))
    assert moved["probe_mse"] != base["probe_mse"]


def test_auto_lead_mode_needs_enough_windows_to_switch(data_dir):
    """A few windows cannot show that a record's leads are better taken one at a time. MIMIC
    041s has three; with these masks (seed 25) two are masked within leads, and lead by lead
    rebuilds their visible patches better at t 8.6, short of the 12.7 that Student's t asks of
    two windows, so the leads stay together. A record of one window can form no t at all."""
    import torch
    from scipy.stats import t as student_t

    from physio_live.trainer._score import probe_lead_mode

    root = data_dir / "wfdb_mimicdb_041s_multiseg"
    _, ck, cfg, recs, _ = scoring_windows(
        "ecg-anylead", [f"data.root={root}", "each_lead=auto", "seed=25"]
    )
    probe = probe_lead_mode(ck.model.eval(), cfg, recs[0].windows, 1, torch.device("cpu"))
    assert (
        probe["probe_windows"] == 2 and probe["probe_mse"]["each"] < probe["probe_mse"]["together"]
    )
    assert 2 < probe["probe_t"] < probe["probe_t_needed"] == pytest.approx(student_t.ppf(0.975, 1))
    assert probe["lead_mode"] == "together"
    root = data_dir / "wfdb_macecgdb_test01_00s"
    res = score("ecg-anylead", [f"data.root={root}", "each_lead=auto", "repeats=3"])
    rec = res["per_record"][0]
    assert rec["windows"] == 1 and rec["lead_mode"] == "together"
    assert all(p["probe_windows"] <= 1 and p["lead_mode"] == "together" for p in rec["probes"])


def test_auto_lead_mode_is_reported_per_record_and_bad_values_are_one_line(capsys, data_dir):
    """Each set of masks (``repeats``) decides for itself, by Student's t for its windows."""
    from scipy.stats import t as student_t

    rc, out, _ = _score(capsys, data_dir / "wfdb_ptbdb_s0010_re", "each_lead=auto", "repeats=3")
    assert rc == 0
    rec = json.loads(out)["per_record"][0]
    assert len(rec["probes"]) == 3
    modes = {p["lead_mode"] for p in rec["probes"]}
    assert rec["lead_mode"] == (modes.pop() if len(modes) == 1 else "mixed")
    for p in rec["probes"]:
        assert set(p["probe_mse"]) == {"together", "each"} and p["probe_windows"] >= 2
        assert p["probe_t_needed"] == pytest.approx(student_t.ppf(0.975, p["probe_windows"] - 1))
        assert (p["lead_mode"] == "each") == (p["probe_t"] >= p["probe_t_needed"])
    rc, out, err = _run(
        capsys,
        "--checkpoint",
        "ecg-ludb",
        "--set",
        f"data.root={data_dir}",
        "--set",
        "each_lead=maybe",
    )
    assert rc == 1 and not out and "each_lead" in err and "auto" in err
    assert len(err.strip().splitlines()) == 1


def test_ship_encoder_scores_a_one_lead_run_lead_by_lead(tiny_config, data_dir, tmp_path):
    """``python -m physio_live.trainer._score RUN OUT OTHER --recipe R``: a one-lead recipe's
    encoder is scored on its split and on other folders lead by lead, and says so."""
    from physio_live.models import load_checkpoint
    from physio_live.trainer import pretrain
    from physio_live.trainer._score import ship_encoder

    split = {"train": ["wfdb_ptbdb*"], "val": ["wfdb_mimicdb_041s*"], "test": ["wfdb_chall*"]}
    cfg = tiny_config(
        data={"n_channels": 1, "split": split, "val_records": []},
        masking={"inter_prob": 0.0},
    )
    res = pretrain(cfg, progress=False)
    out = tmp_path / "one.safetensors"
    mitdb = data_dir / "wfdb_mitdb_100"
    metrics = ship_encoder(res.out_dir, out, other=[mitdb], repeats=1, recipe="configs/x.yaml")
    assert set(metrics) == {"shared_train", "shared_val", "shared_test", "wfdb_mitdb_100"}
    # MIT-BIH 100's two leads, each on its own: twice the windows of the two-lead scoring
    two = scoring_windows(out, [f"data.root={mitdb}", "data.n_channels=2"])[3][0]
    assert metrics["wfdb_mitdb_100"]["windows"] == 2 * len(two.windows)
    assert (
        metrics["wfdb_mitdb_100"]["inter"]["model"] != metrics["wfdb_mitdb_100"]["inter"]["model"]
    )
    ck = load_checkpoint(out)
    notes = json.loads(ck.provenance.notes)
    assert ck.provenance.source.endswith("configs/x.yaml") and "one lead" in notes["unit"]
    assert notes["split"] == split


def test_ship_encoder_scores_other_folders_three_ways(tiny_config, data_dir, tmp_path):
    """A multi-lead encoder's other folders: leads together, lead by lead, and as
    ``each_lead=auto`` picks, which equals one of the other two (same masks, same model)."""
    from physio_live.trainer import pretrain
    from physio_live.trainer._score import ship_encoder

    split = {"train": ["wfdb_ptbdb*"], "val": ["wfdb_mimicdb_041s*"], "test": ["wfdb_chall*"]}
    res = pretrain(tiny_config(data={"split": split, "val_records": []}), progress=False)
    mitdb = data_dir / "wfdb_mitdb_100"
    metrics = ship_encoder(res.out_dir, tmp_path / "two.safetensors", other=[mitdb], repeats=1)
    name = mitdb.name
    assert {name, f"{name} each lead", f"{name} auto"} <= set(metrics)
    auto, together = metrics[f"{name} auto"], metrics[name]
    assert auto["windows"] == together["windows"]  # auto scores the record's windows as they are
    assert auto["inter"] == together["inter"]  # whole-lead masks always go in together
    direct = score(tmp_path / "two.safetensors", [f"data.root={mitdb}", "each_lead=auto"])
    assert auto["intra"]["model"] == pytest.approx(direct["intra"]["model"])
    if direct["per_record"][0]["lead_mode"] == "together":
        assert auto["intra"] == together["intra"]
    else:  # lead by lead on the same masks (repeats=1) scores differently
        assert auto["intra"]["model"] != together["intra"]["model"]


def _write_layouts(src: str, root) -> dict[str, object]:
    """PTB s0010's twelve standard leads written as other 12-lead databases store them:
    PTB-XL (nested ``records100/00000/00001_lr``, 100 Hz, upper-case ``AVR``), the PhysioNet
    Challenge 2020 (signals in a MATLAB v4 ``.mat`` the header points into, 500 Hz) and INCART
    (257 Hz, ``aVR``)."""
    import scipy.io
    import scipy.signal
    import wfdb

    rec = wfdb.rdrecord(src)
    names = ["I", "II", "III", "AVR", "AVL", "AVF", "V1", "V2", "V3", "V4", "V5", "V6"]
    low = [n.lower() for n in rec.sig_name]
    x = rec.p_signal[:, [low.index(n.lower()) for n in names]]  # mV, 1000 Hz
    mixed = [n.replace("AV", "aV") for n in names]
    out = {}
    for key, fs, sig_names, sub in (
        ("ptbxl", 100, names, "records100/00000"),
        ("incart", 257, mixed, ""),
    ):
        d = root / key / sub
        d.mkdir(parents=True)
        y = scipy.signal.resample_poly(x, fs, 1000, axis=0)
        wfdb.wrsamp(
            "00001_lr" if key == "ptbxl" else "I01", fs=fs, units=["mV"] * 12,
            sig_name=sig_names, p_signal=y, fmt=["16"] * 12, adc_gain=[1000.0] * 12,
            baseline=[0] * 12, write_dir=str(d),
        )  # fmt: skip
        out[key] = root / key
    d = root / "cinc2020"
    d.mkdir()
    val = np.round(scipy.signal.resample_poly(x, 1, 2, axis=0).T * 1000).astype(np.int16)
    scipy.io.savemat(str(d / "A0001.mat"), {"val": val}, format="4")
    head = [f"A0001 12 500 {val.shape[1]}"]
    for v, n in zip(val, mixed, strict=True):
        head.append(f"A0001.mat 16+24 1000/mV 16 0 {v[0]} 0 0 {n}")
    (d / "A0001.hea").write_text("\n".join([*head, "#Dx: 426783006", ""]))
    out["cinc2020"] = d
    return out


def test_score_reads_other_12_lead_databases_layouts(capsys, data_dir, tmp_path):
    """The same recording stored as PTB-XL, Challenge 2020 and INCART store theirs (folders,
    rates, MATLAB signal files, lead-name spellings) scores like the original: twelve leads in
    the encoder's order, the same windows, and well below both baselines."""
    rc, out, _ = _score(capsys, data_dir / "wfdb_ptbdb_s0010_re", "repeats=2")
    assert rc == 0
    ref = json.loads(out)
    layouts = _write_layouts(str(data_dir / "wfdb_ptbdb_s0010_re" / "s0010_re"), tmp_path)
    for name, root in layouts.items():
        rc, out, err = _score(capsys, root, "repeats=2")
        assert rc == 0, (name, err)
        res = json.loads(out)
        assert res["records"] == 1 and res["samples"] == ref["samples"], name
        leads = [x.lower() for x in res["per_record"][0]["leads"]]
        assert leads == ref["per_record"][0]["leads"], name
        for kind in ("intra", "inter"):
            assert res[kind]["below_best_pct"] > 15, (name, kind, res[kind])
            # the rate only removes content the 45-Hz band-pass removes anyway
            assert res[kind]["zeros"] == pytest.approx(ref[kind]["zeros"], rel=0.1), (name, kind)
