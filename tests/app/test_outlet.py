"""The LSL outlet of estimates, read by a plain pylsl inlet in another process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
import uuid

import numpy as np

from physio_live.app._outlet import EstimateOutlet, estimate_stream_info
from physio_live.core import Estimate, Quality

READER = textwrap.dedent(
    """
    import json, sys, pylsl
    name, n = sys.argv[1], int(sys.argv[2])
    (info,) = pylsl.resolve_byprop("name", name, 1, 10)
    inlet = pylsl.StreamInlet(info, processing_flags=pylsl.proc_clocksync)
    full = inlet.info(5)
    ch = full.desc().child("channels").child("channel")
    labels = []
    while not ch.empty():
        labels.append(ch.child_value("label"))
        ch = ch.next_sibling()
    print(json.dumps({"model_id": full.desc().child_value("model_id"),
                      "untrained": full.desc().child_value("untrained"),
                      "labels": labels, "srate": full.nominal_srate(),
                      "format": full.channel_format()}), flush=True)
    got = 0
    while got < n:
        sample, ts = inlet.pull_sample(timeout=10)
        if sample is None:
            break
        print(json.dumps({"v": sample, "t": ts}), flush=True)
        got += 1
    """
)


def test_estimates_reach_a_plain_inlet_in_another_process():
    name = f"est-{uuid.uuid4().hex[:8]}"
    targets = ("valence", "arousal", "dominance")
    outlet = EstimateOutlet(estimate_stream_info(name, "Emotion", targets, name), "m-123", True)
    rng = np.random.default_rng()
    n = 10
    proc = subprocess.Popen(
        [sys.executable, "-c", READER, name, str(n)], stdout=subprocess.PIPE, text=True,
        env=dict(os.environ),
    )  # fmt: skip
    header = json.loads(proc.stdout.readline())
    assert header == {"model_id": "m-123", "untrained": "true", "labels": list(targets),
                      "srate": 0.0, "format": 1}  # fmt: skip
    time.sleep(0.5)  # the inlet is connected once it has read the full info
    sent = []
    for i in range(n):
        p = tuple(float(x) for x in rng.uniform(0, 1, 3).astype(np.float32))
        est = Estimate(
            t_end=500.0 + i,
            t_emit=500.2 + i,
            targets=targets,
            probabilities=p,
            quality=Quality(),
            model_id="m-123",
            untrained=True,
            withheld=(i == 3),
        )
        outlet.push(est)
        sent.append(est)
    lines = [json.loads(proc.stdout.readline()) for _ in range(n)]
    proc.wait(10)
    proc.stdout.close()
    outlet.close()
    for est, got in zip(sent, lines, strict=True):
        assert abs(got["t"] - est.t_end) < 1e-3  # stamped with the window end (same machine)
        if est.withheld:
            assert all(np.isnan(got["v"]))
        else:
            np.testing.assert_allclose(got["v"], est.probabilities, rtol=1e-6)
