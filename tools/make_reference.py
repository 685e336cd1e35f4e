#!/usr/bin/env python3
"""Builds the tiny random MiMo checkpoint and the reference outputs the Rust parity tests use.

The checkpoint is a Qwen2 body (q/k/v bias, untied head, GQA) plus one MTP layer stored under
`model.mtp_layers.0.*` exactly as Xiaomi's HF checkpoints name it. The main model's reference
logits come from `transformers.Qwen2ForCausalLM` (MiMo's HF forward is the plain Qwen2 forward).
HF's remote code never calls the MTP layer, so its reference is computed here in plain torch,
following the vLLM MiMo MTP code described in the MiMo report (pre-final-norm hidden, next-token
embedding zeroed at position 0, input_proj over [hidden; embedding], own decoder block, final
norm, shared lm_head). That torch decoder block is checked against HF's own layers first.

Usage (from the repository root, with torch + transformers installed in .venv):
    .venv/bin/python tools/make_reference.py [--out gpu/tests/fixtures/tiny-mimo]
"""

import argparse
import json
import math
import os

import torch
from safetensors.torch import save_file
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import AutoTokenizer, Qwen2Config, Qwen2ForCausalLM

SEED = 1234
SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
VOCAB_SIZE = 320
CORPUS = [
    "MiMo is a reasoning model trained from scratch with multi-token prediction.",
    "The quick brown fox jumps over the lazy dog. Pack my box with five dozen liquor jugs.",
    "def add(a, b):\n    return a + b\n\nprint(add(2, 3))",
    "Solve for x: 2x + 3 = 11, so x = 4. The answer is \\boxed{4}.",
    "Reinforcement learning with verifiable rewards improves reasoning on math and code.",
    "Unicode: naïve café, 数学, 🤖 robots, Ελληνικά, and emojis 🎉 should round-trip.",
] * 4

CHAT_TEMPLATE = (
    "{%- if messages[0]['role'] == 'system' %}"
    "{{- '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>\\n' }}"
    "{%- else %}{{- '<|im_start|>system\\nYou are MiMo, a helpful assistant.<|im_end|>\\n' }}{%- endif %}"
    "{%- for message in messages %}"
    "{%- if message['role'] not in ['system', 'user', 'assistant'] %}"
    "{{- raise_exception('Unknown role: ' + message['role']) }}{%- endif %}"
    "{%- if message['role'] != 'system' %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'].strip() + '<|im_end|>\\n' }}"
    "{%- endif %}{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)

PROMPTS = [
    "Solve",
    "The quick brown fox",
    "def add(a, b):\n    return",
    "Reinforcement learning with verifiable rewards improves reasoning on",
]
GREEDY_TOKENS = 32


def build_tokenizer(out):
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(CORPUS, trainer)
    tok.save(os.path.join(out, "tokenizer.json"))
    with open(os.path.join(out, "tokenizer_config.json"), "w") as f:
        json.dump(
            {
                "tokenizer_class": "PreTrainedTokenizerFast",
                "bos_token": None,
                "eos_token": "<|im_end|>",
                "pad_token": "<|endoftext|>",
                "model_max_length": 256,
                "chat_template": CHAT_TEMPLATE,
            },
            f,
            indent=2,
        )
    return tok


def tiny_config(vocab_size, eos_ids):
    return dict(
        architectures=["MiMoForCausalLM"],
        model_type="mimo",
        vocab_size=vocab_size,
        hidden_size=64,
        intermediate_size=96,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        hidden_act="silu",
        max_position_embeddings=256,
        rope_theta=640000.0,
        rms_norm_eps=1e-5,
        tie_word_embeddings=False,
        use_sliding_window=False,
        attention_dropout=0.0,
        num_nextn_predict_layers=1,
        eos_token_id=eos_ids,
        torch_dtype="float32",
    )


def randomise(state, gen):
    """Weights large enough that logits are well separated (greedy must not hinge on 1e-6)."""
    out = {}
    for name, t in state.items():
        if name.endswith("norm.weight"):
            out[name] = 1.0 + 0.1 * torch.randn(t.shape, generator=gen)
        elif name.endswith(".bias"):
            out[name] = 0.1 * torch.randn(t.shape, generator=gen)
        elif name == "model.embed_tokens.weight":
            out[name] = torch.randn(t.shape, generator=gen)
        else:
            out[name] = torch.randn(t.shape, generator=gen) / math.sqrt(t.shape[1])
    return out


def rms_norm(x, w, eps):
    var = x.pow(2).mean(-1, keepdim=True)
    return x * torch.rsqrt(var + eps) * w


def rope(x, positions, head_dim, theta):
    # rotate-half (NeoX) layout, as Qwen2.
    inv = 1.0 / theta ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim)
    freqs = positions[:, None].float() * inv[None, :]
    emb = torch.cat([freqs, freqs], -1)
    cos, sin = emb.cos(), emb.sin()
    x1, x2 = x[..., : head_dim // 2], x[..., head_dim // 2 :]
    return x * cos + torch.cat([-x2, x1], -1) * sin


def decoder_block(x, w, p, cfg):
    """One Qwen2 decoder block on a single sequence x [t, hidden], causal, positions 0..t-1."""
    t = x.shape[0]
    nh, nkv = cfg["num_attention_heads"], cfg["num_key_value_heads"]
    hd = cfg["hidden_size"] // nh
    eps = cfg["rms_norm_eps"]
    pos = torch.arange(t)
    h = rms_norm(x, w[p + "input_layernorm.weight"], eps)
    q = h @ w[p + "self_attn.q_proj.weight"].T + w[p + "self_attn.q_proj.bias"]
    k = h @ w[p + "self_attn.k_proj.weight"].T + w[p + "self_attn.k_proj.bias"]
    v = h @ w[p + "self_attn.v_proj.weight"].T + w[p + "self_attn.v_proj.bias"]
    q = rope(q.view(t, nh, hd).transpose(0, 1), pos, hd, cfg["rope_theta"])
    k = rope(k.view(t, nkv, hd).transpose(0, 1), pos, hd, cfg["rope_theta"])
    v = v.view(t, nkv, hd).transpose(0, 1)
    k = k.repeat_interleave(nh // nkv, 0)
    v = v.repeat_interleave(nh // nkv, 0)
    scores = q @ k.transpose(1, 2) / math.sqrt(hd)
    scores = scores + torch.full((t, t), float("-inf")).triu(1)
    a = torch.softmax(scores, -1) @ v
    a = a.transpose(0, 1).reshape(t, nh * hd) @ w[p + "self_attn.o_proj.weight"].T
    x = x + a
    h = rms_norm(x, w[p + "post_attention_layernorm.weight"], eps)
    g = h @ w[p + "mlp.gate_proj.weight"].T
    u = h @ w[p + "mlp.up_proj.weight"].T
    return x + (torch.nn.functional.silu(g) * u) @ w[p + "mlp.down_proj.weight"].T


def main_hidden_prenorm(ids, w, cfg):
    x = w["model.embed_tokens.weight"][ids]
    for i in range(cfg["num_hidden_layers"]):
        x = decoder_block(x, w, f"model.layers.{i}.", cfg)
    return x


def mtp_logits(hidden_prenorm, next_ids, w, cfg):
    """MiMo MTP layer 0 on one sequence: hidden [t, h] at positions 0..t-1, next_ids [t]."""
    p = "model.mtp_layers.0."
    eps = cfg["rms_norm_eps"]
    e = w["model.embed_tokens.weight"][next_ids].clone()
    e[0] = 0.0  # position 0
    e = rms_norm(e, w[p + "token_layernorm.weight"], eps)
    h = rms_norm(hidden_prenorm, w[p + "hidden_layernorm.weight"], eps)
    x = torch.cat([h, e], -1) @ w[p + "input_proj.weight"].T
    x = decoder_block(x, w, p, cfg)
    x = rms_norm(x, w[p + "final_layernorm.weight"], eps)
    return x @ w["lm_head.weight"].T


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="gpu/tests/fixtures/tiny-mimo")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    torch.manual_seed(SEED)
    gen = torch.Generator().manual_seed(SEED)

    tok = build_tokenizer(args.out)
    vocab = tok.get_vocab_size()
    eos_ids = [tok.token_to_id("<|im_end|>"), tok.token_to_id("<|endoftext|>")]
    cfg = tiny_config(vocab, eos_ids)

    hf_cfg = Qwen2Config(**{k: v for k, v in cfg.items() if k not in ("architectures", "model_type", "num_nextn_predict_layers", "torch_dtype")})
    hf_cfg._attn_implementation = "eager"
    model = Qwen2ForCausalLM(hf_cfg).eval()
    weights = randomise(model.state_dict(), gen)
    model.load_state_dict(weights)

    # The MTP layer: a full decoder block plus the four MTP-specific tensors.
    h, i = cfg["hidden_size"], cfg["intermediate_size"]
    kvd = cfg["num_key_value_heads"] * (h // cfg["num_attention_heads"])
    mtp_shapes = {
        "token_layernorm.weight": (h,),
        "hidden_layernorm.weight": (h,),
        "input_proj.weight": (h, 2 * h),
        "input_layernorm.weight": (h,),
        "post_attention_layernorm.weight": (h,),
        "self_attn.q_proj.weight": (h, h),
        "self_attn.q_proj.bias": (h,),
        "self_attn.k_proj.weight": (kvd, h),
        "self_attn.k_proj.bias": (kvd,),
        "self_attn.v_proj.weight": (kvd, h),
        "self_attn.v_proj.bias": (kvd,),
        "self_attn.o_proj.weight": (h, h),
        "mlp.gate_proj.weight": (i, h),
        "mlp.up_proj.weight": (i, h),
        "mlp.down_proj.weight": (h, i),
        "final_layernorm.weight": (h,),
    }
    mtp = randomise({f"model.mtp_layers.0.{n}": torch.empty(s) for n, s in mtp_shapes.items()}, gen)
    all_weights = {**weights, **mtp}
    all_weights = {k: v.contiguous() for k, v in all_weights.items() if "rotary_emb" not in k}
    save_file(all_weights, os.path.join(args.out, "model.safetensors"), metadata={"format": "pt"})
    with open(os.path.join(args.out, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)

    tensors = {}
    prompts = []
    with torch.no_grad():
        for n, text in enumerate(PROMPTS):
            ids = tok.encode(text).ids
            logits = model(torch.tensor([ids])).logits[0]
            hidden = main_hidden_prenorm(torch.tensor(ids), all_weights, cfg)
            mine = hidden_logits = rms_norm(hidden, all_weights["model.norm.weight"], cfg["rms_norm_eps"]) @ all_weights["lm_head.weight"].T
            err = (mine - logits).abs().max().item()
            assert err < 1e-4, f"torch reference block disagrees with transformers by {err}"
            del hidden_logits
            tensors[f"prompt.{n}.logits"] = logits.contiguous()
            if len(ids) > 1:
                tensors[f"prompt.{n}.mtp_logits"] = mtp_logits(hidden[:-1], torch.tensor(ids[1:]), all_weights, cfg).contiguous()
            prompts.append({"text": text, "ids": ids})

        # Greedy continuation of the last prompt by full recomputation (no cache involved).
        ids = list(prompts[-1]["ids"])
        greedy = []
        for _ in range(GREEDY_TOKENS):
            nxt = int(model(torch.tensor([ids])).logits[0, -1].argmax())
            greedy.append(nxt)
            ids.append(nxt)
    save_file(tensors, os.path.join(args.out, "reference.safetensors"))

    hf_tok = AutoTokenizer.from_pretrained(args.out)
    messages = [
        {"role": "user", "content": "  What is 2 + 2?  "},
        {"role": "assistant", "content": "4"},
        {"role": "user", "content": "And 3 + 3? naïve 数学 🤖"},
    ]
    rendered = hf_tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    rendered_no_gen = hf_tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=False)
    reference = {
        "generated_by": "tools/make_reference.py",
        "torch": torch.__version__,
        "transformers": __import__("transformers").__version__,
        "prompts": prompts,
        "greedy": {"prompt": len(prompts) - 1, "ids": greedy},
        "chat": {
            "messages": messages,
            "rendered": rendered,
            "rendered_no_generation_prompt": rendered_no_gen,
            "ids": hf_tok(rendered, add_special_tokens=False)["input_ids"],
        },
    }
    with open(os.path.join(args.out, "reference.json"), "w") as f:
        json.dump(reference, f, indent=1, ensure_ascii=False)
    total = sum(os.path.getsize(os.path.join(args.out, f)) for f in os.listdir(args.out))
    print(f"wrote {args.out} ({total} bytes, vocab {vocab}, greedy {greedy[:8]}...)")


if __name__ == "__main__":
    main()
