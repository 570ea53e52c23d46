"""The deployment copy of a network that every export format is traced from: eval mode,
batch norm fused, no gradients, and the Focus stem rewritten as one strided convolution."""
from __future__ import annotations

import copy

import torch
from torch import nn


class SpaceToDepthConv(nn.Module):
    """The Focus stem (space-to-depth, then a k x k stride-1 conv) as one 2k x 2k stride-2 conv.

    Focus stacks the four pixels of each 2x2 patch as channels (top-left, bottom-left,
    top-right, bottom-right) and convolves; the pixel a Focus weight (block b, row u, col v)
    sees is x[2(i+u-p) + dy_b, 2(j+v-p) + dx_b], which is what a stride-2 conv with padding 2p
    sees at kernel position (2u + dy_b, 2v + dx_b). Same sums, so the same output up to float
    rounding; runtimes without strided slicing (ncnn) can run it, and it is one op instead of
    four strided copies, a concat and a conv.
    """

    def __init__(self, focus: nn.Module):
        super().__init__()
        base = focus.conv
        if getattr(base, "bn", None) is not None:
            base.fuse()
        conv = base.conv
        k = conv.kernel_size[0]
        if conv.stride != (1, 1) or conv.kernel_size != (k, k) or k % 2 == 0 or conv.groups != 1:
            raise ValueError("SpaceToDepthConv needs a Focus with an odd square stride-1 conv")
        c = conv.in_channels // 4
        weight = conv.weight.detach()
        big = torch.zeros(conv.out_channels, c, 2 * k, 2 * k, dtype=weight.dtype, device=weight.device)
        for b, (dy, dx) in enumerate(((0, 0), (1, 0), (0, 1), (1, 1))):  # Focus channel blocks
            big[:, :, dy::2, dx::2] = weight[:, b * c:(b + 1) * c]
        self.conv = nn.Conv2d(c, conv.out_channels, 2 * k, stride=2, padding=k - 1, bias=True)
        with torch.no_grad():
            self.conv.weight.copy_(big)
            self.conv.bias.copy_(conv.bias if conv.bias is not None else torch.zeros(conv.out_channels))
        self.conv.to(device=weight.device, dtype=weight.dtype)
        self.act = base.act

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.conv(x))


def deploy_model(net: nn.Module, decode: bool = True, half: bool = False, fuse: bool = True,
                 rewrite_focus: bool = True) -> nn.Module:
    """A CPU copy of ``net`` ready to trace: eval, BN fused, Focus as one conv, no grads.

    decode: boxes decoded in the graph (else raw tx, ty, tw, th + probabilities).
    fuse=False, rewrite_focus=False give the graph the reference's export traced.
    """
    from openyolox.models.blocks import Focus

    model = copy.deepcopy(net).cpu().float().eval()
    if fuse:
        model.fuse()
    model.head.decode_in_inference = decode
    if rewrite_focus:
        for name, module in list(model.named_modules()):
            if isinstance(module, Focus):
                parent = model.get_submodule(name.rpartition(".")[0]) if "." in name else model
                setattr(parent, name.rpartition(".")[2], SpaceToDepthConv(module))
    for p in model.parameters():
        p.requires_grad_(False)
    return model.half() if half else model
