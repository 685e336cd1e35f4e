#!/usr/bin/env python3
"""Reference side of `crucible bench train`: training tokens/s of transformers' Qwen2 (torch, CPU,
eager attention, f32, AdamW) on the same architecture as Crucible's small model, measured like the
Rust side: fixed-size blocks of random token ids, forward + backward + optimizer step, `warmup`
untimed steps then `steps` timed ones. Qwen2 has no MTP layer, so the peer does strictly less work
per token than Crucible's MiMo (decoder + MTP layer).

Prints one JSON line: {"tok_s": tokens per second over the timed steps}.
"""

import argparse
import json
import time

import torch
from transformers import AutoConfig, Qwen2ForCausalLM


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", required=True, help="config.json of the benchmarked model")
    ap.add_argument("--rows", type=int, required=True)
    ap.add_argument("--seq-len", type=int, required=True)
    ap.add_argument("--steps", type=int, required=True)
    ap.add_argument("--warmup", type=int, required=True)
    args = ap.parse_args()

    torch.manual_seed(0)
    fields = json.load(open(args.config))
    fields.pop("architectures", None)
    fields.pop("model_type", None)
    config = AutoConfig.for_model("qwen2", **fields)
    model = Qwen2ForCausalLM._from_config(config, attn_implementation="eager").float().train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, betas=(0.9, 0.95), weight_decay=0.1)
    ids = torch.randint(0, config.vocab_size, (args.rows, args.seq_len))

    def step():
        loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)

    for _ in range(args.warmup):
        step()
    start = time.perf_counter()
    for _ in range(args.steps):
        step()
    seconds = time.perf_counter() - start
    print(json.dumps({"tok_s": args.rows * args.seq_len * args.steps / seconds}))


if __name__ == "__main__":
    main()
