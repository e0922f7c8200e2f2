"""A build cache of exported packages for tests, benchmarks and the default models.

``ensure_package`` exports a checkpoint once into
``.cache/packages/<name>-<fingerprint>/<name>/`` (file-locked, so parallel test sessions
build it once) and reuses it afterwards. The fingerprint covers the checkpoint's files,
the task, the precisions and the code that decides what a package contains: every
``export`` module the pipeline imports (found from the source, not a hand-kept list) and
the package format (service/runtime/manifest.py).
"""

from __future__ import annotations

import ast
import fcntl
import hashlib
from collections.abc import Sequence
from pathlib import Path

from export.pipeline import Progress, export_package, parse_precisions
from export.source import hash_tree
from service.runtime.manifest import VALIDATION_FILE

REPO_ROOT = Path(__file__).resolve().parent.parent
PACKAGE_CACHE = REPO_ROOT / ".cache" / "packages"
_ROOT_MODULE = "export.pipeline"
_FORMAT_FILES = ("service/runtime/manifest.py",)


def _module_path(module: str) -> Path:
    return REPO_ROOT / (module.replace(".", "/") + ".py")


def package_code_files(root_module: str = _ROOT_MODULE) -> list[str]:
    """Repository paths of ``root_module`` and every ``export`` module it imports
    (transitively, also inside functions), plus the package format's files."""
    seen: set[str] = set()
    todo = [root_module]
    while todo:
        module = todo.pop()
        path = _module_path(module)
        if module in seen or module == __name__ or not path.is_file():
            continue
        seen.add(module)
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names: list[str] = []
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module, *(f"{node.module}.{a.name}" for a in node.names)]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            todo += [n for n in names if n.startswith("export.")]
    files = [str(_module_path(m).relative_to(REPO_ROOT)) for m in seen]
    return sorted(files) + list(_FORMAT_FILES)


def _code_hash() -> str:
    digest = hashlib.sha256()
    for rel in package_code_files():
        digest.update(rel.encode())
        digest.update((REPO_ROOT / rel).read_bytes())
    return digest.hexdigest()


# Hashed once, at import: a long-running process keeps the code it imported, so keying its
# packages on files edited since then would cache old-code packages under the new key.
_CODE_HASH = _code_hash()


def package_fingerprint(
    checkpoint_dir: Path, task: str, precisions: Sequence[str], positioned: bool = False
) -> str:
    """Cache key: checkpoint files + export code + task + precisions (+ positioned)."""
    digest = hashlib.sha256()
    parts = [hash_tree(Path(checkpoint_dir)), _CODE_HASH, task, ",".join(precisions)]
    if positioned:
        parts.append("positioned")
    for part in parts:
        digest.update(part.encode())
        digest.update(b"\0")
    return digest.hexdigest()[:16]


def ensure_package(
    checkpoint_dir: str | Path,
    task: str,
    name: str,
    precisions: Sequence[str] = ("fp32", "int8"),
    progress: Progress | None = None,
    positioned: bool = False,
) -> Path:
    """Export once into ``.cache/packages/<name>-<fingerprint>/<name>/`` and reuse it
    (``positioned``: with the positioned decoder pair, export_package's flag)."""
    wanted = parse_precisions(precisions)
    key = package_fingerprint(Path(checkpoint_dir), task, wanted, positioned)
    out_dir = PACKAGE_CACHE / f"{name}-{key}"
    package = out_dir / name
    PACKAGE_CACHE.mkdir(parents=True, exist_ok=True)
    with open(PACKAGE_CACHE / f"{name}-{key}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (package / "manifest.json").is_file() and (package / VALIDATION_FILE).is_file():
            return package
        return export_package(
            checkpoint_dir,
            task,
            name,
            out_dir,
            wanted,
            overwrite=True,
            progress=progress,
            positioned=positioned,
        )
