"""`volo-export loadtest`: a running Triton under concurrent load, every answer checked.

Per concurrency level C, C asyncio clients (tritonclient's aio HTTP or gRPC client) send one-image
requests, each a distinct input of a pool whose answers were computed locally first (the artifact, run by
volo-export's runner), tagged with its own request id. An answer counts as `ok` only when its id is the
request's and its logits equal the local answer within `tolerances.SERVED_ANSWER_REL`; otherwise it is
`wrong` (lost, swapped or corrupted); a refused or timed-out request is an `error`.

The served load runs in `rounds` chunks, each followed by the same artifact run in-process at batch C
(`timing.measure`) for the same wall time, so load from other processes hits both alike; the ratio
says what serving costs against calling the runner directly. Bounded in requests and in time.
"""

from __future__ import annotations

import asyncio
import itertools
import math
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from volo_export.results import Table
from volo_export.errors import UsageError, first_line
from volo_export.progress import SILENT, Progress
from volo_export.serve.client import ServedModel, ServerUrl, TritonClient, artifact_matches, client_module
from volo_export.timing import OK, BenchResult, BenchSettings, make_input, measure, summarize
from volo_export.tolerances import SERVED_ANSWER_REL

DEFAULT_DURATION_S = 10.0
POOL = 64  # distinct inputs at least; at least 2 x the largest concurrency, so requests in flight never share one


@dataclass(frozen=True)
class LoadSettings:
    """How much load. Per concurrency level: stop after `requests` requests and/or `duration_s` seconds
    (whichever first; neither: `DEFAULT_DURATION_S`), split into `rounds` chunks interleaved with the
    in-process baseline. Warm-up: 2 x C requests per level, not counted."""

    concurrency: tuple[int, ...] = (1, 4, 16)
    duration_s: float | None = None
    requests: int | None = None
    rounds: int = 3
    timeout_s: float = 60.0
    in_process: bool = True
    tolerance: float = SERVED_ANSWER_REL
    seed: int = 0

    def __post_init__(self):
        if not self.concurrency or min(self.concurrency) < 1:
            raise UsageError(f"--concurrency takes integers >= 1, got {list(self.concurrency)}")
        if self.duration_s is not None and self.duration_s <= 0:
            raise UsageError(f"--duration must be > 0 seconds, got {self.duration_s}")
        if self.requests is not None and self.requests < 1:
            raise UsageError(f"--requests must be >= 1, got {self.requests}")
        if self.rounds < 1 or self.timeout_s <= 0 or self.tolerance <= 0:
            raise UsageError("--rounds must be >= 1, --timeout and --tolerance > 0")

    def chunk(self) -> tuple[int | None, float | None]:
        """(requests, seconds) of one round."""
        duration = self.duration_s if self.duration_s is not None or self.requests is not None else DEFAULT_DURATION_S
        return (math.ceil(self.requests / self.rounds) if self.requests else None,
                duration / self.rounds if duration else None)


@dataclass
class Outcomes:
    """What one chunk of served load got back."""

    latencies_s: list[float] = field(default_factory=list)
    ok: int = 0
    wrong: int = 0
    errors: int = 0
    wall_s: float = 0.0
    cpu_s: float = 0.0  # CPU time of this process (the clients) while sending
    max_rel_error: float = 0.0  # over the ok answers
    problems: list[str] = field(default_factory=list)  # the first few, for the report

    def add(self, other: "Outcomes") -> None:
        self.latencies_s += other.latencies_s
        self.ok, self.wrong, self.errors = self.ok + other.ok, self.wrong + other.wrong, self.errors + other.errors
        self.wall_s += other.wall_s
        self.cpu_s += other.cpu_s
        self.max_rel_error = max(self.max_rel_error, other.max_rel_error)
        self.problems += other.problems[:max(0, 5 - len(self.problems))]

    def problem(self, text: str) -> None:
        if len(self.problems) < 5:
            self.problems.append(text)


@dataclass
class LoadResult:
    """One concurrency level: counts, served throughput (ok answers per second), per-request latency
    percentiles (`served`, from timing.summarize) and the in-process baseline at batch C."""

    concurrency: int
    requests: int
    ok: int
    wrong: int
    errors: int
    seconds: float
    throughput: float
    client_cpu_ms: float  # CPU time of the load generator per request: what the clients take from the machine
    max_rel_error: float
    served: BenchResult | None
    in_process: BenchResult | None
    problems: list[str]

    @property
    def ratio(self) -> float | None:
        """Served throughput over in-process batched throughput at the same batch size."""
        if self.in_process is None or not self.in_process.throughput:
            return None
        return self.throughput / self.in_process.throughput

    def to_dict(self, with_samples: bool = False) -> dict:
        d = {k: v for k, v in asdict(self).items() if k not in ("served", "in_process")}
        d["served"] = self.served.to_dict(with_samples) if self.served else None
        d["in_process"] = self.in_process.to_dict(with_samples) if self.in_process else None
        d["ratio"] = self.ratio
        return d


@dataclass
class LoadReport:
    """Everything one load test measured; a `results.Result` (`to_dict`, `tables`)."""

    url: str
    model: str
    artifact: str
    server: str
    reference: str
    serving: dict  # the served model's batching configuration
    settings: dict
    environment: dict
    results: list[LoadResult]
    notes: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(r.wrong == 0 and r.errors == 0 for r in self.results)

    @property
    def failures(self) -> list[str]:
        return [f"concurrency {r.concurrency}: {r.wrong} wrong answers, {r.errors} failed requests"
                for r in self.results if r.wrong or r.errors]

    def title(self) -> str:
        return (f"{self.model} at {self.url} ({self.server}): one image per request, each answer checked "
                f"against {self.reference}")

    def tables(self) -> list[Table]:
        return [Table.of(self.title(), *self.rows())]

    def rows(self) -> tuple[list[str], list[list[str]]]:
        header = ["concurrency", "requests", "ok", "wrong", "errors", "img/s", "p50 ms", "p90 ms", "p99 ms",
                  "in-process img/s (batch C)", "served / in-process", "client CPU ms/req"]
        rows = []
        for r in self.results:
            s = r.served
            rows.append([str(r.concurrency), str(r.requests), str(r.ok), str(r.wrong), str(r.errors),
                         f"{r.throughput:.1f}", *(f"{v:.1f}" if s else "-" for v in
                                                 ((s.p50_ms, s.p90_ms, s.p99_ms) if s else (0, 0, 0))),
                         f"{r.in_process.throughput:.1f}" if r.in_process else "-",
                         f"{r.ratio:.2f}" if r.ratio is not None else "-", f"{r.client_cpu_ms:.2f}"])
        return header, rows

    def footnotes(self) -> list[str]:
        return [f"concurrency {r.concurrency}: {p}" for r in self.results for p in r.problems]

    def environment_lines(self) -> list[str]:
        e, s = self.environment, self.serving
        batching = (f"dynamic batching, max queue delay {s['max_queue_delay_us']} us"
                    + (f", preferred {s['preferred_batch_size']}" if s["preferred_batch_size"] else "")
                    if s["dynamic_batching"] else "no dynamic batching")
        worst = max((r.max_rel_error for r in self.results), default=0.0)
        return [f"server: max_batch_size {s['max_batch_size']}, {batching}, {s['instances']} instance(s)",
                f"client: {self.settings['protocol']} asyncio, {self.settings['rounds']} served rounds interleaved "
                f"with the in-process runner at batch C ({self.reference}); largest relative error of an ok "
                f"answer {worst:.1e} (tolerance {self.settings['tolerance']:.0e})",
                f"CPU: {e['cpu']} ({e['usable_cpus']} usable of {e['logical_cpus']} logical CPUs; "
                f"{' '.join(e['cpu_flags'])})",
                "versions: " + ", ".join(f"{k} {v}" for k, v in e["versions"].items() if v)]

    def to_dict(self, with_samples: bool = False) -> dict:
        d = {k: v for k, v in asdict(self).items() if k != "results"}
        d["results"] = [r.to_dict(with_samples) for r in self.results]
        d["passed"] = self.passed
        return d


# --------------------------------------------------------------------------- the load


def relative_error(answer: np.ndarray, reference: np.ndarray) -> float:
    """max |answer - reference| over the reference's largest |logit| (at least 1), as the gates measure it."""
    return float(np.abs(answer - reference).max() / max(1.0, float(np.abs(reference).max())))


async def drive(url: ServerUrl, model: ServedModel, pool: np.ndarray, reference: np.ndarray, concurrency: int,
                max_requests: int | None, seconds: float | None, timeout_s: float, tolerance: float,
                first_id: int = 0) -> Outcomes:
    """`concurrency` clients sending pool[i % len(pool)] as request i until `max_requests` were sent or
    `seconds` passed; every answer judged against reference[i % len(pool)]."""
    aio = client_module(url.protocol, aio=True)
    out = Outcomes()
    counter = itertools.count()
    cpu, start = time.process_time(), time.perf_counter()
    deadline = start + seconds if seconds else math.inf

    async def one(client, i: int) -> None:
        k = i % len(pool)
        tensor = aio.InferInput(model.input_name, [1, *pool.shape[1:]], model.input_type)
        tensor.set_data_from_numpy(pool[k:k + 1])
        request_id = str(first_id + i)
        t0 = time.perf_counter()
        try:
            result = await asyncio.wait_for(client.infer(model.name, [tensor], request_id=request_id), timeout_s)
        except Exception as e:  # refused, timed out, connection lost: all count as errors  # noqa: BLE001
            out.latencies_s.append(time.perf_counter() - t0)
            out.errors += 1
            out.problem(f"request {request_id}: {first_line(e, typed=True)}")
            return
        out.latencies_s.append(time.perf_counter() - t0)
        response = result.get_response()
        answer_id = response["id"] if isinstance(response, dict) else response.id
        answer = result.as_numpy(model.output_name)
        if answer_id != request_id or answer is None or answer.shape != (1, reference.shape[1]):
            out.wrong += 1
            out.problem(f"request {request_id}: answer id {answer_id!r}, shape "
                        f"{None if answer is None else answer.shape}")
            return
        error = relative_error(answer[0].astype(np.float32), reference[k])
        if error > tolerance:
            out.wrong += 1
            out.problem(f"request {request_id}: differs from local inference by {error:.2e} (relative)")
            return
        out.ok += 1
        out.max_rel_error = max(out.max_rel_error, error)

    async def worker(client) -> None:
        while True:
            i = next(counter)
            if (max_requests is not None and i >= max_requests) or time.perf_counter() >= deadline:
                return
            await one(client, i)

    async with aio.InferenceServerClient(url.address) as client:
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))
    out.wall_s = time.perf_counter() - start
    out.cpu_s = time.process_time() - cpu
    return out


def serving_settings(config) -> dict:
    """The batching part of a served model's ModelConfig, for the report."""
    dynamic = config.HasField("dynamic_batching")
    return {"max_batch_size": config.max_batch_size, "dynamic_batching": dynamic,
            "max_queue_delay_us": config.dynamic_batching.max_queue_delay_microseconds if dynamic else None,
            "preferred_batch_size": list(config.dynamic_batching.preferred_batch_size),
            "instances": sum(g.count for g in config.instance_group) or 1}


def run_loadtest(url: str, artifact: Path, model_name: str | None = None, settings: LoadSettings = LoadSettings(),
                 progress: Progress = SILENT) -> LoadReport:
    """Load-test the served model against local inference of `artifact` (see the module docstring)."""
    from volo_export.bench.machine import environment
    from volo_export.runtime import SessionSettings, open_runner
    from volo_export.runtime.base import run_in_batches

    server = ServerUrl.parse(url)
    client = TritonClient(server, settings.timeout_s)
    try:
        model = client.served_model(model_name)
        version = client.server_version()
        config = client.model_config(model.name)
    finally:
        client.close()
    if model.max_batch_size == 0:
        raise UsageError(f"served model {model.name!r} has a static batch; the load test sends one image per request")
    progress.stage(f"opening {Path(artifact).name} for the local reference")
    runner = open_runner(Path(artifact), SessionSettings(spinning=False))  # the served runner's settings
    differs = artifact_matches(runner.info, model.info)
    if differs:
        raise UsageError(f"{Path(artifact).name} is not the artifact served as {model.name!r} "
                         f"(different {', '.join(differs)})")
    shape = model.input_dims
    pool = make_input(shape, max(POOL, 2 * max(settings.concurrency)), settings.seed).astype(model.numpy_dtype)
    reference = run_in_batches(runner, pool)
    per_requests, per_seconds = settings.chunk()
    results, next_id = [], 0
    for c in settings.concurrency:
        progress.stage(f"concurrency {c}: warm-up ({2 * c} requests)")
        asyncio.run(drive(server, model, pool, reference, c, 2 * c, None, settings.timeout_s, settings.tolerance,
                          next_id))
        next_id += 2 * c
        total, baseline, baseline_cpu, baseline_failed = Outcomes(), [], [], None
        for r in range(settings.rounds):
            progress.stage(f"concurrency {c}: round {r + 1}/{settings.rounds} served")
            chunk = asyncio.run(drive(server, model, pool, reference, c, per_requests, per_seconds, settings.timeout_s,
                                      settings.tolerance, next_id))
            next_id += len(chunk.latencies_s)
            total.add(chunk)
            if settings.in_process and baseline_failed is None:
                progress.stage(f"concurrency {c}: round {r + 1}/{settings.rounds} in-process, batch {c}")
                timed = BenchSettings(batch_sizes=(c,), warmup=1 if r == 0 else 0, iterations=10**6, min_iterations=1,
                                      time_budget_s=max(chunk.wall_s, 0.2), seed=settings.seed)
                row = measure({"in-process": runner}, shape, timed)[0]
                if row.status != OK:  # e.g. out of memory at batch C: no baseline for this level, the load test goes on
                    baseline_failed = row.reason or row.status
                    total.problems.append(f"in-process baseline at batch {c} failed: {baseline_failed}")
                    continue
                baseline += row.latencies_ms
                baseline_cpu.append(row.cpu_p50_ms / 1e3)  # per round: its median CPU time per call
        n = len(total.latencies_s)
        served = replace(summarize("served", 1, total.latencies_s), throughput=total.ok / total.wall_s) if n else None
        in_process = (summarize("in-process", c, [ms / 1e3 for ms in baseline], baseline_cpu)
                      if baseline and baseline_failed is None else None)
        results.append(LoadResult(c, n, total.ok, total.wrong, total.errors, total.wall_s,
                                  total.ok / total.wall_s if total.wall_s else 0.0, total.cpu_s / max(n, 1) * 1e3,
                                  total.max_rel_error, served, in_process, total.problems))
    notes = [] if settings.in_process else ["--no-in-process: no in-process baseline"]
    return LoadReport(url=str(server), model=model.name, artifact=str(artifact), server=f"Triton {version}",
                      reference=runner.describe(), serving=serving_settings(config),
                      settings={**asdict(settings), "protocol": server.protocol, "pool": len(pool)},
                      environment=environment(0), results=results, notes=notes)

