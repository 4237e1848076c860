"""The Zorro model library: masks, tokenizers, backbones (ViT, Swin, HiP), decoder, heads, losses, init, I/O."""

from .config import BACKBONES, ZorroConfig
from .init import load_vit_weights
from .losses import contrastive_loss, info_nce, supervised_loss
from .masks import MASKINGS, OUTPUTS, TokenLayout, decoder_mask, self_attention_mask
from .presets import PRESETS, build_model, preset_config
from .pretrained import load_pretrained, save_pretrained
from .zorro import Zorro

__all__ = [
    "BACKBONES",
    "MASKINGS",
    "OUTPUTS",
    "PRESETS",
    "TokenLayout",
    "Zorro",
    "ZorroConfig",
    "build_model",
    "contrastive_loss",
    "decoder_mask",
    "info_nce",
    "load_pretrained",
    "load_vit_weights",
    "preset_config",
    "save_pretrained",
    "self_attention_mask",
    "supervised_loss",
]
