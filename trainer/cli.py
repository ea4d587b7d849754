"""``physio-train``: pretraining and fine-tuning entry point."""

from __future__ import annotations

import argparse
import sys

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="physio-train",
        description="Pretrain (ECG dual masking, EEG masked patches) and fine-tune the encoders.",
    )
    parser.add_argument("command", nargs="?", choices=["pretrain", "finetune", "evaluate"])
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    print(f"physio-train {args.command}: not yet implemented", file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
