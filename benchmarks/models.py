"""Model configurations shared by the model benchmarks and the interleaved CPU comparison."""

import lcnet_reference
import torch

import lcnet_fast

# Small enough for a 2-core CPU, big enough that the decoder is a visible share of the step.
CPU_MODEL = dict(
    backbone="resnet10t",
    crop_level=2,
    image_size=64,
    d_model=128,
    num_heads=4,
    num_layers=2,
    dim_feedforward=256,
    dropout=0.1,
)
CPU_CLASSES, CPU_BATCH = 20, 4

# The paper's decoder shape (Table 9 setting): B = 56, N = 80, T = 10 views x 14 x 14, d = 768.
PAPER_LLCD = dict(
    batch=56,
    labels=80,
    tokens=10 * 196,
    d_model=768,
    num_heads=8,
    num_layers=6,
    dim_feedforward=2048,
)
CPU_LLCD = dict(
    batch=4, labels=20, tokens=5 * 16, d_model=128, num_heads=4, num_layers=2, dim_feedforward=256
)
#: Issue 13's decoder shape: the head at a width where the decoder matters on CPU.
WIDE_LLCD = dict(
    batch=8, labels=20, tokens=320, d_model=256, num_heads=8, num_layers=2, dim_feedforward=1024
)
#: The main job's decoder (python -m lcnet_fast.train): batch 32, 10 classes, 5 views x 2 x 2
#: tokens of test_resnet at 64 px; trained with dropout 0 (the trainer default).
MAIN_JOB_LLCD = dict(
    batch=32, labels=10, tokens=20, d_model=128, num_heads=4, num_layers=2, dim_feedforward=256
)


def model_pair(num_classes=CPU_CLASSES, device="cpu", **config):
    torch.manual_seed(0)
    reference = lcnet_reference.LCNet(num_classes, **config).to(device)
    fast = lcnet_fast.LCNet(num_classes, **config).to(device)
    fast.load_state_dict(reference.state_dict(), strict=True)
    return reference, fast


def llcd_stacks(layer_config, device="cpu", dtype=torch.float32, dropout=0.1):
    """(reference stack, fast stack) of LLCD layers holding the same weights."""
    torch.manual_seed(0)
    args = (
        layer_config["d_model"],
        layer_config["num_heads"],
        layer_config["dim_feedforward"],
        dropout,
    )
    reference = torch.nn.ModuleList(
        lcnet_reference.LLCDLayer(*args) for _ in range(layer_config["num_layers"])
    )
    fast = torch.nn.ModuleList(
        lcnet_fast.LLCDLayer(*args) for _ in range(layer_config["num_layers"])
    )
    fast.load_state_dict(reference.state_dict(), strict=True)
    return reference.to(device, dtype), fast.to(device, dtype)


def llcd_inputs(layer_config, device="cpu", dtype=torch.float32, requires_grad=True):
    g = torch.Generator().manual_seed(0)
    b, n, t, d = (layer_config[k] for k in ("batch", "labels", "tokens", "d_model"))
    q = torch.randn(n, d, generator=g).to(device, dtype).expand(b, n, d)  # label queries: shared
    graph = torch.randn(n, d, generator=g).to(device, dtype).expand(b, n, d)  # graph nodes: shared
    img = torch.randn(b, t, d, generator=g).to(device, dtype).requires_grad_(requires_grad)
    return q, img, graph


def run_stack(stack, q, img, graph, skip_last_kv=False):
    """The label queries after the stack. skip_last_kv=True runs a fast stack as lcnet_fast.LCNet
    does: its last layer skips the KV outputs that never reach the logits (compute_kv=False;
    the reference model computes them)."""
    last = len(stack) - 1
    for index, layer in enumerate(stack):
        if skip_last_kv and index == last:
            q, img, graph = layer(q, img, graph, compute_kv=False)
        else:
            q, img, graph = layer(q, img, graph)
    return q
