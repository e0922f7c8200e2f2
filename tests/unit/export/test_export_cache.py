"""The export cache's key covers the code that decides what a package contains."""

from __future__ import annotations

import export.pipeline
from export.cache import ensure_package, package_code_files


def test_the_key_covers_every_export_module_the_pipeline_uses() -> None:
    files = package_code_files()
    for needed in (
        "export/pipeline.py",
        "export/quantize.py",
        "export/int8_per_row.py",  # missing from the hand-kept list this replaced
        "export/validate.py",
        "service/runtime/manifest.py",
    ):
        assert needed in files
    # Not the cache itself, nor modules the pipeline does not use.
    assert "export/cache.py" not in files and "export/evaluate.py" not in files


def test_the_old_import_path_still_works() -> None:
    assert export.pipeline.ensure_package is ensure_package
