"""Captured pyramids: a camera's whole pyramid replayed as one CUDA graph (``ExtractionConfig.cuda_graphs``).

On a GPU a frame's pyramid is dozens of small kernels (a resize, the network's convolutions, NMS
and top-k per level) whose launches cost more than their work. A camera sends frames of one size,
so every frame launches the same kernels on buffers of the same shapes: captured once into a CUDA
graph, they are replayed with one launch.

What is captured: everything from the normalised batch to each image's best ``top_k`` candidates
(resizes, network, NMS, per-level and final top-k, descriptor normalisation). The extraction keeps
every shape there independent of the data (non-detections are padded with -inf, never removed), so
the graph computes exactly what the eager path computes, with the same kernels. What stays eager:
uploading and normalising the image (its dtype and layout vary), and counting each image's
detections to cut the padding off, the frame's one host wait, whose result sizes depend on the data.

When: a key (batch shape and settings) is captured on its second frame and replayed from then on.
The first frame runs eagerly, so that a size seen once (a folder of photos of many sizes, the
node's warm-up frame) never pays for a capture. At most ``max_graphs`` graphs are kept, the least
recently used dropped first, since each holds the pyramid's peak working memory. Everything else
runs eagerly, counted in :attr:`PyramidGraphs.fallbacks` and logged once per reason: the CPU, a
runner whose kernels PyTorch cannot capture (ONNX Runtime launches its own), a frame timed stage by
stage, and a key whose capture failed (never tried again).

One thread at a time may extract with a given network (as the node's worker does); captures use
``capture_error_mode="thread_local"``, so another thread loading a model meanwhile does not break them.
"""
from __future__ import annotations

import logging
import weakref
from collections import Counter, OrderedDict
from collections.abc import Callable, Hashable
from contextlib import nullcontext
from typing import Any, Generic, NamedTuple, TypeVar

import torch

from .runner import NetworkRunner, TorchRunner
from .timing import StageTimer

__all__ = ["CapturedCall", "GraphCache", "PyramidGraphs", "pyramid_graphs", "DEFAULT_MAX_GRAPHS"]

log = logging.getLogger("r2d2_ros.extraction")

# Cameras of one size times a few settings; each graph holds a pyramid's working memory (hundreds of
# MB at 1024 px), which a Jetson shares with the rest of the system.
DEFAULT_MAX_GRAPHS = 4
# Keys seen once that are remembered, so that their second frame is recognised.
_MAX_SIGHTINGS = 64

Key = TypeVar("Key", bound=Hashable)
Graph = TypeVar("Graph")
Outputs = TypeVar("Outputs", bound=NamedTuple)


class GraphCache(Generic[Key, Graph]):
    """Which keys have a graph, which deserve one and which never will; least recently used dropped first.

    Args:
        max_graphs: graphs kept at most.
    """

    def __init__(self, max_graphs: int = DEFAULT_MAX_GRAPHS) -> None:
        if max_graphs < 1:
            raise ValueError(f"max_graphs must be at least 1, got {max_graphs}")
        self.max_graphs = max_graphs
        self._graphs: OrderedDict[Key, Graph] = OrderedDict()
        self._sighted: OrderedDict[Key, None] = OrderedDict()
        self._refused: set[Key] = set()  # small: one entry per shape and settings whose capture failed

    def __len__(self) -> int:
        return len(self._graphs)

    def __contains__(self, key: Key) -> bool:
        return key in self._graphs

    def get(self, key: Key) -> Graph | None:
        """The graph of ``key``, now the most recently used, or None."""
        graph = self._graphs.get(key)
        if graph is not None:
            self._graphs.move_to_end(key)
        return graph

    def admit(self, key: Key) -> bool:
        """Records a frame of ``key``, which has no graph; True when it is time to capture one (its second frame)."""
        if key in self._refused:
            return False
        if key in self._sighted:
            del self._sighted[key]
            return True
        self._sighted[key] = None
        if len(self._sighted) > _MAX_SIGHTINGS:
            self._sighted.popitem(last=False)
        return False

    def refused(self, key: Key) -> bool:
        """Whether a capture of ``key`` failed: it runs eagerly from then on."""
        return key in self._refused

    def put(self, key: Key, graph: Graph) -> Key | None:
        """Keeps ``graph`` for ``key``; returns the key dropped to make room, if any."""
        self._graphs[key] = graph
        self._graphs.move_to_end(key)
        if len(self._graphs) > self.max_graphs:
            dropped, _ = self._graphs.popitem(last=False)
            return dropped
        return None

    def refuse(self, key: Key) -> None:
        """Marks ``key`` as failed to capture."""
        self._refused.add(key)


class CapturedCall(Generic[Outputs]):
    """``compute`` of one input shape captured as a CUDA graph; each call replays it on a new input.

    Args:
        compute: a function of a (fixed-shape) CUDA tensor to a NamedTuple of tensors, without host
            waits or data-dependent shapes.
        example: an input of the shape and dtype to capture for.

    Raises:
        RuntimeError: ``compute`` cannot be captured.
    """

    def __init__(self, compute: Callable[[torch.Tensor], Outputs], example: torch.Tensor) -> None:
        self._input = example.clone()
        stream = torch.cuda.Stream(example.device)  # capture needs a stream other than the current one
        stream.wait_stream(torch.cuda.current_stream(example.device))
        with torch.cuda.stream(stream):
            # Kernel selection and library handles are set up on first use: not inside the graph.
            compute(self._input)
        self._graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self._graph, stream=stream, capture_error_mode="thread_local"):
            self._outputs = compute(self._input)
        torch.cuda.current_stream(example.device).wait_stream(stream)

    def __call__(self, inputs: torch.Tensor) -> Outputs:
        """Replays the graph on ``inputs`` (the captured shape and dtype); returns copies of its outputs.

        Copies, because the next replay overwrites the graph's own outputs while a caller may still
        hold this frame's features.
        """
        self._input.copy_(inputs)
        self._graph.replay()
        return self._outputs._make(output.clone() for output in self._outputs)


class PyramidGraphs:
    """The captured pyramids of one network, by batch shape and settings (see the module's docstring).

    Attributes:
        replays: frames served by a captured graph.
        fallbacks: frames run eagerly, by reason.
    """

    def __init__(self, max_graphs: int = DEFAULT_MAX_GRAPHS) -> None:
        self.graphs: GraphCache[tuple[Any, ...], CapturedCall[Any]] = GraphCache(max_graphs)
        self.replays = 0
        self.fallbacks: Counter[str] = Counter()

    def run(self, runner: NetworkRunner, batch: torch.Tensor, settings: Hashable,
            compute: Callable[[torch.Tensor, StageTimer | None], Outputs], timer: StageTimer | None = None) -> Outputs:
        """``compute(batch, timer)``, replayed from a captured graph where one is (or now can be) captured.

        Args:
            runner: what ``compute`` runs the network with: only PyTorch's kernels can be captured.
            batch: the normalised (B, 3, H, W) input.
            settings: whatever else ``compute`` depends on (extraction settings, precision).
            compute: the pyramid up to its fixed-shape outputs; captured without the timer.
            timer: times a replay as one stage, ``captured pyramid``; a frame that is not replayed is
                timed stage by stage.
        """
        key = (tuple(batch.shape), batch.dtype, settings)
        reason = self._why_eager(runner, batch, key)
        graph = None if reason else self.graphs.get(key) or self._capture(key, batch, lambda x: compute(x, None))
        if graph is None:
            self._fall_back(reason or "its capture failed", tuple(batch.shape))
            return compute(batch, timer)
        with timer.stage("captured pyramid") if timer is not None else nullcontext():
            outputs = graph(batch)
        self.replays += 1
        return outputs

    def _why_eager(self, runner: NetworkRunner, batch: torch.Tensor, key: tuple[Any, ...]) -> str | None:
        """Why this frame runs eagerly, or None when it is replayed or captured now (records the frame's key)."""
        if not _capturable(batch.device):
            return "not on a CUDA device"
        if not isinstance(runner, TorchRunner):
            return f"{type(runner).__name__} runs kernels PyTorch cannot capture"
        if key in self.graphs:
            return None
        if self.graphs.refused(key):
            return "its capture failed"
        return None if self.graphs.admit(key) else "first frame of its size"

    def _capture(self, key: tuple[Any, ...], batch: torch.Tensor,
                 compute: Callable[[torch.Tensor], Outputs]) -> CapturedCall[Outputs] | None:
        """A new graph of ``compute`` for ``key``, kept; None (and ``key`` refused) when capture fails."""
        try:
            graph = CapturedCall(compute, batch)
        except RuntimeError as error:  # what CUDA and the caching allocator raise: an illegal capture, no memory
            self.graphs.refuse(key)
            log.warning("CUDA graph capture of the pyramid failed for input %s, which runs eagerly from now on: %s",
                        tuple(batch.shape), error)
            return None
        dropped = self.graphs.put(key, graph)
        log.info("captured the pyramid of input %s as a CUDA graph%s", tuple(batch.shape),
                 f"; dropped the least recently used one, of input {dropped[0]}" if dropped else "")
        return graph

    def _fall_back(self, reason: str, shape: tuple[int, ...]) -> None:
        self.fallbacks[reason] += 1
        if reason == "first frame of its size":
            log.debug("input %s runs eagerly: %s", shape, reason)
        elif self.fallbacks[reason] == 1:
            log.info("cuda_graphs: input %s runs eagerly (%s); further such frames are counted, not logged",
                     shape, reason)


def _capturable(device: torch.device) -> bool:
    """Whether PyTorch can capture CUDA graphs of work on ``device``."""
    return device.type == "cuda"


# One set of graphs per network object (an R2D2Net or a runner), dropped with it: a reloaded model
# starts afresh. The graphs hold its parameters' memory, never the object itself.
_GRAPHS: weakref.WeakKeyDictionary[object, PyramidGraphs] = weakref.WeakKeyDictionary()


def pyramid_graphs(network: object) -> PyramidGraphs:
    """The captured pyramids of ``network`` (what was passed to the extraction), created on first use."""
    graphs = _GRAPHS.get(network)
    if graphs is None:
        graphs = _GRAPHS[network] = PyramidGraphs()
    return graphs
