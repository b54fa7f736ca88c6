"""Claims: evaluation (pass, fail, not checked), the helpers checks use, and claims on every run:
claims.parquet, the manifest, the terminal, ``--check`` and the report's badges."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from rnnsim import claims, cli
from rnnsim.claims import Claim, NotApplicable, Verdict

FIXTURES = Path(__file__).parent / "fixtures" / "experiments"
SUMMARY = pd.DataFrame({"g": [0.5, 1.5], "lambda_max": [-0.3, 0.2]})


def _sign_change(summary):
    below = claims.one(summary, "lambda_max", g=0.5)
    above = claims.one(summary, "lambda_max", g=1.5)
    return Verdict(below < 0 < above, {"below": below, "above": above}, f"{below} -> {above}")


def test_a_claim_passes_fails_or_is_not_checked():
    flipped = SUMMARY.assign(lambda_max=-SUMMARY["lambda_max"])
    table = claims.evaluate([Claim("sign change", _sign_change)], SUMMARY, quick=True)
    assert table["status"].tolist() == ["pass"] and table["passed"].tolist() == [True]
    assert json.loads(table["numbers"][0]) == {"below": -0.3, "above": 0.2}
    table = claims.evaluate([Claim("sign change", _sign_change)], flipped, quick=True)
    assert table["status"].tolist() == ["fail"] and claims.failed(table) == 1
    full = Claim("sign change", _sign_change, scope="full")
    table = claims.evaluate([full], flipped, quick=True)  # a full-grid claim on a quick run
    assert table["status"].tolist() == ["not checked"] and table["passed"].isna().all()
    assert table["detail"][0] == "not checked (full grid)"
    assert claims.evaluate([full], flipped, quick=False)["status"].tolist() == ["fail"]


def test_a_check_that_cannot_judge_or_breaks_is_reported():
    one_gain = SUMMARY[SUMMARY["g"] == 0.5]
    table = claims.evaluate([Claim("sign change", _sign_change)], one_gain, quick=False)
    assert table["status"][0] == "not checked"
    assert "no rows with g = 1.5" in table["detail"][0]

    def broken(summary):
        return summary["missing"]

    table = claims.evaluate([Claim("broken", broken)], SUMMARY, quick=False)
    assert table["status"][0] == "fail" and "KeyError" in table["detail"][0]
    assert claims.evaluate([Claim("x", _sign_change)], None, quick=False)["status"][0] == "fail"
    with pytest.raises(TypeError, match="must return a Verdict"):
        claims.evaluate([Claim("x", lambda s: True)], SUMMARY, quick=False)


def test_helpers_and_declaration_errors():
    with pytest.raises(NotApplicable, match="no column 'T'"):
        claims.rows(SUMMARY, T=10)
    with pytest.raises(ValueError, match="expected one row"):
        claims.one(pd.concat([SUMMARY, SUMMARY]), "lambda_max", g=0.5)
    with pytest.raises(ValueError, match="scope must be one of"):
        Claim("x", _sign_change, scope="sometimes")
    with pytest.raises(ValueError, match="statement"):
        Claim(" ", _sign_change)
    numbers = {"x": np.float64(np.inf), "n": np.int64(3)}
    table = claims.evaluate([Claim("x", lambda s: Verdict(True, numbers))], SUMMARY, quick=False)
    assert json.loads(table["numbers"][0]) == {"x": "inf", "n": 3}
    text = claims.format_claims(table, "title")
    assert text.splitlines()[:2] == ["title", "  ✓ x"]


def _run_toy(capsys, out, *extra):
    code = cli.main(
        ["run", "toy", "--experiments", str(FIXTURES), "--quick", "--out", str(out)]
        + ["--no-progress", "--no-figures", *extra]
    )
    stdout, stderr = capsys.readouterr()
    return code, stdout, stderr


def test_every_run_checks_its_claims(capsys, tmp_path, monkeypatch):
    code, out, _ = _run_toy(capsys, tmp_path, "--check")
    assert code == 0
    assert "toy: claims (quick grid, 2 seed(s) per point)" in out
    assert "✓ Mean values are finite." in out and "– Only the full grid shows this." in out
    table = pd.read_parquet(tmp_path / "toy" / "claims.parquet")
    assert table["status"].tolist() == ["pass", "not checked", "not checked", "pass"]
    manifest = json.loads((tmp_path / "toy" / "manifest.json").read_text())
    assert [c["status"] for c in manifest["claims"]] == table["status"].tolist()

    monkeypatch.setenv("RNNSIM_TOY_FAIL_CLAIM", "1")
    code, out, err = _run_toy(capsys, tmp_path)  # without --check a failed claim is reported
    assert code == 0 and "✗ The environment does not ask for a failure." in out
    code, out, err = _run_toy(capsys, tmp_path, "--check")
    assert code == 1 and "claims failed in toy (1)" in err

    from rnnsim.report import write_report

    page = write_report(tmp_path).read_text()
    assert 'class="badge fail"' in page and 'class="badge pass"' in page
    assert "quick grid, 2 seeds per point" in page


def test_first_seed_runs_other_draws(capsys, tmp_path):
    code, _, _ = _run_toy(capsys, tmp_path, "--seeds", "2", "--first-seed", "5")
    assert code == 0
    table = pd.read_parquet(tmp_path / "toy" / "table.parquet")
    assert sorted(table["seed"].unique()) == [5, 6]
    manifest = json.loads((tmp_path / "toy" / "manifest.json").read_text())
    assert manifest["seeds"] == [5, 6]
    assert manifest["reproduce"].endswith("--seeds 2 --first-seed 5")
    assert _run_toy(capsys, tmp_path, "--first-seed", "-1")[0] == 2


@pytest.mark.parametrize(
    "spec, message",
    [
        ("n=-5", "--set n: -5 is out of range; allowed: [1, inf]"),
        ("scale=11", "--set scale: 11.0 is out of range; allowed: [0.0, 10.0]"),
        ("scale=nan", "--set scale: 'nan' is not a finite number"),
    ],
)
def test_values_out_of_range_are_rejected_before_any_point_runs(capsys, tmp_path, spec, message):
    code, _, err = _run_toy(capsys, tmp_path, "--set", spec)
    assert code == 2 and message in err and "Traceback" not in err
    assert not (tmp_path / "toy" / "points").exists()
