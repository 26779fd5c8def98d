"""FVD parts: Fréchet distance against scipy's sqrtm, and the I3D network's layout, strict loading and shapes."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg
import torch

from gas_core.metrics.fvd import (
    I3D_MIN_FRAMES,
    I3DFeatureExtractor,
    InceptionI3d,
    feature_statistics,
    frechet_distance,
    load_i3d,
    preprocess_for_i3d,
)


def _scipy_frechet(a: np.ndarray, b: np.ndarray) -> float:
    mu_a, mu_b = a.mean(axis=0), b.mean(axis=0)
    sigma_a, sigma_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    root = scipy.linalg.sqrtm(sigma_a @ sigma_b)
    root = root.real if np.iscomplexobj(root) else root
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(sigma_a) + np.trace(sigma_b) - 2 * np.trace(root))


@pytest.mark.parametrize("count_a, count_b, dim", [(200, 150, 16), (64, 80, 32)])
def test_frechet_distance_matches_scipy_sqrtm(count_a, count_b, dim):
    rng = np.random.default_rng(dim)
    mixing = rng.normal(size=(dim, dim))
    a = rng.normal(size=(count_a, dim)) @ mixing
    b = 0.7 * rng.normal(size=(count_b, dim)) @ mixing.T + 0.5
    expected = _scipy_frechet(a, b)
    assert frechet_distance(a, b) == pytest.approx(expected, rel=1e-8)
    assert frechet_distance(feature_statistics(a), torch.from_numpy(b)) == pytest.approx(expected, rel=1e-8)


def test_frechet_distance_is_zero_for_identical_sets_and_symmetric():
    rng = np.random.default_rng(3)
    a = rng.normal(size=(50, 128))  # fewer samples than dimensions: singular covariances
    b = rng.normal(size=(60, 128)) + 0.1
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-8)
    assert frechet_distance(a, b) == pytest.approx(frechet_distance(b, a), rel=1e-8)
    assert frechet_distance(a, b) > 0


def test_frechet_distance_refuses_bad_features():
    with pytest.raises(ValueError, match="N >= 2"):
        feature_statistics(np.zeros((1, 4)))
    with pytest.raises(ValueError, match="dimensions differ"):
        frechet_distance(np.zeros((3, 4)), np.zeros((3, 5)))
    with pytest.raises(ValueError, match="NaN"):
        feature_statistics(np.array([[0.0, np.nan], [1.0, 2.0]]))


def _public_key_layout() -> set[str]:
    """Keys of the public PyTorch I3D port's Kinetics checkpoints, spelled out from its naming scheme."""
    units = ["Conv3d_1a_7x7", "Conv3d_2b_1x1", "Conv3d_2c_3x3"]
    for block in ("Mixed_3b", "Mixed_3c", "Mixed_4b", "Mixed_4c", "Mixed_4d", "Mixed_4e", "Mixed_4f", "Mixed_5b", "Mixed_5c"):
        units += [f"{block}.{branch}" for branch in ("b0", "b1a", "b1b", "b2a", "b2b", "b3b")]
    keys = {"logits.conv3d.weight", "logits.conv3d.bias"}
    for unit in units:
        keys.add(f"{unit}.conv3d.weight")
        keys.update(f"{unit}.bn.{name}" for name in ("weight", "bias", "running_mean", "running_var", "num_batches_tracked"))
    return keys


@pytest.fixture(scope="module")
def random_i3d(tmp_path_factory):
    torch.manual_seed(0)
    network = InceptionI3d()
    with torch.no_grad():  # non-trivial BatchNorm statistics, so loading them is visible
        for module in network.modules():
            if isinstance(module, torch.nn.BatchNorm3d):
                module.running_mean.uniform_(-0.1, 0.1)
                module.running_var.uniform_(0.5, 1.5)
    path = tmp_path_factory.mktemp("i3d") / "i3d_pretrained_400.pt"
    torch.save(network.state_dict(), path)
    return network.eval(), path


def test_layer_names_and_shapes_match_public_checkpoints(random_i3d):
    network, _ = random_i3d
    state = network.state_dict()
    assert set(state) == _public_key_layout()
    assert state["Conv3d_1a_7x7.conv3d.weight"].shape == (64, 3, 7, 7, 7)
    assert state["Mixed_3b.b1b.conv3d.weight"].shape == (128, 96, 3, 3, 3)
    assert state["Mixed_5c.b3b.conv3d.weight"].shape == (128, 832, 1, 1, 1)
    assert state["logits.conv3d.weight"].shape == (400, 1024, 1, 1, 1)
    assert sum(p.numel() for p in network.parameters()) == 12_697_264


def test_strict_loading_round_trip(random_i3d, tmp_path):
    network, path = random_i3d
    loaded = load_i3d(path)
    assert not loaded.training
    for (name, a), (_, b) in zip(network.state_dict().items(), loaded.state_dict().items()):
        assert torch.equal(a, b), name
    clip = torch.rand(1, 3, I3D_MIN_FRAMES, 32, 32) * 2 - 1
    with torch.no_grad():
        trunk = loaded.trunk(clip)
        assert trunk.shape == (1, 1024, 2, 1, 1)
        assert torch.equal(trunk, network.trunk(clip))
    # DataParallel prefixes are dropped; older files without num_batches_tracked load too.
    prefixed = {f"module.{k}": v for k, v in network.state_dict().items() if not k.endswith("num_batches_tracked")}
    torch.save(prefixed, tmp_path / "prefixed.pt")
    load_i3d(tmp_path / "prefixed.pt")


def test_loading_refuses_wrong_files(random_i3d, tmp_path):
    network, _ = random_i3d
    state = network.state_dict()
    del state["Mixed_4c.b2b.conv3d.weight"]
    torch.save(state, tmp_path / "missing.pt")
    with pytest.raises(ValueError, match="Mixed_4c.b2b.conv3d.weight"):
        load_i3d(tmp_path / "missing.pt")
    with pytest.raises(FileNotFoundError, match="i3d_pretrained_400.pt"):
        load_i3d(tmp_path / "absent.pt")


def test_preprocess_resizes_crops_and_rescales():
    videos = torch.rand(2, 9, 3, 300, 400)
    out = preprocess_for_i3d(videos)
    assert out.shape == (2, 3, 9, 224, 224)
    assert out.min() >= -1 and out.max() <= 1
    constant = preprocess_for_i3d(torch.full((1, 9, 3, 64, 64), 0.25))
    assert torch.allclose(constant, torch.full_like(constant, -0.5))


def test_forward_shapes_and_argument_checks(random_i3d):
    network, _ = random_i3d
    extractor = I3DFeatureExtractor(network, batch_size=1)
    features = extractor(torch.rand(1, I3D_MIN_FRAMES, 3, 64, 64))
    assert features.shape == (1, 400) and torch.isfinite(features).all()
    with pytest.raises(ValueError, match="at least 9 frames"):
        extractor(torch.rand(1, 8, 3, 64, 64))
    with pytest.raises(ValueError, match="224x224"):
        network(torch.rand(1, 3, 9, 64, 64))


@pytest.mark.slow
def test_feature_extractor_on_two_paper_sized_clips(random_i3d):
    network, _ = random_i3d
    videos = torch.rand(2, 20, 3, 512, 512)
    features = I3DFeatureExtractor(network, batch_size=2)(videos)
    assert features.shape == (2, 400)
    with torch.no_grad():
        one_by_one = torch.cat([network(preprocess_for_i3d(videos[i:i + 1])) for i in range(2)])
        pooled = network.pooled_features(preprocess_for_i3d(videos))
    assert torch.allclose(features, one_by_one, atol=1e-4)
    assert pooled.shape == (2, 1024)
