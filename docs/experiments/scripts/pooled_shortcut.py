"""Exploratory variants of LCNet with a pooled linear shortcut (EXPERIMENTS.md, "Why the decoder
loses"): not part of the package, which keeps the paper's head. The ablation driver runs with
``lcnet_fast.LCNet`` patched in this process:

* ``--variant shortcut``: logits = the LLCD head + Linear(mean of the image tokens), one loss on
  the sum, so the backbone gets a pooled head's gradient beside the decoder's;
* ``--variant detach``: the same, but the decoder reads the tokens detached: only the pooled
  shortcut trains the backbone, the decoder learns to read (and correct) its features;
* ``--variant tokens_only``: the shortcut alone (no decoder in the forward): a pooled linear head
  on LCNet's projected, normalised tokens, i.e. the pooled baseline with LCNet's token adapter.

The shortcut is a ``pool_fc`` Linear(d_model, num_classes) outside the backbone body, so it trains
at ``optim.lr * optim.decoder_lr_scale`` like the pooled baseline's head.

usage: python docs/experiments/scripts/pooled_shortcut.py --variant V ablation <ablation args>
e.g.   ... --variant shortcut ablation --rows d2_c1 --seeds 0,1,2 --epochs 30
           --synthetic-kind small_objects --optim.decoder_lr_scale 0.3 --runs-dir R --output O
"""

import argparse
import sys

import torch
from torch import nn

import lcnet_fast.models.lcnet as lcnet_module
from lcnet_fast.experiments.__main__ import main as experiments_main

VARIANTS = ("shortcut", "detach", "tokens_only")


def patch(variant: str) -> None:
    cls = lcnet_module.LCNet
    init, tokens_of, forward = cls.__init__, cls.image_tokens, cls.forward

    def patched_init(self, num_classes, *args, **kwargs):
        init(self, num_classes, *args, **kwargs)
        self.pool_fc = nn.Linear(self.query_embed.weight.shape[1], num_classes)

    def patched_tokens(self, images):
        tokens = tokens_of(self, images)
        self._pooled = tokens.mean(dim=1)  # read by forward right after, same call
        return tokens.detach() if variant == "detach" else tokens

    def patched_forward(self, images: torch.Tensor, return_attention: bool = False):
        if variant == "tokens_only":
            return self.pool_fc(patched_tokens(self, images).mean(dim=1))
        out = forward(self, images, return_attention)
        extra = self.pool_fc(self._pooled)
        return (out[0] + extra, out[1]) if return_attention else out + extra

    cls.__init__, cls.image_tokens, cls.forward = patched_init, patched_tokens, patched_forward


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variant", choices=VARIANTS, required=True)
    args, rest = parser.parse_known_args(argv)
    patch(args.variant)
    return experiments_main(rest)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
