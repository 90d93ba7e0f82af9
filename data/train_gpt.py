"""Train data/tiny_gpt.safetensors, the course's character-level GPT on the shipped corpus.

The model is a ``course_lib.models.TinyLM`` (Radford et al. 2018/2019: a decoder-only
Transformer trained on next-token prediction): 4 Pre-LN blocks, width 128, 4 heads, RoPE (Su et
al. 2021; notebook 05 found RoPE and ALiBi the best at the training length), context 128, and the
output layer's weight tied to the token embedding (Press & Wolf 2017, as GPT-2). It trains with
``course_lib.train.train`` on the training split of ``data/shakespeare.txt``
(``course_lib.data.train_val_split``, the split every notebook uses) and is evaluated on the whole
validation split in consecutive windows of 128 characters.

Usage (from the repository root; data/README.md gives the run time on the course's CPU):

    OMP_NUM_THREADS=2 python data/train_gpt.py            # writes data/tiny_gpt.safetensors
    python data/train_gpt.py --steps 20 --out /tmp/t.safetensors   # a quick smoke run

The run is deterministic given ``--seed`` on one machine (the same thread count and PyTorch
build): the initial weights come from ``torch.manual_seed(seed)`` and the batches from a
generator seeded with ``seed + 1``. The checkpoint's safetensors metadata records the model
config, the tokenizer's characters, the corpus SHA-256, the training settings, the seed, the
PyTorch version, the thread count and the validation loss in nats per character, with the bigram
baseline on the same split; not the wall time, so that a rerun on the same machine writes the same
bytes. The script prints the file's SHA-256 and whether it is ``course_lib.pretrained.TINY_GPT_SHA256``,
which ``load_tiny_gpt`` checks (after a deliberate change, put the new one there).
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import math
import time
from pathlib import Path

import torch

from course_lib.data import CORPUS_SHA256, CharTokenizer, get_batch, load_corpus, train_val_split
from course_lib.models import TinyLM, TinyLMConfig, lm_loss
from course_lib.objectives import bigram_loss
from course_lib.pretrained import TINY_GPT_SHA256, tied_tiny_lm
from course_lib.train import TrainConfig, save_checkpoint, train

OUTPUT = Path(__file__).resolve().parent / "tiny_gpt.safetensors"
BLOCK_SIZE = 128  # characters of context per training window
BATCH_SIZE = 32  # windows per step: 4,096 characters
# The fixed slice the tests re-evaluate: the first SLICE_WINDOWS * BLOCK_SIZE validation characters.
SLICE_WINDOWS = 8


def model_config(vocab_size: int) -> TinyLMConfig:
    return TinyLMConfig(
        vocab_size=vocab_size,
        d_model=128,
        n_layers=4,
        n_heads=4,
        d_ff=512,
        max_len=BLOCK_SIZE,
        position="rope",
        placement="pre",
        norm="layer",
        dropout=0.0,
    )


@torch.no_grad()
def windowed_loss(model: TinyLM, ids: torch.Tensor, block_size: int = BLOCK_SIZE) -> float:
    """Mean next-character loss (nats) over ``ids (N,)`` cut into consecutive windows.

    Window ``k`` is ``ids[k * block_size : (k + 1) * block_size + 1]`` (inputs and shifted targets);
    a shorter last window is scored too, so every character after the first is predicted once,
    from between 0 and ``block_size - 1`` characters of context.
    """
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    n_full = (len(ids) - 1) // block_size
    starts = torch.arange(n_full) * block_size
    offsets = torch.arange(block_size)
    for chunk in starts.split(64):
        x = ids[chunk[:, None] + offsets].long()  # (b, T)
        y = ids[chunk[:, None] + offsets + 1].long()  # (b, T)
        _, loss = model(x, y)
        total += loss.item() * y.numel()
        count += y.numel()
    rest = len(ids) - 1 - n_full * block_size
    if rest > 0:
        tail = ids[n_full * block_size :].long()
        _, loss = model(tail[None, :-1], tail[None, 1:])
        total += loss.item() * rest
        count += rest
    model.train(was_training)
    return total / count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1100, help="optimizer steps (default 1100)")
    parser.add_argument("--lr", type=float, default=3e-3, help="peak learning rate (default 3e-3)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the weights and batches (default 0)")
    parser.add_argument("--out", type=Path, default=OUTPUT, help=f"where to write (default {OUTPUT.name})")
    args = parser.parse_args()

    text = load_corpus()  # checks the corpus's SHA-256
    tokenizer = CharTokenizer.from_text(text)
    ids = torch.tensor(tokenizer.encode(text), dtype=torch.uint8)
    train_ids, val_ids = train_val_split(ids)
    bigram = bigram_loss(train_ids, val_ids, tokenizer.vocab_size)

    torch.manual_seed(args.seed)
    config = model_config(tokenizer.vocab_size)
    model = tied_tiny_lm(config)  # head.weight is token_embedding.weight
    n_params = sum(p.numel() for p in model.parameters())
    train_config = TrainConfig(
        steps=args.steps,
        lr=args.lr,
        warmup_steps=min(100, args.steps // 10),
        cosine=True,
        min_lr_ratio=0.1,
        grad_clip=1.0,
        eval_every=max(1, args.steps // 5),
        eval_batches=4,
    )
    batches = torch.Generator().manual_seed(args.seed + 1)
    eval_batches = torch.Generator().manual_seed(args.seed + 2)
    print(f"{n_params:,} parameters, {torch.get_num_threads()} threads, {args.steps} steps")
    start = time.perf_counter()
    history = train(
        model,
        lambda: get_batch(train_ids, BATCH_SIZE, BLOCK_SIZE, batches),
        lm_loss,
        train_config,
        next_eval_batch=lambda: get_batch(val_ids, BATCH_SIZE, BLOCK_SIZE, eval_batches),
        progress=False,
    )
    train_seconds = time.perf_counter() - start
    for step, loss in zip(history.eval_steps, history.eval_loss, strict=True):
        print(f"  step {step:5d}: validation loss (4 random batches) {loss:.3f}")
    val_loss = windowed_loss(model, val_ids)
    slice_loss = windowed_loss(model, val_ids[: SLICE_WINDOWS * BLOCK_SIZE + 1])
    metadata = {
        "model_config": dataclasses.asdict(config),
        "tied_weights": "head.weight = token_embedding.weight",
        "chars": "".join(tokenizer.chars),
        "corpus_sha256": CORPUS_SHA256,
        "train_config": dataclasses.asdict(train_config),
        "batch_size": BATCH_SIZE,
        "block_size": BLOCK_SIZE,
        "steps": args.steps,
        "seed": args.seed,
        "torch_version": torch.__version__,
        "threads": torch.get_num_threads(),
        "n_params": n_params,
        "final_train_loss": history.train_loss[-1],
        "val_loss": val_loss,
        "val_perplexity": math.exp(val_loss),
        "val_slice_windows": SLICE_WINDOWS,
        "val_slice_loss": slice_loss,
        "bigram_val_loss": bigram,
        "evaluation": (
            "mean next-character cross-entropy in nats over the whole validation split "
            "(data.train_val_split, last 10%), in consecutive windows of block_size characters"
        ),
    }
    path = save_checkpoint(model, args.out, metadata)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    print(
        f"trained in {train_seconds:.0f} s; validation loss {val_loss:.4f} nats/char "
        f"(perplexity {math.exp(val_loss):.2f}); bigram {bigram:.4f} (perplexity {math.exp(bigram):.2f}); "
        f"slice of {SLICE_WINDOWS} windows {slice_loss:.6f}"
    )
    print(f"wrote {path}: {path.stat().st_size:,} bytes, sha256 {digest}")
    same = "the same as" if digest == TINY_GPT_SHA256 else "NOT the same as"
    print(f"{same} course_lib.pretrained.TINY_GPT_SHA256 ({TINY_GPT_SHA256})")


if __name__ == "__main__":
    main()
