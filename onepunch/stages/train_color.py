"""Stage 4, `train-color`: the colorizer (scan -> color U-Net), trained progressively on the paired shards.

    onepunch train-color --size 64 --pipeline pipelines/demo.toml                    # CPU, tiny preset
    onepunch train-color --size 256 --pipeline pipelines/danbooru2020.toml          # stages 64 -> 128 -> 256
    onepunch train-color --size 256 --encoder-weights /models/resnet50-13306192.pth # Danbooru-pretrained encoder
    torchrun --nproc_per_node 8 -m onepunch train-color --size 256 ...

Each progressive stage (64, 128, ...) starts from the previous stage's final weights and has its own outputs
(runs/<pipeline>/train-color/<size>/: ckpt/, samples/, log.jsonl, weights.pt) and manifest
(manifests/<pipeline>/train-color-<size>.json), so a finished stage is skipped on rerun and a larger --size later
reuses the smaller stages. Losses: hinge (or LSGAN) + L1 (constant or decaying) + optional edge L1; D 4e-4, G 1e-4,
Adam betas (0, 0.9); linear decay over the second half of each stage. The end product is color.pt: config, all
weights (encoder included), input normalisation and lineage, loadable with weights_only=True.
"""

from __future__ import annotations

import math
import platform
import time

import torch
from rich.progress import TextColumn

from onepunch import __version__, augment, checkpoint, data, dist, losses, memory, metrics, pipeline, train
from onepunch.config import PipelineConfig
from onepunch.errors import UserError
from onepunch.manifest import FORMAT, exclusive, read_json, sha256_file, write_json
from onepunch.models import abbins, colorizer, encoder_weights
from onepunch.ui import console, progress

CKPT_KIND = "onepunch.train-color.checkpoint"
NAME = "train-color"
LOG_EVERY = 10
GRID_IMAGES = 4


# ---------------------------------------------------------------------------------------------------------- model
def build_model(cfg: PipelineConfig, log) -> tuple[colorizer.Colorizer, colorizer.Critic]:
    tc = cfg.train_color
    if tc.encoder_weights and tc.preset == "tiny":
        raise UserError("encoder_weights need the base (ResNet50) or lite (EfficientNet-Lite0) preset")
    torch.manual_seed(tc.seed)
    frozen = bool(tc.encoder_weights) and tc.freeze_encoder
    g, d = colorizer.build(tc.preset, frozen_encoder=frozen, head=tc.head, ink_l=tc.ink_l if tc.head == "lab" else 0.0)
    if tc.encoder_weights:
        norm = encoder_weights.load_into(g.encoder, tc.encoder_weights)
        g, d = _with_norm(g, d, norm, frozen)
        log.print(f"encoder: {tc.encoder_weights} ({norm} format){', frozen' if frozen else ', trained'}")
    else:
        log.print("[yellow]encoder: no --encoder-weights given: randomly initialised and trained with the decoder "
                  "(a frozen random encoder would be useless)[/]")
    return g, d


def _with_norm(g, d, norm: str, frozen: bool):
    """Same weights, the normalisation the pretrained encoder expects."""
    state = g.state_dict()
    g2 = colorizer.Colorizer(colorizer.ColorizerConfig(**{**g.cfg.__dict__, "norm": norm}), frozen)
    g2.load_state_dict(state)
    return g2, d


def load_trainable(g: colorizer.Colorizer, state_dict: dict) -> None:
    """Load weights saved by trainable_state: only a frozen encoder may be absent, nothing else."""
    missing, unexpected = g.load_state_dict(state_dict, strict=False)
    missing = [k for k in missing if not (g.frozen and k.startswith("encoder."))]
    if missing or unexpected:
        raise RuntimeError(f"generator weights do not fit: missing {missing[:3]}, unexpected {unexpected[:3]}")


def trainable_state(g: colorizer.Colorizer) -> dict:
    """Weights a checkpoint needs: all but a frozen encoder (restored from its file)."""
    return {k: v.detach().cpu() for k, v in train.unwrap(g).state_dict().items()
            if not (g.frozen and k.startswith("encoder."))}


def phase(step: int, total: int, tc) -> tuple[str, int, int]:
    """(kind, first step, end step) of the phase holding step: gan, or under NoGAN g_only (L1), d_only, then gan."""
    if not tc.nogan:
        return "gan", 0, total
    g_end = int(tc.nogan_phases[0] * total)
    d_end = g_end + int(tc.nogan_phases[1] * total)
    return ("g_only", 0, g_end) if step < g_end else ("d_only", g_end, d_end) if step < d_end else ("gan", d_end, total)


def learning_rates(step: int, total: int, tc) -> tuple[float, float]:
    """(G, D) learning rates. Each NoGAN phase has its own constant-then-linear-decay schedule (so the GAN phase
    starts at the full rate, not at what is left of a decay that began in the L1 phase); the L1-only phase is plain
    regression and uses its own, larger rate."""
    kind, first, end = phase(step, total, tc)
    factor = train.lr_factor(step - first, end - first, tc.decay_start)
    return (tc.nogan_lr_g if kind == "g_only" else tc.lr_g) * factor, tc.lr_d * factor


def train_step(g, d, opt_g, opt_d, scan, color, tc, env: train.Env, step: int, total: int,
               control: tuple = (None, None), rebalance: torch.Tensor | None = None) -> dict:
    """D step then G step on one batch (pix2pix order); under NoGAN one of them may be skipped. `control`: the
    generator's (hints, palette) for this batch (hints.control), or none. `rebalance`: the lab head's per-cell
    loss weights (abbins.rebalance)."""
    F = torch.nn.functional
    kind = phase(step, total, tc)[0]
    l1_w = tc.l1_weight * (train.lr_factor(step, total, 0.0) if tc.l1_schedule == "linear" else 1.0)
    lab = train.unwrap(g).cfg.head == "lab"  # the net's own head (a test or an old run may differ from tc)
    out = {}
    with env.autocast(), torch.set_grad_enabled(kind != "d_only"):  # the critic-only phase needs no G graph
        raw = g.raw(scan, *control) if lab else None
        fake = train.unwrap(g).readout(raw) if lab else g(scan, *control)  # (B, 3, S, S)
    if kind != "g_only":
        with env.autocast():
            loss_d = losses.gan_d(d(scan, color), d(scan, fake.detach()), tc.gan_loss)
        opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        dist.sync_grads(d)
        opt_d.step()
        out["d"] = loss_d.detach()
    if kind != "d_only":
        with env.autocast():
            if lab:  # L* regressed, a*b* classified (abbins): l1 is L*'s
                l1, ce = abbins.loss(raw, color, train.unwrap(g).centres, rebalance, tc.ink_l)
                loss = l1_w * l1 + tc.ce_weight * ce
                out["g_ce"] = ce.detach()
            else:
                l1 = F.l1_loss(fake, color)
                loss = l1_w * l1
            if kind == "gan":
                for p in d.parameters():
                    p.requires_grad_(False)
                adv = losses.gan_g(d(scan, fake), tc.gan_loss)
                for p in d.parameters():
                    p.requires_grad_(True)
                loss = loss + adv
                out["g_adv"] = adv.detach()
            if tc.edge_weight:
                edge = F.l1_loss(losses.edge_map(fake.float()), losses.edge_map(color.float()))
                loss = loss + tc.edge_weight * edge
                out["g_edge"] = edge.detach()
        opt_g.zero_grad(set_to_none=True)
        loss.backward()
        dist.sync_grads(g)
        opt_g.step()
        out["g_l1"] = l1.detach()
    return out


# ----------------------------------------------------------------------------------------------------- validation
@torch.no_grad()
def validate(g, val: list, mean_color: torch.Tensor, size: int, env: train.Env) -> dict:
    """Metrics on fixed val pairs (center squares at the stage size), next to the two trivial baselines."""
    scans = torch.stack([augment.to_unit(augment.center_square(s, size)) for s, _ in val]).to(env.device)
    colors = torch.stack([augment.to_unit(augment.center_square(c, size)) for _, c in val]).to(env.device)
    g.eval()
    with env.autocast():
        out = g(scans).float()
    g.train()
    unit = [(x + 1) / 2 for x in (out, colors, scans.expand(-1, 3, -1, -1))]
    mean = mean_color.to(env.device).view(1, 3, 1, 1).expand_as(unit[1])
    return {**metrics.color_report(unit[0], unit[1], "val_"),
            **metrics.color_report(unit[2], unit[1], "baseline_scan_"),
            **metrics.color_report(mean, unit[1], "baseline_mean_")}


def _rebalance(shards: list, spec_ext: tuple[str, str], g, mix: float, n: int = 64, ink_l: float = 0.0) -> torch.Tensor:
    """The lab head's per-cell loss weights from the color prior of the first n training colors (at 64 px: the
    prior is a histogram; the same on every rank and every resume), over the pixels the loss counts (ink_l)."""
    F = torch.nn.functional
    colors = [F.interpolate(c[None].float() / 255, size=(64, 64), mode="area")
              for _, c in data.first_samples(shards, n, (spec_ext[1], "RGB"))]
    lab = abbins.rgb_to_lab(torch.cat(colors))
    w = abbins.ink_fade(lab[:, :1], ink_l) if ink_l > 0 else None
    return abbins.rebalance(abbins.prior(lab[:, 1:], train.unwrap(g).centres.cpu(), w), mix)


# ------------------------------------------------------------------------------------------------------------ run
def run(cfg: PipelineConfig, stop_after: int | None = None) -> dict | None:
    """Train every progressive stage not yet done, then write color.pt. Raises train.Stopped when stopped early
    (`stop_after` counts steps within the stage being trained)."""
    tc = cfg.train_color
    env = train.setup(tc.device)
    log = console(env.rank.is_main)
    inputs = pipeline.inputs(cfg, NAME)
    if pipeline.state(cfg, NAME, inputs) == "done":
        log.print(f"[green]train-color up to date[/]: {read_json(pipeline.manifest_path(cfg, NAME))['outputs']['color.pt']['path']}")
        return read_json(pipeline.manifest_path(cfg, NAME))
    lock = pipeline.out_dir(cfg, NAME) / (".lock" if env.rank.world == 1 else f".lock-{env.rank.rank}")
    with exclusive(lock, "onepunch train-color"):
        try:
            g, d = build_model(cfg, log)
            init, stage_manifests = None, []
            for size in tc.sizes:
                sm = pipeline.color_stage_done(cfg, inputs, size, init)
                if sm is None:
                    sm = _train_stage(cfg, env, inputs, size, init, g, d, stop_after, log)
                else:
                    log.print(f"stage {size}px up to date ({pipeline.manifest_path(cfg, NAME, size)})")
                w = torch.load(sm["outputs"]["weights"]["path"], map_location="cpu", weights_only=True)
                load_trainable(g, w["generator"])
                d.load_state_dict(w["critic"])
                init = sm["outputs"]["weights"]["sha256"]
                stage_manifests.append(str(pipeline.manifest_path(cfg, NAME, size)))
            return _finish(cfg, g, inputs, init, stage_manifests, sm["metrics"], env, log) if env.rank.is_main else None
        finally:
            dist.shutdown()


def _train_stage(cfg, env, inputs, size, init, g, d, stop_after, log) -> dict:
    tc, main = cfg.train_color, env.rank.is_main
    out = pipeline.out_dir(cfg, NAME) / str(size)
    h = pipeline.config_hash(cfg, NAME, inputs, size, init)
    pairs_m = read_json(inputs["pairs_manifest"])
    members = (pairs_m["members"]["scan"], pairs_m["members"]["color"])
    train_shards = pipeline.pair_shards(pairs_m, "train")
    val_shards = pipeline.pair_shards(pairs_m, pipeline.held_out(pairs_m))
    n_pairs = pairs_m["splits"]["train"]["count"]
    total = tc.steps or max(1, math.ceil(tc.epochs * n_pairs / (tc.batch_size * env.rank.world)))

    g.to(env.device), d.to(env.device)
    if env.cuda:
        g.to(memory_format=torch.channels_last), d.to(memory_format=torch.channels_last)
    opt_g = torch.optim.Adam([p for p in g.parameters() if p.requires_grad], lr=tc.lr_g, betas=(tc.beta1, tc.beta2))
    opt_d = torch.optim.Adam(d.parameters(), lr=tc.lr_d, betas=(tc.beta1, tc.beta2))
    ckpts = train.Checkpoints(out / "ckpt", tc.keep_ckpts)
    start = 0
    if (latest := ckpts.latest()) is not None:
        ck = checkpoint.load_checkpoint(latest, CKPT_KIND)
        if train.same_run(ck, h, env.rank.world, latest):
            try:
                load_trainable(g, ck["generator"])
                d.load_state_dict(ck["critic"])
                opt_g.load_state_dict(ck["opt_g"])
                opt_d.load_state_dict(ck["opt_d"])
            except (RuntimeError, ValueError, KeyError) as e:  # e.g. a critic saved before its spectral norm moved
                # to torch.nn.utils.parametrizations (other state-dict keys)
                raise UserError(f"{latest} does not fit this version's networks ({str(e).splitlines()[0]}); "
                                f"delete {out / 'ckpt'} to train this stage afresh") from None
            start = ck["step"]
            log.print(f"resuming stage {size}px from {latest} (step {start})")
        else:
            log.print(f"[yellow]{latest} was made with another config: stage {size}px starts over[/]")
            if main:
                ckpts.clear()
    dist.broadcast_params(g, d)

    spec = data.PairSpec(tuple(data.rank_shards(train_shards, env.rank)), size, tc.batch_size,
                         data.mix_seed(tc.seed, "pairs", size), env.rank.rank, scan_ext=members[0],
                         color_ext=members[1], degrade_p=tc.degrade_p,
                         min_crop=tc.min_crop, rotate=tc.rotate, perspective_p=tc.perspective_p,
                         lines_p=tc.lines_p, hint_p=tc.hint_p, max_hints=tc.max_hints, palette_p=tc.palette_p)
    val = [(s, c) for _, s, c in data.first_samples(val_shards, tc.val_images, (members[0], "L"), (members[1], "RGB"))]
    mean_color = data.mean_color(train_shards, members[1])
    rebalance = (_rebalance(train_shards, members, g, tc.rebalance, ink_l=tc.ink_l)
                 if g.cfg.head == "lab" else None)
    grid_scans = torch.stack([augment.to_unit(augment.center_square(s, size)) for s, _ in val[:GRID_IMAGES]])
    grid_colors = torch.stack([augment.to_unit(augment.center_square(c, size)) for _, c in val[:GRID_IMAGES]])
    stream = iter(data.loader(spec, start, tc.workers, pin=env.cuda))  # forks workers before any thread starts
    step_g, step_d = (torch.compile(g), torch.compile(d)) if tc.compile and env.cuda else (g, d)
    metric_log = train.MetricLog(out / "log.jsonl", start, enabled=main)
    last_val, t0, seen = {}, time.perf_counter(), 0
    with train.StopFlag() as stop, progress(log, TextColumn("{task.fields[info]}")) as bar:
        task = bar.add_task(f"color {size}", total=total, completed=start, unit="step", info="")
        for step in range(start, total):
            # (scan, color) and, when training with them, the (hints, palette) the loader drew from the truth
            scan, color, *control = (t.to(env.device, non_blocking=True) for t in next(stream))
            if env.cuda:
                scan, color = (t.contiguous(memory_format=torch.channels_last) for t in (scan, color))
            lr_g, lr_d = learning_rates(step, total, tc)
            for opt, lr in ((opt_g, lr_g), (opt_d, lr_d)):
                for group in opt.param_groups:
                    group["lr"] = lr
            losses = train_step(step_g, step_d, opt_g, opt_d, scan, color, tc, env, step, total,
                                tuple(control) or (None, None), rebalance)
            done, last = step + 1, step + 1 == total
            seen += tc.batch_size * env.rank.world
            if done % LOG_EVERY == 0 or last:
                values = {k: float(v) for k, v in losses.items()}
                values.update(lr_g=lr_g, pairs_per_s=seen / (time.perf_counter() - t0))
                metric_log.log(done, values)
                bar.update(task, info=" ".join(f"{k} {v:.3f}" for k, v in values.items() if k.startswith(("g_", "d"))))
            if main and (done % tc.sample_every == 0 or last):
                g.eval()
                with torch.no_grad(), env.autocast():
                    fake = g(grid_scans.to(env.device)).float().cpu()
                g.train()
                train.save_grid([grid_scans, fake, grid_colors], out / "samples" / f"step-{done:08d}.png")
            if main and (done % tc.val_every == 0 or last):
                last_val = validate(g, val, mean_color, size, env)
                metric_log.log(done, last_val)
            bar.update(task, completed=done)
            stopping = dist.any_rank(stop.requested or done == stop_after)
            saving = done % tc.ckpt_every == 0 or last or stopping
            if saving:
                dist.average_buffers(g, d)  # a collective: every rank, before rank 0 saves
            if main and saving:
                ckpts.save({"kind": CKPT_KIND, "format": FORMAT, "step": done, "config_hash": h,
                            "world_size": env.rank.world, "generator": trainable_state(g),
                            "critic": {k: v.cpu() for k, v in train.unwrap(d).state_dict().items()},
                            "opt_g": opt_g.state_dict(), "opt_d": opt_d.state_dict()}, done)
            if stopping and not last:
                metric_log.close()
                dist.barrier()  # no rank leaves (and none restarts, looking for it) before the checkpoint is there
                raise train.Stopped(f"train-color stopped at step {done}/{total} of stage {size}px, checkpoint "
                                    "saved; run the same command to resume")
    metric_log.close()
    if not dist.same_on_all_ranks(g, d):
        raise RuntimeError("ranks ended with different weights: gradient sync is broken")
    weights = out / "weights.pt"
    if main:
        checkpoint.save_atomic({"kind": "onepunch.train-color.stage", "size": size, "generator": trainable_state(g),
                           "critic": {k: v.cpu() for k, v in train.unwrap(d).state_dict().items()}}, weights)
        m = {"stage": f"{NAME}-{size}", "format": FORMAT, "pipeline": cfg.name, "size": size, "steps": total,
             "config": pipeline.settings(cfg, NAME), "config_hash": h, "inputs": inputs, "init_weights_sha256": init,
             "world_size": env.rank.world,
             "outputs": {"weights": {"path": str(weights), "sha256": sha256_file(weights)},
                         "samples": str(out / "samples"), "log": str(out / "log.jsonl")},
             "metrics": last_val}
        write_json(pipeline.manifest_path(cfg, NAME, size), m)
        log.print(f"stage {size}px done: val L1 {last_val['val_l1']:.4f} (scan {last_val['baseline_scan_l1']:.4f}, "
                  f"mean color {last_val['baseline_mean_l1']:.4f})")
    dist.barrier()  # every rank reads the stage manifest rank 0 has just written
    return read_json(pipeline.manifest_path(cfg, NAME, size))


def _finish(cfg, g, inputs, final_sha, stage_manifests, val, env, log) -> dict:
    path = pipeline.out_dir(cfg, NAME) / "color.pt"
    checkpoint.save_colorizer(train.unwrap(g), path, working_size=cfg.shards.max_side,
                   lineage={**inputs, "pipeline": cfg.name, "stages": stage_manifests},
                   metrics=val, train_config=pipeline.settings(cfg, NAME))
    remembered = {"limit": cfg.train_color.memory_images, "images": 0, "shapes": 0}
    if cfg.train_color.memory_images:
        # Colors from the training set (onepunch/memory.py): the final net describes the training pairs' shapes.
        pairs_m = read_json(inputs["pairs_manifest"])
        shards = pipeline.pair_shards(pairs_m, "train")
        todo = sum(n for _, n in memory.spread(shards, cfg.train_color.memory_images))
        with progress(log) as bar:
            task = bar.add_task("remembering the training shapes", total=todo)
            mem = memory.build(path, shards, (pairs_m["members"]["scan"], pairs_m["members"]["color"]),
                               cfg.train_color.memory_images, str(env.device), lambda: bar.advance(task))
        memory.attach(path, mem)
        remembered.update(images=mem.images, shapes=len(mem.keys))
    m = {"stage": NAME, "format": FORMAT, "pipeline": cfg.name, "sizes": cfg.train_color.sizes,
         "config": pipeline.settings(cfg, NAME), "inputs": inputs, "stages": stage_manifests, "final_weights_sha256": final_sha,
         "outputs": {"color.pt": {"path": str(path), "sha256": sha256_file(path), "bytes": path.stat().st_size}},
         "memory": remembered, "metrics": val, "versions": {"onepunch": __version__, "torch": torch.__version__,
                                      "python": platform.python_version()}}
    write_json(pipeline.manifest_path(cfg, NAME), m)
    log.print(f"[green]train-color done[/]: {path}")
    return m
