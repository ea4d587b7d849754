"""An LSL outlet the app must refuse as EEG, run as a separate process by the bad-input tests.

Usage: ``python bad_input_outlet.py KIND NAME`` with KIND ``string`` (a 1-channel string stream of
type EEG at 100 Hz) or ``irregular`` (a 4-channel float stream of type EEG with nominal_srate 0).
Prints ``READY`` once the outlet exists, then pushes a sample every 20 ms until terminated.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

os.environ.setdefault("LSLAPICFG", str(Path(__file__).with_name("lsl_api.cfg")))

import pylsl


def main() -> None:
    kind, name = sys.argv[1], sys.argv[2]
    if kind == "string":
        info = pylsl.StreamInfo(name, "EEG", 1, 100.0, pylsl.cf_string, f"{name}-sid")
    elif kind == "irregular":
        info = pylsl.StreamInfo(
            name, "EEG", 4, pylsl.IRREGULAR_RATE, pylsl.cf_float32, f"{name}-sid"
        )
    else:
        raise SystemExit(f"unknown kind {kind!r}")
    outlet = pylsl.StreamOutlet(info)
    print("READY", flush=True)
    i = 0
    while True:
        outlet.push_sample([str(i)] if kind == "string" else [float(i)] * 4)
        i += 1
        time.sleep(0.02)


if __name__ == "__main__":
    main()
