"""Submodules passed to ``Zorro`` already built are used as given: not re-initialised."""

from __future__ import annotations

import torch

from zorro_cli.model import ZorroConfig
from zorro_cli.model.zorro import Zorro


def test_injected_submodules_keep_their_weights() -> None:
    config = ZorroConfig(dim=32, depth=1, heads=2, n_mels=16, audio_frames=32, frames=2, image_size=32,
                         fusion_tokens=2, num_classes=3)
    decoder = Zorro(config).decoder
    with torch.no_grad():
        for p in decoder.parameters():
            p.fill_(0.5)
    model = Zorro(config, decoder=decoder)
    assert model.decoder is decoder
    assert all(bool((p == 0.5).all()) for p in model.decoder.parameters())
    assert not all(bool((p == 0.5).all()) for p in model.heads.parameters())  # built here: initialised
