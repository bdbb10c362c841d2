"""Re-tests only the mutants that survived the last `make mutation`, after tests were added.

    python tools/mutation_recheck.py params losses     # modules by name (the .py file's stem)

A full mutation run takes hours on two cores; the survivors are a small share. Each survivor's
diff in .mutation/report/<module>.txt is applied to a private copy of the work tree and the
module's tests (the same as tools/mutation.sh runs) decide: killed or still surviving. The mutants
still alive are written to .mutation/report/<module>.recheck.txt, one line of counts per module
is printed.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
REPORT = REPO / ".mutation" / "report"
# Seconds one mutant's tests may take: a mutant that hangs would otherwise wait out every test's
# pytest timeout (900 s). MUTATION_TIMEOUT_S=... to change, as for tools/mutation.sh.
TIMEOUT_S = float(os.environ.get("MUTATION_TIMEOUT_S", 90))


def module_tests() -> dict[str, tuple[str, list[str]]]:
    """Report name -> (module path, its tests), from tools/mutation.sh's MODULES table.

    The report name is the module's stem, or its dotted path under r2d2_ros where two modules share a stem
    (``features`` and ``bags.features``), as tools/mutation.sh names the reports.
    """
    entries = []
    for line in (REPO / "tools" / "mutation.sh").read_text().splitlines():
        match = re.match(r'\s*"(r2d2_ros/[^|]+)\|([^"]+)"', line)
        if match:
            entries.append((match.group(1), match.group(2).split()))
    stems = Counter(Path(module).stem for module, _ in entries)
    return {(Path(module).stem if stems[Path(module).stem] == 1 else
             ".".join(Path(module).relative_to("r2d2_ros").with_suffix("").parts)): (module, tests)
            for module, tests in entries}


def apply_mutant(source: str, diff: str, drift: int = 50) -> str | None:
    """``source`` with one mutmut hunk applied where its removed lines are, nearest to where the hunk
    says (lines added or removed since the run shift them); None when they are nowhere near."""
    lines = diff.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("@@"))
    start, old_count, new_count = (int(number) for number in
                                   re.match(r"@@ -(\d+),(\d+) \+\d+,(\d+) @@", lines[header]).groups())
    start -= 1
    # The hunk is as long as its header says: what follows the last mutant of a section in mutmut's report
    # (the next section's "---- module (N) ----" title) is not part of it.
    body = []
    for line in lines[header + 1 :]:
        if old_count <= 0 and new_count <= 0:
            break
        body.append(line)
        old_count -= not line.startswith("+")
        new_count -= not line.startswith("-")
    first_change = next(i for i, line in enumerate(body) if line.startswith(("-", "+")))
    removed = [line[1:] for line in body if line.startswith("-")]
    added = [line[1:] + "\n" for line in body if line.startswith("+")]
    source_lines = source.splitlines(keepends=True)
    stated = start + first_change
    for at in sorted(range(max(0, stated - drift), stated + drift + 1), key=lambda at: abs(at - stated)):
        if [line.rstrip("\n") for line in source_lines[at : at + len(removed)]] == removed:
            source_lines[at : at + len(removed)] = added
            return "".join(source_lines)
    return None


def recheck(name: str, module: str, tests: list[str]) -> tuple[int, int, list[str]]:
    """Applies every survivor of ``module``; returns how many its tests now kill, how many of those by
    running past :data:`TIMEOUT_S`, and the diffs still alive."""
    report = (REPORT / f"{name}.txt").read_text()
    diffs = re.split(r"(?m)^# mutant \d+\n", report)[1:]
    # Beside the mutation runs' copies, where ../shared is linked as tools/mutation.sh links it.
    REPORT.parent.mkdir(parents=True, exist_ok=True)
    shared, link = REPO.parent / "shared", REPORT.parent / "shared"
    if shared.is_dir() and not link.exists():
        link.symlink_to(shared.resolve())
    work = Path(tempfile.mkdtemp(prefix=f"recheck_{name}_", dir=REPORT.parent))
    try:
        files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=REPO, capture_output=True,
                               text=True, check=True).stdout.splitlines()
        for file in files:
            if (REPO / file).is_file():
                (work / file).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(REPO / file, work / file)
        original = (work / module).read_text()
        # The copy first, and the environment's path after it: the generated messages (r2d2_ros.msg) come from
        # the colcon install space that ./activate puts there, as in tools/mutation.sh.
        path = os.pathsep.join(filter(None, [str(work), os.environ.get("PYTHONPATH", "")]))

        def run_tests() -> subprocess.CompletedProcess:
            return subprocess.run([sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *tests],
                                  cwd=work, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": path},
                                  timeout=TIMEOUT_S)

        def tests_fail() -> bool:
            return run_tests().returncode != 0

        # Tests that fail without a mutant (an import, the environment) would count every mutant as killed.
        unmutated = run_tests()
        if unmutated.returncode != 0:
            raise SystemExit(f"mutation_recheck: {name}'s tests fail on the unmutated module; run them: {' '.join(tests)}"
                             f"\n{(unmutated.stdout + unmutated.stderr)[-3000:]}")
        killed, timeouts, alive = 0, 0, []
        for diff in diffs:
            mutated = apply_mutant(original, diff)
            if mutated is None:
                alive.append(f"# not applied (these lines are gone from the module)\n{diff}")
                continue
            (work / module).write_text(mutated)
            try:
                failed = tests_fail()
            except subprocess.TimeoutExpired:  # a hang is a failure a caller sees; said so in the counts
                failed = True
                timeouts += 1
            if failed:
                killed += 1
            else:
                alive.append(diff)
        return killed, timeouts, alive
    finally:
        shutil.rmtree(work)


def main(argv: list[str]) -> int:
    table = module_tests()
    unknown = [name for name in argv if name not in table or not (REPORT / f"{name}.txt").exists()]
    if unknown or not argv:
        print(f"mutation_recheck: name modules with a report among {sorted(table)}; not usable: {unknown}")
        return 2
    for name in argv:
        module, tests = table[name]
        killed, timeouts, alive = recheck(name, module, tests)
        (REPORT / f"{name}.recheck.txt").write_text("\n".join(alive))
        print(f"| {module} | survivors of the last run {killed + len(alive)} | now killed {killed} "
              f"({timeouts} by timing out) | still surviving {len(alive)} |")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
