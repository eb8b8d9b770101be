"""The Experiments pages on a real Airflow API server, with a real login, in headless Chromium.

One Airflow (scheduler, triggerer, dag-processor, api-server; SimpleAuthManager with an admin
and a viewer, and per-DAG read rights for `secret_*` DAGs) runs a small factory experiment;
then the pages are checked from a browser and over HTTP: the plot has one point per evaluation,
the table matches results.jsonl, anonymous callers get 401, a viewer gets 403 for a DAG they
may not read and does not see it listed, and corrupt or missing files are reported on the page.
"""

from __future__ import annotations

import json
import os
import shutil
import urllib.error
import urllib.request
from urllib.parse import quote

import pytest
import yaml

from airflow_tfexp.experiment.evaluation.results import read_results
from tests.e2e.cluster import ROOT, AirflowCluster

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]
ONE_LINER = "from airflow_tfexp.dag_factory import load_experiment_dag\ndag = load_experiment_dag(__file__[:-3] + '.yaml')\n"
PASSWORDS = {"admin": "admin-secret", "viewer": "viewer-secret"}
ARTIFACTS = os.path.join(ROOT, "test-artifacts", "ui")


def experiment(dag_id: str) -> dict:
    return {
        "dag_id": dag_id,
        "schedule_mode": "train_and_evaluate",
        "model_dir": "{{ params.model_dir }}",
        "model_fn": "tests.experiment.tiny_experiment:model_fn",
        "train_input_fn": "tests.experiment.tiny_experiment:train_input_fn",
        "eval_input_fn": "tests.experiment.tiny_experiment:eval_input_fn",
        "params": {"model_dir": "/tmp/unused"},
        "train_steps": 60,
        "eval_steps": None,
        "run_config": {
            "save_checkpoints_steps": 20,
            "keep_checkpoint_max": None,
            "log_step_count_steps": 10,
            "save_summary_steps": 10,
        },
        "exporters": [{"type": "latest"}],
        "evaluation": {"poll_interval": 1, "wait": "defer"},
        "default_args": {"retry_delay": 2},
    }


# A sweep of three trials of the fake estimator (no TensorFlow), in one wave.
SWEEP = {
    "dag_id": "tfexp_ui_sweep",
    "model_dir": "{{ params.model_dir }}",
    "params": {"model_dir": "/tmp/unused"},
    "experiment_fn": "tests.airflow.sweep_experiment:experiment_fn",
    "train_steps": 30,
    "tuning": {
        "search_space": {"x": {"type": "float", "low": 0.0, "high": 1.0}},
        "trials": 3,
        "parallel": 3,
        "sampler": "random",
        "pruner": "none",
        "seed": 2,
    },
}


# Three days of retraining a tiny model: day 1 learns a little and is published (nothing to
# beat), day 2 does not learn (learning rate 0 from the warm start: the same model as
# production, so not better) and is rejected, day 3 trains on from version 1 at five times the
# rate and is published as version 2.
DAYS = [
    ("2026-11-01T00:00:00Z", 0.01),
    ("2026-11-02T00:00:00Z", 0.0),
    ("2026-11-03T00:00:00Z", 0.05),
]


def retraining(publish_dir: str) -> dict:
    return {
        **experiment("tfexp_ui_retraining"),
        "params": {"model_dir": "/tmp/unused", "learning_rate": 0.05},
        "warm_start_from": "latest_blessed",
        "publish_dir": publish_dir,
        "blessing": {"metric": "loss", "mode": "min"},
    }


@pytest.fixture(scope="module")
def ui(tmp_path_factory):
    root = tmp_path_factory.mktemp("ui")
    dags = root / "dags"
    dags.mkdir()
    for dag_id in ("tfexp_ui_demo", "secret_tfexp_ui"):
        (dags / f"{dag_id}.yaml").write_text(yaml.safe_dump(experiment(dag_id)))
        (dags / f"{dag_id}.py").write_text(ONE_LINER)
    (dags / "tfexp_ui_sweep.yaml").write_text(yaml.safe_dump(SWEEP))
    (dags / "tfexp_ui_sweep.py").write_text(ONE_LINER)
    publish_dir = str(root / "models" / "published")
    (dags / "tfexp_ui_retraining.yaml").write_text(yaml.safe_dump(retraining(publish_dir)))
    (dags / "tfexp_ui_retraining.py").write_text(ONE_LINER)
    passwords = root / "passwords.json"
    passwords.write_text(json.dumps(PASSWORDS))
    cluster = AirflowCluster(str(root / "home"), str(dags), executor="LocalExecutor")
    cluster.env.update(
        {
            "AIRFLOW__CORE__AUTH_MANAGER": "tests.ui.restricted_auth_manager.RestrictedAuthManager",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "False",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin,viewer:viewer",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
        }
    )
    cluster.start_components()
    try:
        cluster.token = cluster.login("admin", PASSWORDS["admin"])
        model_dir = str(root / "models" / "good")
        run = cluster.trigger("tfexp_ui_demo", {"model_dir": model_dir}, timeout=400)
        assert run["state"] == "success", cluster.log("scheduler")[-3000:]
        cluster.wait_for(lambda: cluster._dag_exists("secret_tfexp_ui"), 120, "the secret DAG")
        sweep_dir = str(root / "models" / "sweep")
        sweep = cluster.trigger("tfexp_ui_sweep", {"model_dir": sweep_dir}, timeout=400)
        assert sweep["state"] == "success", cluster.log("scheduler")[-3000:]
        days = []
        for day, (logical_date, learning_rate) in enumerate(DAYS):
            conf = {"model_dir": str(root / "models" / f"day{day}"), "learning_rate": learning_rate}
            run_id = cluster.start_run("tfexp_ui_retraining", conf, logical_date=logical_date)
            done = cluster.wait_for_run("tfexp_ui_retraining", run_id, timeout=400)
            assert done["state"] == "success", cluster.log("scheduler")[-3000:]
            days.append({"run_id": run_id, "model_dir": conf["model_dir"]})
        yield {
            "days": days,
            "publish_dir": publish_dir,
            "cluster": cluster,
            "run": run,
            "model_dir": model_dir,
            "root": root,
            "sweep": sweep,
            "sweep_dir": sweep_dir,
        }
    finally:
        cluster.stop()
        os.makedirs(ARTIFACTS, exist_ok=True)
        for name in os.listdir(cluster.home):
            if name.endswith(".log"):
                shutil.copy(os.path.join(cluster.home, name), ARTIFACTS)


def run_path(dag_id: str, run_id: str, api: bool = False) -> str:
    prefix = "/tfexp/api" if api else "/tfexp"
    return f"{prefix}/dags/{quote(dag_id, safe='')}/runs/{quote(run_id, safe='')}"


def status_of(cluster: AirflowCluster, path: str, token: str | None) -> int:
    request = urllib.request.Request(f"http://localhost:{cluster.port}{path}")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status
    except urllib.error.HTTPError as err:
        return err.code


def page(cluster: AirflowCluster, path: str) -> str:
    request = urllib.request.Request(f"http://localhost:{cluster.port}{path}")
    request.add_header("Authorization", f"Bearer {cluster.token}")
    with urllib.request.urlopen(request, timeout=60) as response:
        return response.read().decode()


def test_the_plugin_is_registered_with_its_views(ui):
    plugins = ui["cluster"].api("GET", "/plugins")["plugins"]
    (plugin,) = [p for p in plugins if p["name"] == "airflow_tfexp"]
    assert {v["url_route"] for v in plugin["external_views"]} == {
        "tfexp",
        "tfexp_run",
        "tfexp_trends",
    }
    links = " ".join(map(str, plugin["operator_extra_links"]))
    for name in ("ExperimentMetricsLink", "ModelDirLink", "TensorBoardLink"):
        assert name in links, plugin


def test_anonymous_callers_get_401_and_users_see_only_dags_they_may_read(ui):
    cluster, run = ui["cluster"], ui["run"]
    for path in ("/tfexp/", "/tfexp/api/dags", run_path("tfexp_ui_demo", run["dag_run_id"], True)):
        assert status_of(cluster, path, None) == 401, path
    assert status_of(cluster, "/tfexp/api/dags", "not-a-jwt") == 403
    viewer = cluster.login("viewer", PASSWORDS["viewer"])
    listed = json.loads(
        urllib.request.urlopen(
            urllib.request.Request(
                f"http://localhost:{cluster.port}/tfexp/api/dags",
                headers={"Authorization": f"Bearer {viewer}"},
            ),
            timeout=30,
        ).read()
    )["dag_ids"]
    assert listed == ["tfexp_ui_demo", "tfexp_ui_retraining", "tfexp_ui_sweep"]
    assert json.loads(page(cluster, "/tfexp/api/dags"))["dag_ids"] == [
        "secret_tfexp_ui",
        "tfexp_ui_demo",
        "tfexp_ui_retraining",
        "tfexp_ui_sweep",
    ]
    assert status_of(cluster, run_path("secret_tfexp_ui", "any", True), viewer) == 403
    assert status_of(cluster, run_path("secret_tfexp_ui", "any"), viewer) == 403
    assert status_of(cluster, run_path("tfexp_ui_demo", run["dag_run_id"]), viewer) == 200


def browser(ui: dict):
    """Headless Chromium (Debian's), driven through WebDriver."""
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    options.binary_location = "/usr/bin/chromium"
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--window-size=1400,1800",
        f"--user-data-dir={ui['root'] / 'chromium-profile'}",
    ):
        options.add_argument(flag)
    return webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)


def login(driver, base: str, target: str) -> None:
    """Log in as the viewer through Airflow's login page (the UI's session cookie)."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get(f"{base}/auth/login?next={quote(target)}")
    wait = WebDriverWait(driver, 60)
    wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "input[type=password]")))
    driver.find_element(By.CSS_SELECTOR, "input:not([type=password])").send_keys("viewer")
    driver.find_element(By.CSS_SELECTOR, "input[type=password]").send_keys(PASSWORDS["viewer"])
    driver.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    wait.until(lambda d: "_token" in {c["name"] for c in d.get_cookies()})


def test_the_browser_shows_one_point_per_evaluation_and_the_table_of_results(ui):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    cluster, run, model_dir = ui["cluster"], ui["run"], ui["model_dir"]
    results = read_results(model_dir, "continuous")
    assert len(results) == 4  # checkpoints 0, 20, 40, 60
    driver = browser(ui)
    try:
        base = f"http://localhost:{cluster.port}"
        target = run_path("tfexp_ui_demo", run["dag_run_id"])
        login(driver, base, target)
        wait = WebDriverWait(driver, 60)
        driver.get(base + target)
        wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "table.evaluations")))

        loss_chart = driver.find_element(By.CSS_SELECTOR, "svg[aria-label='evaluation loss']")
        points = loss_chart.find_elements(By.CSS_SELECTOR, "circle.eval-point")
        assert [int(float(p.get_attribute("data-step"))) for p in points] == [
            r["global_step"] for r in results
        ]
        for point, record in zip(points, results, strict=True):
            assert float(point.get_attribute("data-value")) == pytest.approx(
                record["metrics"]["loss"], rel=1e-9
            )
        rows = driver.find_elements(By.CSS_SELECTOR, "table.evaluations tr.evaluation")
        assert [int(r.get_attribute("data-step")) for r in rows] == [
            r["global_step"] for r in results
        ]
        for row, record in zip(rows, results, strict=True):
            for metric in ("loss", "accuracy"):
                cell = row.find_element(By.CSS_SELECTOR, f"td[data-metric='{metric}']")
                assert float(cell.text) == pytest.approx(record["metrics"][metric], rel=1e-5)
        train_points = driver.find_elements(By.CSS_SELECTOR, "circle.train-point")
        assert len(train_points) >= 6  # training loss every 10 steps, read from TensorBoard files
        os.makedirs(ARTIFACTS, exist_ok=True)
        screenshot = os.path.join(ARTIFACTS, "experiments_run.png")
        driver.save_screenshot(screenshot)
        print(f"screenshot: {screenshot}")
        assert os.path.getsize(screenshot) > 10_000
        check_the_sweep_view(driver, base, ui)
    finally:
        driver.quit()


def check_the_sweep_view(driver, base: str, ui: dict) -> None:
    """The sweep's run page: a row per trial (params, objective, state), a point per trial in
    the chart, and each trial's link landing on its section (its own evaluations)."""
    from selenium.webdriver.common.by import By

    from airflow_tfexp.experiment.tuning.study import StudySpec, open_study

    spec = StudySpec.from_value(
        {
            "name": "tfexp_ui_sweep",
            "search_space": SWEEP["tuning"]["search_space"],
            "sampler": "random",
            "pruner": "none",
        }
    )
    trials = open_study(spec, ui["sweep_dir"]).get_trials()
    assert [t.state.name for t in trials] == ["COMPLETE"] * 3
    driver.get(base + run_path("tfexp_ui_sweep", ui["sweep"]["dag_run_id"]))
    rows = driver.find_elements(By.CSS_SELECTOR, "table.trials tr.trial")
    assert [int(r.get_attribute("data-trial")) for r in rows] == [0, 1, 2]
    for row, trial in zip(rows, trials, strict=True):
        objective = row.find_element(By.CSS_SELECTOR, "td[data-objective]").text
        assert float(objective) == pytest.approx(trial.value, rel=1e-5)
        x = row.find_element(By.CSS_SELECTOR, "td[data-param='x']").text
        assert float(x) == pytest.approx(trial.params["x"], rel=1e-5)
        assert row.get_attribute("data-state") == "complete"
    best = min(trials, key=lambda t: t.value).number
    assert driver.find_element(By.CSS_SELECTOR, "tr.trial.best").get_attribute("data-trial") == str(
        best
    )
    points = driver.find_elements(By.CSS_SELECTOR, "svg circle.trial-point")
    assert len(points) == 3 + 3  # each trial, and the best so far after each
    driver.save_screenshot(os.path.join(ARTIFACTS, "experiments_sweep.png"))
    link = rows[best].find_element(By.CSS_SELECTOR, "a.trial-link")
    link.click()
    section = driver.find_element(By.CSS_SELECTOR, f"section#trial-{best}")
    assert section.get_attribute("data-model-dir").endswith(f"/trials/{best}")
    assert section.find_elements(By.CSS_SELECTOR, "table.evaluations tr.evaluation")


def test_corrupt_or_missing_files_are_reported_on_the_page(ui):
    cluster = ui["cluster"]
    bad = str(ui["root"] / "models" / "bad")
    run = cluster.trigger("tfexp_ui_demo", {"model_dir": bad}, timeout=400)
    assert run["state"] == "success"
    results = os.path.join(bad, "eval_continuous", "results.jsonl")
    with open(results, "a") as handle:
        handle.write("{not json\n")
        handle.write('{"global_step": 80, "metrics": {"loss": 0.5}}\n')
    events = sorted(f for f in os.listdir(bad) if f.startswith("events.out.tfevents."))
    with open(os.path.join(bad, events[0]), "wb") as handle:
        handle.write(b"\x00garbage" * 10)
    with open(os.path.join(bad, "blessing.json"), "w") as handle:
        handle.write("{oops")
    html = page(cluster, run_path("tfexp_ui_demo", run["dag_run_id"]))
    assert "Some files could not be read" in html
    assert "results.jsonl: line 5 is not valid JSON" in html
    assert "no readable scalar summaries" in html
    assert "blessing.json is not valid JSON" in html
    assert 'data-step="80"' in html  # the readable lines are still shown

    shutil.rmtree(bad)
    html = page(cluster, run_path("tfexp_ui_demo", run["dag_run_id"]))
    assert "empty or missing" in html
    data = json.loads(page(cluster, run_path("tfexp_ui_demo", run["dag_run_id"], True)))
    assert data["models"][0]["evaluations"] == {} and data["models"][0]["problems"]


def test_the_trends_page_plots_three_days_of_retraining_and_the_published_versions(ui):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    cluster, days = ui["cluster"], ui["days"]
    path = "/tfexp/dags/tfexp_ui_retraining/trends"
    assert status_of(cluster, "/tfexp/api/dags/tfexp_ui_retraining/trends", None) == 401
    for limit in ("0", "-1", "501", "abc"):  # 1 to 500 runs, not clamped in silence
        api = f"/tfexp/api/dags/tfexp_ui_retraining/trends?limit={limit}"
        assert status_of(cluster, api, cluster.token) == 422, limit
    assert status_of(cluster, f"{path}?limit=0", cluster.token) == 422
    trends = json.loads(page(cluster, "/tfexp/api/dags/tfexp_ui_retraining/trends"))
    runs = trends["runs"]
    assert [r["run_id"] for r in runs] == [d["run_id"] for d in days]  # oldest first
    assert [r["date"][:10] for r in runs] == ["2026-11-01", "2026-11-02", "2026-11-03"]
    assert [r["outcome"] for r in runs] == ["published", "rejected", "published"]
    assert [r["published_version"] for r in runs] == [1, None, 2]
    finals = []
    for row, day in zip(runs, days, strict=True):
        last = max(
            (r for name in ("default", "continuous") for r in read_results(day["model_dir"], name)),
            key=lambda r: r["global_step"],
        )
        assert row["final"]["global_step"] == last["global_step"] == 60
        assert row["final"]["metrics"]["loss"] == pytest.approx(last["metrics"]["loss"])
        finals.append(row["final"]["metrics"]["loss"])
    assert runs[0]["published_model"] is None  # nothing published before day 1
    assert runs[1]["published_model"]["loss"] == pytest.approx(finals[0], rel=1e-4)
    (published,) = trends["publish_dirs"]
    assert published["publish_dir"] == ui["publish_dir"]
    assert published["versions"] == [1, 2] and published["latest"]["version"] == 2

    driver = browser(ui)
    try:
        base = f"http://localhost:{cluster.port}"
        login(driver, base, path)
        driver.get(base + path)
        WebDriverWait(driver, 60).until(
            ec.presence_of_element_located((By.CSS_SELECTOR, "table.trend-runs"))
        )
        chart = driver.find_element(By.CSS_SELECTOR, "svg[aria-label='loss']")

        def values(series: str) -> list[float]:
            points = chart.find_elements(
                By.CSS_SELECTOR, f"circle.trend-point[data-series='{series}']"
            )
            return [float(p.get_attribute("data-value")) for p in points]

        assert values("final evaluation") == pytest.approx(finals)
        assert values("published") == pytest.approx([finals[0], finals[2]])
        assert values("rejected") == pytest.approx([finals[1]])
        assert len(values("published model (re-evaluated)")) == 2
        rows = driver.find_elements(By.CSS_SELECTOR, "tr.trend-run")
        assert [r.get_attribute("data-outcome") for r in rows] == [
            "published",
            "rejected",
            "published",
        ][::-1]  # newest first in the table
        versions = driver.find_elements(By.CSS_SELECTOR, ".published-version")
        assert [v.text for v in versions] == ["1", "2"]
        assert driver.find_element(By.CSS_SELECTOR, ".latest-version").text == "2"
        os.makedirs(ARTIFACTS, exist_ok=True)
        screenshot = os.path.join(ARTIFACTS, "experiments_trends.png")
        driver.save_screenshot(screenshot)
        assert os.path.getsize(screenshot) > 10_000
        # choosing the metrics: only accuracy
        driver.get(base + path + "?metrics=accuracy")
        charts = driver.find_elements(By.CSS_SELECTOR, "svg.chart")
        assert [c.get_attribute("aria-label") for c in charts] == ["accuracy"]
    finally:
        driver.quit()
