"""Bad input, all kinds in one table: every one gives ONE readable line with the fix.

Each row: a kind of bad input, how the test makes it (real files from ``../shared/data`` cut or
byte-flipped in ``tmp_path``, real checkpoints written by our saver, real LSL outlets in another
process), the command, and the message expected. The command runs in-process through the CLI's
``main`` and must exit 1 with exactly one ``physio-live: error:`` (or ``physio-train: error:``)
line on stderr, no traceback, and a fix in the line. Damage the app can work around (a truncated
XDF, EDF or WFDB record) is replayed up to the damage with one warning line instead. The README's
Troubleshooting table lists the same messages.

The last test pushes NaN/inf bursts and extreme amplitudes through a real Session: the app keeps
running, the windows are flagged, the estimates withheld, and the recording holds the raw values.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pyedflib
import pytest
import pyxdf
import safetensors
import safetensors.torch
import torch

from physio_live.app.cli import main as app_main
from physio_live.core import ArraySource, StreamInfo, config_from_dict
from physio_live.core._xdf import XDFWriter
from physio_live.models import (
    CBraMod,
    CBraModConfig,
    FusedEmotionConfig,
    FusedEmotionModel,
    ModalityConfig,
    save_checkpoint,
)
from physio_live.trainer.cli import main as train_main

TESTS = Path(__file__).resolve().parents[1]
EDF = "eeg_ecg_eegmat/Subject00_1.edf"
XDF = "xdf_bci_essentials_switch/switch_example.xdf"
#: the 19 EEG channels of the eegmat EDF, in file order (labels cleaned of "EEG ")
EEGMAT = tuple("Fp1 Fp2 F3 F4 F7 F8 T3 T4 C3 C4 T5 T6 P3 P4 O1 O2 Fz Cz Pz".split())
DREAMER = tuple("AF3 F7 F3 FC5 T7 P7 O1 O2 P8 T8 FC6 F4 F8 AF4".split())
FAST = ["--config", "demo_synthetic", "--set", "model.size=tiny", "--speed", "max",
        "--duration", "6", "--no-record"]  # fmt: skip

GOOD_YAML = """\
sources:
  - kind: lsl
    role: eeg
    name: MyEEG
    channels: 32
aligner:
  window: 4
  hop: 0.5
"""


# ------------------------------------------------------------------------------------------
# how the bad inputs are made


def _write(path: Path, data: bytes | str) -> Path:
    if isinstance(data, str):
        data = data.encode()
    path.write_bytes(data)
    return path


def _cut(src: Path, dst: Path, keep: int | float) -> Path:
    """The first ``keep`` bytes (an int) or fraction (a float) of ``src``."""
    data = src.read_bytes()
    n = keep if isinstance(keep, int) else int(len(data) * keep)
    return _write(dst, data[:n])


def _flip(src: Path, dst: Path, at: int, count: int) -> Path:
    data = bytearray(src.read_bytes())
    for i in range(at, at + count):
        data[i] ^= 0xFF
    return _write(dst, bytes(data))


def _enc() -> CBraModConfig:
    return CBraModConfig(depth=1, out_dim=None)


def _fused(eeg: tuple[str, ...], *, n_patches: int = 4, pooling: str = "mean") -> FusedEmotionModel:
    return FusedEmotionModel(
        FusedEmotionConfig(
            eeg=ModalityConfig("eeg", eeg, n_patches=n_patches, encoder=_enc()),
            ecg=ModalityConfig(
                "ecg", ("ECG",), n_patches=n_patches, units="mV", scale=1e-3, encoder=_enc()
            ),
            pooling=pooling,  # type: ignore[arg-type]
        )
    )


class _Payload:
    """Unpickling this would create a file: a stand-in for arbitrary code. Never loaded."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def _pickle_checkpoint(ctx) -> Path:
    path = ctx.tmp / "weights.pth"
    torch.save(
        {"state_dict": CBraMod.from_config(_enc()).state_dict(), "x": _Payload(ctx.marker)}, path
    )
    return path


def _rewrite_header(path: Path, **changes: str) -> Path:
    """Our checkpoint with its header metadata changed, tensors kept."""
    with safetensors.safe_open(path, framework="pt") as f:
        meta = dict(f.metadata())
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    meta.update(changes)
    safetensors.torch.save_file(tensors, path, metadata=meta)
    return path


def _other_architecture(ctx) -> Path:
    path = save_checkpoint(ctx.tmp / "deeper.safetensors", _fused(tuple(EEGMAT)))
    with safetensors.safe_open(path, framework="pt") as f:
        config = json.loads(f.metadata()["config"])
    config["eeg"]["encoder"]["depth"] = 3  # the header promises layers the weights lack
    return _rewrite_header(path, config=json.dumps(config))


def _wfdb_copy(ctx, record: str = "wfdb_mitdb_100") -> Path:
    dst = ctx.tmp / "wfdb"
    shutil.copytree(ctx.data / record, dst)
    return dst


def _wfdb_truncated_dat(ctx) -> Path:
    d = _wfdb_copy(ctx)
    _cut(d / "100.dat", d / "100.dat", 3 * 360 * 20)  # format 212, 2 signals: 20 s
    return d / "100.hea"


def _wfdb_missing_dat(ctx) -> Path:
    d = _wfdb_copy(ctx)
    (d / "100.dat").unlink()
    return d / "100.hea"


def _wfdb_garbage_header(ctx) -> Path:
    d = _wfdb_copy(ctx)
    _write(d / "100.hea", b"\x00\xff\x13 not a header\n12 zz 34\n")
    return d / "100.hea"


def _xdf_irregular_eeg(ctx) -> Path:
    path = ctx.tmp / "irregular.xdf"
    w = XDFWriter(path, clock=lambda: 100.0)
    w.open()
    info = StreamInfo("Amp", "EEG", "eeg", ("Fz", "Cz"), ("uV", "uV"), 0.0, "amp-1")
    sid = w.add_stream(info)
    ts = 100.0 + np.cumsum(np.random.default_rng(0).uniform(0.001, 0.01, 2000))
    w.write_samples(sid, np.zeros((2000, 2), np.float32), ts)
    w.close()
    return path


def _config(ctx, text: str, name: str = "lab.yaml") -> Path:
    return _write(ctx.tmp / name, text)


def _lsl_config(ctx, kind: str) -> Path:
    name = ctx.outlet(kind)
    return _config(
        ctx,
        f"sources:\n  - {{kind: lsl, role: eeg, name: {name}, timeout: 5}}\n"
        "model: {size: tiny, device: cpu}\noutlet: {enabled: false}\n",
    )


# ------------------------------------------------------------------------------------------
# the table


@dataclass(frozen=True)
class Case:
    kind: str
    argv: Callable[[SimpleNamespace], list[str]]
    message: str  # regex the one line must match
    fix: str  # regex of the fix the line must name
    prog: str = "physio-live"
    outcome: str = "error"  # "error": exit 1; "warning": replayed up to the damage, exit 0


def _replay(path_of: Callable[[SimpleNamespace], Path], *extra: str):
    def argv(ctx):
        return ["--stream", "--replay", str(path_of(ctx)), "--out", str(ctx.tmp), *FAST, *extra]

    return argv


def _edf_with(ckpt: Callable[[SimpleNamespace], Path]):
    def argv(ctx):
        return ["--stream", "--replay", str(ctx.data / EDF), "--out", str(ctx.tmp),
                "--checkpoint", str(ckpt(ctx)), *FAST]  # fmt: skip

    return argv


def _train(*args: str, config: Callable[[SimpleNamespace], str] | None = None):
    def argv(ctx):
        conf = config(ctx) if config else "configs/pretrain_ecg_smoke.yaml"
        sets = [a.format(tmp=ctx.tmp) for a in args]
        return [sets[0], "--config", str(TESTS.parent / conf), "--quiet", *sets[1:]]

    return argv


CASES = [
    # --- configs ---------------------------------------------------------------------------
    Case(
        "malformed-yaml",
        lambda c: ["--stream", "--config", str(_config(c, "sources: [\n  - kind: lsl"))],
        r"lab\.yaml: line 2, column \d+: not valid YAML",
        r"fix the syntax there",
    ),
    Case(
        "unknown-key",
        lambda c: ["--stream", "--config", str(_config(c, GOOD_YAML.replace("hop:", "hopp:")))],
        r"lab\.yaml: aligner\.hopp: unknown key",
        r"did you mean 'hop'\?",
    ),
    Case(
        "wrong-type",
        lambda c: ["--stream", "--config", str(_config(c, GOOD_YAML.replace("32", "many")))],
        r"lab\.yaml: sources\[0\]\.channels: expected an integer, got 'many'",
        r"expected an integer",
    ),
    Case(
        "bad-override",
        lambda c: ["--stream", "--set", "aligner.hop"],
        r"override 'aligner\.hop' must look like",
        r"key\.sub=value",
    ),
    Case(
        "hop-longer-than-window",
        lambda c: ["--stream", "--set", "aligner.hop=8"],
        r"aligner\.hop: 8\.0 s is longer than the window \(4\.0 s\)",
        r"use hop <= window",
    ),
    Case(
        "window-shorter-than-a-patch",
        lambda c: ["--stream", "--set", "aligner.window=0.5", "--set", "aligner.hop=0.25"],
        r"aligner\.window: 0\.5 s is shorter than one 1-s model patch",
        r"use >= 1",
    ),
    Case(
        "sampling-rate-zero",
        lambda c: ["--stream", "--set", "aligner.rate=0"],
        r"aligner\.rate: must be > 0 Hz, got 0",
        r"the models take 200",
    ),
    Case(
        "bandpass-above-nyquist",
        lambda c: ["--stream", "--set", "aligner.eeg.bandpass=[0.3,150]"],
        r"aligner\.eeg\.bandpass: high edge 150\.0 Hz must be below the model Nyquist",
        r"must be below",
    ),
    Case(
        "config-not-found",
        lambda c: ["--stream", "--config", str(c.tmp / "nope.yaml")],
        r"nope\.yaml: config file not found",
        r"built-in configs: .*demo",
    ),
    # --- checkpoints -----------------------------------------------------------------------
    Case(
        "checkpoint-channel-count",
        _edf_with(lambda c: save_checkpoint(c.tmp / "dreamer14.safetensors", _fused(DREAMER))),
        r"the model takes 14 EEG channels \(AF3, .*\) but the EEG streams give 19 \(Fp1,",
        r"pick the matching streams or a checkpoint trained on these channels",
    ),
    Case(
        "checkpoint-channel-labels",
        _edf_with(
            lambda c: save_checkpoint(
                c.tmp / "other19.safetensors",
                _fused(("AF3", "AF4", "FC5", "FC6", *EEGMAT[4:])),
            )
        ),
        r"the model was trained on EEG channels AF3, AF4, FC5, FC6, F7.* but the EEG streams "
        r"give Fp1, .*\(not in the streams: AF3, AF4, FC5, FC6; "
        r"not the model's: Fp1, Fp2, F3, F4\)",
        r"pick streams with the model's channels.*sources\[N\]\.labels",
    ),
    Case(
        "checkpoint-channel-order",
        _edf_with(lambda c: save_checkpoint(c.tmp / "rev19.safetensors", _fused(EEGMAT[::-1]))),
        r"the EEG streams give the model's 19 channels in another order",
        r"pick streams with the model's channels in its order",
    ),
    Case(
        "checkpoint-window-length",
        _edf_with(
            lambda c: save_checkpoint(
                c.tmp / "flat8.safetensors", _fused(EEGMAT, n_patches=8, pooling="flatten")
            )
        ),
        r"aligner\.window is 4\.0 s but the model was trained on 8-s windows",
        r"set aligner\.window: 8",
    ),
    Case(
        "checkpoint-pickle-payload",
        _edf_with(_pickle_checkpoint),
        r"weights\.pth carries a pickle payload .* so it is refused",
        r"re-save just the weights with torch\.save\(model\.state_dict\(\), path\)",
    ),
    Case(
        "models-info-pickle-payload",
        lambda c: ["models", "info", str(_pickle_checkpoint(c))],
        r"weights\.pth carries a pickle payload",
        r"re-save just the weights",
    ),
    Case(
        "checkpoint-truncated",
        _edf_with(
            lambda c: _cut(
                save_checkpoint(c.tmp / "m.safetensors", _fused(EEGMAT)),
                c.tmp / "cut.safetensors",
                0.6,
            )
        ),
        r"cut\.safetensors is corrupt or truncated \(SafetensorError",
        r"copy or save it again",
    ),
    Case(
        "checkpoint-another-architecture",
        _edf_with(_other_architecture),
        r"deeper\.safetensors: the fused model checkpoint does not fit this model \(missing: "
        r"eeg_encoder\.blocks\.1\..*another architecture",
        r"use the matching config or the right checkpoint file",
    ),
    Case(
        "checkpoint-foreign-safetensors",
        _edf_with(
            lambda c: (
                safetensors.torch.save_file(
                    {"conv1.weight": torch.zeros(4, 3)}, c.tmp / "resnet.safetensors"
                ),
                c.tmp / "resnet.safetensors",
            )[1]
        ),
        r"resnet\.safetensors is a safetensors file but not a physio-live checkpoint",
        r"save models with physio_live\.models\.save_checkpoint",
    ),
    Case(
        "checkpoint-foreign-state-dict",
        _edf_with(
            lambda c: (
                torch.save(
                    {"conv1.weight": torch.zeros(2), "fc.bias": torch.zeros(2)},
                    c.tmp / "resnet.pth",
                ),
                c.tmp / "resnet.pth",
            )[1]
        ),
        r"resnet\.pth holds the weights of another model \(2 tensors, e\.g\. conv1\.weight",
        r"give a fused model written by `physio-train finetune`",
    ),
    Case(
        "checkpoint-encoder-only",
        _edf_with(
            lambda c: save_checkpoint(
                c.tmp / "enc.safetensors",
                CBraMod.from_config(_enc()),
                modality=ModalityConfig("eeg", EEGMAT, encoder=_enc()),
            )
        ),
        r"enc\.safetensors is an encoder checkpoint \(cbramod_encoder\)",
        r"fine-tune one with physio-train finetune",
    ),
    Case(
        "checkpoint-missing",
        _edf_with(lambda c: c.tmp / "absent.safetensors"),
        r"model\.checkpoint: .*absent\.safetensors does not exist",
        r"give the path of a",
    ),
    # --- live streams ------------------------------------------------------------------------
    Case(
        "lsl-string-stream-as-eeg",
        lambda c: ["--stream", "--no-record", "--config", str(_lsl_config(c, "string"))],
        r"LSL stream 'bad-string-\w+' carries strings but role 'eeg' needs numbers",
        r"use role: markers or pick a numeric stream",
    ),
    Case(
        "lsl-irregular-rate-as-eeg",
        lambda c: ["--stream", "--no-record", "--config", str(_lsl_config(c, "irregular"))],
        r"LSL stream 'bad-irregular-\w+' has an irregular rate \(nominal_srate 0\)",
        r"pick the amplifier's signal stream \(nominal_srate > 0\)",
    ),
    # --- recordings ------------------------------------------------------------------------
    Case(
        "xdf-string-stream-as-eeg",
        _replay(
            lambda c: c.data / "xdf_example_files/minimal.xdf",
            "--set",
            "replay.roles={'SendDataString': eeg}",
        ),
        r"stream 'SendDataString' holds strings but its role is eeg",
        r"set replay\.roles: \{'SendDataString': markers\}",
    ),
    Case(
        "xdf-irregular-eeg",
        _replay(_xdf_irregular_eeg),
        r"stream 'Amp' \(eeg\) has an irregular rate \(nominal_srate 0\)",
        r"set replay\.roles: \{'Amp': misc\}",
    ),
    Case(
        "xdf-truncated-in-header",
        _replay(lambda c: _cut(c.data / XDF, c.tmp / "head.xdf", 200)),
        r"head\.xdf: unreadable XDF \(ParseError: .*\); the file is damaged before its first "
        r"stream header",
        r"copy it again from its source",
    ),
    Case(
        "xdf-corrupt-bytes",
        _replay(lambda c: _flip(c.data / XDF, c.tmp / "flipped.xdf", 1000, 64)),
        r"flipped\.xdf: unreadable XDF",
        r"copy it again from its source",
    ),
    Case(
        "xdf-not-xdf",
        _replay(lambda c: _write(c.tmp / "garbage.xdf", b"hello world" * 50)),
        r"garbage\.xdf: not an XDF file \(no 'XDF:' magic",
        r"check that it is the recording itself",
    ),
    Case(
        "xdf-truncated",
        _replay(lambda c: _cut(c.data / XDF, c.tmp / "half.xdf", 0.5)),
        r"half\.xdf: the file is damaged .* the readable data stops 67\.\d s into the recording",
        r"replaying what could be read",
        outcome="warning",
    ),
    Case(
        "recording-shorter-than-a-window",
        _replay(lambda c: _cut(c.data / XDF, c.tmp / "stub.xdf", 6000)),
        r"stub\.xdf: only 0\.\d s of EEG/ECG signal.*, less than one 4-s window",
        r"replay a longer recording or part",
    ),
    Case(
        "edf-truncated",
        _replay(lambda c: _cut(c.data / EDF, c.tmp / "half.edf", 0.5)),
        r"half\.edf: the file is truncated \(its header says 182 data records, it holds 90",
        r"replaying the first 90 s that could be read",
        outcome="warning",
    ),
    Case(
        "edf-truncated-in-header",
        _replay(lambda c: _cut(c.data / EDF, c.tmp / "head.edf", 1000)),
        r"head\.edf: unreadable EDF/BDF",
        r"copy it again from its source",
    ),
    Case(
        "edf-corrupt-header",
        _replay(lambda c: _flip(c.data / EDF, c.tmp / "flipped.edf", 184, 8)),
        r"flipped\.edf: unreadable EDF/BDF \(the file is not EDF\(\+\) or BDF\(\+\) compliant",
        r"copy it again from its source",
    ),
    Case(
        "wfdb-truncated-dat",
        _replay(_wfdb_truncated_dat),
        r"100\.hea: the record is truncated \(100\.dat holds 7200 of 650000 samples\)",
        r"replaying the first 7200 samples \(20\.0 s\)",
        outcome="warning",
    ),
    Case(
        "wfdb-missing-dat",
        _replay(_wfdb_missing_dat),
        r"100\.hea: unreadable WFDB record: its signal file 100\.dat is missing",
        r"put it beside the \.hea file",
    ),
    Case(
        "wfdb-garbage-header",
        _replay(_wfdb_garbage_header),
        r"100\.hea: unreadable WFDB record: not a valid WFDB header",
        r"copy the record again from its source",
    ),
    Case(
        "empty-recording",
        _replay(lambda c: c.data / "xdf_example_files/empty_streams.xdf"),
        r"empty_streams\.xdf: no EEG or ECG stream found \(found: Empty data stream",
        r"name the roles in the config",
    ),
    Case(
        "zero-byte-file",
        _replay(lambda c: _write(c.tmp / "zero.edf", b"")),
        r"zero\.edf: the file is empty \(0 bytes\)",
        r"replay another copy",
    ),
    Case(
        "unsupported-format",
        _replay(lambda c: _write(c.tmp / "notes.txt", "just text")),
        r"notes\.txt: unsupported format '\.txt'",
        r"replays XDF \(\.xdf\), EDF/BDF \(\.edf, \.bdf\) and WFDB records",
    ),
    Case(
        "missing-file",
        _replay(lambda c: c.tmp / "none.xdf"),
        r"none\.xdf: no such file",
        r"give the path of an XDF, EDF/BDF or WFDB record",
    ),
    Case(
        "bad-speed",
        lambda c: ["--stream", "--replay", str(c.data / EDF), "--speed", "fast"],
        r"--speed 'fast'",
        r"give a positive factor \(1 = real time\) or 'max'",
    ),
    Case(
        "start-past-the-end",
        _replay(lambda c: c.data / EDF, "--start", "9999"),
        r"--start 9999\.0 s is past the end of the recording \(182\.0 s long\)",
        r"give a --start below 182",
    ),
    Case(
        "output-folder-not-writable",
        lambda c: [
            "--stream",
            "--replay",
            str(c.data / EDF),
            *FAST,
            "--out",
            str(_write(c.tmp / "afile", "x") / "sub"),
        ],
        r"afile/sub.*: Not a directory",
        r"check that the path exists and is writable",
    ),
    Case(
        "export-folder-not-writable",
        lambda c: [
            "--stream",
            "--replay",
            str(c.data / EDF),
            *FAST,
            "--out",
            str(c.tmp),
            "--export-windows",
            str(_write(c.tmp / "afile", "x") / "w.npz"),
        ],
        r"afile.*: (File exists|Not a directory)",
        r"check that the path exists and is writable",
    ),
    # --- physio-train ------------------------------------------------------------------------
    Case(
        "train-malformed-yaml",
        _train("pretrain", config=lambda c: str(_config(c, "data: [\n", "recipe.yaml"))),
        r"recipe\.yaml: line 2, column 1: not valid YAML",
        r"fix the syntax there",
        prog="physio-train",
    ),
    Case(
        "train-unknown-key",
        _train("pretrain", "--set", "optim.lrr=1"),
        r"pretrain_ecg_smoke\.yaml: optim\.lrr: unknown key",
        r"did you mean 'lr'\?",
        prog="physio-train",
    ),
    Case(
        "train-corpus-folder-missing",
        _train(
            "preprocess",
            "--set",
            "data.root={tmp}/no-corpus",
            "--set",
            "data.cache_dir={tmp}/cache",
        ),
        r"data\.root .*no-corpus is not a folder",
        r"point data\.root at the corpus",
        prog="physio-train",
    ),
    Case(
        "train-dreamer-file-missing",
        _train(
            "finetune",
            "--set",
            "data.file={tmp}/DREAMER.mat",
            config=lambda c: "configs/finetune_dreamer.yaml",
        ),
        r"DREAMER\.mat: no such file",
        r"set data\.file to your DREAMER\.mat",
        prog="physio-train",
    ),
]


# ------------------------------------------------------------------------------------------


@pytest.fixture
def ctx(tmp_path, data_dir, monkeypatch):
    """What the builders need; LSL outlets started here are stopped after the test."""
    procs: list[subprocess.Popen] = []

    def outlet(kind: str) -> str:
        name = f"bad-{kind}-{uuid.uuid4().hex[:8]}"
        p = subprocess.Popen(
            [sys.executable, str(TESTS / "bad_input_outlet.py"), kind, name],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        )  # fmt: skip
        procs.append(p)
        assert p.stdout.readline().startswith("READY")
        time.sleep(0.2)
        return name

    monkeypatch.chdir(tmp_path)  # nothing lands in the repository
    yield SimpleNamespace(tmp=tmp_path, data=data_dir, outlet=outlet, marker=tmp_path / "PWNED")
    for p in procs:
        p.terminate()
        p.wait(10)
        p.stdout.close()


_LSL_LOG = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+ \(")  # liblsl's own log lines


@pytest.mark.parametrize("case", CASES, ids=[c.kind for c in CASES])
def test_bad_input_gives_one_line_with_the_fix(case: Case, ctx, capfd):
    argv = case.argv(ctx)
    main = train_main if case.prog == "physio-train" else app_main
    rc = main(argv)
    out, err = capfd.readouterr()
    assert "Traceback" not in out + err
    lines = [ln for ln in err.splitlines() if ln.strip() and not _LSL_LOG.match(ln)]
    # nothing but our own lines (no library chatter such as edflib's printf)
    assert all(ln.startswith(f"{case.prog}: ") for ln in lines), lines
    ours = ("physio-live", "[", "summary")
    assert all(ln.startswith(ours) or _LSL_LOG.match(ln) for ln in out.splitlines() if ln), out
    errors = [ln for ln in lines if ln.startswith(f"{case.prog}: error: ")]
    if case.outcome == "error":
        assert rc == 1, (out, err)
        assert len(errors) == 1, lines
        line = errors[0]
    else:  # replayed up to the damage
        assert rc == 0, err
        assert not errors
        (line,) = [ln for ln in lines if ln.startswith(f"{case.prog}: warning: ")]
        (csv_path,) = ctx.tmp.glob("*.estimates.csv")
        assert len(csv_path.read_text().splitlines()) > 1  # estimates came out
    assert re.search(case.message, line), line
    assert re.search(case.fix, line), line
    assert not ctx.marker.exists(), "a pickle payload was executed"


def test_the_table_covers_at_least_twenty_kinds_and_the_readme_lists_them():
    kinds = {c.kind for c in CASES}
    assert len(kinds) == len(CASES) >= 20
    readme = (TESTS.parent / "README.md").read_text()
    section = readme[readme.index("## Troubleshooting") :]
    for phrase in (
        "not valid YAML", "unknown key", "is longer than the window", "shorter than one 1-s",
        "carries a pickle payload", "corrupt or truncated", "another architecture",
        "carries strings", "irregular rate", "unreadable XDF", "unreadable EDF/BDF",
        "not a valid WFDB header", "the record is truncated", "no EEG or ECG stream",
        "the file is empty", "less than one", "in another order", "channels unnamed",
    ):  # fmt: skip
        assert phrase in section, phrase


# ------------------------------------------------------------------------------------------
# bad data in a running session


def test_nan_inf_and_extreme_bursts_are_flagged_withheld_and_recorded_raw(data_dir, tmp_path):
    """Real EEG/ECG (eegmat) with a NaN burst on 8 of 19 channels, +/-inf on one channel and a
    1e6 uV burst on 8 channels, fed through a real Session with recording on."""
    with pyedflib.EdfReader(str(data_dir / EDF)) as f:
        labels = f.getSignalLabels()
        fs = f.getSampleFrequency(0)
        n = int(24 * fs)
        eeg = np.stack([f.readSignal(labels.index(f"EEG {c}"))[:n] for c in EEGMAT], 1).astype(
            np.float32
        )
        ecg = f.readSignal(labels.index("ECG ECG"))[:n, None].astype(np.float32)
    nan_s, inf_s, big_s = (6.0, 7.0), (11.0, 11.2), (16.0, 17.0)
    sl = lambda a, b: slice(int(a * fs), int(b * fs))  # noqa: E731
    eeg[sl(*nan_s), :8] = np.nan
    eeg[sl(*inf_s), 3] = np.inf
    eeg[sl(*inf_s), 4] = -np.inf
    eeg[sl(*big_s), 10:18] = 1e6
    ecg[sl(*nan_s), 0] = np.nan  # the ECG drops out with the EEG

    import pylsl

    t0 = pylsl.local_clock() - 30.0
    e = StreamInfo("bad-EEG", "EEG", "eeg", EEGMAT, ("uV",) * 19, fs, "bad-eeg")
    c = StreamInfo("bad-ECG", "ECG", "ecg", ("ECG",), ("mV",), fs, "bad-ecg")
    sources = [ArraySource(e, eeg, t0=t0), ArraySource(c, ecg, t0=t0)]
    cfg = config_from_dict(
        {
            "sources": [{"kind": "lsl", "role": "eeg", "name": "unused"}],
            "aligner": {"window": 2.0, "hop": 0.5},
            "model": {"size": "tiny", "device": "cpu"},
            "recording": {"enabled": False},
            "outlet": {"enabled": False},
        }
    )
    from physio_live.app._session import Session

    session = Session(cfg, mode="replay", sources=sources)  # replay mode: no window dropped
    session.open()
    rec_path = session.start_recording(tmp_path / "bad.xdf")
    windows, ests = [], []
    session.pipeline.on_window(windows.append)
    session.on_estimate(ests.append)
    session.start()
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not all(s.exhausted for s in sources):
            time.sleep(0.05)
        expected = int((24.0 - 2.0) / 0.5) - 2
        while time.monotonic() < deadline and len(ests) < expected:
            time.sleep(0.05)
        status = session.status()
    finally:
        session.close()
    assert not status.errors, status.errors  # nothing broke
    assert len(ests) >= expected

    def overlaps(w_end: float, span: tuple[float, float]) -> bool:
        a, b = t0 + span[0], t0 + span[1]
        return w_end - 2.0 < b - 0.02 and w_end > a + 0.02

    by_t = {round(w.t_end, 6): w for w in windows}
    seen = {"nan": 0, "inf": 0, "big": 0}
    for est in ests:
        w = by_t[round(est.t_end, 6)]
        q = w.quality.per_modality["eeg"]
        assert np.isfinite(w.eeg).all()  # the model never sees NaN/inf
        if overlaps(est.t_end, nan_s):
            seen["nan"] += 1
            assert set(range(8)) <= set(q.nan_channels)
            assert est.withheld and "nan" in est.reason and np.isnan(est.probabilities).all()
        elif overlaps(est.t_end, big_s):
            seen["big"] += 1
            assert set(range(10, 18)) <= set(q.saturated_channels)
            assert est.withheld and "saturated" in est.reason
        elif overlaps(est.t_end, inf_s):
            seen["inf"] += 1
            assert {3, 4} <= set(q.nan_channels)
            assert not est.withheld and "eeg 2/19 bad (F4: nan, F7: nan)" in est.reason
            assert np.isfinite(est.probabilities).all()
        elif est.t_end - t0 < nan_s[0]:
            assert not est.withheld, est.reason  # clean real EEG before the faults
    assert seen["nan"] >= 3 and seen["big"] >= 3 and seen["inf"] >= 3

    streams, _ = pyxdf.load_xdf(str(rec_path), dejitter_timestamps=False)
    got = {s["info"]["name"][0]: s for s in streams}
    raw = np.asarray(got["bad-EEG"]["time_series"], np.float32)
    np.testing.assert_array_equal(raw, eeg)  # NaN, inf and 1e6 kept exactly, nothing lost
    np.testing.assert_array_equal(np.asarray(got["bad-ECG"]["time_series"], np.float32), ecg)
    emo = next(s for s in streams if s["info"]["type"][0] == "Emotion")
    withheld = np.isnan(emo["time_series"]).all(axis=1)
    assert withheld.sum() == sum(e.withheld for e in ests) > 0
