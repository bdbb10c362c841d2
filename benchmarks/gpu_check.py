"""One command for what needs a GPU: the GPU tests, then the backends' benchmarks as one table.

    python benchmarks/gpu_check.py [--repeats 3] [--cpu-half] [--skip-tests] [--size WxH]     (make gpu-check)

On a CUDA machine: `pytest -m gpu` (fp32 parity on CUDA, fp16/bf16 agreement, ONNX Runtime CUDA and
TensorRT, one host wait per frame, captured pyramids), then N16 and Fast at VGA single-scale and
1024 px multi-scale in PyTorch fp32/fp16, eager and captured as CUDA graphs (cuda_graphs), and
TensorRT fp32/fp16, per stage; then how many of fp32's detections fp16 and bf16 keep on the
reference images (r2d2_ros.evaluation.precision_check); then the node's end-to-end latency
(benchmarks/node_latency.py). Without one (or with --cpu-half) it says so and runs the CPU half:
the backend tests and PyTorch fp32, PyTorch bf16 (where the CPU has it natively) and ONNX Runtime.
"""
from __future__ import annotations

import argparse
import importlib.util
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import cv2
import torch
from extraction import REFERENCE, SINGLE_SCALE, benchmark_image, time_extraction

from r2d2_ros import ExtractionConfig, load_model, prepare_for_inference
from r2d2_ros.backends import BackendError, make_runner
from r2d2_ros.device import cpu_has_native_bf16
from r2d2_ros.evaluation.precision_check import compare_precision
from r2d2_ros.extraction import NetworkRunner
from r2d2_ros.image_io import read_rgb
from r2d2_ros.model.nets import Fast_Quad_L2Net_ConfCFS, R2D2Net
from r2d2_ros.weights import default_model_path

REPO = Path(__file__).resolve().parents[1]
# Official checkpoints when ../shared is there (benchmarks only; never copied into the repository).
MODELS = {"N16": REFERENCE / "models" / "r2d2_WASF_N16.pt", "Fast": REFERENCE / "models" / "faster2d2_WASF_N16.pt"}


@dataclass(frozen=True)
class Variant:
    """One way of running the network."""

    backend: str
    precision: str
    provider: str = "auto"
    cuda_graphs: bool = False  # the pyramid replayed from a captured CUDA graph

    @property
    def label(self) -> str:
        provider = f" ({self.provider})" if self.backend == "onnxruntime" else ""
        return f"{self.backend}{provider} {self.precision}{' captured' if self.cuda_graphs else ''}"


def variants(cuda: bool) -> list[Variant]:
    """What is compared: fp32 and the fast precisions, PyTorch (eager and captured on a GPU) and ONNX Runtime
    (TensorRT on a GPU)."""
    if cuda:
        return [Variant("torch", "fp32"), Variant("torch", "fp32", cuda_graphs=True), Variant("torch", "fp16"),
                Variant("torch", "fp16", cuda_graphs=True), Variant("onnxruntime", "fp32", "tensorrt"),
                Variant("onnxruntime", "fp16", "tensorrt")]
    reduced = [Variant("torch", "bf16")] if cpu_has_native_bf16() else []
    return [Variant("torch", "fp32"), *reduced, Variant("onnxruntime", "fp32", "cpu")]


def _model(name: str, device: torch.device) -> R2D2Net:
    path = MODELS[name] if MODELS[name].exists() else default_model_path() if name == "N16" else None
    if path is None:  # no official Fast weights here: timing does not depend on the weights' values
        return prepare_for_inference(Fast_Quad_L2Net_ConfCFS().to(device))
    return prepare_for_inference(load_model(path, device))


def run_tests(cuda: bool) -> int:
    """The GPU tests on a GPU; the backends' CPU tests otherwise. Returns pytest's exit status."""
    selection = ["-m", "gpu", "test/gpu"] if cuda else ["-m", "not slow", "test/backends"]
    return subprocess.call([sys.executable, "-m", "pytest", "-q", *selection], cwd=REPO)


def benchmark(cuda: bool, repeats: int, vga: tuple[int, int], large: tuple[int, int]) -> list[str]:
    """One Markdown row per model, setting and variant: per-stage medians, total, speed against PyTorch fp32."""
    device = torch.device("cuda" if cuda else "cpu")
    settings = [(f"{vga[0]}x{vga[1]} single scale", benchmark_image(*vga), SINGLE_SCALE),
                (f"{large[0]}x{large[1]} default pyramid", benchmark_image(*large), ExtractionConfig())]
    rows = []
    for name in MODELS:
        model = _model(name, device)
        runners: dict[Variant, NetworkRunner | str] = {}
        for variant in variants(cuda):
            try:
                runners[variant] = make_runner(model, variant.backend, variant.precision, variant.provider,
                                               max_side=max(large))
            except BackendError as error:
                runners[variant] = f"skipped: {error}"
        for title, image, config in settings:
            baseline = None
            for variant, runner in runners.items():
                if isinstance(runner, str):
                    rows.append(f"| {name} | {title} | {variant.label} | {runner} | | | | |")
                    continue
                stages, total = time_extraction(
                    runner, image, config.replace(precision=variant.precision, cuda_graphs=variant.cuda_graphs),
                    repeats, device)
                baseline = baseline or total
                # A capture that failed is logged as a warning; the row says so rather than pass eager for captured.
                eager = " (ran eagerly)" if variant.cuda_graphs and "captured pyramid" not in stages else ""
                rows.append(f"| {name} | {title} | {variant.label}{eager} | {_stage_columns(stages)} "
                            f"| {total * 1e3:.1f} | {baseline / total:.2f}x |")
    return rows


def _stage_columns(stages: dict[str, float]) -> str:
    """Network, NMS and top-k milliseconds; a replayed pyramid is one graph, shown under network."""
    if "captured pyramid" in stages:
        return f"{stages['captured pyramid'] * 1e3:.1f} (whole graph) | in graph | {stages['top-k'] * 1e3:.1f}"
    network = sum(seconds for stage, seconds in stages.items() if stage.startswith("network"))
    return f"{network * 1e3:.1f} | {stages['nms'] * 1e3:.1f} | {stages['top-k'] * 1e3:.1f}"


def precision_rows(size: tuple[int, int], device: torch.device) -> list[str]:
    """fp16 and bf16 against fp32 on ``device``: N16 on the reference images (or the benchmark image) at ``size``."""
    names = ("boat", "brooklyn", "peppers", "test")
    if (REFERENCE / "images").exists():
        images = [cv2.resize(read_rgb(REFERENCE / "images" / f"{name}.png"), size, interpolation=cv2.INTER_AREA)
                  for name in names]
    else:
        images = [benchmark_image(*size)]
    model = _model("N16", device)
    return [f"| {agreement.precision} | {agreement.kept_share:.1%} ({agreement.kept}/{agreement.detections}) "
            f"| {agreement.extra} | {agreement.cosine_mean:.5f} | {agreement.cosine_min:.5f} |"
            for agreement in (compare_precision(model, images, precision) for precision in ("fp16", "bf16"))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--cpu-half", action="store_true", help="run the CPU half even where there is a GPU")
    parser.add_argument("--skip-tests", action="store_true", help="benchmarks only")
    parser.add_argument("--size", default="640x480", help="single-scale image size (default: VGA)")
    parser.add_argument("--large", default="1024x768", help="multi-scale image size (default: 1024x768)")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    cuda = torch.cuda.is_available() and not args.cpu_half
    if cuda:
        print(f"CUDA GPU: {torch.cuda.get_device_name()}, torch {torch.__version__}")
    else:
        reason = "--cpu-half given" if torch.cuda.is_available() else "no CUDA GPU on this machine"
        print(f"{reason}: running the CPU half (backend tests on the CPU, CPU benchmarks); "
              f"CPU, {torch.get_num_threads()} threads, native bf16: {cpu_has_native_bf16()}, "
              f"torch {torch.__version__}")
    status = 0 if args.skip_tests else run_tests(cuda)
    vga, large = (tuple(int(v) for v in size.split("x")) for size in (args.size, args.large))
    rows = benchmark(cuda, args.repeats, vga, large)  # type: ignore[arg-type]
    print("\n| model | setting | backend | network ms | NMS ms | top-k ms | total ms | speed vs torch fp32 |\n"
          "|---|---|---|---|---|---|---|---|\n" + "\n".join(rows))
    if cuda:
        agreement = precision_rows(vga, torch.device("cuda"))  # type: ignore[arg-type]
        print(f"\nN16, {args.size} images, every detection: fp32 detections kept within 1 px, extra detections, "
              f"descriptor cosine of the kept\n\n| precision | kept | extra | cosine mean | cosine min |\n"
              f"|---|---|---|---|---|\n" + "\n".join(agreement))
        if importlib.util.find_spec("rclpy") is None:
            # A GPU machine without ROS 2 (a training box, a CI runner) still gets the tests and the table.
            print("\nnode latency: skipped, this Python has no rclpy (source the ROS 2 workspace: . ./activate)")
        else:
            status = subprocess.call([sys.executable, "benchmarks/node_latency.py", "--device", "cuda",
                                      "--precision", "fp16", "--seconds", "5"], cwd=REPO) or status
    print(f"\ngpu-check: {'tests passed' if status == 0 else f'FAILED (status {status})'}")
    return status


if __name__ == "__main__":
    sys.exit(main())
