"""Settings: environment with S2S_ prefix, CLI overrides, clear start-up errors."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from service.__main__ import load_settings
from service.settings import Settings

REPO = Path(__file__).resolve().parents[3]


def test_env_and_cli_override(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("S2S_MODELS_DIR", str(tmp_path))
    monkeypatch.setenv("S2S_PORT", "9001")
    monkeypatch.setenv("S2S_API_KEYS", "key-number-1, key-number-2")
    monkeypatch.setenv("S2S_BATCH_MODE", "dynamic")
    s = Settings()
    assert (s.port, s.api_keys, s.batch_mode) == (9001, ["key-number-1", "key-number-2"], "dynamic")
    s = load_settings(["--port", "9002", "--batch-mode", "continuous"])
    assert (s.port, s.batch_mode, s.models_dir) == (9002, "continuous", tmp_path)


def test_json_list_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("S2S_CORS_ORIGINS", '["https://a.example", "https://b.example"]')
    assert Settings(models_dir=tmp_path).cors_origins == ["https://a.example", "https://b.example"]


def test_invalid_settings_exit_2_with_a_clear_message(tmp_path: Path) -> None:
    env = {**os.environ, "S2S_PORT": "not-a-port", "S2S_MODELS_DIR": str(tmp_path)}
    r = subprocess.run(
        [sys.executable, "-m", "service"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 2
    assert "invalid settings" in r.stderr and "S2S_PORT" in r.stderr
    assert "Traceback" not in r.stderr


def test_missing_models_dir_is_reported(tmp_path: Path) -> None:
    r = subprocess.run(
        [sys.executable, "-m", "service", "--models-dir", str(tmp_path / "no")],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 2 and "is not a directory" in r.stderr


def test_every_setting_has_a_flag(tmp_path: Path) -> None:
    from service.cli import build_parser, flag_name

    parser = build_parser("test")
    flags = {option for action in parser._actions for option in action.option_strings}
    assert {flag_name(name) for name in Settings.model_fields} <= flags
    s = load_settings(
        [
            "--models-dir",
            str(tmp_path),
            "--max-batch-tokens",
            "512",
            "--default-timeout-ms",
            "1500",
            "--no-warmup",
            "--api-keys",
            "key-number-1,key-number-2",
            "--intra-op-threads",
            "2",
        ]
    )
    assert (s.max_batch_tokens, s.default_timeout_ms, s.warmup) == (512, 1500.0, False)
    assert s.api_keys == ["key-number-1", "key-number-2"] and s.intra_op_threads == 2


def test_flag_choices_come_from_the_settings(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        load_settings(["--batch-mode", "sometimes"])
    assert "continuous" in capsys.readouterr().err


def test_default_batch_mode_is_the_one_that_holds_mixed_load(tmp_path: Path) -> None:
    # Finding 13: cohort batching collapsed under open-loop mixed load (p99 14.5 s, 529
    # failures) where dynamic held (p99 1.25 s); dynamic stays the default.
    from service.engine import EngineConfig

    assert Settings(models_dir=tmp_path).batch_mode == "dynamic"
    assert EngineConfig().mode == "dynamic"


def test_the_service_shares_one_thread_pool_on_cpu(tmp_path: Path) -> None:
    from service.api.app import load_config

    config = load_config(Settings(models_dir=tmp_path, intra_op_threads=3))
    assert config.shared_thread_pool and config.intra_op_threads == 3


@pytest.mark.parametrize(
    ("name", "value", "replacement"),
    [
        ("S2S_BATCH_MODE", "iteration", "S2S_BATCH_MODE=continuous"),
        ("S2S_BATCH_MODE", "off", "max_batch_size=1"),
        ("S2S_JOIN_EVERY_STEPS", "2", "at every step"),
        ("S2S_ITERATION_SOURCE_SPLIT", "64", "one decoder call per step"),
        ("S2S_RUNTIME_LANES", "2", "shared thread pool"),
        ("S2S_SHARED_THREAD_POOL", "true", "always on"),
        ("S2S_INT8_WEIGHTS", "as_exported", "automatically"),
        ("S2S_SHARED_CROSS_KV", "false", "always share"),
    ],
)
def test_retired_settings_fail_naming_the_replacement(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, value: str, replacement: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ValueError, match=name) as info:
        Settings(models_dir=tmp_path)
    assert replacement in str(info.value)


def test_a_retired_setting_stops_the_server_with_exit_2(tmp_path: Path) -> None:
    env = {**os.environ, "S2S_RUNTIME_LANES": "2", "S2S_MODELS_DIR": str(tmp_path)}
    r = subprocess.run(
        [sys.executable, "-m", "service"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 2
    assert "runtime_lanes (S2S_RUNTIME_LANES) was removed" in r.stderr
    assert "Traceback" not in r.stderr
