"""`config.pbtxt` read exactly as Triton reads it (protobuf text format into `inference.ModelConfig`, the
message `tritonclient.grpc.model_config_pb2` ships), plus the rules the protobuf cannot express.

Every config volo-export writes is a ModelConfig message checked by `config_problems` before it lands, and
a repository by `check_repository` (ensemble steps against the models they call); `parse_model_config`
reads a config.pbtxt written elsewhere.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from volo_export.errors import InputDataError, RuntimeUnavailable, first_line

TRITON_EXTRA_HINT = "pip install 'volo-export[triton]'"


def model_config_pb2():
    """Triton's ModelConfig protobuf module (from tritonclient), or a one-line RuntimeUnavailable."""
    try:
        from tritonclient.grpc import model_config_pb2 as pb2
    except ImportError:
        raise RuntimeUnavailable(f"Triton's ModelConfig protobuf comes with tritonclient: {TRITON_EXTRA_HINT}") from None
    return pb2


def parse_model_config(text: str, where: str = "config.pbtxt"):
    """`text` -> ModelConfig message, checked (see `config_problems`); a one-line InputDataError naming
    `where` (and line:column for syntax errors) otherwise."""
    from google.protobuf import text_format

    pb2 = model_config_pb2()
    try:
        config = text_format.Parse(text, pb2.ModelConfig())
    except text_format.ParseError as e:
        raise InputDataError(f"{where}: not a valid Triton ModelConfig: {first_line(e)}") from None
    problems = config_problems(config)
    if problems:
        raise InputDataError(f"{where}: " + "; ".join(problems))
    return config


def config_problems(config) -> list[str]:
    """What Triton would refuse in one ModelConfig, beyond its syntax (empty when none)."""
    problems = []
    if not config.name:
        problems.append("no name")
    if not (config.platform or config.backend):
        problems.append("neither platform nor backend")
    if config.max_batch_size < 0:
        problems.append(f"max_batch_size {config.max_batch_size} < 0")
    if config.HasField("dynamic_batching"):
        if config.max_batch_size == 0:
            problems.append("dynamic_batching needs max_batch_size > 0")
        over = [b for b in config.dynamic_batching.preferred_batch_size if b > config.max_batch_size]
        if over:
            problems.append(f"preferred_batch_size {over} > max_batch_size {config.max_batch_size}")
    for tensor in [*config.input, *config.output]:
        if not tensor.dims or any(d == 0 or d < -1 for d in tensor.dims):
            problems.append(f"tensor {tensor.name!r} has dims {list(tensor.dims)}")
    for warmup in config.model_warmup:
        if warmup.batch_size > max(config.max_batch_size, 1):
            problems.append(f"warm-up batch {warmup.batch_size} > max_batch_size {config.max_batch_size}")
    if config.platform == "ensemble":
        produced = {t.name for t in config.input}
        for step in config.ensemble_scheduling.step:
            unread = sorted(set(step.input_map.values()) - produced)
            if unread:
                problems.append(f"ensemble step {step.model_name!r} reads {unread} before any step produces it")
            produced |= set(step.output_map.values())
        unproduced = [t.name for t in config.output if t.name not in produced]
        if unproduced:
            problems.append(f"ensemble outputs {unproduced} are produced by no step")
    return problems


def check_repository(configs: Mapping[str, object]) -> None:
    """Cross-model rules over {model name: ModelConfig}: every ensemble step calls a model of the
    repository with tensors that model has, and batches no larger than it takes."""
    for name, config in configs.items():
        if config.platform != "ensemble":
            continue
        for step in config.ensemble_scheduling.step:
            target = configs.get(step.model_name)
            if target is None:
                raise InputDataError(f"{name}: ensemble step calls {step.model_name!r}, which is not in the repository")
            for side, keys, tensors in (("input", step.input_map.keys(), target.input),
                                        ("output", step.output_map.keys(), target.output)):
                missing = sorted(set(keys) - {t.name for t in tensors})
                if missing:
                    raise InputDataError(f"{name}: {step.model_name!r} has no {side} {missing}")
            if config.max_batch_size > target.max_batch_size:
                raise InputDataError(f"{name}: max_batch_size {config.max_batch_size} > {step.model_name!r}'s "
                                     f"{target.max_batch_size}")


def read_model_config(path: Path):
    """A `config.pbtxt` file, parsed and checked."""
    return parse_model_config(Path(path).read_text(encoding="utf-8"), str(path))
