"""The flow's code package: what `dagster create` puts in it (Metaflow's MetaflowPackage,
by --package-suffixes), and its unpacking on a host that runs ops, once per package
even when several processes need it at the same moment."""

import json
import subprocess
import sys
import tarfile

from harness import FLOWS, compile_file, copy_flow, env_for, load_definitions

UNPACK = """
import importlib.util, json, sys
spec = importlib.util.spec_from_file_location("defs", sys.argv[1])
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
from metaflow_dagster.runtime.launch.code_package import code_package
package = code_package(module.FLOW.plan)
print(json.dumps({"root": package.root, "flow_file": package.flow_file, "env": package.env}))
"""


def _members(plan) -> set:
    # A local datastore: the package's url is a file.
    with tarfile.open(plan.package["url"], mode="r:gz") as archive:
        return set(archive.getnames())


def test_the_package_holds_the_flow_directory_by_suffix_and_metaflow(tmp_path):
    flow_file = copy_flow(tmp_path, FLOWS / "linear_flow.py")
    (flow_file.parent / "helper.py").write_text("X = 1\n")
    (flow_file.parent / "lookup.csv").write_text("a,b\n")
    (flow_file.parent / "pkg").mkdir()
    (flow_file.parent / "pkg" / "mod.py").write_text("Y = 2\n")

    plan = load_definitions(compile_file(flow_file).defs_file).FLOW.plan
    members = _members(plan)
    assert {"linear_flow.py", "helper.py", "pkg/mod.py"} <= members
    assert "lookup.csv" not in members and "linear_flow_dagster.py" not in members
    # Metaflow and metaflow-dagster themselves (the task imports them from the package).
    assert {".mf_code/metaflow/__init__.py", ".mf_code/metaflow_dagster/task/decorator.py",
            ".mf_meta/INFO"} <= members
    assert plan.flow_file == "linear_flow.py" and plan.package["datastore"] == "local"

    with_csv = load_definitions(compile_file(
        flow_file, top_args=["--package-suffixes", ".py,.csv"], defs_name="csv_dagster.py"
    ).defs_file).FLOW.plan
    assert "lookup.csv" in _members(with_csv)
    assert with_csv.package["sha"] != plan.package["sha"]


def test_several_processes_unpack_one_package_at_once(tmp_path):
    compiled = compile_file(copy_flow(tmp_path, FLOWS / "linear_flow.py"))
    sha = load_definitions(compiled.defs_file).FLOW.plan.package["sha"]
    cache = tmp_path / "cache"
    script = tmp_path / "unpack.py"
    script.write_text(UNPACK)
    env = env_for(METAFLOW_DAGSTER_PACKAGE_CACHE=str(cache))
    procs = [subprocess.Popen([sys.executable, str(script), str(compiled.defs_file)],
                              cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(4)]
    outputs = [proc.communicate(timeout=180) for proc in procs]
    assert [proc.returncode for proc in procs] == [0] * 4, [err for _, err in outputs]
    unpacked = [json.loads(out.strip().splitlines()[-1]) for out, _ in outputs]
    root = str(cache / sha)
    assert {u["root"] for u in unpacked} == {root}
    # One complete copy, no half-unpacked leftovers of the processes that lost the race.
    assert [p.name for p in cache.iterdir()] == [sha]
    assert (cache / sha / "linear_flow.py").read_text() == \
        (FLOWS / "linear_flow.py").read_text()
    env = unpacked[0]["env"]
    assert env["PYTHONPATH"].split(":")[0] == root + "/.mf_code"
    assert env["METAFLOW_CODE_SHA"] == sha
