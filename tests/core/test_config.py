from __future__ import annotations

import pytest

from physio_live.configs import list_builtin_configs
from physio_live.core import ConfigError, load_config


def _write(tmp_path, text: str):
    p = tmp_path / "lab.yaml"
    p.write_text(text)
    return p


GOOD = """
sources:
  - kind: lsl
    role: eeg
    name: MyEEG
    channels: 32
  - kind: lsl
    role: ecg
    type: ECG
aligner:
  window: 4
  hop: 0.5
"""


def test_builtin_configs_load():
    names = list_builtin_configs()
    assert "demo" in names
    for name in names:
        cfg = load_config(name)
        assert cfg.sources
    cfg = load_config()
    assert cfg.aligner.window_samples == 800 and cfg.aligner.hop_samples == 100


def test_good_file_and_overrides(tmp_path):
    cfg = load_config(_write(tmp_path, GOOD), ["aligner.hop=0.25", "sources.0.timeout=3"])
    assert cfg.sources[0].channels == 32 and cfg.sources[0].timeout == 3.0
    assert cfg.aligner.hop == 0.25
    assert cfg.sources[1].predicate_xpath() == "type='ECG'"


@pytest.mark.parametrize(
    ("text", "overrides", "pattern"),
    [
        (
            GOOD.replace("hop: 0.5", "hopp: 0.5"),
            [],
            r"aligner\.hopp: unknown key; did you mean 'hop'",
        ),
        (
            GOOD.replace("channels: 32", "channels: many"),
            [],
            r"sources\[0\]\.channels: expected an integer, got 'many'",
        ),
        (GOOD.replace("hop: 0.5", "hop: 8"), [], r"aligner\.hop: 8.0 s is longer than the window"),
        (
            GOOD.replace("window: 4", "window: 0.5\n  hop: 0.25").replace("  hop: 0.5\n", ""),
            [],
            r"shorter than one 1-s model patch",
        ),
        (
            GOOD.replace("kind: lsl\n    role: ecg", "kind: lsll\n    role: ecg"),
            [],
            r"sources\[1\]\.kind: 'lsll' is not a source kind",
        ),
        (
            GOOD.replace("role: eeg", "role: eog"),
            [],
            r"sources\[0\]\.role: expected one of 'eeg', 'ecg'",
        ),
        (
            GOOD.replace("    name: MyEEG\n", ""),
            [],
            r"sources\[0\]: an lsl source needs at least one of name",
        ),
        (
            GOOD + "  eeg: {bandpass: [0.3, 120]}\n",
            [],
            r"aligner\.eeg\.bandpass: high edge 120.0 Hz must be below",
        ),
        ("sources: [\n  - kind: lsl", [], r"not valid YAML"),
        ("- just\n- a list\n", [], r"must hold a mapping"),
        (GOOD, ["aligner.rate=fast"], r"aligner\.rate: expected a number, got 'fast'"),
        (GOOD, ["aligner.hop"], r"must look like key\.sub=value"),
    ],
)
def test_bad_configs_give_one_clear_line(tmp_path, text, overrides, pattern):
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError, match=pattern) as info:
        load_config(path, overrides)
    msg = str(info.value)
    assert "\n" not in msg
    assert "lab.yaml" in msg or "command line" in msg


def test_missing_file_names_the_fix(tmp_path):
    with pytest.raises(ConfigError, match=r"config file not found.*built-in configs: .*demo"):
        load_config(tmp_path / "nope.yaml")
