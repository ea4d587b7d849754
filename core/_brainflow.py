"""BrainFlow board source: any ``BoardIds`` board, the synthetic board by default.

Rows are cut into streams by role (EEG, ECG ...) with BrainFlow's channel-role getters, or by the
rows the config names (the synthetic board reports the same rows for EEG and ECG, so a demo names
them). BrainFlow's Unix timestamps are mapped onto the LSL clock and dejittered (see ``_clock``).
A board that does not start fails at once, or with ``on_missing: wait`` is tried again every
``retry`` seconds (one line each) until it starts, ``wait_max`` passes or the stop event is set.
"""

from __future__ import annotations

import logging
import threading
import time
import warnings
from collections.abc import Callable

import numpy as np

from ._clock import Dejitter, unix_to_lsl_offset
from ._config import BrainFlowSourceConfig
from ._errors import ConfigError, SourceError, StoppedWaitingError
from ._source import Source
from ._types import Chunk, StreamInfo

__all__ = ["BrainFlowSource", "resolve_board_id"]

_ROLE_GETTERS = {"eeg": "get_eeg_channels", "ecg": "get_ecg_channels"}
log = logging.getLogger("physio_live")


def _bf():
    with warnings.catch_warnings():  # brainflow imports the deprecated pkg_resources
        warnings.simplefilter("ignore", UserWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        from brainflow.board_shim import BoardIds, BoardShim, BrainFlowInputParams

    return BoardIds, BoardShim, BrainFlowInputParams


def resolve_board_id(board: str | int) -> int:
    """A ``BoardIds`` member name (``SYNTHETIC_BOARD``) or number, as BrainFlow's integer id."""
    BoardIds, _, _ = _bf()
    if isinstance(board, int):
        valid = {b.value for b in BoardIds}
        if board not in valid:
            raise ConfigError(f"board: {board} is not a BrainFlow board id; see brainflow BoardIds")
        return board
    name = str(board).strip().upper()
    if name.lstrip("-").isdigit():
        return resolve_board_id(int(name))
    try:
        return BoardIds[name].value
    except KeyError:
        raise ConfigError(
            f"board: {board!r} is not a BrainFlow board name; use a BoardIds name such as "
            "SYNTHETIC_BOARD or CYTON_BOARD, or its number"
        ) from None


class BrainFlowSource(Source):
    """A BrainFlow board yielding one stream per configured role."""

    def __init__(self, cfg: BrainFlowSourceConfig):
        self.cfg = cfg
        self.board_id = resolve_board_id(cfg.board)
        self._board = None
        self._streams: tuple[StreamInfo, ...] = ()
        self._rows: list[np.ndarray] = []
        self._offset = 0.0
        self._dejitter: Dejitter | None = None
        self._ts_row = 0
        self._lock = threading.Lock()

    @property
    def streams(self) -> tuple[StreamInfo, ...]:
        if not self._streams:
            raise SourceError(f"{self.describe()} is not open; call open() first")
        return self._streams

    def describe(self) -> str:
        return f"BrainFlow board {self.cfg.board}"

    def _params(self):
        _, _, BrainFlowInputParams = _bf()
        params = BrainFlowInputParams()
        for key, value in self.cfg.params.items():
            if not hasattr(params, key):
                allowed = ", ".join(k for k in vars(params) if not k.startswith("_"))
                raise ConfigError(
                    f"brainflow params.{key}: unknown BrainFlowInputParams field; "
                    f"allowed: {allowed}"
                )
            setattr(params, key, value)
        return params

    def _start(
        self,
        board_name: str,
        stop: threading.Event | None,
        on_wait: Callable[[str], None] | None,
    ):
        """A prepared, streaming BoardShim; retried while ``on_missing: wait`` allows."""
        _, BoardShim, _ = _bf()
        cfg, t0 = self.cfg, time.monotonic()
        while True:
            if stop is not None and stop.is_set():
                raise StoppedWaitingError(
                    f"stopped while waiting for BrainFlow board {board_name} "
                    f"({time.monotonic() - t0:.0f} s)"
                )
            board = BoardShim(self.board_id, self._params())  # ConfigError: not worth a retry
            try:
                board.prepare_session()
                board.start_stream(cfg.ring_size)
                return board
            except Exception as exc:  # BrainFlowError and friends
                reason = str(exc)
                try:
                    if board.is_prepared():
                        board.release_session()
                except Exception:
                    pass
            waited = time.monotonic() - t0
            if cfg.on_missing == "fail":
                raise SourceError(
                    f"BrainFlow board {board_name} could not start ({reason}); check the device "
                    "is on and the params (serial_port, ip_address ...) in the config (or set "
                    "on_missing: wait)"
                )
            if cfg.wait_max is not None and waited >= cfg.wait_max:
                raise SourceError(
                    f"BrainFlow board {board_name} did not start after waiting "
                    f"{cfg.wait_max:g} s ({reason}); check the device is on and the params "
                    "(serial_port, ip_address ...) in the config, or raise wait_max"
                )
            (on_wait or log.warning)(
                f"waiting for BrainFlow board {board_name} ({waited:.0f} s so far; {reason}); "
                "switch it on and check its params (serial_port, ip_address ...)"
            )
            pause = cfg.retry
            if cfg.wait_max is not None:
                pause = max(0.0, min(pause, cfg.wait_max - waited))
            if stop is not None:
                stop.wait(pause)
            else:
                time.sleep(pause)

    def open(self) -> None:
        self.open_waiting()

    def open_waiting(
        self,
        stop: threading.Event | None = None,
        on_wait: Callable[[str], None] | None = None,
    ) -> None:
        _, BoardShim, _ = _bf()
        BoardShim.disable_board_logger()
        bid = self.board_id
        descr = BoardShim.get_board_descr(bid)
        srate = float(BoardShim.get_sampling_rate(bid))
        n_rows = BoardShim.get_num_rows(bid)
        board_name = str(descr.get("name", self.cfg.board))
        default_names = str(descr.get("eeg_names", "")).split(",") if descr.get("eeg_names") else []
        streams, rows = [], []
        for i, scfg in enumerate(self.cfg.streams):
            where = f"brainflow streams[{i}]"
            if scfg.rows is not None:
                sel = list(scfg.rows)
            elif scfg.role in _ROLE_GETTERS:
                try:
                    sel = list(getattr(BoardShim, _ROLE_GETTERS[scfg.role])(bid))
                except Exception:
                    sel = []
                if not sel:
                    raise ConfigError(
                        f"{where}: board {board_name} has no {scfg.role} rows; name them with rows:"
                    )
            else:
                raise ConfigError(f"{where}: role {scfg.role!r} needs explicit rows:")
            bad = [r for r in sel if not 0 <= r < n_rows]
            if bad:
                raise ConfigError(
                    f"{where}.rows: {bad} outside the board's {n_rows} rows (0..{n_rows - 1})"
                )
            if scfg.labels is not None:
                if len(scfg.labels) != len(sel):
                    raise ConfigError(
                        f"{where}.labels: {len(scfg.labels)} labels for {len(sel)} rows; give one "
                        "label per row"
                    )
                labels = list(scfg.labels)
            elif scfg.role == "eeg" and scfg.rows is None and len(default_names) == len(sel):
                labels = default_names
            else:
                labels = [f"{scfg.role.upper()}{j + 1}" for j in range(len(sel))]
            streams.append(
                StreamInfo(
                    name=scfg.name or f"{board_name}-{scfg.role}",
                    type=scfg.role.upper(),
                    role=scfg.role,
                    channel_labels=tuple(labels),
                    channel_units=(scfg.unit,) * len(sel),
                    nominal_srate=srate,
                    source_id=f"brainflow-{bid}-{scfg.role}-{i}",
                    channel_types=(scfg.role.upper(),) * len(sel),
                )
            )
            rows.append(np.asarray(sel, dtype=np.intp))
        board = self._start(board_name, stop, on_wait)
        self._board = board
        self._streams = tuple(streams)
        self._rows = rows
        self._ts_row = BoardShim.get_timestamp_channel(bid)
        self._offset = unix_to_lsl_offset()
        self._dejitter = Dejitter(srate)

    def read(self, timeout: float = 0.1) -> list[Chunk]:
        board = self._board
        if board is None:
            raise SourceError(f"{self.describe()} is not open; call open() first")
        deadline = time.monotonic() + timeout
        with self._lock:
            while board.get_board_data_count() == 0 and time.monotonic() < deadline:
                time.sleep(0.005)
            data = board.get_board_data()
        n = data.shape[1]
        if n == 0:
            return []
        assert self._dejitter is not None
        ts = self._dejitter(data[self._ts_row] - self._offset)
        return [
            Chunk(info, np.ascontiguousarray(data[rows].T, dtype=np.float32), ts)
            for info, rows in zip(self._streams, self._rows, strict=True)
        ]

    def close(self) -> None:
        board, self._board = self._board, None
        if board is None:
            return
        with self._lock:
            try:
                board.stop_stream()
            finally:
                board.release_session()
