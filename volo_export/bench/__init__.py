"""The benchmark stage behind `volo-export bench` (timing itself: `volo_export.timing`).

    machine   the GEMM peak, resident memory, the environment
    backends  what can be timed and how each backend's artifact is produced and opened
    run       `run_benchmark`: build, time, probe memory -> BenchReport
    report    BenchReport (data, JSON);  render: rich table, markdown, plot
    profile   ONNX Runtime's per-op profile of one graph
"""
