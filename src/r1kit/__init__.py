"""r1kit: train small language models to reason the way DeepSeek-R1 was trained."""

__version__ = "0.1.0"
