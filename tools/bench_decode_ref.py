#!/usr/bin/env python3
"""Reference side of `crucible bench decode`: greedy decode tokens/s of transformers (torch, eager
attention, f32) on a checkpoint folder, measured exactly like the Rust side: random prompt ids, one
prefill, then `new_tokens - 1` single-token steps with the KV cache, argmax each step. It runs on
the CPU, or on the GPU when CRUCIBLE_DEVICE=cuda (the same variable that moves the Rust side).

Prints one JSON line: {"tok_s": decode tokens/s over all rows, "prefill_s": seconds}.
"""

import argparse
import json
import os
import time

import torch
from transformers import AutoConfig, Qwen2ForCausalLM


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--batch", type=int, required=True)
    ap.add_argument("--prompt-len", type=int, required=True)
    ap.add_argument("--new-tokens", type=int, required=True)
    args = ap.parse_args()

    torch.manual_seed(0)
    config = AutoConfig.for_model("qwen2", **json.load(open(f"{args.model}/config.json")))
    model = Qwen2ForCausalLM.from_pretrained(
        args.model, config=config, dtype=torch.float32, attn_implementation="eager"
    ).eval()
    device = "cuda" if os.environ.get("CRUCIBLE_DEVICE") == "cuda" else "cpu"
    model = model.to(device)
    ids = torch.randint(0, config.vocab_size, (args.batch, args.prompt_len)).to(device)

    def sync():
        if device == "cuda":
            torch.cuda.synchronize()

    def run(new_tokens):
        with torch.inference_mode():
            sync()
            t0 = time.perf_counter()
            out = model(input_ids=ids, use_cache=True)
            past = out.past_key_values
            nxt = out.logits[:, -1].argmax(-1, keepdim=True)
            sync()
            t1 = time.perf_counter()
            for _ in range(new_tokens - 1):
                out = model(input_ids=nxt, past_key_values=past, use_cache=True)
                past = out.past_key_values
                nxt = out.logits[:, -1].argmax(-1, keepdim=True)
            sync()
            t2 = time.perf_counter()
        return t1 - t0, t2 - t1

    run(3)  # warm-up
    prefill, decode = run(args.new_tokens)
    print(json.dumps({"tok_s": args.batch * (args.new_tokens - 1) / decode, "prefill_s": prefill}))


if __name__ == "__main__":
    main()
