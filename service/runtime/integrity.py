"""Package integrity: the files a runtime loads against the manifest's sizes and sha256.

Hashing reads every byte of the files it checks once (sha256 runs at roughly 0.5-1 GB/s
per core: a 300 MB int8 Marian package adds well under a second to its start-up; the
tiny test packages a few milliseconds). Only the tokenizer files and the variant that is
loaded are checked.
"""

from __future__ import annotations

from pathlib import Path

from service.runtime.manifest import Manifest, PackageError, file_entry


class ChecksumMismatchError(PackageError):
    """A package file's size or sha256 differs from its manifest (``file``: the path
    inside the package, never the server's absolute path)."""

    def __init__(self, file: str) -> None:
        super().__init__(f"{file}: size or sha256 differs from the manifest")
        self.file = file


def verify_package(manifest: Manifest, root: Path, precisions: list[str]) -> None:
    """Raise ChecksumMismatchError for the first file that does not match (a missing
    file is a PackageError)."""
    entries = list(manifest.tokenizer.files)
    for precision in precisions:
        variant = manifest.variants[precision]
        entries += [variant.encoder, variant.decoder]
        if variant.positioned is not None:
            entries += [variant.positioned.decoder, variant.positioned.cross_kv]
    for entry in entries:
        try:
            actual = file_entry(root / entry.path, root)
        except (OSError, PackageError) as exc:
            raise PackageError(f"{entry.path}: missing or unreadable") from exc
        if actual.bytes != entry.bytes or actual.sha256 != entry.sha256:
            raise ChecksumMismatchError(str(entry.path))
