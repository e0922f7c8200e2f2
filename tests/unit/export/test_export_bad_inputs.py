"""Bad input to ``python -m export``: one clear line on stderr, non-zero exit, nothing written."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from export.__main__ import main

REPO_ROOT = Path(__file__).resolve().parents[3]


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = main(list(argv))
    err = capsys.readouterr().err.strip()
    return code, err


def _assert_one_line_error(code: int, err: str, *needles: str) -> None:
    assert code != 0
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, err
    for needle in needles:
        assert needle in lines[0], lines[0]
    assert "Traceback" not in err


def _assert_nothing_written(out_dir: Path) -> None:
    assert not out_dir.exists() or list(out_dir.iterdir()) == []


@pytest.fixture(scope="module")
def bert_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random BERT checkpoint (encoder only), built from a config."""
    from transformers import BertConfig, BertModel

    path = tmp_path_factory.mktemp("bert")
    config = BertConfig(
        vocab_size=64,
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
    )
    BertModel(config).save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def gpt2_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random GPT-2 checkpoint (decoder only), built from a config."""
    from transformers import GPT2Config, GPT2LMHeadModel

    path = tmp_path_factory.mktemp("gpt2")
    GPT2LMHeadModel(GPT2Config(vocab_size=64, n_embd=16, n_layer=1, n_head=2)).save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def pegasus_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random Pegasus checkpoint (a summarization-only family), built from a config."""
    from transformers import PegasusConfig, PegasusForConditionalGeneration

    path = tmp_path_factory.mktemp("pegasus")
    config = PegasusConfig(
        vocab_size=64,
        d_model=16,
        encoder_layers=1,
        decoder_layers=1,
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        encoder_ffn_dim=32,
        decoder_ffn_dim=32,
    )
    PegasusForConditionalGeneration(config).save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def marian_dir(tiny_checkpoint: Callable[[str], Path]) -> Path:
    return tiny_checkpoint("marian")


def test_missing_source(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    out = tmp_path / "out"
    code, err = _run(
        capsys,
        str(tmp_path / "nope"),
        "--task",
        "translation",
        "--name",
        "x",
        "--out-dir",
        str(out),
    )
    _assert_one_line_error(code, err, "does not exist")
    _assert_nothing_written(out)


def test_unknown_hub_id_offline(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "out"
    code, err = _run(
        capsys,
        "someorg/no-such-model",
        "--task",
        "translation",
        "--name",
        "x",
        "--out-dir",
        str(out),
    )
    _assert_one_line_error(code, err, "someorg/no-such-model", "hub")
    _assert_nothing_written(out)


def test_source_is_a_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    source = tmp_path / "model.bin"
    source.write_bytes(b"\0")
    out = tmp_path / "out"
    code, err = _run(
        capsys, str(source), "--task", "translation", "--name", "x", "--out-dir", str(out)
    )
    _assert_one_line_error(code, err, "is a file")
    _assert_nothing_written(out)


def test_unreadable_config(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    source = tmp_path / "ckpt"
    source.mkdir()
    (source / "config.json").write_text("{broken")
    out = tmp_path / "out"
    code, err = _run(
        capsys, str(source), "--task", "translation", "--name", "x", "--out-dir", str(out)
    )
    _assert_one_line_error(code, err, "unreadable")
    _assert_nothing_written(out)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads every file regardless of permissions")
def test_permission_denied_source(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, marian_dir: Path
) -> None:
    source = tmp_path / "ckpt"
    shutil.copytree(marian_dir, source)
    source.chmod(0)
    try:
        code, err = _run(
            capsys, str(source), "--task", "translation", "--name", "x", "--out-dir", str(tmp_path)
        )
    finally:
        source.chmod(0o755)
    _assert_one_line_error(code, err, "not readable")


@pytest.mark.parametrize("which", ["bert", "gpt2"])
def test_not_an_encoder_decoder(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, bert_dir: Path, gpt2_dir: Path, which: str
) -> None:
    source = bert_dir if which == "bert" else gpt2_dir
    out = tmp_path / "out"
    code, err = _run(
        capsys, str(source), "--task", "translation", "--name", "x", "--out-dir", str(out)
    )
    _assert_one_line_error(code, err, "not an encoder-decoder", which)
    _assert_nothing_written(out)


def test_missing_tokenizer(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, marian_dir: Path
) -> None:
    source = tmp_path / "ckpt"
    source.mkdir()
    for name in ("config.json", "model.safetensors"):
        shutil.copyfile(marian_dir / name, source / name)
    out = tmp_path / "out"
    code, err = _run(
        capsys, str(source), "--task", "translation", "--name", "x", "--out-dir", str(out)
    )
    _assert_one_line_error(code, err, "tokenizer")
    _assert_nothing_written(out)


@pytest.mark.parametrize(
    ("flag", "value", "needle"),
    [("--task", "poetry", "unknown task 'poetry'"), ("--precision", "fp32,int4", "'int4'")],
)
def test_unknown_task_or_precision(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    marian_dir: Path,
    flag: str,
    value: str,
    needle: str,
) -> None:
    args = {"--task": "translation", "--precision": "fp32", flag: value}
    out = tmp_path / "out"
    code, err = _run(
        capsys,
        str(marian_dir),
        *[x for kv in args.items() for x in kv],
        "--name",
        "x",
        "--out-dir",
        str(out),
    )
    _assert_one_line_error(code, err, needle)
    assert code == 2
    _assert_nothing_written(out)


def test_task_that_does_not_fit(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, pegasus_dir: Path
) -> None:
    out = tmp_path / "out"
    code, err = _run(
        capsys, str(pegasus_dir), "--task", "translation", "--name", "x", "--out-dir", str(out)
    )
    _assert_one_line_error(code, err, "'translation'", "pegasus", "summarization")
    _assert_nothing_written(out)


def test_bad_package_name(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, marian_dir: Path
) -> None:
    code, err = _run(
        capsys,
        str(marian_dir),
        "--task",
        "translation",
        "--name",
        "../escape",
        "--out-dir",
        str(tmp_path / "o"),
    )
    _assert_one_line_error(code, err, "invalid package name")
    assert not (tmp_path / "escape").exists()


def test_existing_package_without_overwrite(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, marian_dir: Path
) -> None:
    existing = tmp_path / "out" / "x"
    existing.mkdir(parents=True)
    (existing / "keep.txt").write_text("old")
    code, err = _run(
        capsys,
        str(marian_dir),
        "--task",
        "translation",
        "--name",
        "x",
        "--out-dir",
        str(tmp_path / "out"),
    )
    _assert_one_line_error(code, err, "already exists", "--overwrite")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["x"]
    assert (existing / "keep.txt").read_text() == "old"


def test_output_dir_not_writable(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, marian_dir: Path
) -> None:
    # A regular file where a parent directory should be fails like a permission or disk
    # error would (an OSError while creating the package), and works even as root.
    blocker = tmp_path / "blocker"
    blocker.write_text("")
    code, err = _run(
        capsys,
        str(marian_dir),
        "--task",
        "translation",
        "--name",
        "x",
        "--out-dir",
        str(blocker / "sub"),
    )
    _assert_one_line_error(code, err, "cannot write to output directory")
    assert blocker.read_text() == ""


def test_entrypoint_exit_code(tmp_path: Path) -> None:
    """The real ``python -m export`` process exits non-zero with the one-line message."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "export",
            str(tmp_path / "missing"),
            "--task",
            "translation",
            "--name",
            "x",
            "--out-dir",
            str(tmp_path / "out"),
        ],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines()[-1].startswith("error: SOURCE")
    assert not (tmp_path / "out").exists()
