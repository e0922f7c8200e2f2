"""Grafana provisioning and the dashboard: loads, queries parse, metric names are real."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from deploy_helpers import DEPLOY, METRIC_NAME, REPO, exported_series, load_yaml, run, tool

GRAFANA = DEPLOY / "grafana"
DASHBOARD = GRAFANA / "dashboards" / "seq2seq-serve.json"


@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return data


def exprs(dashboard: dict[str, Any]) -> dict[str, list[str]]:
    return {p["title"]: [t["expr"] for t in p["targets"]] for p in dashboard["panels"]}


def test_dashboard_loads_with_unique_panels(dashboard: dict[str, Any]) -> None:
    assert dashboard["uid"] == "seq2seq-serve"
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for panel in dashboard["panels"]:
        assert panel["targets"], panel["title"]
        assert panel["datasource"]["uid"] == "${datasource}"
    variables = {v["name"] for v in dashboard["templating"]["list"]}
    used = set(re.findall(r"\$(\w+)", json.dumps(exprs(dashboard))))
    assert used - {"__rate_interval"} <= variables


def test_dashboard_has_the_required_panels(dashboard: dict[str, Any]) -> None:
    text = {title: " ".join(queries) for title, queries in exprs(dashboard).items()}

    def panel_with(*needles: str) -> str:
        found = [t for t, q in text.items() if all(n in q for n in needles)]
        assert found, f"no panel queries {needles}"
        return found[0]

    panel_with("rate(s2s_requests_total")
    latency = panel_with("s2s_request_duration_seconds_bucket")
    for q in ("0.5", "0.95", "0.99"):
        assert f"histogram_quantile({q}," in text[latency]
    panel_with("s2s_queue_depth")
    panel_with("s2s_batch_size_")
    panel_with("rate(s2s_generated_tokens_total")
    assert "reason" in text[panel_with("s2s_rejections_total")]
    panel_with('status=~"5.."')


def test_dashboard_uses_only_exported_metrics(dashboard: dict[str, Any]) -> None:
    used = set(METRIC_NAME.findall(json.dumps(exprs(dashboard))))
    assert used <= exported_series(), used - exported_series()


def test_dashboard_queries_are_valid_promql(dashboard: dict[str, Any], tmp_path: Path) -> None:
    # promtool parses every expression of a rule file: wrap each query as a recording rule
    # after substituting Grafana's variables.
    rules = []
    for i, queries in enumerate(exprs(dashboard).values()):
        for j, query in enumerate(queries):
            query = query.replace("$__rate_interval", "5m")
            query = re.sub(r"\$\w+", ".*", query)
            rules.append({"record": f"dashboard:q{i}_{j}", "expr": query})
    path = tmp_path / "dashboard_rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    result = run([tool("promtool"), "check", "rules", str(path)])
    assert result.returncode == 0, result.stdout + result.stderr


def test_provisioning_points_at_the_dashboard_and_datasource(dashboard: dict[str, Any]) -> None:
    sources = load_yaml(GRAFANA / "provisioning/datasources/prometheus.yml")["datasources"]
    assert [s["type"] for s in sources] == ["prometheus"]
    assert sources[0]["url"] == "http://prometheus:9090"
    provider = load_yaml(GRAFANA / "provisioning/dashboards/seq2seq-serve.yml")["providers"][0]
    mounts = {
        v["target"]: v["source"]
        for v in load_yaml(REPO / "docker-compose.yml")["services"]["grafana"]["volumes"]
        if isinstance(v, dict)
    }
    path = provider["options"]["path"]
    assert (REPO / mounts[path] / DASHBOARD.name).resolve() == DASHBOARD.resolve()
    datasource_var = next(v for v in dashboard["templating"]["list"] if v["name"] == "datasource")
    assert datasource_var["query"] == "prometheus"
