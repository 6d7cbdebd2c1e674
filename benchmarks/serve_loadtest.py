"""Reproduce the README's serving numbers: `volo-export serve` variants under `volo-export loadtest`,
interleaved.

    $VOLO_EXPORT_SERVE_PYTHON benchmarks/serve_loadtest.py --model volo_tiny_digits
    $VOLO_EXPORT_SERVE_PYTHON benchmarks/serve_loadtest.py --model volo_d1_224 --duration 15 --repeats 2

Runs in a serving environment (volo-export[serve], numpy<2: the servers are started in-process with
`serve.server.start_server`). Exports the model (bundled weights for volo_tiny_digits, random weights
otherwise; timing does not depend on them), starts one server per variant (default: dynamic batching on
and off) on loopback, then `repeats` times, per concurrency, runs the load test against each variant in
turn (the order rotating), each followed by the same ONNX in-process at batch = concurrency. Writes
benchmarks/results/serve_<model>.{md,json}: per variant and concurrency the median served img/s,
p50/p90/p99 over all requests, the median in-process img/s and served/in-process ratio, and where the CPU
goes: the server's (tritonserver and its Python-backend stubs) and the load generator's CPU time per
request, against the in-process CPU time per image.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import socket
import statistics
import tempfile
from pathlib import Path
from typing import Annotated, Optional

import typer

RESULTS = Path(__file__).resolve().parent / "results"
DEFAULT_VARIANTS = ("dynamic batching=", "no dynamic batching=dynamic_batching=false")


def free_ports(n: int) -> list[int]:
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def server_cpu_s(pgid: int) -> float:
    """CPU seconds used so far by the live processes of a server's group (tritonserver and its stubs)."""
    from volo_export.serve.tritonserver import group_members

    total = 0
    for pid in group_members(pgid):
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / os.sysconf("SC_CLK_TCK")


def variant_settings(spec: str, base):
    """"label=key=value,key=value" -> (label, RepoSettings with those fields changed)."""
    label, _, changes = spec.partition("=")
    fields = {f.name: f for f in dataclasses.fields(base)}
    values = {}
    for item in filter(None, changes.split(",")):
        key, _, value = item.partition("=")
        assert key in fields, f"unknown RepoSettings field {key}"
        kind = str(fields[key].type)
        values[key] = (value.lower() in ("1", "true", "yes") if kind == "bool" else
                       int(value) if kind.startswith("int") else value)
    return label, dataclasses.replace(base, **values)


def main(
    model: Annotated[str, typer.Option(help="Registered variant to export and serve.")] = "volo_tiny_digits",
    onnx: Annotated[Optional[Path], typer.Option(help="Serve this ONNX instead of exporting one.")] = None,
    variant: Annotated[Optional[list[str]], typer.Option(
        help="'label=field=value,...' (RepoSettings fields); repeat. Default: dynamic batching on and off.")] = None,
    concurrency: Annotated[str, typer.Option(help="Comma-separated concurrencies.")] = "1,4,16",
    duration: Annotated[float, typer.Option(help="Seconds of served load per concurrency per run.")] = 4.0,
    repeats: Annotated[int, typer.Option(help="Load tests per variant (interleaved).")] = 3,
    protocol: Annotated[str, typer.Option(help="grpc or http.")] = "grpc",
    output: Annotated[Path, typer.Option(help="Folder for the .md/.json results.")] = RESULTS,
) -> None:
    from rich.console import Console

    from volo_export.io import write_json
    from volo_export.timing import summarize
    from volo_export.progress import StageLog
    from volo_export.serve.loadtest import LoadSettings, run_loadtest
    from volo_export.serve.repository import RepoSettings
    from volo_export.serve.server import ServeRequest, start_server
    from volo_export.serve.tritonserver import Endpoints

    console = Console(stderr=True)
    log = StageLog(console.log)
    work = Path(tempfile.mkdtemp(prefix="serve-loadtest-"))
    if onnx is None:
        from volo_export.pipeline import OnnxRequest, export_onnx

        onnx = work / f"{model}.onnx"
        log.stage(f"exporting {model}")
        export_onnx(OnnxRequest(model=model, output=onnx, validate=False))
    variants = [variant_settings(v, RepoSettings(image_model=False)) for v in (variant or DEFAULT_VARIANTS)]
    levels = tuple(int(c) for c in concurrency.split(","))
    runs: dict[str, dict] = {label: {} for label, _ in variants}
    with contextlib.ExitStack() as stack:
        stack.callback(shutil.rmtree, work, True)
        urls, servers = {}, {}
        for label, settings in variants:
            http, grpc, metrics = free_ports(3)
            running = stack.enter_context(start_server(ServeRequest(onnx, Endpoints("127.0.0.1", http, grpc, metrics),
                                                                    settings), log))
            urls[label] = running.endpoints.urls()["gRPC" if protocol == "grpc" else "HTTP"]
            servers[label] = running.process.proc.pid
            log.stage(f"{label}: {urls[label]} ready in {running.startup_s:.1f} s")
        for r in range(repeats):
            for c in levels:
                order = variants[r % len(variants):] + variants[:r % len(variants)]
                for label, _ in order:
                    log.stage(f"run {r + 1}/{repeats}, concurrency {c}: {label}")
                    cpu = server_cpu_s(servers[label])
                    report = run_loadtest(urls[label], onnx, None,
                                          LoadSettings(concurrency=(c,), duration_s=duration, rounds=1))
                    assert report.passed, report.failures
                    result = report.results[0]
                    served = result.requests + 2 * c  # with the warm-up
                    runs[label].setdefault(c, []).append((result, (server_cpu_s(servers[label]) - cpu) / served))
    rows, data = [], {"model": model, "onnx": onnx.name, "duration_s": duration, "repeats": repeats,
                      "protocol": protocol, "variants": {}}
    for label, settings in variants:
        data["variants"][label] = {"settings": dataclasses.asdict(settings), "levels": []}
        for c in levels:
            results = [res for res, _ in runs[label][c]]
            server_cpu = statistics.median(cpu for _, cpu in runs[label][c]) * 1e3
            latencies = [ms / 1e3 for res in results for ms in res.served.latencies_ms]
            pooled = summarize(label, 1, latencies)
            served = statistics.median(res.throughput for res in results)
            in_process = statistics.median(res.in_process.throughput for res in results)
            in_process_cpu = statistics.median(res.in_process.cpu_p50_ms for res in results) / c
            ratio = statistics.median(res.ratio for res in results)
            client_cpu = statistics.median(res.client_cpu_ms for res in results)
            requests = sum(res.requests for res in results)
            rows.append([label, str(c), str(requests), f"{served:.1f}", f"{pooled.p50_ms:.1f}", f"{pooled.p90_ms:.1f}",
                         f"{pooled.p99_ms:.1f}", f"{in_process:.1f}", f"{ratio:.2f}", f"{server_cpu:.2f}",
                         f"{client_cpu:.2f}", f"{in_process_cpu:.2f}"])
            data["variants"][label]["levels"].append({
                "concurrency": c, "requests": requests, "served_img_s_runs": [res.throughput for res in results],
                "in_process_img_s_runs": [res.in_process.throughput for res in results],
                "ratio_runs": [res.ratio for res in results], "p50_ms": pooled.p50_ms, "p90_ms": pooled.p90_ms,
                "p99_ms": pooled.p99_ms, "wrong": sum(res.wrong for res in results),
                "errors": sum(res.errors for res in results),
                "max_rel_error": max(res.max_rel_error for res in results),
                "server_cpu_ms_per_request_runs": [cpu * 1e3 for _, cpu in runs[label][c]],
                "client_cpu_ms_per_request_runs": [res.client_cpu_ms for res in results],
                "in_process_cpu_ms_per_image_runs": [res.in_process.cpu_p50_ms / c for res in results]})
    environment = report.environment_lines()[2:]  # CPU and versions, from the last load test
    data["environment"] = environment
    header = ["server", "concurrency", "requests", "img/s", "p50 ms", "p90 ms", "p99 ms",
              "in-process img/s (batch C)", "served / in-process", "server CPU ms/request", "client CPU ms/request",
              "in-process CPU ms/image"]
    lines = [f"**{model} on `volo-export serve` ({protocol}, one image per request, every answer checked; medians "
             f"of {repeats} interleaved runs of {duration:g} s per concurrency)**", "",
             "| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    lines += [""] + [f"- {line}" for line in environment]
    output.mkdir(parents=True, exist_ok=True)
    (output / f"serve_{model}.md").write_text("\n".join(lines) + "\n")
    write_json(output / f"serve_{model}.json", data)
    print("\n".join(lines))


if __name__ == "__main__":
    typer.run(main)
