"""Binarized layers, straight-through estimators, input binarization and normalization."""
import torch
import torch.nn.functional as F

from metaplastic.method.engine import evaluate
from metaplastic.method.layers import BinarizedConv2d, BinarizedLinear, binarize_ste, sign_activation
from metaplastic.method.models import BNN, DNN
from metaplastic.method.norms import (BatchNorm1d, FeatureNorm, batch_statistics_groups, norm_state,
                                      using_norm_state)


def test_sign_activation_forward_and_clipped_gradient():
    x = torch.tensor([-2.0, -1.0, -0.5, 0.0, 0.5, 1.0, 1.0001, 3.0], requires_grad=True)
    y = sign_activation(x)
    assert y.tolist() == [-1, -1, -1, 0, 1, 1, 1, 1]  # torch.sign: sign(0) = 0
    y.backward(torch.arange(1.0, 9.0))
    # gradient passes where |x| <= 1 (x = 0 and |x| = 1 included), zero beyond
    assert x.grad.tolist() == [0, 2, 3, 4, 5, 6, 0, 0]


def test_weight_ste_is_identity_everywhere():
    x = torch.tensor([-5.0, -1.0, 0.0, 1.0, 7.0], requires_grad=True)
    binarize_ste(x).backward(torch.tensor([1.0, 2.0, 3.0, 4.0, 5.0]))
    assert x.grad.tolist() == [1, 2, 3, 4, 5]


def test_linear_forward_uses_sign_of_hidden_weight_and_ste_gradient():
    torch.manual_seed(0)
    layer = BinarizedLinear(5, 3, binarize_input=False)
    with torch.no_grad():
        layer.hidden_weight[0, 0] = 0.0
    hidden_before = layer.hidden_weight.detach().clone()
    x = torch.randn(4, 5)
    out = layer(x)
    binary = torch.sign(hidden_before)
    assert binary[0, 0] == 0
    torch.testing.assert_close(out, x @ binary.T)
    # the parameter is the hidden weight itself, untouched by the forward pass
    assert list(dict(layer.named_parameters())) == ["hidden_weight"]
    assert torch.equal(layer.hidden_weight.detach(), hidden_before)
    g = torch.randn(4, 3)
    out.backward(g)
    torch.testing.assert_close(layer.hidden_weight.grad, g.T @ x)  # dL/dW_b, unchanged


def test_binary_weight_follows_in_place_updates():
    layer = BinarizedLinear(4, 2)
    with torch.no_grad():
        first = layer.binary_weight().clone()
        layer.hidden_weight.neg_()
        assert torch.equal(layer.binary_weight(), -first)


def test_reference_layers_hold_nothing_but_the_hidden_weight():
    """The reference keeps no sign buffers: parameters and plain flags only."""
    layer = BinarizedLinear(6, 3)
    assert list(dict(layer.named_parameters())) == ["hidden_weight"]
    assert not list(layer.buffers())
    assert not [k for k, v in vars(layer).items() if isinstance(v, torch.Tensor)]


def test_conv_forward_uses_sign_and_binarizes_input():
    torch.manual_seed(1)
    conv = BinarizedConv2d(1, 2, 3, padding=1, binarize_input=True)
    x = torch.rand(2, 1, 6, 6)
    out = conv(x)
    expected = F.conv2d(torch.sign(x), torch.sign(conv.hidden_weight.detach()), padding=1)
    torch.testing.assert_close(out, expected)
    assert set(torch.sign(x).unique().tolist()) <= {0.0, 1.0}  # pixels in [0,1] -> 0 or 1


def test_input_binarization_defaults():
    assert BNN([784, 16, 10]).layers[0].binarize_input is False   # raw pixels
    assert BNN([512, 16, 10]).layers[0].binarize_input is True    # CIFAR features
    explicit = BNN([784, 16, 10], binarize_inputs=[True, False])
    assert explicit.layers[0].binarize_input is True
    # hidden layers get sign activations: binarizing again changes nothing
    model = BNN([784, 16, 16, 10])
    x = torch.rand(8, 784)
    forced = BNN([784, 16, 16, 10], binarize_inputs=[False, True, True])
    forced.load_state_dict(model.state_dict())
    model.eval(), forced.eval()
    torch.testing.assert_close(model(x), forced(x))
    # raw input: the output differs from what a binarized input gives
    binarized = BNN([784, 16, 10], binarize_inputs=[True, False])
    plain = BNN([784, 16, 10])
    binarized.load_state_dict(plain.state_dict())
    assert not torch.allclose(plain(x), binarized(x))


def test_bnn_structure_and_bn_uses_batch_statistics_in_eval():
    model = BNN([20, 8, 4])
    bn = model.norms[0]
    assert isinstance(bn, BatchNorm1d) and bn.affine and not bn.track_running_stats
    model.eval()
    x = torch.randn(6, 20)
    # evaluation depends on the batch: the first sample alone vs in a batch differ
    assert not torch.allclose(model(x)[:2], model(x[:2]))
    dnn = DNN([20, 8, 4])
    assert dnn.norms[0].track_running_stats


def test_grouped_batch_statistics_equal_separate_batches():
    torch.manual_seed(2)
    model = BNN([30, 16, 5])
    with torch.no_grad():
        model.norms[0].weight.uniform_(0.5, 1.5)
        model.norms[0].bias.uniform_(-0.5, 0.5)
    model.eval()
    x, y = torch.randn(250, 30), torch.randint(0, 5, (250,))
    with torch.no_grad():
        separate = torch.cat([model(x[i:i + 100]) for i in range(0, 250, 100)])
        with batch_statistics_groups(model, 100):
            grouped = model(x)
    torch.testing.assert_close(grouped, separate, rtol=1e-5, atol=1e-5)
    ev = evaluate(model, x, y, 100)
    correct = (separate.argmax(1) == y).sum().item()
    assert ev.accuracy == round(100 * correct / 250, 2)
    loss = sum(F.cross_entropy(model(x[i:i + 100]), y[i:i + 100], reduction="sum").item()
               for i in range(0, 250, 100)) / 250
    assert abs(ev.loss - loss) < 1e-4


def test_feature_norm_is_per_sample():
    x = torch.randn(3, 7) * 5 + 2
    y = FeatureNorm()(x)
    torch.testing.assert_close(y.mean(1), torch.zeros(3), atol=1e-5, rtol=0)
    torch.testing.assert_close(y.var(1, correction=0), torch.ones(3), atol=1e-3, rtol=0)
    torch.testing.assert_close(FeatureNorm()(x[:1]), y[:1])


def test_norm_state_is_used_then_restored():
    model = BNN([6, 4, 3])
    saved = norm_state(model)
    with torch.no_grad():
        model.norms[0].weight.fill_(2.0)
    with using_norm_state(model, saved):
        assert torch.equal(model.norms[0].weight, saved["norms.0.weight"])
    assert torch.all(model.norms[0].weight == 2.0)
