"""Train the character CTC acoustic model on the features synthesize.py wrote, on CPU.

Adam (peak learning rate 2e-3, linear warm-up, cosine decay), batches of about
``--batch-seconds`` of speech bucketed by length, SpecAugment (two frequency masks of up to 12
bins, time masks of up to 30 frames, one per 4 s), gradient clipping at 5, convolutions and
linear layers under a bfloat16 autocast where the CPU has bfloat16 instructions
(``--precision``). Every ``--eval-every`` steps: greedy CER on the development set and a
checkpoint. Writes the last model to ``--weights`` (float16 safetensors with the config and
training facts in its metadata).

    python recipes/acoustic_model/train.py --data /work/am-data --steps 10000 --batch-seconds 60 \
        --threads 1 --weights models/weights/char_ctc.safetensors
"""

from __future__ import annotations

import argparse
import math
import os
import time

import numpy as np
import torch

from speechdecode.decoding import GreedyCtcDecoder, char_error_rate
from speechdecode.models.acoustic import AcousticConfig, CharCtcModel, save_acoustic_model

BOUNDARY = 1


def labels(text: str, tokens) -> list[int]:
    """Token ids of ``text``: each word's characters then the word boundary."""
    index = {t: i for i, t in enumerate(tokens)}
    return [i for word in text.split() for i in [*(index[c] for c in word), BOUNDARY]]


class Set:
    def __init__(self, path: str):
        data = torch.load(path)
        self.features, self.texts, self.voices = data["features"], data["texts"], data["voices"]
        self.lengths = data["lengths"]
        self.starts = torch.cumsum(self.lengths, 0) - self.lengths

    def __len__(self) -> int:
        return len(self.texts)

    def batch(self, indices, augment: torch.Generator | None = None):
        lengths = self.lengths[indices]
        x = torch.zeros(len(indices), int(lengths.max()), self.features.shape[1])
        for row, i in enumerate(indices):
            start = int(self.starts[i])
            x[row, : int(lengths[row])] = self.features[start : start + int(lengths[row])].float()
            if augment is not None:
                spec_augment(x[row, : int(lengths[row])], augment)
        return x, lengths


def spec_augment(x: torch.Tensor, g: torch.Generator) -> None:
    """Mask frequency bands and time spans in place with the utterance mean."""
    fill = x.mean()
    for _ in range(2):
        width = int(torch.randint(0, 13, (), generator=g))
        start = int(torch.randint(0, x.shape[1] - width + 1, (), generator=g))
        x[:, start : start + width] = fill
    for _ in range(x.shape[0] // 400 + 1):
        width = int(torch.randint(0, 31, (), generator=g))
        start = int(torch.randint(0, max(1, x.shape[0] - width), (), generator=g))
        x[start : start + width] = fill


def batches(lengths: torch.Tensor, frames_per_batch: int, g: torch.Generator) -> list[list[int]]:
    """Utterances sorted by length, cut into batches of about ``frames_per_batch`` padded frames, shuffled."""
    order = torch.argsort(lengths + torch.randint(0, 50, lengths.shape, generator=g)).tolist()
    result, current = [], []
    for i in order:
        if current and (len(current) + 1) * int(lengths[i]) > frames_per_batch:
            result.append(current)
            current = []
        current.append(i)
    result.append(current)
    return [result[i] for i in torch.randperm(len(result), generator=g).tolist()]


def evaluate(model: CharCtcModel, data: Set, count: int) -> float:
    model.eval()
    decoder = GreedyCtcDecoder(list(model.config.tokens))
    texts = []
    with torch.no_grad():
        for start in range(0, count, 16):
            x, lengths = data.batch(list(range(start, min(count, start + 16))))
            log_probs, out = model(x, lengths)
            texts += [h[0].text for h in decoder(log_probs, out)]
    model.train()
    return char_error_rate(list(data.texts[:count]), texts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="folder with train.pt and dev.pt")
    parser.add_argument("--weights", required=True, help="the safetensors file to write")
    parser.add_argument("--steps", type=int, default=10000)
    parser.add_argument("--batch-seconds", type=float, default=60.0)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--eval-every", type=int, default=250)
    parser.add_argument("--dev-utterances", type=int, default=60)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (more only on an idle machine)")
    parser.add_argument("--channels", type=int, default=AcousticConfig.channels)
    parser.add_argument(
        "--lookahead",
        type=int,
        default=1,
        help="taps of each block's convolution after the current frame (0: a causal model; 1: 0.42 s of "
        "lookahead with the default dilations)",
    )
    parser.add_argument(
        "--precision",
        choices=("auto", "bf16", "fp32"),
        default="auto",
        help="autocast the convolutions and linear layers to bfloat16 (auto: where the CPU has bfloat16 "
        "instructions; 1.6x faster steps on an AVX512-BF16 CPU) or train in float32",
    )
    args = parser.parse_args()
    bf16 = args.precision == "bf16" or (args.precision == "auto" and torch.ops.mkldnn._is_mkldnn_bf16_supported())
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    g = torch.Generator().manual_seed(args.seed)
    train, dev = Set(os.path.join(args.data, "train.pt")), Set(os.path.join(args.data, "dev.pt"))
    config = AcousticConfig(channels=args.channels, lookahead=args.lookahead)
    model = CharCtcModel(config)
    sample = train.features[:: max(1, train.features.shape[0] // 200000)].float()
    model.mean.copy_(sample.mean(0))
    model.std.copy_(sample.std(0).clamp_min(1e-3))
    targets = [torch.tensor(labels(t, config.tokens)) for t in train.texts]
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    warmup = max(1, args.steps // 15)

    def rate(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return 0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, args.steps - warmup)))

    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, rate)
    ctc = torch.nn.CTCLoss(blank=0, zero_infinity=True)
    frames = int(args.batch_seconds * 100)
    print(
        f"{sum(p.numel() for p in model.parameters()):,} parameters, {len(train)} training utterances, "
        f"{'bfloat16' if bf16 else 'float32'} steps",
        flush=True,
    )
    step, begin, losses, loads = 0, time.time(), [], []
    model.train()
    while step < args.steps:
        for indices in batches(train.lengths, frames, g):
            x, lengths = train.batch(indices, augment=g)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                log_probs, out = model(x, lengths)
            y = [targets[i] for i in indices]
            loss = ctc(log_probs.transpose(0, 1), torch.cat(y), out, torch.tensor([len(t) for t in y]))
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
            optimizer.step()
            schedule.step()
            losses.append(loss.item())
            step += 1
            if step % 25 == 0:
                loads.append(os.getloadavg()[0])
                print(
                    f"step {step} loss {np.mean(losses[-25:]):.3f} {time.time() - begin:.0f}s load {loads[-1]:.1f}",
                    flush=True,
                )
            if step % args.eval_every == 0 or step == args.steps:
                cer = evaluate(model, dev, args.dev_utterances)
                print(f"step {step} dev greedy CER {100 * cer:.2f}%", flush=True)
                facts = {"steps": step, "seed": args.seed, "train_utterances": len(train), "dev_cer": cer}
                facts["precision"] = "bfloat16" if bf16 else "float32"
                facts["train_seconds"] = round(time.time() - begin)
                facts["mean_load_average"] = round(float(np.mean(loads)), 2) if loads else None
                save_acoustic_model(model, os.path.join(args.data, f"step{step}.safetensors"), facts)
            if step >= args.steps:
                break
    save_acoustic_model(model, args.weights, facts)
    print(f"wrote {args.weights}", flush=True)


if __name__ == "__main__":
    main()
