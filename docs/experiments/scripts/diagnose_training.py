"""Instrumented training loop behind EXPERIMENTS.md's "What makes LCNet learn" figures.

The train driver's own pieces (config, data, model, optimiser, loss, scheduler, seeded sampler),
without EMA or checkpoints, with a probe every 15 steps on 32 fixed validation images: gradient
norm per parameter group, image-token content scale vs the position/view table, MHA2 attention
entropy (fraction of log T), attention mass per view, and the spread of the scores across images.
A validation pass after every epoch. MASK_CONTEXT=1 ignores the four context classes of the
small_objects scenes in the loss (only small objects to learn, like the held-out real images).

usage: python docs/experiments/scripts/diagnose_training.py OUT.json [--key value overrides]
"""
import json
import math
import os
import sys
import time

import numpy as np
import torch

from lcnet_fast.config import parse_override_tokens, resolve_config
from lcnet_fast.data.scene import is_tiny_class
from lcnet_fast.engine import seeding
from lcnet_fast.engine.data import DeviceViews, build_splits, make_loader
from lcnet_fast.engine.model import build_model, model_config_from
from lcnet_fast.engine.sampler import EpochSampler, SeededAugmentation
from lcnet_fast.metrics import multilabel_metrics
from lcnet_fast.train import build_criterion, build_optimizer, label_graph_init

MASK = os.environ.get("MASK_CONTEXT") == "1"
out_path = sys.argv[1]
cfg = resolve_config(None, None, parse_override_tokens(sys.argv[2:]))
torch.set_num_threads(1)
splits = build_splits(cfg.data, cfg.model, cfg.train.seed)
to_input = DeviceViews.from_config(cfg.data, cfg.model)
emb, corr = label_graph_init(cfg, splits)
mc = model_config_from(cfg.model, len(splits.classes), emb.shape[1])
torch.manual_seed(seeding.derive_seed(cfg.train.seed, seeding.INIT))
model = build_model(mc, emb, corr)
opt = build_optimizer(model, cfg)
crit = build_criterion(cfg)
train = SeededAugmentation(splits.train, cfg.train.seed)
bpe = len(train) // cfg.train.batch_size
sched = torch.optim.lr_scheduler.OneCycleLR(
    opt,
    max_lr=cfg.optim.lr,
    total_steps=cfg.train.epochs * bpe,
    pct_start=cfg.optim.pct_start,
    div_factor=cfg.optim.div_factor,
    final_div_factor=cfg.optim.final_div_factor,
)
sampler = EpochSampler(len(train), cfg.train.seed, True, 0, 1)
tiny = [i for i, c in enumerate(splits.classes) if is_tiny_class(c)]
is_lcnet = cfg.model.arch == "lcnet"

# hooks: MHA2 attention entropy needs weights: use return_attention in a probe forward
def group_norms(model):
    groups = {}
    for name, p in model.named_parameters():
        if p.grad is None:
            continue
        if name.startswith("backbone.body") or name.startswith("body"):
            key = "backbone"
        elif name.startswith("decoder."):
            key = "decoder." + name.split(".")[1]
        else:
            key = name.split(".")[0]
        groups[key] = groups.get(key, 0.0) + p.grad.float().pow(2).sum().item()
    return {k: math.sqrt(v) for k, v in groups.items()}


@torch.no_grad()
def probe(model, views):
    model.eval()
    rec = {}
    if is_lcnet:
        tokens, h, w = model.backbone(views, None)
        from lcnet_fast.models.positional import position_table
        pos = position_table(h, w, tokens.shape[-1], tokens.device, tokens.dtype)
        table = (pos[None] + model.view_embed[:, None]).flatten(0, 1)
        rec["token_content_rms"] = tokens.pow(2).mean().sqrt().item()
        # image-dependent part: deviation from the batch mean token
        rec["token_content_across_images_std"] = tokens.std(0).mean().item()
        rec["pos_view_rms"] = table.pow(2).mean().sqrt().item()
        rec["view_embed_rms"] = model.view_embed.pow(2).mean().sqrt().item()
        rec["query_rms"] = model.query_embed.weight.pow(2).mean().sqrt().item()
        logits, att = model(views, return_attention=True)
        T = att[0].shape[-1]
        ent = []
        for a in att:
            e = -(a.clamp_min(1e-12) * a.clamp_min(1e-12).log()).sum(-1).mean().item()
            ent.append(e / math.log(T))
        rec["mha2_entropy_frac"] = ent
        # attention mass on each view (averaged over labels/heads/images) for the last layer
        V = views.shape[1]
        per_view = att[-1].reshape(*att[-1].shape[:-1], V, -1).sum(-1)
        rec["attn_per_view_last"] = per_view.mean((0, 1, 2)).tolist()
    else:
        logits = model(views)
    p = torch.sigmoid(logits)
    rec["score_std_across_images"] = p.std(0).mean().item()
    model.train()
    return rec


@torch.no_grad()
def evaluate(model, ds):
    model.eval()
    loader = make_loader(ds, 100, list(range(len(ds))), 0, False, False)
    S, Y = [], []
    for x, y, _skipped in loader:
        S.append(torch.sigmoid(model(to_input(x))).double().numpy())
        Y.append(y.numpy())
    model.train()
    S, Y = np.concatenate(S), np.concatenate(Y)
    m = multilabel_metrics(S, Y)
    ap = np.asarray(m["AP"], dtype=float)
    if MASK:
        m["mAP"] = float(np.nanmean(ap[4:]))
    return {"mAP": m["mAP"], "tiny_AP": float(np.nanmean(ap[tiny])) if tiny else None,
            "score_std_across_images": float(S.std(0).mean())}


probe_x = to_input(torch.stack([splits.val[i][0] for i in range(32)]))
log = []
step = 0
t0 = time.time()
model.train()
for epoch in range(cfg.train.epochs):
    train.set_epoch(epoch)
    sampler.set_epoch(epoch, start=0)
    loader = make_loader(train, cfg.train.batch_size, sampler, 0, True, False)
    for x, y, _skipped in loader:
        seeding.seed_step(cfg.train.seed, epoch, step, 0)
        logits = model(to_input(x))
        if MASK:
            y = y.clone()
            y[:, :4] = -1  # context classes ignored: only small objects to learn
        loss = crit(logits.float(), y)
        loss.backward()
        if step % 15 == 0:
            lr = opt.param_groups[0]["lr"]
            rec = {"step": step, "epoch": epoch, "loss": loss.item() / len(x), "lr": lr}
            rec["grad"] = group_norms(model)
            rec.update(probe(model, probe_x))
            log.append(rec)
        opt.step()
        opt.zero_grad(set_to_none=True)
        sched.step()
        step += 1
    ev = evaluate(model, splits.val)
    log.append({"epoch_end": epoch + 1, **ev, "seconds": time.time() - t0})
    print(json.dumps(log[-1]), flush=True)
    json.dump(log, open(out_path, "w"))
