"""schemathesis hooks for tests/tests/api_contract.rs.

Two things a JSON Schema cannot carry, and nothing else:

1. NDJSON bodies (`POST /runs/{id}/metrics/bulk`, `POST /datasets/import`): the document
   describes them as an array of rows; on the wire each row is one line.
2. Rules across fields, which the document states in words. A request the generator meant to be
   valid is brought within them before it is sent, so that a refusal of it is a real mismatch:
   - an eval job's `ks` are at most its `n_samples` (without `n_samples`, the preset decides n
     per benchmark, so `ks` is left out);
   - a training job's `config.kind` is the job's kind, its schedule's `warmup` at most `steps`,
     and a scratch architecture's heads divide evenly and its context holds a row;
   - an RL job's `mini_batches` are at most `groups_per_batch x group_size`;
   - an imported dataset's rows have the fields its `kind` needs.
Requests generated to be invalid are sent as generated.
"""

import json

import schemathesis


@schemathesis.serializer("application/x-ndjson")
def ndjson(ctx, value):
    rows = value if isinstance(value, list) else [value]
    return "".join(json.dumps(row) + "\n" for row in rows).encode("utf-8")


def _positive(case):
    meta = case.meta
    return meta is not None and meta.generation.mode.is_positive


def _eval(spec):
    n = spec.get("n_samples")
    if n is None:
        spec.pop("ks", None)
    elif isinstance(spec.get("ks"), list):
        spec["ks"] = [min(int(k), int(n)) for k in spec["ks"]]


def _train(kind, spec):
    config = spec.get("config")
    if not isinstance(config, dict):
        return
    config["kind"] = kind
    schedule = config.get("schedule")
    steps = config.get("steps")
    if isinstance(schedule, dict) and isinstance(steps, (int, float)):
        schedule["warmup"] = min(schedule.get("warmup", 0), int(steps))
    scratch = (config.get("init") or {}).get("scratch")
    if isinstance(scratch, dict) and isinstance(scratch.get("architecture"), dict):
        arch = scratch["architecture"]
        heads = int(arch["num_attention_heads"])
        arch["num_key_value_heads"] = 1
        arch["hidden_size"] = heads * max(1, int(arch["hidden_size"]) // heads)
        arch["max_position_embeddings"] = max(int(arch["max_position_embeddings"]), int(config["seq_len"]))


def _rl(spec):
    config = spec.get("config")
    if isinstance(config, dict):
        rollouts = int(config.get("groups_per_batch", 16)) * int(config.get("group_size", 8))
        if "mini_batches" in config:
            config["mini_batches"] = min(int(config["mini_batches"]), rollouts)
        elif rollouts < 2:
            config["mini_batches"] = rollouts


def _job(body):
    spec = body.get("spec") if isinstance(body, dict) else None
    if not isinstance(spec, dict):
        return
    kind = spec.get("kind")
    if kind == "eval":
        _eval(spec)
    elif kind in ("pretrain", "sft"):
        _train(kind, spec)
    elif kind == "rl":
        _rl(spec)


# The fields each dataset kind needs, with values that satisfy them.
_ROW_FIELDS = {
    "math": {"problem": "What is 1+1?", "answer": "2"},
    "code": {"prompt": "Return 1.", "tests": ["assert f() == 1"]},
    "choice": {"question": "Pick A.", "choices": ["yes", "no"], "answer": "A", "labels": ["A", "B"]},
    "text": {},
}


def _dataset(case):
    fields = _ROW_FIELDS.get((case.query or {}).get("kind"), {})
    if isinstance(case.body, list):
        case.body = [{**row, **fields} if isinstance(row, dict) else row for row in case.body]


@schemathesis.hook
def map_case(ctx, case):
    if not _positive(case):
        return case
    label = case.operation.label
    if label == "POST /api/v1/jobs":
        _job(case.body)
    elif label == "POST /api/v1/datasets/import":
        _dataset(case)
    return case
