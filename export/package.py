"""Atomic package writing: build in a hidden temp dir next to the target, then rename."""

from __future__ import annotations

import re
import shutil
import tempfile
from pathlib import Path
from types import TracebackType

from export.errors import OutputError, PackageExistsError, UsageError

NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def check_name(name: str) -> None:
    """Package names become directory names: keep them simple."""
    if not NAME_PATTERN.match(name):
        raise UsageError(
            f"invalid package name {name!r}: use letters, digits, '.', '_' and '-' "
            "(starting with a letter or digit)"
        )


class PackageWriter:
    """Context manager giving a temporary directory that becomes ``out_dir/name`` on commit.

    On any exception the temporary directory is removed: a failed export leaves nothing
    behind. ``commit()`` replaces an existing package only when ``overwrite`` is set, and
    then the old one is moved aside before the new one is renamed in.
    """

    def __init__(self, out_dir: Path, name: str, overwrite: bool) -> None:
        check_name(name)
        self.out_dir, self.name, self.overwrite = Path(out_dir), name, overwrite
        self.target = self.out_dir / name
        self.check_target()
        self.dir: Path | None = None

    def check_target(self) -> None:
        """Refuse early (before any work) when the package exists and may not be replaced."""
        if self.target.exists() and not self.overwrite:
            raise PackageExistsError(
                f"package {self.target} already exists (use --overwrite to replace it)"
            )
        if self.target.exists() and not self.target.is_dir():
            raise OutputError(f"{self.target} exists and is not a directory")

    def __enter__(self) -> Path:
        try:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            self.dir = Path(tempfile.mkdtemp(prefix=f".{self.name}.tmp-", dir=self.out_dir))
            self.dir.chmod(0o755)  # mkdtemp creates 0700; the package is shared read-only data
        except OSError as exc:
            raise OutputError(f"cannot write to output directory {self.out_dir}: {exc}") from exc
        return self.dir

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.dir is not None and self.dir.exists():
            shutil.rmtree(self.dir, ignore_errors=True)
        if isinstance(exc, OSError):
            raise OutputError(f"writing the package into {self.out_dir} failed: {exc}") from exc

    def commit(self) -> Path:
        """Rename the finished temp dir to ``out_dir/name`` (replacing it if allowed)."""
        assert self.dir is not None, "commit() outside the with block"
        self.check_target()
        old: Path | None = None
        try:
            if self.target.exists():
                old = Path(tempfile.mkdtemp(prefix=f".{self.name}.old-", dir=self.out_dir))
                self.target.rename(old / self.name)
            self.dir.rename(self.target)
        except OSError as exc:
            if old is not None and (old / self.name).exists() and not self.target.exists():
                (old / self.name).rename(self.target)  # put the previous package back
            raise OutputError(
                f"cannot move the package into place at {self.target}: {exc}"
            ) from exc
        finally:
            if old is not None:
                shutil.rmtree(old, ignore_errors=True)
        self.dir = None
        return self.target
