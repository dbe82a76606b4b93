"""Linear probe on a trained run's backbone (EXPERIMENTS.md, "What makes LCNet learn"): are the
small objects in the backbone's features at all, whatever the head on top does with them?

Features of the small_objects train/test splits (128-px images) from the run's backbone body in
eval mode: global average and global max of the 128-px image's feature map, and the max over the
5 crop-level-2 views' feature maps; a logistic regression per class (L-BFGS, L2 1e-3) on
standardised features; test mAP and mean tiny-class AP.

usage: python docs/experiments/scripts/linear_probe.py RUN_DIR
"""
import sys

import numpy as np
import torch

from lcnet_fast.data import SyntheticScenes
from lcnet_fast.engine.data import DeviceViews
from lcnet_fast.inference import load_model
from lcnet_fast.metrics import multilabel_metrics

MEAN, STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
torch.set_num_threads(1)
run = sys.argv[1]
m = load_model(run)
body = m.backbone.body if hasattr(m, "backbone") else m.body


def feats(split, n):
    ds = SyntheticScenes(n, 128, 10, seed=0, split=split, kind="small_objects")
    X, Y = [], []
    whole, crops = DeviceViews(1, 128, MEAN, STD), DeviceViews(2, 64, MEAN, STD)
    with torch.no_grad():
        for s in range(0, n, 100):
            x = torch.stack([ds.load(i) for i in range(s, min(n, s + 100))])
            full = body(whole(x)[:, 0])[-1]  # (b, C, 4, 4)
            v = crops(x)
            tiles = body(v.flatten(0, 1))[-1].reshape(v.shape[0], 5, -1, 2, 2)
            f = torch.cat([full.mean((2, 3)), full.amax((2, 3)), tiles.amax((1, 3, 4))], 1)
            X.append(f)
            Y.append(ds.labels[s : s + 100].float())
    return torch.cat(X), torch.cat(Y)


def probe(Xtr, Ytr, Xte):
    """Test-set probabilities of an L2-regularised logistic regression per class (L-BFGS)."""
    W = torch.zeros(Xtr.shape[1], 10, requires_grad=True)
    b = torch.zeros(10, requires_grad=True)
    opt = torch.optim.LBFGS([W, b], max_iter=300)

    def closure():
        opt.zero_grad()
        logits = Xtr @ W + b
        loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, Ytr)
        loss = loss + 1e-3 * W.pow(2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    with torch.no_grad():
        return torch.sigmoid(Xte @ W + b).numpy()


Xtr, Ytr = feats("train", 1500)
Xte, Yte = feats("test", 500)
mu, sd = Xtr.mean(0), Xtr.std(0) + 1e-6
Xtr, Xte = (Xtr - mu) / sd, (Xte - mu) / sd
C = Xtr.shape[1] // 3
feature_sets = [
    ("gap_full128", slice(0, C)),
    ("max_full128", slice(C, 2 * C)),
    ("max_views", slice(2 * C, 3 * C)),
    ("all", slice(0, 3 * C)),
]
for name, sl in feature_sets:
    met = multilabel_metrics(probe(Xtr[:, sl], Ytr, Xte[:, sl]), Yte.numpy())
    tiny = np.mean(met["AP"][4:])
    print(f"{run.split('/')[-1]:20s} {name:12s} mAP {met['mAP']:.1f} tiny {tiny:.1f}")
