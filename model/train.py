"""Train Seq2CNN on the IMDB train split (the test split is never read).

    python -m model.train --dataset-path ../shared/data/aclImdb_labeled.tar.gz

Recipe (the defaults, model/MODEL.md's): AdamW (lr 5e-4 warmed up linearly
over 200 steps, then decayed to 0 along a cosine, weight decay 0.01), batches
of 32 reviews grouped by length, word dropout 0.25 (each training review
loses a random 25% of its tokens each epoch), dropout 0.5 before the
classifier, label smoothing 0.1, fp32, 5 epochs. ``--ema-decay`` also keeps
an exponential moving average of the weights, validated beside the raw
weights and saved instead of them if it does better on the held-out reviews.

The last ``--holdout`` reviews of the train split's sample order (balanced,
and of movies not seen in training since the ids group reviews by movie) are
held out for validation. Steps and validation compute the model through
per-batch tables with a gradient that touches only the windows that won the
max over time (:mod:`model.sparse_training`): the reference function and its
exact gradient, several times faster than autograd's dense convolutions. The
final weights are written as safetensors with their sha256.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from common.errors import run_command
from common.progress import progress
from common.text import plain
from model.batching import length_sorted_batches, padded_batch, shuffled_length_batches
from model.network import Seq2CNN, Seq2CNNConfig
from model.paths import MODEL_DIR
from model.sparse_training import table_logits
from model.weights import save_weights
from qsl.locations import DATASET_LOOKUP_HELP
from qsl.reviews import dataset_root
from qsl.token_cache import tokenized_split
from qsl.vocabulary import DEFAULT_VOCABULARY, Vocabulary

log = logging.getLogger("model.train")

#: where a retraining writes its weights unless told otherwise (the shipped ones stay as they are)
RETRAINED_WEIGHTS = MODEL_DIR / "retrained.safetensors"


def pick_device(requested: str) -> torch.device:
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if requested == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda was asked for, but torch sees no CUDA device")
    return torch.device(requested)


@torch.no_grad()
def predict_logits(model: Seq2CNN, token_ids: list[np.ndarray], device: torch.device, batch_size: int = 64, desc: str = "validating") -> np.ndarray:
    """fp32 logits (N, 2), equal to the reference's (padding to 1000) up to rounding."""
    model.eval()
    logits = np.zeros((len(token_ids), 2), dtype=np.float32)
    for batch in progress(length_sorted_batches([len(ids) for ids in token_ids], batch_size), desc=desc, unit="batch", leave=False):
        logits[batch] = table_logits(model, padded_batch([token_ids[i] for i in batch]).to(device)).cpu().numpy()
    return logits


def drop_words(ids: np.ndarray, rate: float, rng: np.random.Generator) -> np.ndarray:
    if rate <= 0 or len(ids) == 0:
        return ids
    return ids[rng.random(len(ids)) >= rate]


def learning_rate_factor(step: int, total_steps: int, warmup_steps: int, schedule: str) -> float:
    """The learning rate at ``step`` as a fraction of the peak: a linear warm-up over ``warmup_steps``, then a
    ``linear`` or ``cosine`` decay to 0 at ``total_steps``."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
    return 0.5 * (1 + math.cos(math.pi * progress)) if schedule == "cosine" else 1 - progress


def train(args: argparse.Namespace) -> dict:
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    device = pick_device(args.device)
    vocabulary = Vocabulary.load(args.vocabulary)
    split = tokenized_split(dataset_root(args.dataset_path), "train", vocabulary)
    n_train = len(split) - args.holdout
    train_ids, train_labels = split.token_ids[:n_train], split.labels[:n_train]
    held_ids, held_labels = split.token_ids[n_train:], split.labels[n_train:]
    log.info("train split: %d reviews for training, %d held out (%d positive)", n_train, len(held_ids), int(held_labels.sum()))

    model = Seq2CNN(Seq2CNNConfig(dropout=args.dropout)).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    steps_per_epoch = math.ceil(n_train / args.batch_size)
    total_steps = steps_per_epoch * args.epochs
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: learning_rate_factor(step, total_steps, args.warmup_steps, args.schedule))
    # weights averaged over the steps (exponential moving average) when --ema-decay is given: validated beside the
    # raw ones each epoch, and saved instead of them if they do better on the held-out reviews at the end
    averaged = torch.optim.swa_utils.AveragedModel(
        model, multi_avg_fn=torch.optim.swa_utils.get_ema_multi_avg_fn(args.ema_decay)) if args.ema_decay else None
    loss_fn = nn.CrossEntropyLoss(label_smoothing=args.label_smoothing)
    history = []
    started = time.perf_counter()
    for epoch in range(1, args.epochs + 1):
        model.train()
        epoch_started = time.perf_counter()
        dropped = [drop_words(ids[:1000], args.word_dropout, rng) for ids in train_ids]
        batches = shuffled_length_batches([len(ids) for ids in dropped], args.batch_size, rng)
        loss_sum, seen = 0.0, 0
        bar = progress(batches, desc=f"epoch {epoch}/{args.epochs}", unit="batch")
        for batch in bar:
            ids = padded_batch([dropped[i] for i in batch]).to(device)
            labels = torch.from_numpy(train_labels[batch]).to(device)
            loss = loss_fn(table_logits(model, ids), labels)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            if averaged is not None:
                averaged.update_parameters(model)
            loss_sum += loss.item() * len(batch)
            seen += len(batch)
            bar.set_postfix(loss=f"{loss_sum / seen:.4f}")
        held_logits = predict_logits(model, held_ids, device)
        held_accuracy = float((held_logits.argmax(1) == held_labels).mean())
        record = {
            "epoch": epoch,
            "train_loss": loss_sum / seen,
            "holdout_accuracy": held_accuracy,
            "epoch_seconds": time.perf_counter() - epoch_started,
        }
        if averaged is not None:
            ema_logits = predict_logits(averaged.module, held_ids, device, desc="validating the average")
            record["holdout_accuracy_ema"] = float((ema_logits.argmax(1) == held_labels).mean())
        history.append(record)
        log.info("epoch %d: train loss %.4f, held-out accuracy %.4f%s (%d reviews), %.0f s",
                 epoch, record["train_loss"], held_accuracy,
                 f", averaged weights {record['holdout_accuracy_ema']:.4f}" if averaged is not None else "",
                 len(held_ids), record["epoch_seconds"])
    wall_seconds = time.perf_counter() - started
    metadata = {"recipe": json.dumps({k: str(v) for k, v in vars(args).items()}), "history": json.dumps(history)}
    use_average = averaged is not None and history[-1]["holdout_accuracy_ema"] > history[-1]["holdout_accuracy"]
    final, metadata["saved_weights"] = (averaged.module, "averaged") if use_average else (model, "last")
    log.info("saving the %s weights (held-out accuracy %.4f)", metadata["saved_weights"],
             history[-1]["holdout_accuracy_ema" if use_average else "holdout_accuracy"])
    digest = save_weights(final, args.output, metadata=metadata)
    log.info("wrote %s (sha256 %s) after %.0f s of training", args.output, digest, wall_seconds)
    return {"history": history, "wall_seconds": wall_seconds, "sha256": digest}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=plain(__doc__), formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset-path", type=Path, help=DATASET_LOOKUP_HELP)
    parser.add_argument("--vocabulary", type=Path, default=DEFAULT_VOCABULARY)
    parser.add_argument("--output", type=Path, default=RETRAINED_WEIGHTS,
                        help="where to write the safetensors weights (default model/retrained.safetensors; use them with run.py "
                             "--model-path); an existing file is never replaced, the shipped weights included")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=5e-4)
    parser.add_argument("--weight-decay", type=float, default=0.01)
    parser.add_argument("--dropout", type=float, default=0.5)
    parser.add_argument("--word-dropout", type=float, default=0.25,
                        help="fraction of each training review's tokens dropped, anew each epoch")
    parser.add_argument("--schedule", choices=["linear", "cosine"], default="cosine", help="decay of the learning rate")
    parser.add_argument("--warmup-steps", type=int, default=200, help="steps of linear warm-up before the decay")
    parser.add_argument("--ema-decay", type=float, default=0.0,
                        help="keep an exponential moving average of the weights with this decay per step (e.g. "
                             "0.999), and save it instead of the last weights if it does better on the held-out "
                             "reviews (default: off)")
    parser.add_argument("--label-smoothing", type=float, default=0.1)
    parser.add_argument("--holdout", type=int, default=1000, help="train reviews held out for validation")
    parser.add_argument("--seed", type=int, default=20261128)
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    parser.add_argument("--threads", type=int, help="torch threads on the CPU (default: torch's own, one per core)")
    parser.add_argument("--log-file", type=Path, help="also write the log here")
    args = parser.parse_args(argv)
    if args.output.exists():  # refused before an hour of training, not after it
        parser.error(f"--output {args.output} exists; an existing weights file is never replaced: pass another "
                     "--output, or move that file away first")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    handlers: list[logging.Handler] = [logging.StreamHandler()]
    if args.log_file:
        handlers.append(logging.FileHandler(args.log_file))
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", handlers=handlers)
    started = time.perf_counter()
    try:
        return run_command(lambda: _train(args), log)
    except KeyboardInterrupt:  # Ctrl-C: a line that says what became of the work, not a traceback
        log.error("interrupted (SIGINT) after %.0f s of training: nothing was written to %s",
                  time.perf_counter() - started, args.output)
        return 130


def _train(args: argparse.Namespace) -> int:
    print(json.dumps(train(args), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
