"""aMUSEd's ``UVit2DModel`` with a learned embedding per token position.

MaskGIT and Muse give their transformer a learned position embedding; diffusers' ``UVit2DModel`` has
none and leaves position to its convolution blocks' zero padding, which at the first unmasking step
(every token masked) tells a token in the middle of the grid nothing about where it is. This subclass
adds one embedding per position to the token embeddings and is otherwise ``UVit2DModel``: same
config, same forward, loaded by ``AmusedPipeline`` like any component (``save_pretrained`` records it
under ``synkit.t2i.uvit``, which ``synkit.generate.render.load_pipeline`` imports; ``ModelMixin`` is imported by
name because diffusers looks for the loading base class in the component's module).
"""

from __future__ import annotations

import functools

import torch
from diffusers import ModelMixin, UVit2DModel  # noqa: F401  (ModelMixin: read by diffusers' loader)
from diffusers.models.unets.uvit_2d import UVit2DConvEmbed


class PositionalConvEmbed(UVit2DConvEmbed):
    """Token embeddings plus a learned (channels, side, side) position embedding."""

    def __init__(self, side: int, *args):
        super().__init__(*args)
        self.position = torch.nn.Parameter(torch.zeros(1, self.conv.out_channels, side, side))
        torch.nn.init.trunc_normal_(self.position, std=0.02)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        return super().forward(input_ids) + self.position.to(self.conv.weight.dtype)


class PositionalUVit2DModel(UVit2DModel):
    """``UVit2DModel`` whose token embedding adds a learned position embedding (its grid is ``sample_size`` square)."""

    @functools.wraps(UVit2DModel.__init__)  # the parent's signature, which diffusers reads to rebuild the config
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        c = self.config
        self.embed = PositionalConvEmbed(c.sample_size, c.in_channels, c.block_out_channels, c.vocab_size,
                                         c.ln_elementwise_affine, c.layer_norm_eps, c.use_bias)
