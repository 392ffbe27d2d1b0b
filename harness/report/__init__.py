"""HTML reports rendered from recorded results only: one self-contained page per run (header,
gate rules, paired metric comparison with a forest plot, slice heat map, latency and tokens,
training curves, data checks, flipped examples side by side) and a history page per channel."""

from harness.report.render import write_channel_report, write_run_report

__all__ = ["write_channel_report", "write_run_report"]
