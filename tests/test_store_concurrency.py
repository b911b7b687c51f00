"""Real processes share one store: two writers append while a third compacts and a fourth reads.

Nothing may be lost (every appended key is there at the end), no reader may fail or see a row count go down
(de-duplication hides the moment a merged file and its sources coexist), and every file left is readable.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pyarrow.parquet as pq

from metadata_store import MetadataStore

ROOT = Path(__file__).resolve().parents[1]
APPENDS = 20
ROWS = 20

WRITER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from metadata_store import MetadataStore
    root, name, go = sys.argv[1], sys.argv[2], Path(sys.argv[3])
    store = MetadataStore(root)
    while not go.exists():
        time.sleep(0.01)
    for i in range({appends}):
        rows = [dict(run_id=f"{{name}}-{{i}}", task_id=name, epoch=e, val_acc=float(e)) for e in range({rows})]
        store.append("curves", rows)
        store.append("runs", [dict(run_id=f"{{name}}-{{i}}", task_id=name, arch_id="a", seed=0, config_hash="c",
                                   status="completed")])
    """
).format(appends=APPENDS, rows=ROWS)

COMPACTOR = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from metadata_store import MetadataStore
    root, go, done = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
    store = MetadataStore(root)
    while not go.exists():
        time.sleep(0.01)
    n = 0
    while not done.exists():
        store.compact()
        n += 1
    print(n)
    """
)

READER = textwrap.dedent(
    """
    import json, sys, time
    from pathlib import Path
    from metadata_store import MetadataStore
    root, go, done = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
    store = MetadataStore(root)
    while not go.exists():
        time.sleep(0.01)
    counts = []
    while not done.exists():
        counts.append(store.read("curves", columns=["run_id"]).num_rows)
    print(json.dumps(counts))
    """
)


def test_concurrent_writers_compactor_and_reader_lose_nothing(tmp_path: Path) -> None:
    root, go, done = tmp_path / "store", tmp_path / "go", tmp_path / "done"
    MetadataStore(root)

    def start(script: str, *args: object) -> subprocess.Popen:
        return subprocess.Popen(
            [sys.executable, "-c", script, *map(str, args)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    writers = [start(WRITER, root, name, go) for name in ("alpha", "beta")]
    compactor = start(COMPACTOR, root, go, done)
    reader = start(READER, root, go, done)
    go.touch()
    try:
        for proc in writers:
            _, err = proc.communicate(timeout=120)
            assert proc.returncode == 0, err
    finally:
        done.touch()
    out, err = compactor.communicate(timeout=120)
    assert compactor.returncode == 0, err
    assert int(out) >= 1
    out, err = reader.communicate(timeout=120)
    assert reader.returncode == 0, err
    counts = json.loads(out)
    assert counts and all(a <= b for a, b in zip(counts, counts[1:], strict=False)), counts

    store = MetadataStore(root)
    curves = store.read("curves")
    assert curves.num_rows == 2 * APPENDS * ROWS
    expected = {f"{name}-{i}" for name in ("alpha", "beta") for i in range(APPENDS)}
    assert set(curves["run_id"].to_pylist()) == expected
    assert store.completed_run_ids() == expected
    for table in ("curves", "runs"):
        for path in store.files(table):
            pq.read_table(path)  # every committed file is whole
    assert not [p for p in (root / "curves").iterdir() if p.name.endswith(".tmp")]
