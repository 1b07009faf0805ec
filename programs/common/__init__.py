"""Pieces the tools share: option parsing, drop reasons, output, the run loop."""
