"""What the Experiments page reads from a model dir (local and gs://), without TensorFlow in
the reader: evaluations, training scalars from TensorBoard event files, checkpoints, exports."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from airflow_tfexp.experiment import RunConfig
from airflow_tfexp.experiment.evaluation.results import read_results
from airflow_tfexp.experiment.storage.fs import filesystem, join
from airflow_tfexp.plugins.charts import line_chart
from airflow_tfexp.plugins.run_data import read_run_data
from tests.experiment.tiny_experiment import experiment_fn


def test_a_trained_model_dir_reads_back_whole(model_dir):
    experiment = experiment_fn(
        RunConfig(model_dir=model_dir), {"train_steps": 40, "log_step_count_steps": 10}
    )
    experiment.train()
    for checkpoint in experiment.checkpoints():
        experiment.evaluate_checkpoint(checkpoint.checkpoint_path, name="continuous")
    experiment.export()
    data = read_run_data(model_dir)
    assert data.problems == []
    assert [r["global_step"] for r in data.evaluations["continuous"]] == [0, 20, 40]
    assert data.evaluations["continuous"] == read_results(model_dir, "continuous")
    assert data.metric_names == ["loss", "accuracy"]
    steps = [step for step, _ in data.training["loss"]]
    assert steps == [10, 20, 30, 40]  # a summary every 10 steps, read without TensorFlow
    assert [c["global_step"] for c in data.checkpoints] == [0, 20, 40]
    assert all(c["evaluated_by"] == ["continuous"] for c in data.checkpoints)
    (export,) = data.exports["latest"]
    assert "saved_model.pb" in filesystem(export).listdir(export)


def test_bad_files_are_problems_not_errors(tmp_path):
    model_dir = str(tmp_path)
    path = join(model_dir, "eval_continuous", "results.jsonl")
    filesystem(path).write_bytes(
        path, b'{"global_step": 5, "metrics": {"loss": 1.0}}\n[1, 2]\n{broken\n'
    )
    filesystem(model_dir).write_bytes(join(model_dir, "run.json"), b"not json")
    filesystem(model_dir).write_bytes(join(model_dir, "events.out.tfevents.1.host"), b"\xff" * 40)
    data = read_run_data(model_dir)
    assert [r["global_step"] for r in data.evaluations["continuous"]] == [5]
    problems = "\n".join(data.problems)
    assert "results.jsonl: line 2 is not a JSON record (an object), skipped" in problems
    assert "results.jsonl: line 3 is not valid JSON" in problems
    assert "run.json is not valid JSON" in problems
    assert "no readable scalar summaries" in problems


def test_a_chart_has_one_point_per_value_and_says_when_empty():
    svg = line_chart("evaluation loss", {"continuous": [(0, 2.0), (20, 1.0), (40, 0.5)]}, "p")
    assert svg.count('class="p"') == 3
    assert 'data-step="20" data-value="1.0"' in svg
    assert "no data yet" in line_chart("evaluation loss", {"continuous": []})


def test_the_plugin_and_the_reader_import_no_tensorflow():
    code = textwrap.dedent("""
        import sys
        import airflow_tfexp.plugins.experiments, airflow_tfexp.plugins.run_data
        print(sorted(m for m in ("tensorflow", "keras") if m in sys.modules))
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "[]"


def test_a_sweep_snapshot_is_read_field_by_field_and_a_hostile_one_stays_harmless(tmp_path):
    import json

    from airflow_tfexp.plugins.app import render_page, run_view, templates

    model_dir = str(tmp_path)
    snapshot = {
        "study": "s",
        "metric": "loss",
        "mode": "min",
        "trials_total": 4,
        "best": 1,
        "trials": [
            {
                "number": 0,
                "params": {"x": 0.5},
                "state": "complete",
                "value": 0.4,
                "wave": "manual__1",
            },
            {
                "number": 1,
                "params": {"x": 0.3},
                "state": "complete",
                "value": 0.1,
                "wave": "manual__1",
            },
            {
                "number": 2,
                "params": {"x": 0.9},
                "state": "pruned",
                "value": "NaN",
                "pruned_at_step": 10,
            },
            {"number": "3", "params": {}, "state": "complete"},
            {
                "number": 4,
                "params": {"x": "<script>"},
                "state": "evil",
                "wave": '../../x"><script>',
            },
        ],
    }
    (tmp_path / "sweep.json").write_text(json.dumps(snapshot))
    data = read_run_data(model_dir)
    sweep = data.sweep
    assert [t["number"] for t in sweep["trials"]] == [0, 1, 2, 4]
    assert any("trial 3: not a trial" in p for p in data.problems)
    assert sweep["trials"][2]["value"] is None and sweep["trials"][2]["pruned_at_step"] == 10
    assert sweep["trials"][3]["state"] == "unknown" and sweep["trials"][3]["wave"] is None
    html = render_page(templates(), "run.html", dag_id="d", run_id="r", models=run_view([data]))
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert 'href="/tfexp/dags/d/runs/manual__1#trial-1"' in html
    assert html.count('class="trial-link"') == 2  # no link for a wave that is not a run id
    (tmp_path / "sweep.json").write_text("[1, 2")
    assert read_run_data(model_dir).sweep is None
    assert any("sweep" in p and "not valid JSON" in p for p in read_run_data(model_dir).problems)


def test_a_hostile_sweep_snapshot_neither_hangs_nor_breaks_the_page(tmp_path):
    """Many distinct params, a trial number or value of 400 digits: bounded, reported."""
    import json

    from airflow_tfexp.plugins.app import render_page, run_view, templates

    rows = [
        {"number": i, "params": {f"p{i}a": 1, f"p{i}b": 2}, "state": "complete"}
        for i in range(1000)
    ]
    rows.append({"number": 10**400, "state": "complete", "value": 1.0})
    rows.append({"number": 1001, "params": {"big": 10**400}, "state": "complete", "value": 10**400})
    (tmp_path / "sweep.json").write_text(json.dumps({"trials": rows, "mode": "min"}))
    data = read_run_data(str(tmp_path))
    assert len(data.sweep["param_names"]) == 20
    assert any("2,001 distinct params, the first 20 shown" in p for p in data.problems)
    big = next(t for t in data.sweep["trials"] if t["number"] == 1001)
    assert big["value"] is None and isinstance(big["params"]["big"], str)
    html = render_page(templates(), "run.html", dag_id="d", run_id="r", models=run_view([data]))
    assert len(html) < 5_000_000 and html.count('class="trial') >= 1000
    assert not [p for p in data.problems if p.startswith("sweep chart")]  # it was drawn
    assert 'aria-label="loss per trial (min)"' in html or "per trial (min)" in html
