"""Drives Crucible with the real `mlflow` client; prints the run id as its last line.

Run by tests/tests/mlflow.rs with MLFLOW_TRACKING_URI and MLFLOW_TRACKING_TOKEN set.
"""
import os
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
print(run.info.run_id)
