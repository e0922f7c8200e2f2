"""The shared ORT thread pool: a process-wide mode, so it is tested in a child process.

In the child, two runtimes of the tiny positioned Marian load after ``share_thread_pool``;
every session must run on the shared pool (no pool of its own), and the tokens (batched
generate and the positioned batch) must equal what per-session pools give here.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from service.runtime import GenerationOptions, load_runtime
from service.runtime.thread_pool import shared_pool_size
from tests.support.positioned import SENTENCES, positioned_package

pytestmark = pytest.mark.slow

CHILD = """
import json, sys
from service.runtime import GenerationOptions, load_runtime, share_thread_pool
from service.runtime.thread_pool import shared_pool_size
assert shared_pool_size() is None
assert share_thread_pool(2) == 2 and share_thread_pool(3) == 2  # the first size stays
package, sentences = sys.argv[1], json.loads(sys.argv[2])
runtimes = [load_runtime(package, device="cpu", precision="fp32", positioned=True) for _ in "ab"]
sessions = [runtimes[0].backend.encoder, runtimes[0].backend.decoder, *runtimes[1].positioned]
options = runtimes[0].resolve(GenerationOptions(num_beams=1))
batch = runtimes[1].new_positioned_batch()
ids = runtimes[1].encode_texts(sentences)
for key, row in enumerate(ids):
    batch.add(key, row, options)
positioned = {}
while len(batch):
    for event in batch.step():
        if event.finished:
            positioned[event.key] = event.sequences[0]
print(json.dumps({
    "own_pools": [s.get_session_options().use_per_session_threads for s in sessions],
    "threads": runtimes[0].info.intra_op_threads,
    "generate": runtimes[0].generate_texts(sentences, GenerationOptions(num_beams=1)),
    "positioned": [positioned[k] for k in range(len(ids))],
}))
"""


def test_sessions_share_one_pool_and_decode_the_same_tokens() -> None:
    package = positioned_package("marian")
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(package), json.dumps(SENTENCES)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=Path(__file__).resolve().parents[3],
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    child = json.loads(done.stdout.strip().splitlines()[-1])
    assert child["own_pools"] == [False, False, False, False]
    assert child["threads"] == 2
    assert shared_pool_size() is None  # this process kept per-session pools
    runtime = load_runtime(package, device="cpu", precision="fp32", positioned=True)
    options = runtime.resolve(GenerationOptions(num_beams=1))
    assert child["generate"] == runtime.generate_texts(SENTENCES, GenerationOptions(num_beams=1))
    reference = runtime.generate(runtime.encode_texts(SENTENCES), options)
    assert child["positioned"] == [seqs[0] for seqs in reference]
