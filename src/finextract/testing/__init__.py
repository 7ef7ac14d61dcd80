"""Test helpers: tiny, locally built models and tokenizers (no model hub needed)."""

from finextract.testing.tiny import build_tiny_causal_lm, build_tiny_tokenizer

__all__ = ["build_tiny_causal_lm", "build_tiny_tokenizer"]
