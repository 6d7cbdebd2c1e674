"""The benchmark stage behind `volo-export bench` (timing itself: `volo_export.timing`).

    machine   the GEMM peak, resident memory, the environment
    limits    every installed library's GEMM per data type;  isa: the theoretical peak
    child     a probe function run in a fresh Python (memory, ISA), with a timeout
    backends  what can be timed and how each backend's artifact is produced and opened
    run       `run_benchmark`: build, time, probe memory -> BenchReport
    report    BenchReport (data, JSON);  render: rich table, markdown, plot
    profile   per-op profile of one graph (ONNX Runtime, OpenVINO)
"""
