"""Exact ONNX -> ONNX graph passes: the same maths, in the form a runtime's kernels want.

Each pass is one small module: the pattern it looks for, the checks that make it refuse a
match, the rewrite; its public function edits a ModelProto in place and returns how many places
it changed. Tests run ONNX Runtime before and after every pass and compare the numbers.

    pooling.window_mean_as_avgpool   ReduceMean over the two window axes of a 6-D view -> AveragePool
    layernorm.layernorm_on_tokens    LayerNormalization of a 4-D (B, H, W, C) tensor -> on its 3-D view
    matmul.gemm_as_matmul            Reshape(x, [-1, K]) -> Gemm  ->  MatMul on x itself ("nd"); (1, M, K) ("3d")
    heads.split_heads                fused qkv MatMul -> heads -> unbind  ->  one MatMul -> heads per part
    projections.split_projections    fused qkv MatMul(DQ(W))  ->  one MatMul(DQ(W part)) per part -> Concat
    qdq.hoist_qdq                    Q/DQ after Reshape/Transpose/... -> before them (per-tensor Q/DQ commute)
    casts.drop_noop_casts            Cast of an initializer to the type it has -> the initializer itself

`projections.fused_projection` is the one matcher of the fused qkv/kv projection; both splits use it.
Who applies which, where it was measured to matter (docs/CPU.md, docs/PRECISION.md,
docs/TENSORRT_RTX.md): the OpenVINO INT8 form (`precision/openvino.py`) pooling, layernorm, matmul
("nd"), heads and qdq; the ONNX Runtime CPU INT8 form (`precision/cpu.py`) matmul ("3d"); the
TensorRT INT8 form (`precision/forms/int8_tensorrt.py`) projections; FP16 (`precision/fp16.py`) casts. None is
applied to the default FP32 export. The graph toolkit the passes share (`GraphIndex`,
`replace_nodes`, `drop_unused`, ...) is `graph`.
"""
