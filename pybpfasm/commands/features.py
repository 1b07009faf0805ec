"""``pybpfasm features``: what the running kernel supports, like ``bpftool feature probe``."""

from __future__ import annotations

import argparse
import json
import sys

from .. import features


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--no-helpers", action="store_true",
                        help="skip the helpers-per-program-type probes")


def run(args: argparse.Namespace) -> int:
    result = features.report(with_helpers=not args.no_helpers)
    if args.json:
        json.dump(result, sys.stdout, indent=2)
        print()
        return 0
    for section, answers in result.items():
        print(f"{section.replace('_', ' ')}:")
        if section == "helpers":
            for prog_type, names in answers.items():
                print(f"  {prog_type} ({len(names)}): {' '.join(names) or '-'}")
            continue
        width = max(map(len, answers), default=0)
        for name, ok in answers.items():
            print(f"  {name:<{width}}  {'yes' if ok else 'no'}")
    return 0
