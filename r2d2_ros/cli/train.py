"""r2d2-train: train an R2D2 network on image folders (synthetic pairs) and optional flow pairs.

    r2d2-train --config config/train_default.yaml run.steps=1000 run.device=cuda
    r2d2-train --config config/train_default.yaml --resume        # continue runs/<output>/last.pt
    r2d2-train --config config/train_cpu.yaml --resume-from r2d2_ros/weights/r2d2_ros_default.pt  # next chunk
    r2d2-train --export runs/r2d2_default/best.pt model.pt        # weights + config only, for shipping
    r2d2-train --config config/train_cpu.yaml run.val_pairs=200 --validate a.pt b.pt  # which is better, how sure
    torchrun --nproc_per_node=4 -m r2d2_ros.cli.train --config config/train_default.yaml  # 4 GPUs (DDP)

Under torchrun, run.batch_size is the global batch, split over the processes; rank 0 writes
everything (docs/distributed.md).
"""
from __future__ import annotations

import argparse
import logging
import sys

from pathlib import Path

import yaml

from ..model import CheckpointError, load_checkpoint, save_checkpoint
from ..training import Trainer, load_config
from ..training.config import config_to_dict
from ..training.distributed import from_environment
from ..training.validation import compare_checkpoints, scores_table

__all__ = ["main", "export_model"]

# What a bad config, option or checkpoint raises: a usage error (exit status 2), not a traceback.
_USAGE_ERRORS = (ValueError, FileNotFoundError, CheckpointError)


def export_model(checkpoint: Path, output: Path) -> None:
    """Copies a training checkpoint without its optimizer state (what the package ships)."""
    content = load_checkpoint(checkpoint)
    model = content.arch.build()
    model.load_state_dict(content.state_dict)
    save_checkpoint(output, model, config=content.config, meta={**content.meta, "exported_from": checkpoint.name})


def main(argv: list[str] | None = None) -> int:
    """Trains; 0 when the run finished or was interrupted cleanly (a checkpoint was written), 2 on bad usage."""
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    parser = argparse.ArgumentParser(prog="r2d2-train", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", help="YAML file (sections: model, data, loss, optim, run)")
    parser.add_argument("--resume", action="store_true", help="continue from <run.output>/last.pt")
    parser.add_argument("--resume-from", type=Path, metavar="CHECKPOINT",
                        help="continue from this checkpoint's weights and step (an exported one: fresh optimizer)")
    parser.add_argument("--print-config", action="store_true", help="print the merged configuration and exit")
    parser.add_argument("--export", nargs=2, metavar=("CHECKPOINT", "OUTPUT"),
                        help="write a checkpoint's weights, config and metadata without the optimizer state")
    parser.add_argument("--validate", nargs="+", type=Path, metavar="CHECKPOINT",
                        help="score these checkpoints on the config's validation pairs (run.val_pairs of them) and "
                             "print a table; no training (overrides go before it)")
    parser.add_argument("overrides", nargs="*", help="section.key=value, e.g. run.steps=200 data.crop_size=128")
    args = parser.parse_args(argv)
    if args.export:
        try:
            export_model(*map(Path, args.export))
        except (ValueError, CheckpointError) as error:
            parser.error(str(error))
        return 0
    try:
        config = load_config(args.config, args.overrides)
        if args.print_config:
            print(yaml.safe_dump(config_to_dict(config), sort_keys=False))
            return 0
        if args.validate:
            trainer = Trainer(config, resume=args.resume, resume_from=args.resume_from)
            print(scores_table(compare_checkpoints(trainer, args.validate)))
            return 0
        ranks = from_environment(config.run.device)
    except _USAGE_ERRORS as error:
        parser.error(str(error))
    if not ranks.is_main:
        logging.getLogger().setLevel(logging.WARNING)  # one log: rank 0's
    try:
        trainer = Trainer(config, resume=args.resume, resume_from=args.resume_from, ranks=ranks)
    except _USAGE_ERRORS as error:
        ranks.close()
        parser.error(str(error))
    try:
        last = trainer.fit()
    finally:
        ranks.close()
    logging.getLogger("r2d2-train").info("step %d; checkpoint %s; best validation MMA@3 %.4f", trainer.step, last,
                                         trainer.best_mma)
    return 0


if __name__ == "__main__":
    sys.exit(main())
