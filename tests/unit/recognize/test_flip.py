import numpy as np

from metrosight.recognize.flip import FlipFusedEmbedder


class HalfEmbedder:
    """Descriptor = mean colour of the left and right halves: a mirror image swaps them."""

    name = "half"
    model_id = "half-v1"
    dim = 128

    def embed(self, chips):
        out = np.zeros((len(chips), 128), np.float32)
        out[:, 0] = chips[:, :, :75].mean(axis=(1, 2, 3))
        out[:, 1] = chips[:, :, 75:].mean(axis=(1, 2, 3))
        out[:, 2] = 1.0
        return out


def test_flip_fused_descriptor_is_mirror_invariant_and_unit():
    rng = np.random.default_rng(0)
    chip = rng.integers(0, 255, size=(1, 150, 150, 3), dtype=np.uint8)
    chip[:, :, :75] //= 4  # dark left half
    emb = FlipFusedEmbedder(HalfEmbedder())
    a = emb.embed(chip)
    b = emb.embed(np.ascontiguousarray(chip[:, :, ::-1]))
    assert emb.name == "half+flip" and a.shape == (1, 128) and a.dtype == np.float32
    assert np.allclose(np.linalg.norm(a, axis=1), 1.0, atol=1e-6)
    assert np.allclose(a, b, atol=1e-6)  # a face and its mirror image give one descriptor
    raw = HalfEmbedder().embed(chip)
    assert not np.allclose(raw[0, :2] / raw[0, 0], raw[0, [1, 0]] / raw[0, 0])  # the inner one is not invariant
    assert emb.embed(np.zeros((0, 150, 150, 3), np.uint8)).shape == (0, 128)
