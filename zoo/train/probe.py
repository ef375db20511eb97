"""A linear probe of trained weights on a folder's classes: the classifier fitted alone, in closed form, on the
frozen features of the training images (the classifier's input, each image and its mirror).

It is the first half of LP-FT (Kumar et al. 2022, "Fine-Tuning can Distort Pretrained Features"): a classifier
that starts fresh sends large, random gradients back through the features it sits on while it learns, and
fine-tuning spends what the weights knew; started from the probe's fit, it does not. It is also the yardstick
a fine-tune must beat (the run's last lines) and what `--init auto` ranks candidate weights by.

    probe = fit_probe(model, images, labels, spec)   # the classifier's rows set to the fit
    probe.accuracy(features, labels)                 # top-1 of the fit on other images' features
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from zoo.data import BatchLoader, DatasetSpec
from zoo.models import classifier

L2 = 1.0  # the penalty 0.5 * L2 * |W|^2 against the summed loss: scikit-learn's LogisticRegression at C=1
LBFGS_STEPS = 100  # enough to converge on a few thousand images of 64-512 features (a fraction of a second)
BATCH = 500


@dataclass
class Probe:
    """The fitted classifier of logits = scale * (features @ weight.T + bias)."""
    weight: torch.Tensor  # [classes, features]
    bias: torch.Tensor | None  # [classes], None where the classifier has none (ZooNet)
    scale: float  # what the model multiplies the classifier's output by (ZooNet: 1/9)

    def logits(self, features: torch.Tensor) -> torch.Tensor:
        z = features @ self.weight.T
        return self.scale * (z + self.bias if self.bias is not None else z)

    def accuracy(self, features: torch.Tensor, labels: torch.Tensor) -> float:
        return 100.0 * float((self.logits(features).argmax(1) == labels).float().mean())


@torch.no_grad()
def frozen_features(model: nn.Module, images: torch.Tensor, spec: DatasetSpec, mirror: bool = False
                    ) -> tuple[torch.Tensor, float]:
    """(the classifier's input for every image [N, features], the scale the model puts on its output), the
    model in eval mode (BatchNorm's running statistics, no dropout). mirror=True: the mirrored images follow."""
    head, seen, scales = classifier(model), [], []
    hook = head.register_forward_hook(lambda m, i, o: seen.append((i[0].flatten(1).float(), o.float())))
    was_training = model.training
    model.eval()
    try:
        loader = BatchLoader(images, torch.zeros(len(images), dtype=torch.long), BATCH, mean=spec.mean, std=spec.std)
        for x, _ in loader:
            for view in ((x, x.flip(-1)) if mirror else (x,)):
                out = model(view).float()
                scales.append(float((out * seen[-1][1]).sum() / (seen[-1][1] ** 2).sum().clamp_min(1e-12)))
    finally:
        hook.remove()
        model.train(was_training)
    feats = [f for f, _ in seen]
    if mirror:  # batches came as (x, mirror of x) pairs: all images first, then all mirrors
        feats = feats[0::2] + feats[1::2]
    return torch.cat(feats), sum(scales) / len(scales)


def subsample(n: int, most: int, seed: int) -> torch.Tensor:
    """Sorted indices of at most `most` of n items, the same for a seed (the images a probe fits on)."""
    if n <= most:
        return torch.arange(n)
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed))[:most].sort().values


def fit(features: torch.Tensor, labels: torch.Tensor, classes: int, scale: float, bias: bool) -> Probe:
    """Multinomial logistic regression by L-BFGS (a convex problem: the same answer from any start)."""
    features = features.double()
    w = torch.zeros(classes, features.shape[1], dtype=torch.float64, requires_grad=True)
    b = torch.zeros(classes, dtype=torch.float64, requires_grad=True)
    params = [w, b] if bias else [w]
    opt = torch.optim.LBFGS(params, max_iter=LBFGS_STEPS, line_search_fn="strong_wolfe", tolerance_grad=1e-9)
    # The penalty is on the effective weights (scale * W), so a model's fixed output scale does not change the fit.
    def closure():
        opt.zero_grad()
        z = scale * (features @ w.T + (b if bias else 0))
        loss = F.cross_entropy(z, labels, reduction="sum") + 0.5 * L2 * (scale * w).pow(2).sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        opt.step(closure)
    return Probe(w.detach().float(), b.detach().float() if bias else None, scale)


def fit_probe(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, spec: DatasetSpec) -> Probe:
    """Fit `model`'s classifier alone to the images (and their mirrors) and set its rows to the fit."""
    feats, scale = frozen_features(model, images, spec, mirror=True)
    head = classifier(model)
    probe = fit(feats, torch.cat([labels, labels]).long(), head.out_features, scale, head.bias is not None)
    with torch.no_grad():
        head.weight.copy_(probe.weight.to(head.weight.dtype))
        if head.bias is not None:
            head.bias.copy_(probe.bias.to(head.bias.dtype))
    return probe
