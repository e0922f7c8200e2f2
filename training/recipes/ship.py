"""Copy an exported package into the repository, keeping only some precision variants.

``python -m training.recipes.ship --package .cache/train/package/multi30k-en-de
--out models/multi30k-en-de --keep int8 --description "..."``

The committed demo package has to stay small (the repository holds at most 40 MB of
model files), so variants can be left out; the manifest is rewritten to list only the
variants that are really there, because the runtime chooses a precision from it.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

from service.runtime.manifest import Manifest


def ship(
    package: Path,
    out: Path,
    keep: list[str],
    description: str | None,
    source_ref: str | None = None,
) -> Manifest:
    """Copy ``package`` to ``out`` with only the ``keep`` variants; return the new manifest.

    ``source_ref`` replaces the manifest's source reference (an exporter's local path says
    nothing to a reader of the committed package; how to rebuild it does).
    """
    manifest = Manifest.load(package)
    missing = [p for p in keep if p not in manifest.variants]
    if missing:
        raise ValueError(f"{package} has no {', '.join(missing)} variant")
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=out.parent))
    try:
        ignore = shutil.ignore_patterns(*[p for p in manifest.variants if p not in keep])
        shutil.copytree(package, staging, ignore=ignore, dirs_exist_ok=True)
        shipped = manifest.model_copy(
            update={
                "variants": {p: v for p, v in manifest.variants.items() if p in keep},
                "description": description or manifest.description,
                "source": manifest.source.model_copy(
                    update={"ref": source_ref or manifest.source.ref}
                ),
            }
        )
        shipped.write(staging)
        Manifest.load(staging).verify_files(staging)
        if out.exists():
            shutil.rmtree(out)
        staging.chmod(0o755)
        staging.rename(out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return shipped


def main(argv: list[str] | None = None) -> None:
    """CLI entry point."""
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--package", type=Path, required=True, help="exported package directory")
    p.add_argument("--out", type=Path, required=True, help="destination package directory")
    p.add_argument("--keep", default="int8", help="comma list of variants to keep")
    p.add_argument("--description", default=None, help="new manifest description")
    p.add_argument("--source-ref", default=None, help="new manifest source reference")
    p.add_argument(
        "--description-file", type=Path, default=None, help="read the description from a file"
    )
    args = p.parse_args(argv)
    description = args.description
    if args.description_file is not None:
        description = " ".join(args.description_file.read_text(encoding="utf-8").split())
    manifest = ship(args.package, args.out, args.keep.split(","), description, args.source_ref)
    print(f"{args.out}: variants {', '.join(manifest.variants)}")


if __name__ == "__main__":
    main()
