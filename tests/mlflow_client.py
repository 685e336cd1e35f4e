"""Drives Crucible with the real `mlflow` client; prints the run id as its last line.

Run by tests/tests/mlflow.rs with MLFLOW_TRACKING_URI and MLFLOW_TRACKING_TOKEN set.
"""
import mlflow
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
print(run.info.run_id)
