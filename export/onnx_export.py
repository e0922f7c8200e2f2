"""Stage 1: export a checkpoint to ONNX with optimum-onnx (encoder + merged decoder)."""

from __future__ import annotations

import contextlib
import io
import logging
import shutil
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from export.errors import ConversionError
from service.runtime.manifest import DECODER_FILE, ENCODER_FILE

EXPORT_TASK = "text2text-generation-with-past"


@dataclass(frozen=True)
class OnnxPair:
    """An encoder and a merged decoder ONNX file, side by side in one folder."""

    encoder: Path
    decoder: Path

    @property
    def folder(self) -> Path:
        """The folder holding both files."""
        return self.encoder.parent


@dataclass(frozen=True)
class UnmergedDecoders:
    """optimum's two separate decoders (first step / with past), kept for fp16 conversion."""

    first: Path
    with_past: Path


@dataclass(frozen=True)
class ExportedOnnx:
    """Everything the export stage produced."""

    pair: OnnxPair
    unmerged: UnmergedDecoders


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Silence the tracer warnings and progress chatter of torch/transformers/optimum."""
    from transformers.utils import logging as hf_logging

    previous = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    optimum_logger = logging.getLogger("optimum")
    old_level = optimum_logger.level
    optimum_logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            yield None
    finally:
        hf_logging.set_verbosity(previous)
        optimum_logger.setLevel(old_level)


def export_onnx(checkpoint_dir: Path, work_dir: Path) -> ExportedOnnx:
    """Export ``checkpoint_dir`` into ``work_dir``: encoder, merged decoder, and (in
    ``work_dir/unmerged``) the two unmerged decoders the fp16 stage starts from."""
    from optimum.exporters.onnx import main_export

    work_dir.mkdir(parents=True, exist_ok=True)
    try:
        with quiet():
            main_export(
                str(checkpoint_dir),
                output=str(work_dir),
                task=EXPORT_TASK,
                do_validation=False,  # validation is ours, against generate(), later
                local_files_only=True,
            )
    except Exception as exc:  # optimum raises many exception types for unsupported graphs
        raise ConversionError(f"ONNX export of {checkpoint_dir} failed: {exc}") from exc
    encoder, decoder = work_dir / ENCODER_FILE, work_dir / DECODER_FILE
    if not encoder.is_file() or not decoder.is_file():
        found = ", ".join(sorted(p.name for p in work_dir.iterdir()))
        raise ConversionError(
            f"ONNX export did not produce {ENCODER_FILE} and {DECODER_FILE} (got: {found})"
        )
    if any(work_dir.glob("*.onnx_data")) or any(work_dir.glob("*.onnx.data")):
        raise ConversionError("model needs ONNX external data (> 2 GB); not supported yet")
    unmerged_dir = work_dir / "unmerged"
    unmerged_dir.mkdir()
    unmerged = UnmergedDecoders(
        first=unmerged_dir / "decoder_model.onnx",
        with_past=unmerged_dir / "decoder_with_past_model.onnx",
    )
    for path in (unmerged.first, unmerged.with_past):
        if not (work_dir / path.name).is_file():
            raise ConversionError(f"ONNX export did not produce {path.name}")
        (work_dir / path.name).rename(path)
    # Tokenizer and config files come from the checkpoint itself, not from here.
    for other in work_dir.iterdir():
        if other not in (encoder, decoder, unmerged_dir):
            if other.is_dir():
                shutil.rmtree(other)
            else:
                other.unlink()
    return ExportedOnnx(pair=OnnxPair(encoder=encoder, decoder=decoder), unmerged=unmerged)


def merge_into(unmerged: UnmergedDecoders, dst: Path) -> None:
    """Merge a first-step decoder and a with-past decoder into one file (optimum's merge:
    shared weights stored once, ``use_cache_branch`` selects the branch)."""
    from optimum.onnx import merge_decoders

    try:
        # strict=False: only the first-step decoder outputs the cross-attention cache.
        merge_decoders(unmerged.first, unmerged.with_past, save_path=dst, strict=False)
    except Exception as exc:  # optimum raises ValueError / onnx checker errors
        raise ConversionError(f"merging the decoders into {dst.name} failed: {exc}") from exc
