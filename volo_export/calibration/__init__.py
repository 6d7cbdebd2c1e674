"""Calibration for INT8: where the images come from (`data`), what the FP32 graph's
activations look like on them (`stats`), the ranges each method derives (`methods`)
and the cache that lets a re-run skip the FP32 passes (`cache`)."""
