"""How the CLI shows the library's results: gate reports, the export result, JSON."""

from __future__ import annotations

import json
from pathlib import Path

from volo_export.cli.console import console, note, result_line, stdout, warning
from volo_export.io import write_json
from volo_export.names import ANY_TARGET
from volo_export.render import rich_table

def show_tables(result) -> None:
    """Every table of a result (`results.Result`)."""
    for data in result.tables():
        stdout.print(rich_table(data))


def print_json(data) -> None:
    stdout.print_json(json.dumps(data))


def show_report(report, report_path: Path | None = None, as_json: bool = False) -> None:
    """A gate Report as a table (or JSON), its fallback steps, what stayed float and its notes;
    written to `report_path` as JSON too when given."""
    if as_json:
        print_json(report.to_dict())
    else:
        show_tables(report)
    if report.kept:
        console.print(f"not lowered ({len(report.kept)}): " + "; ".join(report.kept[:12])
                      + (" ..." if len(report.kept) > 12 else ""), markup=False, highlight=False)
    for line in report.notes:
        note(line)
    if report_path:
        write_json(report_path, report)


def show_onnx_result(result) -> None:
    """Everything `onnx` and `quantize` print after writing: every gate, the file, the TensorRT verdict.
    (Notices about the weights were shown when they became known.)"""
    for earlier in result.reports[:-1]:
        stdout.print(rich_table(earlier.table()))
    if result.report:
        show_report(result.report)
    else:
        warning("--no-validate: the ONNX was NOT compared with eager PyTorch")
    info = result.info
    size_mb = result.output.stat().st_size / 1e6
    what = info.precision + (f", target {info.target}" if info.target != ANY_TARGET else "")
    result_line(f"wrote {result.output} ({size_mb:.1f} MB, {what}, opset {info.opset}, "
                f"{sum(result.op_types.values())} nodes)")
    result_line(f"TensorRT check: {result.trt_check}")
