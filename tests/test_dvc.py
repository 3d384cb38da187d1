"""The DVC pipeline reproduces from a fresh copy of the project, offline."""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pipeline.modelstore import resolve_model_dir
from tests.conftest import fast_params

REPO = Path(__file__).resolve().parent.parent
# Never copied: generated outputs, DVC's cache and the local environment.
SKIP = (".venv", ".git", "reports", "data/interim", "data/processed", "models/dvc", ".dvc/cache",
        ".dvc/tmp", "dvc_plots")


def test_a_models_folder_resolves_through_its_current_pointer(tmp_path):
    """`--model models/dvc` names the folder `train --out models/dvc` wrote, not a version."""
    own = tmp_path / "models" / "dvc"
    (own / "v1").mkdir(parents=True)
    (own / "v1" / "model.json").write_text("{}")
    (own / "current").write_text("v1\n")
    assert resolve_model_dir(tmp_path / "models", own) == own / "v1"
    assert resolve_model_dir(tmp_path / "models", own / "v1") == own / "v1"
    assert resolve_model_dir(tmp_path / "models", own / "v1" / "model.json") == own / "v1"


def _skipped(rel: str) -> bool:
    return any(rel == s or rel.startswith(s + "/") for s in SKIP)


def working_files() -> list[str]:
    """Tracked and untracked, not ignored, files of the working tree (what a commit would hold)."""
    if (REPO / ".git").exists() and shutil.which("git"):
        listing = ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"]
        proc = subprocess.run(listing, cwd=REPO, capture_output=True, check=True)
        names = [n for n in proc.stdout.decode().split("\0") if n]
    else:
        names = [p.relative_to(REPO).as_posix() for p in REPO.rglob("*") if p.is_file()]
    return sorted(n for n in set(names) if not _skipped(n) and (REPO / n).is_file())


def run(cmd: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


@pytest.mark.slow
def test_dvc_repro_from_a_fresh_copy(tmp_path):
    repo = tmp_path / "repo"
    for name in working_files():
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / name, repo / name)
    assert (repo / "dvc.yaml").is_file() and (repo / ".dvc" / "config").is_file()
    # The real parameters, with cross-validation turned down (as in the other tests) so that
    # training takes seconds rather than a minute or two; the pipeline itself is unchanged.
    (repo / "params.yaml").write_text(yaml.safe_dump(fast_params().as_dict(), sort_keys=False))

    bin_dir = Path(sys.executable).parent  # the venv's bin: forcecov and dvc live here
    env = {k: v for k, v in os.environ.items() if k != "FORCECOV_ROOT"}
    env.update(PATH=f"{bin_dir}{os.pathsep}{env.get('PATH', '')}", DVC_NO_ANALYTICS="1",
               GIT_AUTHOR_NAME="test", GIT_AUTHOR_EMAIL="test@example.invalid",
               GIT_COMMITTER_NAME="test", GIT_COMMITTER_EMAIL="test@example.invalid")
    dvc = str(bin_dir / "dvc")

    # DVC needs a git repository for its SCM integration, as in a real clone.
    for cmd in (["git", "init", "-q"], ["git", "add", "-A"],
                ["git", "-c", "commit.gpgsign=false", "commit", "-q", "-m", "snapshot"]):
        proc = run(cmd, repo, env)
        assert proc.returncode == 0, proc.stderr
    committed_model = (repo / "models" / "current").read_text()

    proc = run([dvc, "repro"], repo, env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    for stage in ("extract", "train", "classify", "report", "evaluate"):
        assert f"Running stage '{stage}'" in proc.stdout
    assert (repo / "dvc.lock").is_file()
    assert (repo / "data" / "interim" / "passages.jsonl").is_file()
    assert (repo / "data" / "processed" / "passages.parquet").is_file()
    assert (repo / "reports" / "report.html").is_file()
    assert (repo / "models" / "dvc" / "current").is_file()
    # The committed default model is left alone: the pipeline trains into models/dvc.
    assert (repo / "models" / "current").read_text() == committed_model

    proc = run([dvc, "status"], repo, env)
    assert proc.returncode == 0 and "up to date" in proc.stdout, proc.stdout + proc.stderr

    proc = run([dvc, "metrics", "show"], repo, env)
    assert proc.returncode == 0, proc.stderr
    assert "macro_f1" in proc.stdout

    proc = run([dvc, "plots", "show"], repo, env)
    assert proc.returncode == 0, proc.stderr
    index = repo / "dvc_plots" / "index.html"
    assert index.is_file()
    html = index.read_text()
    assert "calibration" in html and "category" in html

    # One connected chain: extract -> classify -> report -> evaluate, with train -> classify.
    proc = run([dvc, "dag", "--dot"], repo, env)
    assert proc.returncode == 0, proc.stderr
    edges = set(re.findall(r'"(\w+)" -> "(\w+)"', proc.stdout))
    assert {("extract", "classify"), ("train", "classify"), ("classify", "report"),
            ("report", "evaluate")} <= edges, proc.stdout
    # Params are wired per stage: a coverage setting invalidates report, not extract or train.
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["coverage"]["top_evidence"] += 1
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    proc = run([dvc, "status"], repo, env)
    assert proc.returncode == 0, proc.stderr
    assert "report:" in proc.stdout and "coverage.top_evidence" in proc.stdout, proc.stdout
    assert "train:" not in proc.stdout and "extract:" not in proc.stdout, proc.stdout
    assert "classify:" not in proc.stdout, proc.stdout

    # Nothing the pipeline wrote shows up in git but dvc.lock (and the params edited just above).
    proc = run(["git", "status", "--porcelain"], repo, env)
    assert sorted(proc.stdout.splitlines()) == [" M params.yaml", "?? dvc.lock"], proc.stdout


# --------------------------------------------------------------------------------------------
# Each stage's deps are exactly the modules it runs: the imports of its CLI command (and the
# CLI helpers that command calls), followed through the package, plus the data files those
# modules read. The command line itself (cli.py, review/cli.py, terminal.py) and the package's
# __init__/__main__ are left out on purpose: they only parse flags, print and hold the version.

_LEFT_OUT = {"pipeline/cli.py", "pipeline/terminal.py", "pipeline/review/cli.py",
             "pipeline/__init__.py", "pipeline/__main__.py"}
_READS = {"pipeline/taxonomy.py": ["pipeline/taxonomy.yaml"],
          "pipeline/forces.py": ["pipeline/forces.yaml"],
          "pipeline/report.py": ["pipeline/templates"]}


def _runtime_imports(tree):
    """Import nodes that run (those under ``if TYPE_CHECKING:`` do not)."""
    import ast

    stack = [tree]
    while stack:
        node = stack.pop()
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and getattr(child.test, "id", "") == "TYPE_CHECKING":
                stack.extend(child.orelse)
                continue
            if isinstance(child, ast.Import | ast.ImportFrom):
                yield child
            stack.append(child)


def _module_file(dotted):
    base = REPO.joinpath(*dotted.split("."))
    for candidate in (base / "__init__.py", base.with_suffix(".py")):
        if candidate.is_file():
            return candidate.relative_to(REPO).as_posix()
    return None


def _imported_files(node, file):
    import ast

    package = Path(file).parent.as_posix().replace("/", ".")
    if isinstance(node, ast.Import):
        names = [a.name for a in node.names if a.name.startswith("pipeline")]
    else:
        if node.level:
            parts = package.split(".")
            base = ".".join(parts[:len(parts) - node.level + 1])
            module = f"{base}.{node.module}" if node.module else base
        else:
            module = node.module or ""
        if not module.startswith("pipeline"):
            return set()
        # The module (or package: its __init__ runs) and any submodules named in the import.
        names = [module] + [f"{module}.{a.name}" for a in node.names
                            if _module_file(f"{module}.{a.name}")]
    return {f for f in map(_module_file, names) if f}


def _closure(start):
    import ast

    seen, todo = set(), list(start)
    while todo:
        file = todo.pop()
        if file in seen:
            continue
        seen.add(file)
        tree = ast.parse((REPO / file).read_text(encoding="utf-8"))
        for node in _runtime_imports(tree):
            todo.extend(_imported_files(node, file) - seen)
    return seen


def _command_imports(command):
    """What a CLI command imports, with the CLI helpers it calls (one level at a time)."""
    import ast

    tree = ast.parse((REPO / "pipeline/cli.py").read_text(encoding="utf-8"))
    functions = {f.name: f for f in tree.body if isinstance(f, ast.FunctionDef)}
    files, todo, done = set(), [command], set()
    while todo:
        name = todo.pop()
        if name in done or name not in functions:
            continue
        done.add(name)
        for node in _runtime_imports(functions[name]):
            files |= _imported_files(node, "pipeline/cli.py")
        todo += [n.func.id for n in ast.walk(functions[name])
                 if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)]
    module_level = [n for n in tree.body if isinstance(n, ast.Import | ast.ImportFrom)]
    for node in module_level:
        files |= _imported_files(node, "pipeline/cli.py")
    return files


@pytest.mark.parametrize("stage", ["extract", "train", "classify", "report", "evaluate"])
def test_each_stage_depends_on_exactly_the_modules_it_runs(stage):
    spec = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"][stage]
    command = spec["cmd"].split()[spec["cmd"].split().index(stage)]
    # The other command-line modules print or hold other commands: not followed.
    modules = _closure(_command_imports(command) - _LEFT_OUT) - _LEFT_OUT
    needed = modules | {r for m in modules for r in _READS.get(m, [])}
    deps = [d for d in spec["deps"] if d.startswith("pipeline")]

    def covered(path):
        return any(path == d or path.startswith(d + "/") for d in deps)

    assert sorted(p for p in needed if not covered(p)) == [], f"{stage}: deps to add"
    assert sorted(d for d in deps if not any(p == d or p.startswith(d + "/") for p in needed)) \
        == [], f"{stage}: deps it does not run"
