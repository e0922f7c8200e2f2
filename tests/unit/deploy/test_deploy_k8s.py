"""Kubernetes manifests: schema-valid for a current Kubernetes, and consistent together."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from deploy_helpers import K8S, REPO, exported_series, load_yaml, setting_env_names

# The newest Kubernetes the installed kubernetes-validate knows (1.37 with 1.37.0).
KUBERNETES_VERSION = kubernetes_validate.latest_version()
# Custom resources (no schema in kubernetes-validate) and non-resource files; checked below.
NOT_CORE = {"kustomization.yaml", "servicemonitor.yaml", "config.yaml"}
FLAVOURS = ("cpu", "gpu")


def manifests() -> list[Path]:
    return sorted(p for p in K8S.rglob("*.yaml") if p.name not in NOT_CORE)


def docs(flavour: str) -> dict[str, dict[str, Any]]:
    """The resources `kubectl apply -k deploy/k8s/<flavour>` creates, by kind."""
    out: dict[str, dict[str, Any]] = {}

    def walk(folder: Path) -> None:
        for entry in load_yaml(folder / "kustomization.yaml")["resources"]:
            target = (folder / entry).resolve()
            if target.is_dir():
                walk(target)
            else:
                doc = load_yaml(target)
                out[doc["kind"]] = doc

    walk(K8S / flavour)
    return out


def container(flavour: str) -> dict[str, Any]:
    (server,) = docs(flavour)["Deployment"]["spec"]["template"]["spec"]["containers"]
    result: dict[str, Any] = server
    return result


def test_current_kubernetes_version() -> None:
    major, minor, *_ = (int(x) for x in KUBERNETES_VERSION.split("."))
    assert (major, minor) >= (1, 33)


@pytest.mark.parametrize("path", manifests(), ids=lambda p: str(p.relative_to(K8S)))
def test_manifest_is_valid_kubernetes(path: Path) -> None:
    for doc in yaml.safe_load_all(path.read_text()):
        # strict: unknown fields (typos) are errors too
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)


def test_validation_catches_a_typo() -> None:
    doc = load_yaml(K8S / "cpu/deployment.yaml")
    doc["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)


def test_kustomizations_cover_every_manifest() -> None:
    used: set[Path] = set()
    for kustomization in K8S.rglob("kustomization.yaml"):
        for entry in load_yaml(kustomization)["resources"]:
            target = (kustomization.parent / entry).resolve()
            assert target.exists(), f"{kustomization}: {entry}"
            used.add(target)
    in_flavours = {p.resolve() for p in K8S.glob("*/*.yaml")} - {
        p.resolve() for p in K8S.glob("*/kustomization.yaml")
    }
    adapter = {p.resolve() for p in (K8S / "prometheus-adapter").glob("*.yaml")}
    assert in_flavours - adapter <= used, (in_flavours - adapter) - used


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_selectors_ports_and_names_line_up(flavour: str) -> None:
    d = docs(flavour)
    assert set(d) >= {
        "Namespace", "ConfigMap", "PersistentVolumeClaim", "Service", "Deployment",
        "HorizontalPodAutoscaler", "PodDisruptionBudget", "ServiceMonitor",
    }  # fmt: skip
    deployment = d["Deployment"]
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    assert d["Service"]["spec"]["selector"].items() <= pod_labels.items()
    assert d["PodDisruptionBudget"]["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    service_labels = d["Service"]["metadata"]["labels"]
    assert d["ServiceMonitor"]["spec"]["selector"]["matchLabels"].items() <= service_labels.items()
    port_names = {p["name"] for p in container(flavour)["ports"]}
    (service_port,) = d["Service"]["spec"]["ports"]
    assert service_port["targetPort"] in port_names
    assert [e["port"] for e in d["ServiceMonitor"]["spec"]["endpoints"]] == [service_port["name"]]
    assert d["ServiceMonitor"]["spec"]["endpoints"][0]["path"] == "/metrics"
    target = d["HorizontalPodAutoscaler"]["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", deployment["metadata"]["name"])
    assert "replicas" not in deployment["spec"], "the HPA owns the replica count"
    namespaces = {doc["metadata"].get("namespace") for k, doc in d.items() if k != "Namespace"}
    assert namespaces == {d["Namespace"]["metadata"]["name"]}


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_probes_drain_and_security(flavour: str) -> None:
    d = docs(flavour)
    server = container(flavour)
    assert server["startupProbe"]["httpGet"]["path"] == "/health"
    assert server["livenessProbe"]["httpGet"]["path"] == "/health"
    assert server["readinessProbe"]["httpGet"]["path"] == "/ready"
    pod = d["Deployment"]["spec"]["template"]["spec"]
    drain = float(d["ConfigMap"]["data"]["S2S_DRAIN_GRACE_S"])
    pre_stop = float(server["lifecycle"]["preStop"]["exec"]["command"][-1])
    assert pod["terminationGracePeriodSeconds"] > drain + pre_stop
    dockerfile_user = next(
        line.split()[1] for line in (REPO / "Dockerfile").read_text().splitlines()
        if line.startswith("USER ")
    )  # fmt: skip
    assert str(pod["securityContext"]["runAsUser"]) == dockerfile_user.split(":")[0]
    assert pod["securityContext"]["runAsNonRoot"] is True
    mounts = {m["mountPath"]: m for m in server["volumeMounts"]}
    assert mounts["/models"]["readOnly"] is True
    assert d["ConfigMap"]["data"]["S2S_MODELS_DIR"] == "/models"


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_settings_are_real(flavour: str) -> None:
    d = docs(flavour)
    env = set(d["ConfigMap"]["data"]) | {e["name"] for e in container(flavour).get("env", [])}
    assert env <= setting_env_names(), env - setting_env_names()


def test_gpu_flavour_requests_a_gpu_and_cpu_flavour_does_not() -> None:
    gpu, cpu = container("gpu")["resources"], container("cpu")["resources"]
    assert gpu["limits"]["nvidia.com/gpu"] == "1"
    assert "nvidia.com/gpu" not in cpu.get("limits", {})
    assert "nvidia.com/gpu" not in cpu.get("requests", {})
    assert {"name": "S2S_DEVICE", "value": "cuda"} in container("gpu")["env"]
    assert container("gpu")["image"].endswith(":gpu")
    assert container("cpu")["image"].endswith(":cpu")


def test_hpa_metric_is_served_by_the_adapter_rule() -> None:
    hpa = docs("cpu")["HorizontalPodAutoscaler"]
    assert hpa["apiVersion"] == "autoscaling/v2"
    (metric,) = hpa["spec"]["metrics"]
    assert metric["type"] == "Pods"
    name = metric["pods"]["metric"]["name"]
    rules = load_yaml(K8S / "prometheus-adapter/config.yaml")["rules"]
    served = [r for r in rules if r["name"]["as"] == name]
    assert len(served) == 1
    assert served[0]["seriesQuery"].split("{")[0] in exported_series()
    assert set(served[0]["resources"]["overrides"]) == {"namespace", "pod"}
    configmap = load_yaml(K8S / "prometheus-adapter/configmap.yaml")
    assert configmap["data"]["config.yaml"] == (K8S / "prometheus-adapter/config.yaml").read_text()
