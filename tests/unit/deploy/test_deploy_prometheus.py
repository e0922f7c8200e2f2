"""Prometheus scrape config and alerting rules (promtool), against the real metric names."""

from __future__ import annotations

from deploy_helpers import DEPLOY, METRIC_NAME, REPO, exported_series, load_yaml, run, tool

PROM = DEPLOY / "prometheus"


def test_promtool_accepts_the_config() -> None:
    result = run([tool("promtool"), "check", "config", "prometheus.yml"], cwd=PROM)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 rule files found" in result.stdout


def test_promtool_accepts_the_rules() -> None:
    result = run([tool("promtool"), "check", "rules", "alerts.yml"], cwd=PROM)
    assert result.returncode == 0, result.stdout + result.stderr


def test_alerts_fire_on_bad_series_and_not_on_good_ones() -> None:
    # alerts_test.yml feeds synthetic series and states which alerts must (not) fire.
    result = run([tool("promtool"), "test", "rules", "alerts_test.yml"], cwd=PROM)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_the_required_alerts_exist_with_severity_and_summary() -> None:
    rules = [r for g in load_yaml(PROM / "alerts.yml")["groups"] for r in g["rules"]]
    names = {r["alert"] for r in rules}
    # error ratio, queue saturation, p99 latency, a replica not ready
    assert {"S2SHighErrorRatio", "S2SQueueSaturated", "S2SHighP99Latency"} <= names
    assert {"S2SModelNotReady", "S2SReplicaDown"} <= names
    for rule in rules:
        assert rule["labels"]["severity"] in {"page", "warn"}
        assert rule["annotations"]["summary"]
    tested = load_yaml(PROM / "alerts_test.yml")
    covered = {t["alertname"] for case in tested["tests"] for t in case["alert_rule_test"]}
    assert names == covered, f"alerts without a promtool test: {names - covered}"


def test_rules_use_only_exported_metrics() -> None:
    exported = exported_series()
    for group in load_yaml(PROM / "alerts.yml")["groups"]:
        for rule in group["rules"]:
            used = set(METRIC_NAME.findall(rule["expr"]))
            assert used or "up{" in rule["expr"], rule["alert"]
            assert used <= exported, f"{rule['alert']}: unknown {used - exported}"


def test_scrape_targets_are_the_compose_services() -> None:
    config = load_yaml(PROM / "prometheus.yml")
    job = next(j for j in config["scrape_configs"] if j["job_name"] == "seq2seq-serve")
    names = {n for sd in job["dns_sd_configs"] for n in sd["names"]}
    compose = load_yaml(REPO / "docker-compose.yml")["services"]
    assert names == {"s2s", "s2s-gpu"} and names <= set(compose)
    assert {sd["port"] for sd in job["dns_sd_configs"]} == {8000}
