"""`snakemake --lint` finds nothing to say about the workflow (CI runs it too, see .ci/run).

Snakemake 9.27 takes `--lint json` but still prints its text report (the CLI does not pass the
format on) and exits 1 when there is any lint, 0 otherwise. The check therefore reads the JSON
report where there is one and otherwise the exit code and the text report; a control workflow
with a known lint makes sure that this check would see a lint at all.
"""

import json
import subprocess
import sys

from conftest import REPO


def lint(snakefile, workdir, *extra):
    """Run `snakemake --lint json` on ``snakefile`` in ``workdir``; return (lints, output).

    ``lints`` is the list of linted items: from the JSON report if Snakemake printed one, else the
    "Lints for ..." headers of the text report (and one item if the exit code alone says so).
    """
    proc = subprocess.run(
        [sys.executable, "-m", "snakemake", "-s", str(snakefile), "-d", str(workdir), *extra, "--lint", "json"],
        capture_output=True, text=True, timeout=120,
    )
    output = proc.stdout + proc.stderr
    try:
        report = json.loads(proc.stdout)
    except ValueError:
        report = None
    if isinstance(report, dict):
        lints = [*report.get("snakefiles", []), *report.get("rules", [])]
    else:
        lints = [line for line in output.splitlines() if line.startswith("Lints for ")]
    if proc.returncode != 0 and not lints:
        lints = [f"exit code {proc.returncode}"]
    return lints, output


def test_workflow_has_no_lints(tmp_path):
    lints, output = lint(REPO / "Snakefile", tmp_path, "--configfile", str(REPO / "config.yaml"))
    assert lints == [], output[-6000:]


def test_lint_check_sees_a_lint(tmp_path):
    """The control: a rule without a conda environment or container is a lint, and is seen."""
    snakefile = tmp_path / "Snakefile"
    snakefile.write_text('rule bare:\n    output:\n        "x.txt"\n    log:\n        "x.log"\n'
                         '    shell:\n        "touch {output} 2> {log}"\n')
    lints, output = lint(snakefile, tmp_path)
    assert lints, output[-3000:]
    assert "conda environment or container" in output or "conda" in json.dumps(lints), output[-3000:]
