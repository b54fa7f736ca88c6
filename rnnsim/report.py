"""The report: one static HTML page over every experiment found in a results folder.

``rnnsim report [--out DIR]`` reads ``DIR/*/manifest.json`` (written by every run) and writes
``DIR/index.html``: for each experiment its description and notes, the command that reproduces
it, its stored runs (quick or full, seeds, date, claims tally; each linking to a page of its
own, ``DIR/NAME/runs/LABEL/index.html``, with its figures and claims), and, for the latest run,
its claims (each a paper's statement, pass or fail with the numbers, as a badge beside the
figure that shows it), its figures, its summary table and the run's versions and timings.
``rnnsim run`` rewrites the page after every run.

Figures are referenced as relative ``<img src="NAME/figures/FIG.png">`` links by default: the
page sits beside the files it shows, stays small enough to read and diff, and each image links to
its SVG. The page has no scripts and no external resources (CSS inline), so it opens offline from
the results folder. ``embed=True`` (``--embed``) inlines the PNGs as base64 instead, giving a
single file that can be mailed or attached on its own.
"""

from __future__ import annotations

import base64
import html
import json
import os
import time
from pathlib import Path

import pandas as pd

from rnnsim.experiment import _write_text
from rnnsim.runs import stored_runs

__all__ = ["write_report", "collect"]

_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; max-width: 1100px;
       margin: 2em auto; padding: 0 1em; color: #222; line-height: 1.45; }
h1 { border-bottom: 2px solid #ccc; padding-bottom: .2em; }
h2 { margin-top: 2.2em; border-bottom: 1px solid #ddd; }
code, pre { background: #f4f4f4; padding: .1em .3em; border-radius: 3px; }
pre { padding: .6em; overflow-x: auto; }
figure { margin: 1em 0; }
figure img { max-width: 100%; border: 1px solid #eee; }
figcaption { font-size: .9em; color: #555; }
table.dataframe { border-collapse: collapse; font-size: .85em; margin: .5em 0; }
table.dataframe th, table.dataframe td { border: 1px solid #ddd; padding: .2em .5em;
       text-align: right; }
table.dataframe thead th { background: #f0f0f0; }
.meta { font-size: .85em; color: #555; }
.badge { display: inline-block; padding: .05em .45em; border-radius: .6em; font-size: .85em;
         font-weight: 600; margin-right: .3em; }
.pass { background: #d8f0dc; color: #14591f; }
.fail { background: #f8d7d3; color: #8a1c10; }
.unchecked { background: #eee; color: #555; }
table.claims td { text-align: left; vertical-align: top; }
nav ul { columns: 2; }
"""


def _entry(folder: Path) -> dict | None:
    """The manifest of the run in ``folder``, plus ``dir``, ``figure_files`` (the PNGs that
    exist, in the experiment's order) and ``summary`` (DataFrame or None); None if unreadable."""
    try:
        manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None
    manifest["dir"] = folder
    pngs = sorted((folder / "figures").glob("*.png"))
    order = {name: i for i, name in enumerate(manifest.get("figures", []))}
    # the experiment's own order first, then any other PNG found there, by name
    manifest["figure_files"] = sorted(pngs, key=lambda p: (order.get(p.stem, len(order)), p.stem))
    summary = folder / "summary.parquet"
    manifest["summary"] = pd.read_parquet(summary) if summary.exists() else None
    return manifest


def collect(out: str | os.PathLike = "results") -> list[dict]:
    """Every experiment under ``out`` that has a ``manifest.json``, sorted by name.

    Returns
    -------
    list of dict
        The manifest of each (its latest run), plus ``dir`` (its folder), ``figure_files`` (the
        PNGs that exist, sorted), ``summary`` (DataFrame or None) and ``runs`` (its stored runs,
        as rows of `rnnsim.runs.stored_runs`).
    """
    entries = []
    for manifest_path in sorted(Path(out).glob("*/manifest.json")):
        entry = _entry(manifest_path.parent)
        if entry is not None:
            name = entry["dir"].name
            entry["runs"] = stored_runs(out, name).to_dict("records")
            entries.append(entry)
    return entries


def _img_src(png: Path, root: Path, embed: bool) -> str:
    if embed:
        data = base64.b64encode(png.read_bytes()).decode("ascii")
        return f"data:image/png;base64,{data}"
    return png.relative_to(root).as_posix()


_BADGE = {"pass": ("pass", "✓ pass"), "fail": ("fail", "✗ fail")}


def _badge(claim: dict) -> str:
    css, text = _BADGE.get(claim["status"], ("unchecked", "– not checked"))
    return f'<span class="badge {css}" title="{html.escape(claim["detail"])}">{text}</span>'


def _claims_table(claims: list[dict]) -> str:
    esc = html.escape
    rows = [
        f"<tr><td>{_badge(c)}</td><td>{esc(c['statement'])}"
        + (f" <em>({esc(c['source'])})</em>" if c.get("source") else "")
        + f"</td><td>{esc(c['detail'])}</td></tr>"
        for c in claims
    ]
    head = "<tr><th></th><th>claim</th><th>measured</th></tr>"
    return f'<table class="dataframe claims"><thead>{head}</thead>' + "".join(rows) + "</table>"


def _run_label(entry: dict) -> str:
    """The grid and seeds a run's figures rest on: "quick grid, 3 seeds per point"."""
    grid = "quick grid" if entry.get("quick") else "full grid"
    seeds = len(entry.get("seeds", [])) or "?"
    return f"{grid}, {seeds} seed{'s' if seeds != 1 else ''} per point"


def _runs_table(runs: list[dict], root: Path) -> str:
    """The stored runs of one experiment, each linking to its own page; the latest marked."""
    esc = html.escape
    rows = []
    for run in runs:
        page = Path(run["folder"]) / "index.html"
        label = esc(run["label"])
        if page.exists() or run["label"] != "latest":
            label = f'<a href="{esc(page.relative_to(root).as_posix())}">{label}</a>'
        tally = "".join(
            f'<span class="badge {css}">{mark} {run[key]}</span>'
            for key, css, mark in (("pass", "pass", "✓"), ("fail", "fail", "✗"))
            if run[key]
        )
        cells = [
            label + (" (latest, shown below)" if run["latest"] else ""),
            "quick" if run["quick"] else "full",
            esc(run["overrides"] or "-"),
            str(run["points"]),
            str(run["seeds"]),
            esc(str(run["date"])),
            tally,
        ]
        rows.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    head = "".join(
        f"<th>{h}</th>"
        for h in ("run", "grid", "overrides", "points", "seeds", "started", "claims")
    )
    return (
        "<h3>Stored runs</h3>"
        f'<table class="dataframe claims"><thead><tr>{head}</tr></thead>'
        + "".join(rows)
        + "</table>"
    )


def _section(entry: dict, root: Path, embed: bool) -> str:
    name = entry.get("experiment", entry["dir"].name)
    esc = html.escape
    parts = [f'<h2 id="{esc(name)}">{esc(name)}</h2>']
    parts.append(f"<p>{esc(entry.get('description', ''))}</p>")
    if entry.get("notes"):
        for para in str(entry["notes"]).strip().split("\n\n"):
            parts.append(f"<p>{esc(' '.join(para.split()))}</p>")
    parts.append(
        f"<p>Reproduce: <code>{esc(entry.get('reproduce', 'rnnsim run ' + name))}</code></p>"
    )
    for what, message in (entry.get("errors") or {}).items():
        parts.append(f"<p><strong>{esc(what)} failed:</strong> <code>{esc(message)}</code></p>")
    if entry.get("runs"):
        parts.append(_runs_table(entry["runs"], root))
    claims = entry.get("claims") or []
    if claims:
        label = f"run {entry['label']}, " if entry.get("label") else ""
        parts.append(f"<h3>Claims ({esc(label + _run_label(entry))})</h3>")
        parts.append(_claims_table(claims))
    for png in entry["figure_files"]:
        svg = png.with_suffix(".svg")
        src = esc(_img_src(png, root, embed))
        img = f'<img src="{src}" alt="{esc(name)}: {esc(png.stem)}">'
        if svg.exists():
            img = f'<a href="{esc(svg.relative_to(root).as_posix())}">{img}</a>'
        badges = "".join(
            f"{_badge(c)}{esc(c['statement'])} " for c in claims if c.get("figure") == png.stem
        )
        caption = f"{esc(name)} / {esc(png.stem)} ({esc(_run_label(entry))})"
        sentence = (entry.get("captions") or {}).get(png.stem)
        if sentence:
            caption = f"{esc(sentence)}<br>{caption}"
        if badges:
            caption += f"<br>{badges}"
        parts.append(f"<figure>{img}<figcaption>{caption}</figcaption></figure>")
    summary = entry.get("summary")
    if summary is not None and len(summary):
        parts.append("<h3>Summary</h3>")
        parts.append(
            summary.to_html(
                index=False, border=0, float_format=lambda v: f"{v:.4g}", na_rep="", max_rows=60
            )
        )
    tables = entry.get("tables")  # several named tables, or the one table.csv
    csvs = [f"table_{name}.csv" for name in tables] if tables else ["table.csv"]
    timings = entry.get("timings", {})
    versions = entry.get("versions", {})
    meta = [
        f"{entry.get('rows', '?')} rows, {entry.get('n_runs', '?')} point runs "
        f"({entry.get('n_cached', '?')} from cache)",
        f"wall {timings.get('wall_seconds', '?')} s, started {timings.get('started', '?')}",
        "versions: " + ", ".join(f"{k} {v}" for k, v in versions.items()),
    ]
    for csv in csvs:
        path = entry["dir"] / csv
        if path.exists():
            meta.append(f'<a href="{esc(path.relative_to(root).as_posix())}">{esc(csv)}</a>')
    parts.append(
        '<p class="meta">'
        + " &middot; ".join(m if m.startswith("<a ") else esc(m) for m in meta)
        + "</p>"
    )
    return "\n".join(parts)


def write_report(out: str | os.PathLike = "results", *, embed: bool = False) -> Path:
    """Write ``out/index.html`` over every experiment in ``out`` (see the module docstring).

    Parameters
    ----------
    out : path
        The results root that ``rnnsim run --out`` wrote to.
    embed : bool
        Inline the PNG figures as base64 (one portable file) instead of linking them.

    Returns
    -------
    Path
        The page written.

    Raises
    ------
    ValueError
        If ``out`` is not a directory.
    """
    root = Path(out)
    if not root.is_dir():
        raise ValueError(f"out: {str(root)!r} is not a directory (run an experiment first)")
    entries = collect(root)
    esc = html.escape
    body = ["<h1>rnnsim results</h1>"]
    body.append(
        f'<p class="meta">Generated {esc(time.strftime("%Y-%m-%d %H:%M:%S %Z"))} from '
        f"{len(entries)} experiment(s) in <code>{esc(str(root))}</code>.</p>"
    )
    if entries:
        body.append("<nav><ul>")
        for e in entries:
            name = esc(e.get("experiment", e["dir"].name))
            statuses = [c["status"] for c in e.get("claims") or []]
            tally = "".join(
                f' <span class="badge {css}">{mark} {statuses.count(status)}</span>'
                for status, css, mark in (("pass", "pass", "✓"), ("fail", "fail", "✗"))
                if statuses.count(status)
            )
            body.append(
                f'<li><a href="#{name}">{name}</a>{tally}: {esc(e.get("description", ""))}</li>'
            )
        body.append("</ul></nav>")
    else:
        body.append("<p>No results yet: run <code>rnnsim run all --quick</code>.</p>")
    body += [_section(e, root, embed) for e in entries]
    for entry in entries:  # one page per stored run, beside its files
        for run in entry["runs"]:
            folder = Path(run["folder"])
            if folder != entry["dir"]:
                _write_run_page(folder, root, embed)
    page = _page("rnnsim results", body)
    path = root / "index.html"
    _write_text(page, path)
    return path


def _page(title: str, body: list[str]) -> str:
    """A whole HTML page: the style inline, no scripts, no external resources."""
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{html.escape(title)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n"
        + "\n".join(body)
        + "\n</body>\n</html>\n"
    )


def _write_run_page(folder: Path, root: Path, embed: bool) -> None:
    """``folder/index.html``: one stored run's section (claims, figures, summary), linking back."""
    entry = _entry(folder)
    if entry is None:
        return
    name = entry.get("experiment", folder.parent.parent.name)
    back = os.path.relpath(root / "index.html", folder)
    esc = html.escape
    body = [
        f'<p class="meta"><a href="{esc(Path(back).as_posix())}#{esc(name)}">'
        "&larr; all results</a></p>",
        _section(entry, folder, embed),
    ]
    plots = sorted((folder / "plots").glob("*.png"))
    if plots:  # drawn by `rnnsim plot NAME:LABEL`
        body.append("<h3>Plots</h3>")
        for png in plots:
            img = f'<img src="{esc(_img_src(png, folder, embed))}" alt="{esc(png.stem)}">'
            body.append(f"<figure>{img}<figcaption>{esc(png.name)}</figcaption></figure>")
    _write_text(_page(f"{name}:{entry.get('label', '')}", body), folder / "index.html")
