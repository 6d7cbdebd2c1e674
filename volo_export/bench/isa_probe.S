# Instruction-throughput probes of volo_export/bench/isa.py (the theoretical peak in `volo-export bench`).
# isa.py carries this file assembled: gcc -c isa_probe.S -o p.o && objcopy -O binary --only-section=.text p.o
# (zlib + base64, with the symbol offsets from `nm p.o`); tests/test_peak.py reassembles it when gcc is there.
# Each function takes n (rdi) and runs n iterations: imul_chain 100 dependent 64-bit imuls (3 cycles each on
# every x86 core since Nehalem/Zen: a clock), the others 60 independent SIMD ops on 12 accumulators (enough to
# cover latency x ports), operands zeroed first (no denormal assists).
    .intel_syntax noprefix
    .text
    .globl imul_chain
imul_chain:
    mov rcx, rdi
    xor eax, eax
1:
    .rept 100
    imul rax, rax
    .endr
    dec rcx
    jnz 1b
    ret

    .macro SIMD12 op, r
    \op \r\()2, \r\()0, \r\()1
    \op \r\()3, \r\()0, \r\()1
    \op \r\()4, \r\()0, \r\()1
    \op \r\()5, \r\()0, \r\()1
    \op \r\()6, \r\()0, \r\()1
    \op \r\()7, \r\()0, \r\()1
    \op \r\()8, \r\()0, \r\()1
    \op \r\()9, \r\()0, \r\()1
    \op \r\()10, \r\()0, \r\()1
    \op \r\()11, \r\()0, \r\()1
    \op \r\()12, \r\()0, \r\()1
    \op \r\()13, \r\()0, \r\()1
    .endm

    .macro PROBE name, op, r, zero
    .globl \name
\name:
    mov rcx, rdi
    \zero \r\()0, \r\()0, \r\()0
    \zero \r\()1, \r\()0, \r\()0
    \zero \r\()2, \r\()0, \r\()0
    \zero \r\()3, \r\()0, \r\()0
    \zero \r\()4, \r\()0, \r\()0
    \zero \r\()5, \r\()0, \r\()0
    \zero \r\()6, \r\()0, \r\()0
    \zero \r\()7, \r\()0, \r\()0
    \zero \r\()8, \r\()0, \r\()0
    \zero \r\()9, \r\()0, \r\()0
    \zero \r\()10, \r\()0, \r\()0
    \zero \r\()11, \r\()0, \r\()0
    \zero \r\()12, \r\()0, \r\()0
    \zero \r\()13, \r\()0, \r\()0
2:
    SIMD12 \op, \r
    SIMD12 \op, \r
    SIMD12 \op, \r
    SIMD12 \op, \r
    SIMD12 \op, \r
    dec rcx
    jnz 2b
    vzeroupper
    ret
    .endm

    PROBE fma_ymm, vfmadd231ps, ymm, vxorps
    PROBE fma_zmm, vfmadd231ps, zmm, vpxord
    PROBE vnni_zmm, vpdpbusd, zmm, vpxord
    PROBE bf16_zmm, vdpbf16ps, zmm, vpxord
