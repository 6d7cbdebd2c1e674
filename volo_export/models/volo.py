"""VOLO (Vision Outlooker), inference-only, faithful to the released weights.

Module and parameter names match the official sail-sg checkpoints and timm,
so their state dicts load with `strict=True`. Tensors inside the blocks are
BHWC (outlookers) or BNC (transformers); convolutions run BCHW.

The outlook attention here is the reference formulation (`F.unfold` /
`F.fold`). `volo_export.export.rewrite` swaps in an exact export-friendly
formulation at export time without touching parameters.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from volo_export.models.variants import VoloConfig


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden_dim: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden_dim)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden_dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class OutlookAttention(nn.Module):
    """Outlook attention: each window's centre predicts a kxk -> kxk mixing of its window.

    Input and output (B, H, W, C). Windows are taken with `stride`; the
    attention logits come from the average-pooled token of each window.
    """

    def __init__(self, dim: int, num_heads: int, kernel_size: int = 3, padding: int = 1, stride: int = 2):
        super().__init__()
        self.num_heads = num_heads
        self.kernel_size = kernel_size
        self.padding = padding
        self.stride = stride
        self.scale = (dim // num_heads) ** -0.5
        self.v = nn.Linear(dim, dim, bias=False)
        self.attn = nn.Linear(dim, kernel_size**4 * num_heads)
        self.proj = nn.Linear(dim, dim)
        self.pool = nn.AvgPool2d(kernel_size=stride, stride=stride, ceil_mode=True)

    def attention_weights(self, x: torch.Tensor) -> torch.Tensor:
        """(B, H, W, C) -> softmaxed weights (B, h*w, heads, k*k, k*k), one set per window."""
        B, H, W, _ = x.shape
        kk = self.kernel_size**2
        a = self.pool(x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)  # B, h, w, C
        a = self.attn(a).reshape(B, -1, self.num_heads, kk, kk)
        return (a * self.scale).softmax(dim=-1)

    def aggregate(self, v: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        """Reference unfold -> weighted sum -> fold. v (B, H, W, C), a as above -> (B, H, W, C)."""
        B, H, W, C = v.shape
        k, nh = self.kernel_size, self.num_heads
        cols = F.unfold(v.permute(0, 3, 1, 2), k, padding=self.padding, stride=self.stride)  # B, C*k*k, h*w
        cols = cols.reshape(B, nh, C // nh, k * k, -1).permute(0, 1, 4, 3, 2)  # B, nh, hw, kk, C/nh
        out = a.permute(0, 2, 1, 3, 4) @ cols  # B, nh, hw, kk, C/nh
        out = out.permute(0, 1, 4, 3, 2).reshape(B, C * k * k, -1)
        out = F.fold(out, (H, W), k, padding=self.padding, stride=self.stride)  # B, C, H, W
        return out.permute(0, 2, 3, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(self.aggregate(self.v(x), self.attention_weights(x)))


class Outlooker(nn.Module):
    def __init__(self, dim: int, num_heads: int, mlp_ratio: float, kernel_size: int, padding: int, stride: int):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = OutlookAttention(dim, num_heads, kernel_size, padding, stride)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class Attention(nn.Module):
    """Multi-head self-attention over (B, ..., C) tokens; the token dims are flattened inside."""

    def __init__(self, dim: int, num_heads: int):
        super().__init__()
        self.num_heads = num_heads
        self.scale = (dim // num_heads) ** -0.5
        self.qkv = nn.Linear(dim, dim * 3, bias=False)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = x.shape
        B, C = shape[0], shape[-1]
        qkv = self.qkv(x.reshape(B, -1, C)).reshape(B, -1, 3, self.num_heads, C // self.num_heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # each B, nh, N, C/nh
        attn = ((q * self.scale) @ k.transpose(-2, -1)).softmax(dim=-1)
        x = (attn @ v).transpose(1, 2).reshape(shape)
        return self.proj(x)


class Transformer(nn.Module):
    def __init__(self, dim: int, num_heads: int, mlp_ratio: float):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = Attention(dim, num_heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class ClassAttention(nn.Module):
    """CaiT-style class attention: the class token (index 0) attends to all tokens."""

    def __init__(self, dim: int, num_heads: int):
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.scale = self.head_dim**-0.5
        self.kv = nn.Linear(dim, dim * 2, bias=False)
        self.q = nn.Linear(dim, dim, bias=False)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, N, C = x.shape
        kv = self.kv(x).reshape(B, N, 2, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        k, v = kv.unbind(0)  # B, nh, N, hd
        q = self.q(x[:, :1]).reshape(B, 1, self.num_heads, self.head_dim).permute(0, 2, 1, 3)
        attn = ((q * self.scale) @ k.transpose(-2, -1)).softmax(dim=-1)  # B, nh, 1, N
        cls = (attn @ v).transpose(1, 2).reshape(B, 1, C)
        return self.proj(cls)


class ClassBlock(nn.Module):
    def __init__(self, dim: int, num_heads: int, mlp_ratio: float):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = ClassAttention(dim, num_heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        cls = x[:, :1] + self.attn(self.norm1(x))
        cls = cls + self.mlp(self.norm2(cls))
        return torch.cat([cls, x[:, 1:]], dim=1)


class PatchEmbed(nn.Module):
    """Stem: 7x7/2 conv + two 3x3 convs (each BN+ReLU), then a 4x4/4 projection. Total stride 8."""

    def __init__(self, in_chans: int, hidden_dim: int, embed_dim: int, patch_size: int):
        super().__init__()
        stem_stride = 2
        self.conv = nn.Sequential(
            nn.Conv2d(in_chans, hidden_dim, 7, stride=stem_stride, padding=3, bias=False),
            nn.BatchNorm2d(hidden_dim),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden_dim, hidden_dim, 3, stride=1, padding=1, bias=False),
            nn.BatchNorm2d(hidden_dim),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden_dim, hidden_dim, 3, stride=1, padding=1, bias=False),
            nn.BatchNorm2d(hidden_dim),
            nn.ReLU(inplace=True),
        )
        proj_stride = patch_size // stem_stride
        self.proj = nn.Conv2d(hidden_dim, embed_dim, proj_stride, stride=proj_stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(self.conv(x))  # B, C, H/8, W/8


class Downsample(nn.Module):
    """(B, H, W, C1) -> (B, H/2, W/2, C2) with a 2x2/2 convolution."""

    def __init__(self, in_dim: int, out_dim: int):
        super().__init__()
        self.proj = nn.Conv2d(in_dim, out_dim, 2, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)


class VOLO(nn.Module):
    """VOLO classifier. `forward` maps (B, 3, S, S) images to (B, num_classes) logits.

    Inference output includes the token-labelling aux head, as published:
    `head(cls) + 0.5 * max_over_tokens(aux_head(tokens))`.
    """

    def __init__(self, config: VoloConfig):
        super().__init__()
        c = config
        self.config = c
        d1, d2 = c.embed_dims[0], c.embed_dims[1]
        self.patch_embed = PatchEmbed(c.in_chans, c.stem_hidden_dim, d1, c.patch_size)
        self.pos_embed = nn.Parameter(torch.zeros(1, c.stage2_grid, c.stage2_grid, d2))
        outlookers = nn.Sequential(*[
            Outlooker(d1, c.num_heads[0], c.mlp_ratio, c.outlook_kernel, c.outlook_padding, c.outlook_stride)
            for _ in range(c.layers[0])
        ])
        transformer_stages = [
            nn.Sequential(*[Transformer(c.embed_dims[i], c.num_heads[i], c.mlp_ratio) for _ in range(c.layers[i])])
            for i in range(1, 4)
        ]
        self.network = nn.ModuleList([outlookers, Downsample(d1, d2), *transformer_stages])
        dim = c.embed_dims[-1]
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.post_network = nn.ModuleList(
            [ClassBlock(dim, c.num_heads[-1], c.mlp_ratio) for _ in range(c.num_post_blocks)]
        )
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, c.num_classes)
        self.aux_head = nn.Linear(dim, c.num_classes) if c.use_aux_head else None
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        nn.init.trunc_normal_(self.cls_token, std=0.02)
        self.apply(_init_weights)
        self.eval()

    def forward_tokens(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, S, S) -> tokens (B, 1 + (S/16)^2, C) after the class blocks and final norm."""
        x = self.patch_embed(x).permute(0, 2, 3, 1)  # B, S/8, S/8, C1
        x = self.network[1](self.network[0](x))  # B, S/16, S/16, C2
        # The transformer blocks are token-wise (attention flattens the grid anyway), so they run on
        # (B, N, C): the same maths as on (B, H, W, C), and the exported graph is plain 3-D (OpenVINO
        # runs its LayerNorms as one kernel each, not four; docs/CPU.md).
        x = (x + self.pos_embed).flatten(1, 2)  # B, N, C
        for stage in self.network[2:]:
            x = stage(x)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1)
        for block in self.post_network:
            x = block(x)
        return self.norm(x)

    def forward_head(self, tokens: torch.Tensor) -> torch.Tensor:
        """tokens (B, 1 + N, C) -> logits (B, num_classes), class head plus half the max aux logit."""
        logits = self.head(tokens[:, 0])
        if self.aux_head is None:
            return logits
        return logits + 0.5 * self.aux_head(tokens[:, 1:]).amax(dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_tokens(x))


def _init_weights(m: nn.Module) -> None:
    """Random init as in the official code (truncated normal), so random-weight exports are realistic."""
    if isinstance(m, nn.Linear):
        nn.init.trunc_normal_(m.weight, std=0.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    elif isinstance(m, nn.LayerNorm):
        nn.init.ones_(m.weight)
        nn.init.zeros_(m.bias)


def create_model(config: VoloConfig) -> VOLO:
    """A VOLO in eval mode with random weights; load a checkpoint with `models.checkpoint`."""
    return VOLO(config)


def count_macs(config: VoloConfig) -> int:
    """Analytic multiply-accumulates of one forward pass (convs, linears, attention matmuls)."""
    c = config
    s = c.img_size
    g1, g2 = c.stage1_grid, c.stage2_grid
    hid, d1, d2 = c.stem_hidden_dim, c.embed_dims[0], c.embed_dims[1]
    macs = 0
    stem = s // 2
    macs += stem * stem * hid * c.in_chans * 49 + 2 * stem * stem * hid * hid * 9
    macs += g1 * g1 * d1 * hid * (c.patch_size // 2) ** 2
    k2 = c.outlook_kernel**2
    windows = math.ceil(g1 / c.outlook_stride) ** 2
    mlp1 = 2 * d1 * int(d1 * c.mlp_ratio)
    per_outlooker = (g1 * g1 * (d1 * d1 * 2 + mlp1)  # v, proj, mlp
                     + windows * d1 * k2 * k2 * c.num_heads[0]  # attn logits
                     + windows * k2 * k2 * d1)  # a @ v
    macs += c.layers[0] * per_outlooker
    macs += g2 * g2 * d1 * d2 * 4  # downsample
    n = g2 * g2
    for i in range(1, 4):
        d = c.embed_dims[i]
        mlp = 2 * d * int(d * c.mlp_ratio)
        macs += c.layers[i] * (n * (4 * d * d + mlp) + 2 * n * n * d)
    d = c.embed_dims[-1]
    n1 = n + 1
    mlp = 2 * d * int(d * c.mlp_ratio)
    macs += c.num_post_blocks * (n1 * 2 * d * d + 2 * d * d + 2 * n1 * d + mlp)
    macs += d * c.num_classes * (1 + n)
    return macs
