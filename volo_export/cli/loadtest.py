"""`volo-export loadtest`: throughput and tail latency of a running Triton, every answer checked."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from volo_export.cli.console import result_line, user_errors
from volo_export.cli.options import Artifact, AsJson, ReportFile, integers
from volo_export.cli.progress import progress
from volo_export.cli.render import print_json, show_tables


def command(
    url: Annotated[str, typer.Option(help="The server: http://HOST:PORT or grpc://HOST:PORT.", show_default=False)],
    model: Artifact,
    model_name: Annotated[Optional[str], typer.Option(
        help="The served model (default: the one volo-export model on the server).")] = None,
    concurrency: Annotated[str, typer.Option(help="Comma-separated numbers of requests in flight.")] = "1,4,16",
    duration: Annotated[Optional[float], typer.Option(
        help="Seconds of load per concurrency (default 10 when --requests is not given).", show_default=False)] = None,
    requests: Annotated[Optional[int], typer.Option(
        help="Requests per concurrency (with --duration: whichever ends first).", show_default=False)] = None,
    rounds: Annotated[int, typer.Option(help="Served rounds per concurrency, each followed by the in-process "
                                        "baseline.")] = 3,
    in_process: Annotated[bool, typer.Option(help="Time the artifact in-process at batch = concurrency between "
                                             "the served rounds.")] = True,
    timeout: Annotated[float, typer.Option(help="Seconds before a request counts as failed.")] = 60.0,
    tolerance: Annotated[Optional[float], typer.Option(
        help="Largest relative difference of a served answer from local inference (default: "
        "tolerances.SERVED_ANSWER_REL).", show_default=False)] = None,
    as_json: AsJson = False,
    report: ReportFile = None,
) -> None:
    """Load-test a model on a running Triton: img/s, p50/p90/p99, and every answer against local inference."""
    with user_errors(lambda failed: _show(failed, as_json)):
        from volo_export.errors import raise_if_failed
        from volo_export.io import distinct_outputs, write_json
        from volo_export.serve.loadtest import LoadSettings, run_loadtest
        from volo_export.tolerances import SERVED_ANSWER_REL

        distinct_outputs({"--model": model}, {"--report": report})

        settings = LoadSettings(concurrency=integers(concurrency, "--concurrency"), duration_s=duration,
                                requests=requests, rounds=rounds, timeout_s=timeout, in_process=in_process,
                                tolerance=SERVED_ANSWER_REL if tolerance is None else tolerance)
        with progress() as shown:
            result = run_loadtest(url, model, model_name, settings, shown)
        if report:
            write_json(report, result.to_dict(with_samples=True))
        raise_if_failed(result, "not every request got its own answer")
        _show(result, as_json)


def _show(result, as_json: bool) -> None:
    if as_json:
        print_json(result.to_dict())
        return
    show_tables(result)
    for line in result.footnotes() + result.environment_lines() + result.notes:
        result_line(line)

