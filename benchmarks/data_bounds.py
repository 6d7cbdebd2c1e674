"""Peak memory of the data boundaries (SECURITY.md, "Data"): one image at the most extreme shapes the
limits allow, and one calibration read, each in a fresh child process (peak RSS from wait4).

    python benchmarks/data_bounds.py [--tree PATH]   # PATH: the checkout whose volo_export to measure

Images go through `volo-export preprocess --model-name volo_d1_224` (the one preprocessing, as predict,
validate, calibration and Triton's image model run it); calibration reads through
`load_calibration_data` on a compressed .npz of zero VOLO-D1 samples.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def peak_rss_mb(args: list[str], tree: Path) -> tuple[float, int, str]:
    """(peak RSS MiB, exit code, last stderr line) of one child process."""
    env = {**os.environ, "PYTHONPATH": str(tree)}
    child = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                             cwd=tempfile.gettempdir())  # `python -c` puts the working folder first on sys.path
    err = child.stderr.read()
    _, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)
    return usage.ru_maxrss / 1024, child.returncode, (err.strip().splitlines() or [""])[-1][:100]


def zeros_npz(path: Path, samples: int, size: int) -> Path:
    header = {"descr": "<f4", "fortran_order": False, "shape": (samples, 3, size, size)}
    row = bytes(3 * size * size * 4)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive, archive.open("x.npy", "w", force_zip64=True) as f:
        np.lib.format.write_array_header_1_0(f, header)
        for _ in range(samples):
            f.write(row)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tree", type=Path, default=HERE.parent, help="checkout whose volo_export to measure")
    args = parser.parse_args()
    cli = [sys.executable, "-c", "from volo_export.cli import main; main()"]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        images = {"224x224 (baseline)": (224, 224), "1365x1 (worst aspect ratio allowed)": (1365, 1),
                  "349000x256 (89 MP at 1363:1)": (349000, 256), "9400x9400 (88 MP square)": (9400, 9400),
                  "20000x1 (refused: resize target 5.1 GP)": (20000, 1)}
        print("image (volo_d1_224)                          peak RSS   exit")
        for name, (w, h) in images.items():
            path = tmp / "img.png"  # written by a child: this process stays small, and a child's peak RSS
            # counts its parent's RSS at fork (Linux keeps the high-water mark across exec)
            subprocess.run([sys.executable, "-c", f"from PIL import Image; Image.new('RGB', ({w}, {h}), "
                            f"(200, 20, 20)).save({str(path)!r})"], check=True)
            mb, code, _ = peak_rss_mb([*cli, "preprocess", str(path), "--model-name", "volo_d1_224", "--out",
                                       str(tmp / "x.bin")], args.tree)
            print(f"{name:44s} {mb:7.0f} MB  {code}")
        npz = zeros_npz(tmp / "calib.npz", 2000, 224)
        print(f"\ncalibration .npz: 2000 VOLO-D1 samples ({2000 * 3 * 224 * 224 * 4 / 2**30:.1f} GiB of float32, "
              f"{npz.stat().st_size / 2**20:.1f} MB compressed)")
        for size in (16, 256):
            code = ("from volo_export.calibration.data import load_calibration_data as l;"
                    "from volo_export.models.variants import get_config as g;"
                    f"print(l({str(npz)!r}, g('volo_d1_224').preprocessing, {size}).array.shape)")
            mb, exit_code, _ = peak_rss_mb([sys.executable, "-c", code], args.tree)
            print(f"--calib-size {size:<4d}                             {mb:7.0f} MB  {exit_code}")


if __name__ == "__main__":
    main()
