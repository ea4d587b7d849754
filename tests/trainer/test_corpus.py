"""Corpus preprocessing on the real WFDB/EDF records, the cache and its manifest, the split."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from physio_live.trainer import (
    Corpus,
    DataConfig,
    build_cache,
    cache_path,
    find_records,
    normalize_channel_name,
    preprocess_record,
)


def _cfg(data_dir: Path, **kw) -> DataConfig:
    kw.setdefault("kind", "wfdb")
    kw.setdefault("sample_patches", 4)
    return DataConfig(root=str(data_dir), **kw)


def _one(data_dir: Path, folder: str, **kw) -> dict:
    cfg = _cfg(data_dir, include=[f"{folder}/*"], **kw)
    (path,) = find_records(cfg)
    return preprocess_record(path, cfg)


def test_find_records_skips_segment_headers(data_dir):
    names = [p.name for p in find_records(_cfg(data_dir))]
    assert names == [
        "v102s.hea", "test01_00s.hea", "03700181.hea", "041s.hea", "100.hea", "s0010_re.hea",
    ]  # fmt: skip
    assert [p.name for p in find_records(_cfg(data_dir, kind="edf"))] == ["Subject00_1.edf"]


def test_channel_names_normalised():
    assert normalize_channel_name("EEG Fp1-REF") == "fp1"
    assert normalize_channel_name("MLII") == "ii"
    assert normalize_channel_name("Lead I") == "i"
    assert normalize_channel_name("ECG 1") == "1"


def test_format_212_mitdb(data_dir):
    info = _one(data_dir, "wfdb_mitdb_100")
    x = info["samples"]
    assert info["skipped"] is None and info["fs"] == 360.0
    assert info["channels"] == ["MLII", "V5"]
    # 1805.6 s at 200 Hz, 1 s settling, 4-s samples without overlap
    assert x.shape == (451, 2, 4, 200) and x.dtype == np.float16
    assert np.isfinite(x).all()
    # band-passed ECG in units of 100 uV: zero mean, a QRS of a few mV
    xf = x.astype(np.float32)
    assert abs(xf.mean()) < 0.1 and 3 < np.abs(xf).max() < 50
    assert [f["path"].rsplit("/", 1)[-1] for f in info["files"]] == ["100.hea", "100.dat"]
    assert all(len(f["sha256"]) == 64 for f in info["files"])


def test_format_16_twelve_leads_picked_by_name(data_dir):
    info = _one(data_dir, "wfdb_ptbdb_s0010_re", channels=["V1", "II", "aVF"], n_channels=3)
    assert info["fs"] == 1000.0 and info["channels"] == ["v1", "ii", "avf"]
    assert info["samples"].shape == (9, 3, 4, 200)
    # a lead set the record lacks: skipped with the reason
    info = _one(data_dir, "wfdb_ptbdb_s0010_re", channels=["V7"], n_channels=1)
    assert info["samples"] is None and "V7" in info["skipped"]


def test_multi_segment_record(data_dir):
    info = _one(data_dir, "wfdb_mimicdb_041s_multiseg", n_channels=3)
    # two segments of 8 s at 500 Hz read as one 16-s record; ABP, PAP, PLETH, RESP left out
    assert info["channels"] == ["III", "I", "V"] and info["fs"] == 500.0
    assert info["seconds_of_signal"] == pytest.approx(16.0)
    assert info["samples"].shape == (3, 3, 4, 200)
    assert {Path(f["path"]).name for f in info["files"]} == {
        "041s.hea", "041s01.hea", "041s01.dat", "041s02.hea", "041s02.dat",
    }  # fmt: skip


def test_mixed_rate_record_ecg_at_its_own_rate(data_dir):
    info = _one(data_dir, "wfdb_mimicdb_03700181", n_channels=1)
    assert info["channels"] == ["MCL1"] and info["fs"] == 500.0  # 4 samples per 125-Hz frame
    assert info["seconds_of_signal"] == pytest.approx(600.0)
    assert info["samples"].shape == (149, 1, 4, 200)
    # one ECG lead cannot give two-lead samples
    info = _one(data_dir, "wfdb_mimicdb_03700181", n_channels=2)
    assert info["samples"] is None and "MCL1" in info["skipped"]


def test_nan_gaps(data_dir):
    # isolated invalid samples are interpolated: one segment, finite output
    info = _one(data_dir, "wfdb_challenge2015_v102s")
    assert info["segments"] == 1 and np.isfinite(info["samples"]).all()
    n_interp = len(info["samples"])
    # with no interpolation every NaN splits the record; fewer samples, still finite
    info = _one(data_dir, "wfdb_challenge2015_v102s", max_gap_s=0.0)
    assert info["segments"] == 6  # 5 invalid samples over the two leads
    assert 0 < len(info["samples"]) < n_interp and np.isfinite(info["samples"]).all()


def test_edf_eeg_cbramod_preprocessing(data_dir):
    cfg = _cfg(data_dir, kind="edf", n_channels=19, bandpass=[0.3, 75.0], max_abs_uv=100.0)
    (path,) = find_records(cfg)
    info = preprocess_record(path, cfg)
    assert info["fs"] == 500.0 and len(info["channels"]) == 19 and "A2-A1" not in info["channels"]
    x = info["samples"].astype(np.float32)
    assert x.shape[1:] == (19, 4, 200) and np.abs(x).max() < 1.0  # < 100 uV in 100-uV units
    strict = preprocess_record(path, DataConfig(**{**cfg.__dict__, "max_abs_uv": 20.0}))
    assert strict["dropped_amplitude"] > 0
    assert strict["n_samples"] + strict["dropped_amplitude"] == info["n_samples"]


def test_cache_manifest_reuse_and_split(data_dir, tmp_path):
    cfg = _cfg(data_dir, cache_dir=str(tmp_path), shard_samples=100, val_records=["wfdb_mitdb*"])
    path = build_cache(cfg, progress=False)
    assert path == cache_path(cfg)
    manifest = json.loads((path / "manifest.json").read_text())
    c = manifest["counts"]
    assert c["records"] == 6 and c["records_used"] == 5 and c["records_skipped"] == 1
    assert c["samples"] == sum(s["n"] for s in manifest["shards"]) > 500
    assert len(manifest["shards"]) == -(-c["samples"] // 100)
    assert all(len(s["sha256"]) == 64 for s in manifest["shards"])
    skipped = [r for r in manifest["records"] if r["skipped"]]
    assert [r["record"] for r in skipped] == ["wfdb_mimicdb_03700181/03700181"]
    # same parameters: reused as it is
    stamp = (path / "manifest.json").stat().st_mtime_ns
    assert build_cache(cfg, progress=False) == path
    assert (path / "manifest.json").stat().st_mtime_ns == stamp
    # the split does not change the cache; preprocessing parameters do
    assert cache_path(DataConfig(**{**cfg.__dict__, "val_fraction": 0.5})) == path
    assert cache_path(DataConfig(**{**cfg.__dict__, "notch": 60.0})) != path

    corpus = Corpus(path)
    mit = next(r for r in corpus.records if r["record"].startswith("wfdb_mitdb"))
    direct = preprocess_record(mit["path"], cfg)["samples"]
    idx = np.arange(mit["start"], mit["start"] + mit["n_samples"])
    np.testing.assert_array_equal(corpus.get(idx[::-1]), direct[::-1].astype(np.float32))
    # split by record: every sample of a record on one side
    train, val = corpus.split(cfg.val_records)
    np.testing.assert_array_equal(val, idx)
    assert len(np.intersect1d(train, val)) == 0 and len(train) + len(val) == len(corpus)
    train, val = corpus.split(None, val_fraction=0.5)
    for _, a, b in corpus.record_ranges():
        assert np.isin(np.arange(a, b), val).all() or np.isin(np.arange(a, b), train).all()
    # a patient regex groups records: one "patient" ends up entirely on one side
    train, val = corpus.split(None, val_fraction=0.5, patient_regex=r"^(wfdb)_")
    assert len(train) == 0 or len(val) == 0


def test_cache_in_parallel_matches_serial(data_dir, tmp_path):
    inc = ["wfdb_ptbdb*/*", "wfdb_mimicdb_041s*/*", "wfdb_macecgdb*/*"]
    serial = Corpus(
        build_cache(_cfg(data_dir, include=inc, cache_dir=str(tmp_path / "a")), progress=False)
    )
    par = Corpus(
        build_cache(
            _cfg(data_dir, include=inc, cache_dir=str(tmp_path / "b"), workers=2), progress=False
        )
    )
    assert len(serial) == len(par) > 0
    np.testing.assert_array_equal(serial.get(range(len(serial))), par.get(range(len(par))))


LUDB = Path(__file__).resolve().parents[3] / "shared" / "datasets" / "ludb" / "data"


@pytest.fixture
def ludb_dir() -> Path:
    if not LUDB.is_dir():
        pytest.skip(f"LUDB not found at {LUDB}")
    return LUDB


def test_fixed_split_by_record_name_and_range(ludb_dir, tmp_path):
    from physio_live.trainer import TrainError
    from physio_live.trainer._config import SplitConfig

    cfg = _cfg(
        ludb_dir,
        include=["1?.hea"],  # records 10-19
        channels=["I", "II"],
        cache_dir=str(tmp_path),
        hop_patches=1,
        split=SplitConfig(train=["{10..15}"], val=["16", "17"], test=["1[89]"]),
    )
    corpus = Corpus(build_cache(cfg, progress=False))
    parts = corpus.split_parts(cfg.split)
    names = {
        k: sorted({corpus.records[i]["record"] for i in corpus.record_of(v)})
        for k, v in parts.items()
    }
    assert names == {
        "train": ["10", "11", "12", "13", "14", "15"], "val": ["16", "17"], "test": ["18", "19"]
    }  # fmt: skip
    assert [len(v) for v in parts.values()] == [36, 12, 12]  # 6 windows of 4 s per 10-s record
    assert np.array_equal(corpus.split(fixed=cfg.split)[1], parts["val"])
    with pytest.raises(TrainError, match="record 15 is in both train and val"):
        corpus.split_parts(SplitConfig(train=["{10..15}"], val=["{15..17}"]))


def test_wfdb_gain_restores_einthoven_on_ludb(ludb_dir):
    """LUDB's headers give each lead its own gain; one common gain makes III = II - I again."""
    kw = {"include": ["185.hea"], "channels": ["I", "II", "III"], "n_channels": 3}
    cfg = _cfg(ludb_dir, **kw)
    (path,) = find_records(cfg)
    x = preprocess_record(path, cfg)["samples"]
    y = preprocess_record(path, _cfg(ludb_dir, wfdb_gain=1000.0, **kw))["samples"]

    def resid(s):
        return np.abs(s[:, 2] - (s[:, 1] - s[:, 0])).max() / np.abs(s[:, 2]).max()

    assert resid(y) < 5e-3 and resid(x) > 0.1  # float16 cache
