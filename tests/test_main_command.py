"""The README's main command, as a user runs it: `rnnsim run all --quick --check` runs every
experiment on its quick grid, and every claim checked on the quick grid passes."""

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_main_command_passes_every_quick_claim(tmp_path):
    command = [sys.executable, "-m", "rnnsim.cli", "run", "all", "--quick", "--check"]
    proc = subprocess.run(
        [*command, "--out", str(tmp_path), "--no-progress"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=1200,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    scripts = sorted(p.stem for p in (REPO / "experiments").glob("*.py"))
    for name in scripts:
        claims = pd.read_parquet(tmp_path / name / "claims.parquet")
        assert len(claims), f"{name} declares no claims"
        assert (claims["status"] != "fail").all(), claims.to_string()
        assert (claims["status"] == "pass").any(), f"{name}: no claim is checked on the quick grid"
    assert (tmp_path / "index.html").exists()
