"""The extraction settings of a node parameters file (config/r2d2*.yaml), for the benchmarks' --params."""
from __future__ import annotations

from pathlib import Path

import yaml

from r2d2_ros import ExtractionConfig
from r2d2_ros.serving.params import defaults, extraction_config


def extraction_config_of(params_file: Path) -> ExtractionConfig:
    """What the node would extract with ``params_file``: its values over the node's defaults."""
    document = yaml.safe_load(params_file.read_text())
    (node,) = document.values()  # one entry: '/**' or the node's name
    return extraction_config({**defaults(), **node["ros__parameters"]})


def describe(config: ExtractionConfig) -> str:
    """The settings a reader needs to reproduce a timing, on one line."""
    return (f"pyramid scale_f {config.scale_f:.3g}, scales {config.min_scale:g}-{config.max_scale:g}, "
            f"sizes {config.min_size}-{config.max_size} px, top_k {config.top_k}, precision {config.precision}")
