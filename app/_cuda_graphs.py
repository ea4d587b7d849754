"""The fused model's forward pass as captured CUDA graphs (the worker's GPU fast path).

A 12-layer CBraMod forward is a few hundred small kernels; at the batch sizes of a live session
the GPU waits on the CPU that launches them (batch 1 takes ~28 ms on an H200 launched one by one,
the same as batch 256). A captured graph launches them all at once. One graph per input shape,
with the batch rounded up to a power of two (the padding rows are computed and discarded: every
window's output depends on its own row only), so a worker with ``max_batch`` 16 holds at most 5
graphs per shape. All graphs share one memory pool; they run one at a time, on the worker thread.

Used only for batches in which every window has both modalities (or the model has one
modality): windows with a missing modality take the model's eager path, which fills in the
learned "missing" embedding. A model's measured ECG and EEG features (``config.ecg_features``,
e.g. the heart rate from the R-peak detector; ``config.eeg_features``, band powers: CPU
computations) are measured before the replay and copied into the graph as more inputs.
Probabilities equal the eager path's at the padded batch size (the same kernels); against the
unpadded eager batch they differ in the last bits only.
"""

from __future__ import annotations

import torch
from torch import Tensor

from physio_live.models import FusedEmotionModel, ecg_feature_values, eeg_feature_values

__all__ = ["CudaGraphForward"]

_Key = tuple[int, tuple[int, ...] | None, tuple[int, ...] | None]
_Ins = tuple[Tensor | None, Tensor | None, Tensor | None, Tensor | None]


class CudaGraphForward:
    """``fwd(eeg, ecg)`` -> float32 probabilities [B, targets] on the device, by graph replay."""

    def __init__(self, model: FusedEmotionModel, *, bf16: bool = False, warmup: int = 3) -> None:
        self.model = model
        self.bf16 = bf16
        self.warmup = warmup
        self._graphs: dict[_Key, tuple[_Ins, Tensor, object]] = {}
        self._ecg_features = tuple(model.config.ecg_features)
        self._eeg_features = tuple(model.config.eeg_features)
        self._pool: object = None

    @staticmethod
    def bucket(batch: int) -> int:
        """The captured batch size a batch of ``batch`` windows runs at (next power of two)."""
        return 1 << max(0, batch - 1).bit_length()

    @property
    def captured(self) -> list[_Key]:
        """(padded batch, EEG shape, ECG shape) of the graphs held."""
        return list(self._graphs)

    def __call__(self, eeg: Tensor | None, ecg: Tensor | None) -> Tensor:
        ref = eeg if eeg is not None else ecg
        if ref is None:
            raise ValueError("CudaGraphForward needs EEG or ECG")
        b = ref.shape[0]
        key: _Key = (
            self.bucket(b),
            None if eeg is None else tuple(eeg.shape[1:]),
            None if ecg is None else tuple(ecg.shape[1:]),
        )
        entry = self._graphs.get(key)
        if entry is None:
            entry = self._graphs[key] = self._capture(key, ref)
        ins, out, graph = entry
        ecg_extra = eeg_extra = None  # measured eagerly, then fed to the graph
        if ecg is not None and self._ecg_features:
            ecg_extra = ecg_feature_values(ecg, self._ecg_features)
        if eeg is not None and self._eeg_features:
            eeg_extra = eeg_feature_values(eeg, self._eeg_features)
        for static, x in zip(ins, (eeg, ecg, ecg_extra, eeg_extra), strict=True):
            if static is not None and x is not None:
                static[:b].copy_(x)
        with torch.cuda.device(ref.device):
            graph.replay()  # type: ignore[attr-defined]
        return out[:b]

    def _capture(self, key: _Key, ref: Tensor) -> tuple[_Ins, Tensor, object]:
        padded, eeg_shape, ecg_shape = key
        dev = ref.device
        ecg_extra_shape = None
        if ecg_shape is not None and self._ecg_features:
            ecg_extra_shape = (len(self._ecg_features),)
        eeg_extra_shape = None
        if eeg_shape is not None and self._eeg_features:
            eeg_extra_shape = (int(self.model.eeg_feature_center.numel()),)
        eeg_in, ecg_in, ecg_extra_in, eeg_extra_in = (
            None if s is None else torch.zeros((padded, *s), device=dev, dtype=ref.dtype)
            for s in (eeg_shape, ecg_shape, ecg_extra_shape, eeg_extra_shape)
        )

        def forward() -> Tensor:
            # as inference_context, but autocast's cache of cast weights off: a graph must not
            # hold casts made outside its capture (PyTorch's rule for autocast under graphs)
            amp = torch.autocast(dev.type, torch.bfloat16, enabled=self.bf16, cache_enabled=False)
            with torch.inference_mode(), amp:
                logits = self.model(eeg_in, ecg_in, ecg_extra=ecg_extra_in, eeg_extra=eeg_extra_in)
                return torch.sigmoid(logits.float())

        # warm-up on a side stream (cuBLAS workspaces, lazy inits), then capture; all of it on
        # the model's device (cuda:N need not be the current one)
        with torch.cuda.device(dev):
            side = torch.cuda.Stream(dev)
            side.wait_stream(torch.cuda.current_stream(dev))
            with torch.cuda.stream(side):
                for _ in range(self.warmup):
                    forward()
            torch.cuda.current_stream(dev).wait_stream(side)
            if self._pool is None:
                self._pool = torch.cuda.graph_pool_handle()
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph, pool=self._pool):
                out = forward()
        return (eeg_in, ecg_in, ecg_extra_in, eeg_extra_in), out, graph
