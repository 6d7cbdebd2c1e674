"""`volo-export bench` on the tiny model: backends built and timed, unavailable ones reported with a
reason, GFLOP/s and memory filled in, JSON/markdown/plot outputs. Very few iterations, no timed assertions."""

from __future__ import annotations

import json
from collections import Counter

import onnx
import pytest
from typer.testing import CliRunner

from volo_export.bench import render
from volo_export.bench.backends import BACKENDS, Backend, backends_named
from volo_export.io import write_json
from volo_export.names import Runtime
from volo_export.render import rich_table
from volo_export.bench.run import BenchRequest, run_benchmark
from volo_export.cli import app
from volo_export.timing import BenchSettings
from helpers import RecordingProgress
from volo_export.errors import ExportError, UsageError
from volo_export.models.variants import get_config
from volo_export.models.volo import count_macs

BACKENDS_UNDER_TEST = ("eager", "onnx-naive", "onnx-fp32", "onnx-fp16", "onnx-absent")
# A backend whose runtime is not installed, as an optional runtime would be on a machine without it.
ABSENT = Backend("onnx-absent", "a runtime this machine lacks", Runtime.ONNXRUNTIME, produce=None,
                 why_unavailable=lambda: "fakeruntime not installed")


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    artifacts = tmp_path_factory.mktemp("artifacts")
    request = BenchRequest(model="volo_tiny_digits", backends=BACKENDS_UNDER_TEST, artifacts=artifacts,
                           settings=BenchSettings(batch_sizes=(1, 3), warmup=1, iterations=2), gemm_size=128)
    progress = RecordingProgress()
    return run_benchmark(request, progress, {**BACKENDS, ABSENT.name: ABSENT}), artifacts, progress.stages


@pytest.mark.slow  # the five-backend run (28 s); the fast lane runs bench end to end through the CLI below
def test_rows_cover_every_backend_and_batch_in_order(tiny_run):
    report, _, _ = tiny_run
    assert [(r.backend, r.batch_size) for r in report.results] == [
        (b, n) for n in (1, 3) for b in BACKENDS_UNDER_TEST]


@pytest.mark.slow  # the five-backend run (28 s); the fast lane runs bench end to end through the CLI below
def test_runnable_backends_have_sane_numbers(tiny_run):
    report, _, _ = tiny_run
    flops = 2 * count_macs(get_config("volo_tiny_digits"))
    for r in report.results:
        if r.backend in ("eager", "onnx-naive", "onnx-fp32", "onnx-fp16"):
            assert r.status == "ok", r.reason
            assert r.iterations == 2 and 0 < r.p50_ms <= r.p90_ms <= r.p99_ms
            assert r.gflops == pytest.approx(flops * r.batch_size / (r.p50_ms / 1e3) / 1e9)
            peak = report.gemm["interleaved_gflops_by_batch"][r.batch_size]
            assert peak > 0 and r.peak_fraction == pytest.approx(r.gflops / peak)
            assert r.cpu_p50_ms > 0 and r.cpu_peak_fraction > 0
            assert r.peak_rss_mb > 30 and 0 < r.rss_delta_mb < r.peak_rss_mb


@pytest.mark.slow  # the five-backend run (28 s); the fast lane runs bench end to end through the CLI below
def test_unavailable_backends_carry_their_reason(tiny_run):
    report, _, _ = tiny_run
    by = {(r.backend, r.batch_size): r for r in report.results}
    for n in (1, 3):
        assert by["onnx-absent", n].status == "unavailable"
        assert by["onnx-absent", n].reason == "fakeruntime not installed" and by["onnx-absent", n].p50_ms is None
    assert any(line.startswith("onnx-absent: unavailable: fakeruntime not installed") for line in report.footnotes())


@pytest.mark.slow  # the five-backend run (28 s); the fast lane runs bench end to end through the CLI below
def test_fp16_backend_is_the_gated_precision_artifact(tiny_run):
    from volo_export.export.metadata import read_info

    _, artifacts, _ = tiny_run
    info = read_info(artifacts / "volo_tiny_digits.onnx-fp16.onnx")
    assert info.precision == "fp16" and "LayerNormalization" in info.extra["kept_float32"]


@pytest.mark.slow  # the five-backend run (28 s); the fast lane runs bench end to end through the CLI below
def test_naive_backend_is_the_col2im_export_and_ours_is_not(tiny_run):
    _, artifacts, _ = tiny_run
    ops = {name: Counter(n.op_type for n in onnx.load(artifacts / f"volo_tiny_digits.{name}.onnx").graph.node)
           for name in ("onnx-naive", "onnx-fp32")}
    assert ops["onnx-naive"]["Col2Im"] == get_config("volo_tiny_digits").layers[0]
    assert ops["onnx-fp32"]["Col2Im"] == 0


@pytest.mark.slow  # the five-backend run (28 s); the fast lane runs bench end to end through the CLI below
def test_json_schema(tiny_run, tmp_path):
    report, _, _ = tiny_run
    write_json(tmp_path / "r.json", report.to_dict(with_samples=True))
    d = json.loads((tmp_path / "r.json").read_text())
    assert {"model", "gmacs_per_image", "threads", "settings", "environment", "gemm", "backends", "results",
            "memory_method"} <= d.keys()
    assert d["gmacs_per_image"] == pytest.approx(count_macs(get_config("volo_tiny_digits")) / 1e9)
    assert {"cpu", "usable_cpus", "threads", "versions"} <= d["environment"].keys()
    assert d["environment"]["versions"]["onnxruntime"]
    assert d["gemm"]["standalone"]["onnxruntime_gflops"] > 0 and d["gemm"]["peak_gflops"] > 0
    row = d["results"][0]
    assert {"backend", "batch_size", "status", "reason", "p50_ms", "p90_ms", "p99_ms", "throughput", "gflops",
            "peak_fraction", "peak_rss_mb", "latencies_ms"} <= row.keys()
    assert len(row["latencies_ms"]) == 2
    built = {b["name"]: b for b in d["backends"]}
    assert built["onnx-fp32"]["status"] == "ok" and built["onnx-fp32"]["build_s"] > 0


@pytest.mark.slow  # the five-backend run (28 s); the fast lane runs bench end to end through the CLI below
def test_markdown_and_table_render(tiny_run):
    report, _, _ = tiny_run
    md = render.markdown(report)
    assert md.count("| onnx-fp32 |") == 2 and md.count("| onnx-absent | all | unavailable |") == 1
    assert "x eager" in md and "x naive" in md and report.memory_method in md
    from rich.console import Console

    console = Console(width=200, record=True)
    console.print(rich_table(report.tables()[0]))
    assert "onnx-naive" in console.export_text()


@pytest.mark.slow  # the five-backend run (28 s); the fast lane runs bench end to end through the CLI below
def test_plot_writes_png(tiny_run, tmp_path):
    pytest.importorskip("matplotlib")
    report, _, _ = tiny_run
    render.plot(report, tmp_path / "p.png")
    assert (tmp_path / "p.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plot_without_matplotlib_is_a_usage_error(monkeypatch):
    monkeypatch.setitem(__import__("sys").modules, "matplotlib", None)
    with pytest.raises(UsageError, match="matplotlib"):
        render.require_matplotlib()


def test_a_backend_that_fails_to_build_is_reported():
    def broken(ctx, output):
        raise ExportError("exporter exploded")

    registry = {**BACKENDS, "onnx-broken": Backend("onnx-broken", "test", Runtime.ONNXRUNTIME, broken)}
    report = run_benchmark(BenchRequest(model="volo_tiny_digits", backends=("onnx-broken", "eager"), memory=False,
                                        settings=BenchSettings(batch_sizes=(1,), warmup=0, iterations=1),
                                        gemm_size=64, limits=False), registry=registry)
    by = {r.backend: r for r in report.results}
    assert by["onnx-broken"].status == "failed" and by["onnx-broken"].reason == "ExportError: exporter exploded"
    assert by["eager"].status == "ok" and by["eager"].peak_rss_mb is None


def test_unknown_and_duplicate_backends_are_refused():
    with pytest.raises(UsageError, match="onnx-fp32"):
        backends_named(["onnx-fp64"])
    with pytest.raises(UsageError, match="twice"):
        backends_named(["eager", "eager"])


def test_cli_bench_json_report_and_bad_backend(tmp_path):
    runner = CliRunner()
    out = runner.invoke(app, ["bench", "--model", "volo_tiny_digits", "--backends", "eager", "--batch", "2",
                              "--iterations", "1", "--warmup", "0", "--gemm-size", "64", "--no-memory", "--json",
                              "--report", str(tmp_path / "r.json")])
    assert out.exit_code == 0, out.output
    printed = json.loads(out.stdout)
    assert [(r["backend"], r["status"]) for r in printed["results"]] == [("eager", "ok")]
    assert json.loads((tmp_path / "r.json").read_text())["results"][0]["latencies_ms"]
    bad = runner.invoke(app, ["bench", "--model", "volo_tiny_digits", "--backends", "eager,onnx-fp64"])
    assert bad.exit_code == 2 and "unknown backend(s) onnx-fp64" in bad.output
    bad = runner.invoke(app, ["bench", "--model", "volo_tiny_digits", "--batch", "1,x"])
    assert bad.exit_code == 2 and "--batch takes comma-separated integers" in bad.output


@pytest.mark.slow  # the five-backend run (28 s); the fast lane runs bench end to end through the CLI below
def test_profile_sums_kernel_time_by_op(tiny_run):
    from volo_export.bench.profile import profile_onnx

    _, artifacts, _ = tiny_run
    rows = profile_onnx(artifacts / "volo_tiny_digits.onnx-fp32.onnx", batch_size=2, threads=1, runs=2)
    ops = {r.op_type: r for r in rows}
    assert "MatMul" in ops and "Col2Im" not in ops
    assert sum(r.share for r in rows) == pytest.approx(1.0)
    assert [r.ms_per_run for r in rows] == sorted((r.ms_per_run for r in rows), reverse=True)
    assert ops["MatMul"].gflops > 0 and ops["MatMul"].nodes > 0
