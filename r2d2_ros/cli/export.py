"""r2d2-export: a checkpoint -> an ONNX graph for ONNX Runtime or TensorRT.

    r2d2-export [CHECKPOINT] --onnx out.onnx [--precision fp32|fp16]

Batch norm is folded into the convolutions; batch, height and width are dynamic. The graph takes
the ImageNet-normalised RGB ``image`` (B, 3, H, W) and gives ``descriptors`` (unit norm),
``reliability`` and ``repeatability``. For TensorRT export fp32: ``trt_fp16_enable`` (or trtexec
--fp16) then picks fp16 kernels where they keep the accuracy.
"""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from ..export import EXPORT_PRECISIONS, export_onnx
from ..model import CheckpointError, load_model
from ..weights import default_model_path

__all__ = ["main"]

log = logging.getLogger("r2d2-export")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="r2d2-export", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", nargs="?", type=Path,
                        help="original R2D2 or r2d2_ros checkpoint (default: the bundled model)")
    parser.add_argument("--onnx", type=Path, required=True, help="the ONNX file to write")
    parser.add_argument("--precision", choices=EXPORT_PRECISIONS, default="fp32",
                        help="of the trunk's weights; the score heads stay fp32 (default: fp32)")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Runs the CLI; returns 0, or 2 on bad usage, an unusable checkpoint or a missing package."""
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    parser = _parser()
    args = parser.parse_args(argv)
    checkpoint = args.checkpoint or default_model_path()
    try:
        model = load_model(checkpoint)
        graph = export_onnx(model, args.precision)
    except (ValueError, FileNotFoundError, CheckpointError, ImportError) as error:
        parser.error(str(error))
    args.onnx.parent.mkdir(parents=True, exist_ok=True)
    args.onnx.write_bytes(graph)
    log.info("%s (%s) -> %s, %s weights, %.1f MB", checkpoint.name, model.arch, args.onnx, args.precision,
             len(graph) / 1e6)
    return 0


if __name__ == "__main__":
    sys.exit(main())
