"""LPIPS wrapper: identical to ``lpips.LPIPS`` given the same backbone weights, all read from local files."""

from __future__ import annotations

import lpips
import pytest
import torch
import torchvision

from gas_core.metrics.lpips import LPIPSMetric

# The reference lpips.LPIPS passes torchvision's deprecated ``pretrained=False`` (random weights, no download).
pytestmark = [pytest.mark.filterwarnings("ignore:Arguments other than a weight enum:UserWarning"),
              pytest.mark.filterwarnings("ignore:The parameter 'pretrained' is deprecated:UserWarning")]


@pytest.fixture(scope="module")
def random_alexnet(tmp_path_factory):
    """A random-weight torchvision AlexNet saved twice: features only, and the whole model."""
    torch.manual_seed(0)
    model = torchvision.models.alexnet()
    folder = tmp_path_factory.mktemp("lpips")
    torch.save(model.features.state_dict(), folder / "alexnet_features.pth")
    torch.save(model.state_dict(), folder / "alexnet_full.pth")
    return model, folder


@pytest.fixture(scope="module")
def alex_metric(random_alexnet) -> LPIPSMetric:
    return LPIPSMetric(random_alexnet[1] / "alexnet_features.pth", network="alex")


@pytest.fixture(scope="module")
def alex_reference(random_alexnet) -> lpips.LPIPS:
    return _reference(random_alexnet[0], "alex")


def _reference(model: torch.nn.Module, network: str) -> lpips.LPIPS:
    """``lpips.LPIPS`` built the same way, its slices filled from the torchvision layers by index."""
    reference = lpips.LPIPS(net=network, pretrained=True, pnet_rand=True, verbose=False)
    for slice_module in reference.net.children():
        for index, layer in slice_module.named_children():
            layer.load_state_dict(model.features[int(index)].state_dict())
    return reference.eval()


def _images(seed: int, batch: int = 2, size: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(batch, 3, size, size, generator=generator), torch.rand(batch, 3, size, size, generator=generator)


def test_wrapper_matches_lpips_package(alex_metric, alex_reference):
    metric, reference = alex_metric, alex_reference
    pred, target = _images(1)
    ours = metric(pred, target)
    with torch.no_grad():
        expected = reference(pred, target, normalize=True).flatten()
    assert ours.shape == (2,)
    assert torch.equal(ours, expected)
    assert torch.all(metric(pred, pred) == 0)


def test_whole_model_file_loads_the_same_backbone(random_alexnet, alex_metric):
    _, folder = random_alexnet
    from_features = alex_metric
    from_full = LPIPSMetric(folder / "alexnet_full.pth", network="alex")
    for (name, a), (_, b) in zip(from_features.model.state_dict().items(), from_full.model.state_dict().items()):
        assert torch.equal(a, b), name


def test_box_scores_each_crop_alone(alex_metric, alex_reference):
    metric, reference = alex_metric, alex_reference
    pred, target = _images(2, size=72)
    box = torch.tensor([[4, 8, 60, 64], [0, 0, 72, 72]])
    ours = metric(pred, target, box=box)
    with torch.no_grad():
        first = reference(pred[:1, :, 8:64, 4:60], target[:1, :, 8:64, 4:60], normalize=True).flatten()
        second = reference(pred[1:], target[1:], normalize=True).flatten()
    assert torch.equal(ours, torch.cat([first, second]))


def test_missing_file_names_the_path_and_how_to_get_it(tmp_path):
    missing = tmp_path / "vgg16_features.pth"
    with pytest.raises(FileNotFoundError) as info:
        LPIPSMetric(missing, network="vgg")
    message = str(info.value)
    assert str(missing) in message and "torchvision.models.vgg16" in message and "IMAGENET1K_V1" in message


def test_wrong_backbone_or_bad_arguments_are_refused(random_alexnet, alex_metric, tmp_path):
    _, folder = random_alexnet
    with pytest.raises(ValueError, match="network"):
        LPIPSMetric(folder / "alexnet_features.pth", network="squeeze")
    torch.save({"0.weight": torch.zeros(3)}, tmp_path / "partial.pth")
    with pytest.raises(ValueError, match="missing backbone tensor"):
        LPIPSMetric(tmp_path / "partial.pth", network="alex")
    torch.save({"encoder.weight": torch.zeros(3)}, tmp_path / "foreign.pth")
    with pytest.raises(ValueError, match="not torchvision feature layers"):
        LPIPSMetric(tmp_path / "foreign.pth", network="alex")
    pred, target = _images(3, size=16)
    with pytest.raises(ValueError, match="at least 32"):
        alex_metric(pred, target)


@pytest.mark.slow
def test_vgg_wrapper_matches_lpips_package(tmp_path):
    torch.manual_seed(1)
    model = torchvision.models.vgg16()
    torch.save(model.features.state_dict(), tmp_path / "vgg16_features.pth")
    metric = LPIPSMetric(tmp_path / "vgg16_features.pth", network="vgg")
    reference = _reference(model, "vgg")
    pred, target = _images(4)
    with torch.no_grad():
        expected = reference(pred, target, normalize=True).flatten()
    assert torch.equal(metric(pred, target), expected)


def test_uint8_input_is_scored_on_its_0_255_scale_and_off_scale_floats_are_refused(alex_metric):
    pred, target = _images(4)
    pred8, target8 = (pred * 255).round().to(torch.uint8), (target * 255).round().to(torch.uint8)
    expected = alex_metric(pred8.float() / 255, target8.float() / 255)
    assert torch.allclose(alex_metric(pred8, target8), expected, atol=1e-6)
    assert torch.allclose(alex_metric(pred8.float(), target8.float(), data_range=255), expected, atol=1e-6)
    with pytest.raises(ValueError, match="pred holds values"):
        alex_metric(pred8.float(), target)
