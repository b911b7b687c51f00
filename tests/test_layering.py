"""The layering ``metadata_store`` (pyarrow only) <- ``nasmeta`` (science) <- ``flows`` (Prefect + CLI), checked two
ways: statically, every import statement of every file (inside functions too, and ``import_module("...")`` with
a literal name), and dynamically, importing every submodule in a fresh interpreter and reading ``sys.modules``.

- ``nasmeta/`` never imports ``prefect`` or ``flows``; only ``nasmeta/tracking.py`` imports ``mlflow``.
- ``metadata_store/`` never imports ``torch``, ``prefect``, ``mlflow``, nor the layers above it.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
RULES = {
    "nasmeta": {"prefect", "flows", "mlflow"},
    "metadata_store": {"torch", "prefect", "mlflow", "nasmeta", "flows"},
}
#: files allowed one of their package's forbidden imports
ALLOWED = {("nasmeta/tracking.py", "mlflow")}


def imported_modules(path: Path, root: Path = ROOT) -> set[str]:
    """Absolute module names imported anywhere in ``path`` (relative imports resolve inside the package)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = path.relative_to(root).with_suffix("").parts[:-1]
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                names.add(".".join([*base, *([node.module] if node.module else [])]))
            else:
                names.add(node.module or "")
        elif (
            isinstance(node, ast.Call)
            and getattr(node.func, "attr", getattr(node.func, "id", None)) in ("import_module", "__import__")
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            names.add(node.args[0].value)
    return names


def violations(package: str, root: Path = ROOT) -> list[str]:
    out = []
    for path in sorted((root / package).rglob("*.py")):
        relative = path.relative_to(root).as_posix()
        for name in sorted(imported_modules(path, root)):
            top = name.split(".")[0]
            if top in RULES[package] and (relative, top) not in ALLOWED:
                out.append(f"{relative} imports {name}")
    return out


@pytest.mark.parametrize("package", sorted(RULES))
def test_no_forbidden_import_statement(package):
    assert (ROOT / package / "__init__.py").is_file()
    assert violations(package) == []


def test_the_static_check_sees_every_kind_of_import(tmp_path):
    (tmp_path / "nasmeta" / "sub").mkdir(parents=True)
    probe = tmp_path / "nasmeta" / "sub" / "probe.py"
    probe.write_text(
        "import os\n"
        "def f():\n"
        "    import prefect.flows\n"
        "    from flows.common import open_store\n"
        "    from .. import tracking\n"
        "    importlib.import_module('mlflow.tracking')\n"
    )
    (tmp_path / "nasmeta" / "tracking.py").write_text("import mlflow\n")  # allowed there
    assert {"os", "prefect.flows", "flows.common", "nasmeta", "mlflow.tracking"} <= imported_modules(probe, tmp_path)
    assert violations("nasmeta", tmp_path) == [
        "nasmeta/sub/probe.py imports flows.common",
        "nasmeta/sub/probe.py imports mlflow.tracking",
        "nasmeta/sub/probe.py imports prefect.flows",
    ]


_PROBE = """
import importlib, json, pkgutil, sys
package = sys.argv[1]
skip = set(sys.argv[2].split(",")) if sys.argv[2] else set()
root = importlib.import_module(package)
names = [package] + [m.name for m in pkgutil.walk_packages(root.__path__, package + ".")]
imported = []
for name in names:
    if name not in skip:
        importlib.import_module(name)
        imported.append(name)
print(json.dumps({"imported": imported, "modules": sorted({m.split(".")[0] for m in sys.modules})}))
"""


def _import_all(package: str, skip: str = "") -> dict:
    result = subprocess.run(
        [sys.executable, "-c", _PROBE, package, skip],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
        env={**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"},
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_importing_every_nasmeta_module_loads_no_prefect_flows_or_mlflow():
    out = _import_all("nasmeta", skip="nasmeta.tracking")
    assert len(out["imported"]) > 50 and "nasmeta.evaluation.lodo" in out["imported"]
    assert {"torch", "nasmeta"} <= set(out["modules"])  # the probe did import the science
    assert not {"prefect", "flows", "mlflow"} & set(out["modules"])


def test_importing_every_metadata_store_module_loads_no_torch_prefect_or_mlflow():
    out = _import_all("metadata_store")
    assert "metadata_store.store" in out["imported"] and "pyarrow" in out["modules"]
    assert not {"torch", "prefect", "mlflow", "nasmeta", "flows"} & set(out["modules"])
