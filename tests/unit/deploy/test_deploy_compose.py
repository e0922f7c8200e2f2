"""docker-compose.yml against the compose-spec JSON schema, plus what the schema can't see."""

from __future__ import annotations

import copy
import importlib.resources
import json
import re
from typing import Any

import jsonschema
import pytest
from deploy_helpers import REPO, load_yaml, setting_env_names


@pytest.fixture(scope="module")
def validator() -> jsonschema.protocols.Validator:
    # The compose-spec schema as vendored by check-jsonschema (PyPI), so no network.
    text = (
        importlib.resources.files("check_jsonschema.builtin_schemas.vendor")
        .joinpath("compose-spec.json")
        .read_text()
    )
    schema = json.loads(text)
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema, format_checker=cls.FORMAT_CHECKER)


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data: dict[str, Any] = load_yaml(REPO / "docker-compose.yml")
    return data


def errors(validator: jsonschema.protocols.Validator, doc: dict[str, Any]) -> list[str]:
    return [e.message for e in validator.iter_errors(doc)]


def test_compose_file_matches_the_compose_spec(
    validator: jsonschema.protocols.Validator, compose: dict[str, Any]
) -> None:
    assert errors(validator, compose) == []


@pytest.mark.parametrize(
    "mutate",
    [
        lambda d: d["services"]["s2s"].update(portz=["8000:8000"]),
        lambda d: d["services"]["s2s-gpu"]["deploy"]["resources"].update(reservation={}),
        lambda d: d["services"]["prometheus"].update(volumes="./deploy/prometheus"),
        lambda d: d["services"]["s2s"].update(stop_grace_period=["60s"]),
    ],
    ids=["typo-key", "typo-nested-key", "wrong-type", "wrong-duration-type"],
)
def test_schema_rejects_typical_mistakes(
    validator: jsonschema.protocols.Validator, compose: dict[str, Any], mutate: Any
) -> None:
    broken = copy.deepcopy(compose)
    mutate(broken)
    assert errors(validator, broken)


def test_cpu_by_default_gpu_in_a_profile(compose: dict[str, Any]) -> None:
    services = compose["services"]
    cpu, gpu = services["s2s"], services["s2s-gpu"]
    assert "profiles" not in cpu and "deploy" not in cpu
    assert cpu["build"]["args"]["ONNXRUNTIME"] == "onnxruntime"
    assert cpu["environment"]["S2S_DEVICE"] == "cpu"
    assert gpu["profiles"] == ["gpu"]
    assert "args" not in gpu["build"], "the GPU image is the Dockerfile's default build"
    assert gpu["environment"]["S2S_DEVICE"] == "cuda"
    (device,) = gpu["deploy"]["resources"]["reservations"]["devices"]
    assert device["driver"] == "nvidia" and "gpu" in device["capabilities"]
    for name in ("prometheus", "grafana"):
        assert "profiles" not in services[name]


def test_server_environment_uses_real_settings(compose: dict[str, Any]) -> None:
    known = setting_env_names()
    for name in ("s2s", "s2s-gpu"):
        service = compose["services"][name]
        env = service["environment"]
        assert set(env) <= known, set(env) - known
        assert env["S2S_MODELS_DIR"] == "/models"
        assert any(v["target"] == "/models" and v["read_only"] for v in service["volumes"])
        grace = re.fullmatch(r"(\d+)s", service["stop_grace_period"])
        assert grace is not None
        assert int(grace.group(1)) > float(env["S2S_DRAIN_GRACE_S"])


def test_bind_mounts_exist(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        for volume in service.get("volumes", []):
            if (
                isinstance(volume, dict)
                and volume["type"] == "bind"
                and "$" not in volume["source"]
            ):
                assert (REPO / volume["source"]).exists(), f"{name}: {volume['source']}"
