"""Stage 2, `train-scan`: a CycleGAN between the scans and colors shards; its color->scan generator is `scan.pt`.

    onepunch train-scan --pipeline pipelines/demo.toml                  # CPU, tiny preset, minutes
    torchrun --nproc_per_node 8 -m onepunch train-scan --pipeline pipelines/danbooru2020.toml
    onepunch train-scan ...      # again after a crash or Ctrl-C: resumes from the last checkpoint; when done, no-op

Losses: adversarial (LSGAN or hinge) on both domains, cycle L1 (x10) both ways, identity L1 (x5) for the color->scan
generator (a scan given as a 3-channel color image must come out unchanged; the other direction has no identity
since 1 -> 3 channels cannot be one). Adam 2e-4, betas (0.5, 0.999), constant then linear decay; image pools of 50.
Outputs under runs/<pipeline>/train-scan/: ckpt/, samples/ (grids: color -> scan -> color and scan -> color -> scan),
log.jsonl, scan.pt; and manifests/<pipeline>/train-scan.json.
"""

from __future__ import annotations

import platform
import time
from pathlib import Path

import torch
from rich.progress import TextColumn

from onepunch import __version__, augment, checkpoint, data, dist, losses, metrics, pipeline, train
from onepunch.config import PipelineConfig
from onepunch.manifest import FORMAT, exclusive, read_json, sha256_file, write_json
from onepunch.models import cyclegan
from onepunch.ui import console, progress

CKPT_KIND = "onepunch.train-scan.checkpoint"
NAME = "train-scan"
LOG_EVERY = 10
GRID_IMAGES = 4


def _requires_grad(modules, flag: bool) -> None:
    for m in modules:
        for p in m.parameters():
            p.requires_grad_(flag)


def train_step(nets: dict, opt_g, opt_d, pools: dict, real_c, real_s, cfg, env: train.Env, g) -> dict:
    """One generator step then one discriminator step; returns detached losses."""
    F = torch.nn.functional
    c2s, s2c, d_scan, d_color = nets["c2s"], nets["s2c"], nets["d_scan"], nets["d_color"]
    _requires_grad([d_scan, d_color], False)
    with env.autocast():
        fake_s = c2s(real_c)                                # (B,1,H,W): the scan we want
        seen_s = fake_s
        if cfg.cycle_noise:  # the rebuild sees a noisy scan: colors hidden in faint grey levels do not survive it
            seen_s = fake_s + cfg.cycle_noise * torch.randn(fake_s.shape, generator=g).to(fake_s.device, fake_s.dtype)
        rec_c = s2c(seen_s)                                 # (B,3,H,W)
        fake_c = s2c(real_s)
        rec_s = c2s(fake_c)
        adv = losses.gan_g(d_scan(fake_s), cfg.gan_loss) + losses.gan_g(d_color(fake_c), cfg.gan_loss)
        cycle = F.l1_loss(rec_c, real_c) + F.l1_loss(rec_s, real_s)
        identity = F.l1_loss(c2s(real_s.expand(-1, 3, -1, -1)), real_s) if cfg.lambda_identity else adv * 0
        loss_g = adv + cfg.lambda_cycle * cycle + cfg.lambda_identity * identity
        if cfg.ink_weight:  # ink is black or paper: grey levels cost (L1 distance to the nearer of the two)
            ink = (1 - fake_s.float().abs()).mean()
            loss_g = loss_g + cfg.ink_weight * ink
    opt_g.zero_grad(set_to_none=True)
    loss_g.backward()
    dist.sync_grads(c2s, s2c)
    opt_g.step()

    _requires_grad([d_scan, d_color], True)
    with env.autocast():
        d_s = losses.gan_d(d_scan(real_s), d_scan(pools["scan"].query(fake_s.to(real_s.dtype), g)), cfg.gan_loss)
        d_c = losses.gan_d(d_color(real_c), d_color(pools["color"].query(fake_c.to(real_c.dtype), g)), cfg.gan_loss)
    opt_d.zero_grad(set_to_none=True)
    (d_s + d_c).backward()
    dist.sync_grads(d_scan, d_color)
    opt_d.step()
    return {"g_adv": adv.detach(), "g_cycle": cycle.detach(), "g_identity": identity.detach(),
            **({"g_ink": ink.detach()} if cfg.ink_weight else {}),
            "d_scan": d_s.detach(), "d_color": d_c.detach()}


# -------------------------------------------------------------------------------------------------- validation
@torch.no_grad()
def to_scan(c2s: torch.nn.Module, img: torch.Tensor, env: train.Env) -> torch.Tensor:
    """uint8 (3,H,W) color image -> float (1,1,H,W) scan in [-1, 1], at full size (padded for the net, cropped)."""
    x = augment.to_unit(img)[None].to(env.device)
    x, (h, w) = cyclegan.pad_to_multiple(x, c2s.multiple)
    with env.autocast():
        y = c2s(x)
    return y[..., :h, :w].float()


@torch.no_grad()
def validate(nets: dict, val_colors: list, truth: Path | None, env: train.Env) -> dict:
    """Cycle error on val colors; with true line art: PSNR/SSIM of generated scans and of the greyscale baseline."""
    c2s, s2c = nets["c2s"], nets["s2c"]
    c2s.eval(), s2c.eval()
    out = {"val_cycle_l1": 0.0}
    scores = {"val_psnr": [], "val_ssim": [], "baseline_grey_psnr": [], "baseline_grey_ssim": []}
    for key, img in val_colors:
        scan = to_scan(c2s, img, env)
        x, (h, w) = cyclegan.pad_to_multiple(scan, s2c.multiple)
        with env.autocast():
            rec = s2c(x)[..., :h, :w].float()
        out["val_cycle_l1"] += float((rec - augment.to_unit(img)[None].to(env.device)).abs().mean()) / len(val_colors)
        t = data.load_truth(truth / f"{key}.png", (img.shape[2], img.shape[1])) if truth else None
        if t is None:
            continue
        t = t.to(env.device)
        gen = (scan + 1) / 2
        grey = (img.float().to(env.device) * torch.tensor([0.299, 0.587, 0.114], device=env.device)[:, None, None])
        grey = grey.sum(0)[None, None] / 255
        scores["val_psnr"].append(metrics.psnr(gen, t))
        scores["val_ssim"].append(metrics.ssim(gen, t))
        scores["baseline_grey_psnr"].append(metrics.psnr(grey, t))
        scores["baseline_grey_ssim"].append(metrics.ssim(grey, t))
    for k, v in scores.items():
        if v:
            out[k] = sum(v) / len(v)
    c2s.train(), s2c.train()
    return out


def _grid(nets: dict, colors: torch.Tensor, scans: torch.Tensor, path: Path, env: train.Env) -> None:
    c2s, s2c = nets["c2s"], nets["s2c"]
    c2s.eval(), s2c.eval()
    with torch.no_grad(), env.autocast():
        fake_s = c2s(colors)
        rec_c = s2c(fake_s)
        fake_c = s2c(scans)
        rec_s = c2s(fake_c)
    train.save_grid([colors, fake_s, rec_c, scans, fake_c, rec_s], path)
    c2s.train(), s2c.train()


# --------------------------------------------------------------------------------------------------------- run
def run(cfg: PipelineConfig, stop_after: int | None = None) -> dict | None:
    """Train (or resume, or find it done). Returns the manifest (None on ranks > 0); raises train.Stopped when
    stopped early by a signal or `stop_after` (a rerun resumes)."""
    tc = cfg.train_scan
    env = train.setup(tc.device)
    log = console(env.rank.is_main)
    inputs = pipeline.inputs(cfg, NAME)
    h = pipeline.config_hash(cfg, NAME, inputs)
    old = read_json(pipeline.manifest_path(cfg, NAME))
    if old and pipeline.state(cfg, NAME, inputs) == "done":
        log.print(f"[green]train-scan up to date[/]: {old['outputs']['scan.pt']['path']}; nothing to do")
        return old
    out = pipeline.out_dir(cfg, NAME)
    lock = out / (".lock" if env.rank.world == 1 else f".lock-{env.rank.rank}")
    with exclusive(lock, "onepunch train-scan"):
        try:
            return _train(cfg, env, inputs, h, stop_after, log)
        finally:
            dist.shutdown()


def _train(cfg: PipelineConfig, env: train.Env, inputs: dict, h: str, stop_after: int | None, log) -> dict | None:
    tc, out, main = cfg.train_scan, pipeline.out_dir(cfg, NAME), env.rank.is_main
    torch.manual_seed(tc.seed)  # identical initial weights on every rank (and broadcast below, to be sure)
    nets = {k: m.to(env.device) for k, m in cyclegan.build(tc.preset, tc.base).items()}
    if env.cuda:
        nets = {k: m.to(memory_format=torch.channels_last) for k, m in nets.items()}
    betas = (tc.beta1, tc.beta2)
    opt_g = torch.optim.Adam([*nets["c2s"].parameters(), *nets["s2c"].parameters()], lr=tc.lr, betas=betas)
    opt_d = torch.optim.Adam([*nets["d_scan"].parameters(), *nets["d_color"].parameters()], lr=tc.lr, betas=betas)
    pools = {"scan": train.ImagePool(tc.pool_size), "color": train.ImagePool(tc.pool_size)}
    ckpts = train.Checkpoints(out / "ckpt", tc.keep_ckpts)
    start = 0
    if (latest := ckpts.latest()) is not None:
        ck = checkpoint.load_checkpoint(latest, CKPT_KIND)
        if train.same_run(ck, h, env.rank.world, latest):
            for k, m in nets.items():
                m.load_state_dict(ck["models"][k])
            opt_g.load_state_dict(ck["opt_g"])
            opt_d.load_state_dict(ck["opt_d"])
            for k, p in pools.items():
                p.load(ck["pools"][k][env.rank.rank], env.device)
            start = ck["step"]
            log.print(f"resuming from {latest} (step {start})")
        else:
            log.print(f"[yellow]{latest} was made with another config: training from scratch[/]")
            if main:
                ckpts.clear()
    dist.broadcast_params(*nets.values())

    shards_m = read_json(inputs["shards_manifest"])
    ext = cfg.shards.image_format
    specs = {}
    for domain, mode in (("colors", "RGB"), ("scans", "L")):
        specs[domain] = data.StreamSpec(
            tuple(data.rank_shards(data.shard_list(shards_m, domain, "train"), env.rank)), tc.size, tc.batch_size,
            data.mix_seed(tc.seed, domain), env.rank.rank, ext=ext, mode=mode, min_crop=tc.min_crop, rotate=tc.rotate,
            perspective_p=tc.perspective_p)
    val = {}
    for domain, mode in (("colors", "RGB"), ("scans", "L")):
        split = "val" if shards_m["domains"][domain]["val"]["count"] else "train"
        val[domain] = data.first_samples(data.shard_list(shards_m, domain, split), tc.val_images, (ext, mode))
    grid_c = torch.stack([augment.to_unit(augment.center_square(x, tc.size)) for _, x in val["colors"][:GRID_IMAGES]])
    grid_s = torch.stack([augment.to_unit(augment.center_square(x, tc.size)) for _, x in val["scans"][:GRID_IMAGES]])
    grid_c, grid_s = grid_c.to(env.device), grid_s.to(env.device)
    truth = pipeline.truth_dir(cfg)

    step_nets = {k: torch.compile(m) for k, m in nets.items()} if tc.compile else nets
    loaders = {d: iter(data.loader(specs[d], start, tc.workers, pin=env.cuda)) for d in specs}
    metric_log = train.MetricLog(out / "log.jsonl", start, enabled=main)
    last_val: dict = {}
    t0, seen = time.perf_counter(), 0
    with train.StopFlag() as stop, progress(log, TextColumn("{task.fields[info]}")) as bar:
        task = bar.add_task("train-scan", total=tc.steps, completed=start, unit="step", info="")
        for step in range(start, tc.steps):
            real_c = next(loaders["colors"]).to(env.device, non_blocking=True)
            real_s = next(loaders["scans"]).to(env.device, non_blocking=True)
            if env.cuda:
                real_c, real_s = (t.contiguous(memory_format=torch.channels_last) for t in (real_c, real_s))
            lr = tc.lr * train.lr_factor(step, tc.steps, tc.decay_start)
            for opt in (opt_g, opt_d):
                for group in opt.param_groups:
                    group["lr"] = lr
            g = torch.Generator().manual_seed(data.mix_seed(tc.seed, "pool", env.rank.rank, step))
            losses = train_step(step_nets, opt_g, opt_d, pools, real_c, real_s, tc, env, g)
            done = step + 1
            seen += tc.batch_size * env.rank.world
            last = done == tc.steps
            if done % LOG_EVERY == 0 or last:
                values = {k: float(v) for k, v in losses.items()}
                values.update(lr=lr, pairs_per_s=seen / (time.perf_counter() - t0))
                metric_log.log(done, values)
                bar.update(task, info=f"G {values['g_adv']:.3f}/{values['g_cycle']:.3f} D {values['d_scan']:.3f}")
            if main and (done % tc.sample_every == 0 or last):
                _grid(nets, grid_c, grid_s, out / "samples" / f"step-{done:08d}.png", env)
            if main and (done % tc.val_every == 0 or last):
                last_val = validate(nets, val["colors"], truth, env)
                metric_log.log(done, last_val)
            bar.update(task, completed=done)
            stopping = dist.any_rank(stop.requested or done == stop_after)
            if done % tc.ckpt_every == 0 or last or stopping:
                _save(ckpts, nets, opt_g, opt_d, pools, done, h, env)
            if stopping and not last:
                metric_log.close()
                dist.barrier()  # no rank leaves (and none restarts, looking for it) before the checkpoint is there
                raise train.Stopped(f"train-scan stopped at step {done}/{tc.steps}, checkpoint saved; "
                                    "run the same command to resume")
    metric_log.close()
    if not dist.same_on_all_ranks(*nets.values()):
        raise RuntimeError("ranks ended with different weights: gradient sync is broken")
    if not main:
        return None
    return _finish(cfg, nets["c2s"], inputs, h, last_val, env, log)


def _save(ckpts, nets, opt_g, opt_d, pools, step, h, env: train.Env) -> None:
    """Full training state. Pools differ per rank, so they are gathered; rank 0 writes."""
    pool_states = {k: dist.gather_objects(p.state()) for k, p in pools.items()}
    dist.average_buffers(*nets.values())
    if env.rank.is_main:
        ckpts.save({"kind": CKPT_KIND, "format": FORMAT, "step": step, "config_hash": h,
                    "world_size": env.rank.world,
                    "models": {k: {n: t.cpu() for n, t in train.unwrap(m).state_dict().items()} for k, m in nets.items()},
                    "opt_g": opt_g.state_dict(), "opt_d": opt_d.state_dict(), "pools": pool_states}, step)


def _finish(cfg, c2s, inputs: dict, h: str, val: dict, env: train.Env, log) -> dict:
    out = pipeline.out_dir(cfg, NAME)
    path = out / "scan.pt"
    checkpoint.save_generator(train.unwrap(c2s), path, lineage={**inputs, "config_hash": h, "pipeline": cfg.name}, metrics=val,
                   train_config=cfg.section("train_scan"))
    m = {
        "stage": NAME, "format": FORMAT, "pipeline": cfg.name, "config": cfg.section("train_scan"), "config_hash": h,
        "inputs": inputs, "world_size": env.rank.world, "device": env.device.type,
        "outputs": {"scan.pt": {"path": str(path), "sha256": sha256_file(path), "bytes": path.stat().st_size},
                    "samples": str(out / "samples"), "log": str(out / "log.jsonl")},
        "metrics": val, "versions": {"onepunch": __version__, "torch": torch.__version__,
                                     "python": platform.python_version()},
    }
    write_json(pipeline.manifest_path(cfg, NAME), m)
    summary = ", ".join(f"{k} {v:.4g}" for k, v in val.items())
    log.print(f"[green]train-scan done[/]: {path}\n  validation: {summary}\n  sample grids: {out / 'samples'}")
    return m
