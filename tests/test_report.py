"""The HTML report: well-formed, self-contained, referencing every figure that exists."""

import base64
import html.parser
import shutil
from pathlib import Path

import pytest

from rnnsim.experiment import load_experiment, run_experiment
from rnnsim.report import write_report

TOY = Path(__file__).parent / "fixtures" / "experiments" / "toy.py"
VOID = {"meta", "img", "br", "hr", "link", "input", "col", "area", "base", "source", "wbr"}


class Checker(html.parser.HTMLParser):
    """Checks that every element is closed in order; collects img sources and link targets."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.stack, self.errors, self.imgs, self.links, self.text = [], [], [], [], []
        self.doctype = False

    def handle_decl(self, decl):
        self.doctype = decl.lower() == "doctype html"

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "img":
            self.imgs.append(attrs["src"])
            assert attrs.get("alt")
        if tag == "a" and "href" in attrs:
            self.links.append(attrs["href"])
        if tag in ("script", "link"):
            self.errors.append(f"external resource or script: <{tag}>")
        if tag not in VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag):
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes {self.stack[-1:] or 'nothing'}")
        else:
            self.stack.pop()

    def handle_data(self, data):
        self.text.append(data)


def parse(path):
    checker = Checker()
    checker.feed(path.read_text(encoding="utf-8"))
    checker.close()
    assert checker.doctype
    assert checker.errors == [] and checker.stack == []
    return checker


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    out = tmp_path_factory.mktemp("results")
    toy = load_experiment(TOY)
    run_experiment(toy, quick=True, sets=["n=2,3"], out=out, progress=False)
    return out


def test_report_is_well_formed_and_references_every_figure(results):
    page = write_report(results)
    assert page == results / "index.html"
    checker = parse(page)
    pngs = {p.relative_to(results).as_posix() for p in results.glob("*/figures/*.png")}
    assert pngs and set(checker.imgs) == pngs
    for src in checker.imgs + [link for link in checker.links if not link.startswith("#")]:
        assert (results / src).exists(), src
    svgs = {p.relative_to(results).as_posix() for p in results.glob("*/figures/*.svg")}
    assert svgs <= set(checker.links)
    text = " ".join(checker.text)
    assert "Random walks of a few steps" in text
    assert "rnnsim run toy --quick --set n=2,3" in text
    assert "Summary" in text and "<table" in page.read_text()


def test_report_picks_up_new_figures_and_drops_removed_ones(results, tmp_path):
    out = tmp_path / "copy"
    shutil.copytree(results, out)
    figs = out / "toy" / "figures"
    shutil.copy(figs / "value_by_i.png", figs / "extra.png")
    (figs / "value_by_i.png").unlink()
    checker = parse(write_report(out))
    assert checker.imgs == ["toy/figures/extra.png"]


def test_embedded_report_is_one_file(results, tmp_path):
    page = write_report(results, embed=True)
    checker = parse(page)
    png = results / "toy" / "figures" / "value_by_i.png"
    assert checker.imgs == ["data:image/png;base64," + base64.b64encode(png.read_bytes()).decode()]


def test_empty_results_folder(tmp_path):
    checker = parse(write_report(tmp_path))
    assert "No results yet" in " ".join(checker.text)


def test_missing_folder_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="is not a directory"):
        write_report(tmp_path / "missing")


def test_report_links_each_table_of_a_multi_table_experiment(tmp_path):
    import dataclasses

    import pandas as pd

    def measure(point, seed):
        return {"log": pd.DataFrame({"step": [0, 1]}), "final": pd.DataFrame({"loss": [0.5]})}

    toy = load_experiment(TOY)
    two = dataclasses.replace(toy, name="two", measure=measure, tables=["log", "final"])
    run_experiment(two, quick=True, out=tmp_path, figures=False, progress=False)
    checker = parse(write_report(tmp_path))
    assert {"two/table_log.csv", "two/table_final.csv"} <= set(checker.links)
    assert "two/table.csv" not in checker.links


def test_report_lists_the_stored_runs_each_with_its_own_page(tmp_path):
    toy = load_experiment(TOY)
    run_experiment(toy, quick=True, out=tmp_path, progress=False)
    run_experiment(toy, quick=True, sets=["n=4"], name="long", out=tmp_path, progress=False)
    (tmp_path / "toy" / "runs" / "long" / "plots").mkdir()
    shutil.copy(  # as `rnnsim plot toy:long` would have left it
        tmp_path / "toy" / "figures" / "value_by_i.png",
        tmp_path / "toy" / "runs" / "long" / "plots" / "i_value.png",
    )
    checker = parse(write_report(tmp_path))
    assert "toy/runs/quick/index.html" in checker.links
    assert "toy/runs/long/index.html" in checker.links
    text = " ".join(checker.text)
    assert "Stored runs" in text and "(latest, shown below)" in text
    assert "Claims (run long, quick grid, 2 seeds per point)" in text
    for label in ("quick", "long"):
        page = parse(tmp_path / "toy" / "runs" / label / "index.html")
        assert "figures/value_by_i.png" in page.imgs  # its own figures, relative to its folder
        assert "Mean values are finite." in " ".join(page.text)  # and its claims
        assert "../../../index.html#toy" in page.links
        for src in page.imgs:
            assert (tmp_path / "toy" / "runs" / label / src).exists()
    assert "plots/i_value.png" in parse(tmp_path / "toy" / "runs" / "long" / "index.html").imgs
