"""zorro: train, evaluate and export Zorro masked multimodal transformers."""

__version__ = "0.1.0"
