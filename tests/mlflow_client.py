"""Drives Crucible with the real `mlflow` client; prints the run id as its last line.

Run by tests/tests/mlflow.rs with MLFLOW_TRACKING_URI and MLFLOW_TRACKING_TOKEN set.
"""
import hashlib
import json
import os
import tempfile
import time

import mlflow
import requests
from mlflow.entities import Metric
from mlflow.tracking import MlflowClient

mlflow.set_experiment("crucible-mlflow-test")
with mlflow.start_run(run_name="mlflow-client") as run:
    mlflow.log_param("learning_rate", 0.001)
    mlflow.log_params({"batch_size": 32, "mtp_weight": 0.3})
    mlflow.set_tag("phase", "sft")
    for step in range(5):
        mlflow.log_metric("loss", 1.0 / (step + 1), step=step)
    mlflow.log_metrics({"acc": 0.5, "mtp_acc": 0.4}, step=4)

client = MlflowClient()
got = client.get_run(run.info.run_id)
assert got.data.params["learning_rate"] == "0.001", got.data.params
assert got.info.status == "FINISHED", got.info.status
history = client.get_metric_history(run.info.run_id, "loss")
assert [m.step for m in history] == [0, 1, 2, 3, 4], history
found = client.search_runs([run.info.experiment_id], "params.batch_size = '32'")
assert [r.info.run_id for r in found] == [run.info.run_id], found

# The chart endpoint of MLflow's UI: two runs on one chart, sampled to common steps.
with mlflow.start_run(run_name="long") as long_run:
    now = int(time.time() * 1000)
    client.log_batch(
        long_run.info.run_id,
        metrics=[Metric("loss", 1.0 / (s + 1), now, s) for s in range(100)],
    )
bulk = requests.get(
    os.environ["MLFLOW_TRACKING_URI"] + "/ajax-api/2.0/mlflow/metrics/get-history-bulk-interval",
    params={"run_ids": [run.info.run_id, long_run.info.run_id], "metric_key": "loss", "max_results": 10},
    headers={"Authorization": "Bearer " + os.environ["MLFLOW_TRACKING_TOKEN"]},
    timeout=30,
)
assert bulk.status_code == 200, bulk.text
by_run = {}
for m in bulk.json()["metrics"]:
    by_run.setdefault(m["run_id"], []).append(m["step"])
# Ten steps evenly over 0..99 plus the last, plus each run's own first and last step.
assert by_run[run.info.run_id] == [0, 4], by_run
assert by_run[long_run.info.run_id] == [0, 4, 10, 20, 30, 40, 50, 60, 70, 80, 90, 99], by_run
# Artifacts through MLflow's artifact proxy: a dict, a text, a PNG in a folder, a 100 MB file
# (streamed both ways), listed and downloaded back byte for byte.
PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c489"
    "0000000d49444154789c63000100000500010d0a2db40000000049454e44ae426082"
)
scratch = tempfile.mkdtemp()
with open(os.path.join(scratch, "loss.png"), "wb") as f:
    f.write(PNG)
big = os.path.join(scratch, "big.bin")
digest = hashlib.sha256()
with open(big, "wb") as f:
    for _ in range(100):
        block = os.urandom(1 << 20)
        digest.update(block)
        f.write(block)
with mlflow.start_run(run_name="artifacts") as art_run:
    mlflow.log_dict({"lr": 0.001, "layers": [1, 2]}, "config/params.json")
    mlflow.log_text("hello crucible", "notes.txt")
    mlflow.log_artifact(os.path.join(scratch, "loss.png"), "plots")
    mlflow.log_artifact(big)
listed = sorted((a.path, a.is_dir) for a in client.list_artifacts(art_run.info.run_id))
assert listed == [("big.bin", False), ("config", True), ("notes.txt", False), ("plots", True)], listed
sizes = {a.path: a.file_size for a in client.list_artifacts(art_run.info.run_id, "plots")}
assert sizes == {"plots/loss.png": len(PNG)}, sizes
out = mlflow.artifacts.download_artifacts(run_id=art_run.info.run_id, dst_path=tempfile.mkdtemp())
with open(os.path.join(out, "config", "params.json")) as f:
    assert json.load(f) == {"lr": 0.001, "layers": [1, 2]}
with open(os.path.join(out, "notes.txt")) as f:
    assert f.read() == "hello crucible"
with open(os.path.join(out, "plots", "loss.png"), "rb") as f:
    assert f.read() == PNG
got = hashlib.sha256()
with open(os.path.join(out, "big.bin"), "rb") as f:
    for block in iter(lambda: f.read(1 << 20), b""):
        got.update(block)
assert got.hexdigest() == digest.hexdigest(), "the 100 MB artifact came back changed"
print(run.info.run_id)
