"""``physio-train``: pretraining of the encoders, fine-tuning and evaluation of the fused model.

``physio-train pretrain --config X [--resume] [--set key=value ...]`` runs (or resumes) a
pretraining; ``physio-train preprocess --config X`` only builds the corpus cache (do this once
before a multi-node run); ``physio-train score --checkpoint ENCODER --set data.root=DIR`` prints
the masked-reconstruction MSE of an encoder (model, zeros, interp per mask kind) as one JSON line;
``physio-train readouts --config X [--export PATH]`` fits and scores the rest-calibrated readout
model on a fine-tuning recipe's windows.
Errors a user can cause print one line ``physio-train: error: ...`` and
exit 1.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="physio-train",
        description="Pretrain (ECG dual masking, EEG masked patches) and fine-tune the encoders.",
    )
    sub = parser.add_subparsers(
        dest="command", metavar="{pretrain,preprocess,finetune,evaluate,readouts,score}"
    )
    for name, text in (
        ("pretrain", "self-supervised pretraining of an encoder (runs under torchrun too)"),
        ("preprocess", "only build the preprocessed corpus cache of a pretraining config"),
        ("finetune", "fine-tune and evaluate the fused model (labelled recordings, DREAMER)"),
        ("evaluate", "score a fused checkpoint on labelled data, no training"),
    ):
        p = sub.add_parser(name, help=text, description=text)
        p.add_argument(
            "--config", required=True, help="YAML recipe, e.g. configs/pretrain_ecg_smoke.yaml"
        )  # (finetune/evaluate: configs/finetune_eegmat.yaml, finetune_dreamer*.yaml)
        _add_common(p, "override a config value, e.g. --set data.root=/data/ptb-xl (repeatable)")
        if name == "pretrain":
            p.add_argument(
                "--resume", action="store_true", help="continue from <out_dir>/checkpoint.pt"
            )
    p = sub.add_parser(
        "readouts",
        help="fit and score a rest-calibrated readout model (band powers + heart rate)",
        description="Fit the readout model (log band powers per EEG channel + heart rate, two "
        "logistic regressions, one calibrated against each person's first seconds of rest) on a "
        "fine-tuning recipe's windows and split; score it on the split and subject-wise CV; "
        "prints one JSON line.",
    )
    p.add_argument("--config", required=True, help="e.g. configs/finetune_eegmat.yaml")
    p.add_argument("--calibrate", type=float, default=60.0, help="resting baseline, s (60)")
    p.add_argument("--export", default=None, help="write the split's model here (.safetensors)")
    _add_common(p, "override a config value, e.g. --set data.root=/data/eegmat (repeatable)")
    p = sub.add_parser(
        "score",
        help="masked-reconstruction MSE of a pretrained encoder on a WFDB/EDF folder (JSON line)",
        description="Score an exported encoder (model vs zeros and interp baselines, per mask "
        "kind) on every record of a folder; prints one JSON line.",
        epilog="keys for --set: data.root=DIR (required); records=['{181..200}'] (names or "
        "globs under data.root); seed=N and repeats=N (mask sets, pooled); "
        "data.n_channels=N and data.channels=[II, V1] (which leads); each_lead=true (every lead "
        "on its own) or each_lead=auto (per record, together or lead by lead, whichever "
        "rebuilds its visible patches better); data.hop_patches=N; data.wfdb_gain=1000 (one "
        "gain for every lead); masking.inter_prob=0 (intra-lead masks only)",
    )
    p.add_argument(
        "--checkpoint", required=True, help="encoder.safetensors or a shipped name (ecg-ludb)"
    )
    _add_common(p, "e.g. --set data.root=../shared/data/wfdb_mitdb_100 --set seed=1 (repeatable)")
    return parser


def _add_common(p: argparse.ArgumentParser, set_help: str) -> None:
    """``--set KEY=VALUE`` (repeatable) and ``--quiet``, shared by every subcommand."""
    p.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE", help=set_help
    )
    p.add_argument("--quiet", action="store_true", help="no progress output")


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    from physio_live.core import PhysioLiveError
    from physio_live.models import CheckpointError

    log = None if args.quiet else _stderr
    if args.command == "score":
        from physio_live.trainer._score import main_score

        code, rc = _guarded(lambda: main_score(args.checkpoint, args.overrides, args.quiet))
        return code or rc

    if args.command == "readouts":
        import json

        from physio_live.trainer import load_finetune_config, run_readouts

        code, res = _guarded(
            lambda: run_readouts(
                load_finetune_config(args.config, args.overrides),
                calibrate_s=args.calibrate,
                export=args.export,
                log=log,
            )
        )
        if not code:
            print(json.dumps(res))
        return code

    if args.command in ("finetune", "evaluate"):
        from physio_live.trainer import load_finetune_config, run_evaluate, run_finetune

        run = run_finetune if args.command == "finetune" else run_evaluate
        code, out = _guarded(
            lambda: run(load_finetune_config(args.config, args.overrides), log=log)
        )
        if not code:
            _stderr(f"{args.command}: results in {out / 'results.md'}")
        return code

    try:
        from physio_live.trainer import build_cache, load_pretrain_config, pretrain

        cfg = load_pretrain_config(args.config, args.overrides)
        if args.command == "preprocess":
            build_cache(cfg.data, progress=not args.quiet, log=_stderr)
            return 0
        result = pretrain(cfg, resume=args.resume, progress=not args.quiet)
    except (PhysioLiveError, CheckpointError) as exc:
        print(f"physio-train: error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 1
    except OSError as exc:  # out_dir / cache_dir not writable, disk full ...
        print(f"physio-train: error: {_os_error(exc)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("physio-train: interrupted (resume with --resume)", file=sys.stderr)
        return 130
    if result.encoder is not None and not args.quiet:
        _stderr(f"pretrain: encoder written to {result.encoder}")
    return _leave_if_distributed(0)


def _leave_if_distributed(code: int) -> int:
    """Under torchrun (``WORLD_SIZE`` > 1), end this worker at once with ``code``, once its
    output is flushed; otherwise return ``code``.

    The run's files are all written and closed by then, and the process group destroyed. What is
    skipped is the interpreter's own shutdown, where PyTorch's gloo backend sometimes aborts
    ("terminate called without an active exception", SIGABRT) after a clean run: 6 of 80
    two-process CPU runs here, all after ``destroy_process_group`` had returned and the atexit
    handlers had run (none of 80 with this early exit). torchrun then reports the whole job as
    failed.
    """
    if int(os.environ.get("WORLD_SIZE", "1") or 1) <= 1:
        return code
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _guarded(fn):
    """``(0, fn())``; a user's error (bad config, data, checkpoint, path) prints one line
    ``physio-train: error: ...`` and gives ``(1, None)``."""
    from physio_live.core import PhysioLiveError
    from physio_live.models import CheckpointError

    try:
        return 0, fn()
    except (PhysioLiveError, CheckpointError) as exc:
        print(f"physio-train: error: {' '.join(str(exc).split())}", file=sys.stderr)
    except OSError as exc:
        print(f"physio-train: error: {_os_error(exc)}", file=sys.stderr)
    return 1, None


def _os_error(exc: OSError) -> str:
    """One line for a file-system error, naming the path and what to do."""
    what = exc.strerror or " ".join(str(exc).split())
    where = f"{exc.filename}: " if exc.filename else ""
    return (
        f"{where}{what}; check the path (data.root, run.out_dir, data.cache_dir) and its "
        "permissions"
    )


def _stderr(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


if __name__ == "__main__":
    raise SystemExit(main())
