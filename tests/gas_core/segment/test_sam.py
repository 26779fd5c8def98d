import numpy as np
import pytest
import torch

from gas_core.segment.sam import SamMasker, build_random_sam


def test_tiny_random_sam_runs_the_real_predictor(tiny_sam):
    from segment_anything.modeling import ImageEncoderViT, MaskDecoder, Sam

    assert isinstance(tiny_sam, Sam)
    assert isinstance(tiny_sam.image_encoder, ImageEncoderViT) and isinstance(tiny_sam.mask_decoder, MaskDecoder)
    frame = np.random.default_rng(0).integers(0, 255, (48, 80, 3), dtype=np.uint8)
    masker = SamMasker(tiny_sam)
    mask = masker.mask(frame, np.array([10, 5, 40, 45], np.float32))
    assert mask.shape == (48, 80) and mask.dtype == bool
    np.testing.assert_array_equal(mask, masker.mask(frame, np.array([10, 5, 40, 45])))  # deterministic
    # The box prompt reaches the decoder: a different box gives different mask logits.
    masker.predictor.set_image(frame)
    _, _, low_a = masker.predictor.predict(box=np.array([10, 5, 40, 45]), multimask_output=False, return_logits=True)
    _, _, low_b = masker.predictor.predict(box=np.array([50, 2, 78, 30]), multimask_output=False, return_logits=True)
    assert not np.allclose(low_a, low_b)


def test_random_sam_is_reproducible_from_its_seed():
    first, second = build_random_sam(seed=3), build_random_sam(seed=3)
    for (name, a), (_, b) in zip(first.state_dict().items(), second.state_dict().items()):
        assert torch.equal(a, b), name


def test_mask_rejects_bad_boxes_and_frames(tiny_sam):
    masker = SamMasker(tiny_sam)
    frame = np.zeros((32, 32, 3), np.uint8)
    with pytest.raises(ValueError, match="box"):
        masker.mask(frame, np.array([1, 2, 3]))
    with pytest.raises(ValueError, match="box"):
        masker.mask(frame, np.array([1, 2, np.nan, 4]))
    with pytest.raises(ValueError, match="frame"):
        masker.mask(frame[..., 0], np.array([1, 2, 3, 4]))


def test_from_checkpoint_validates_arguments(tmp_path):
    with pytest.raises(ValueError, match="model_type"):
        SamMasker.from_checkpoint(tmp_path / "x.pth", model_type="vit_giant")
    with pytest.raises(ValueError, match="checkpoint_path"):
        SamMasker.from_checkpoint(tmp_path / "missing.pth", model_type="vit_b")
    with pytest.raises(ValueError, match="model"):
        SamMasker(torch.nn.Linear(2, 2))
