"""vdr: a multimodal deep-research agent as a set of composable Unix commands."""

__version__ = "0.1.0"
