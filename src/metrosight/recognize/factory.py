"""Choosing the descriptor backend by name."""

from __future__ import annotations

from pathlib import Path

from metrosight.recognize.embedder import Embedder


class EmbedderError(Exception):
    """Unknown embedder name or the model cannot be loaded/built."""


def make_embedder(name: str, cache_dir: Path, threads: int = 1) -> Embedder:
    """``"onnx"``: dlib's ResNet weights in ONNX Runtime (fast); ``"dlib"``: dlib's own runtime (reference)."""
    if name == "onnx":
        from metrosight.recognize.embedder_onnx import OnnxResNetEmbedder

        return OnnxResNetEmbedder(cache_dir=cache_dir, threads=threads)
    if name == "dlib":
        from metrosight.recognize.embedder_onnx import DlibResNetEmbedder

        return DlibResNetEmbedder()
    raise EmbedderError(f"unknown embedder {name!r}; choose 'onnx' or 'dlib'")
