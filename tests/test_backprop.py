import numpy as np
import pytest
import torch
import torch.nn.functional as F

from course_lib import backprop, data


@pytest.fixture
def net():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(7, 3))
    y = rng.integers(0, 4, size=7)
    return backprop.init_params(3, 5, 4, seed=1), X, y


def test_forward_matches_torch(net):
    params, X, y = net
    probs, _ = backprop.forward(params, X)
    t = {k: torch.from_numpy(v) for k, v in params.items()}
    logits = torch.relu(torch.from_numpy(X) @ t["W1"] + t["b1"]) @ t["W2"] + t["b2"]
    torch.testing.assert_close(torch.from_numpy(probs), torch.softmax(logits, dim=1))
    loss = backprop.cross_entropy(probs, y)
    assert loss == pytest.approx(F.cross_entropy(logits, torch.from_numpy(y)).item(), rel=1e-12)


def test_backward_matches_autograd(net):
    params, X, y = net
    params["b1"] += 0.1  # non-zero biases so that their gradients are exercised
    _, grads = backprop.loss_and_grads(params, X, y)
    t = {k: torch.tensor(v, requires_grad=True) for k, v in params.items()}
    logits = torch.relu(torch.from_numpy(X) @ t["W1"] + t["b1"]) @ t["W2"] + t["b2"]
    F.cross_entropy(logits, torch.from_numpy(y)).backward()
    for name in params:
        assert grads[name].shape == params[name].shape
        torch.testing.assert_close(torch.from_numpy(grads[name]), t[name].grad)


def test_backward_agrees_with_finite_differences(net):
    params, X, y = net
    _, grads = backprop.loss_and_grads(params, X, y)
    for name in params:
        numeric = backprop.numerical_gradient(lambda: backprop.loss_and_grads(params, X, y)[0], params[name])
        assert backprop.relative_error(grads[name], numeric) < 1e-7


def test_numerical_gradient_restores_its_input():
    x = np.array([1.0, 2.0, 3.0])
    grad = backprop.numerical_gradient(lambda: float((x**2).sum()), x)
    np.testing.assert_allclose(grad, 2 * x, rtol=1e-6)
    assert x.tolist() == [1.0, 2.0, 3.0]


def test_softmax_is_stable_and_exact():
    z = np.array([[1000.0, 1001.0, 1002.0], [-5.0, 0.0, 5.0]])
    torch.testing.assert_close(torch.from_numpy(backprop.softmax(z)), torch.softmax(torch.from_numpy(z), 1))


def test_gradient_descent_learns_the_spirals():
    X, y = data.make_spirals(100, 3, seed=0)
    params = backprop.init_params(2, 64, 3, seed=0)
    trained, losses = backprop.sgd_train(params, X, y, lr=1.0, steps=1500)
    assert losses[0] > 1.0 and losses[-1] < 0.2
    assert (backprop.predict(trained, X) == y).mean() > 0.95
    assert np.array_equal(params["W1"], backprop.init_params(2, 64, 3, seed=0)["W1"])  # input untouched


def test_bad_inputs_say_what_was_expected(net):
    params, X, y = net
    with pytest.raises(ValueError, match="expected 3 features, got 2"):
        backprop.forward(params, X[:, :2])
    with pytest.raises(ValueError, match="expected a 2-D NumPy array"):
        backprop.forward(params, X[0])
    probs, cache = backprop.forward(params, X)
    with pytest.raises(ValueError, match=r"class ids in \[0, 4\), got \[0, 9\]"):
        backprop.cross_entropy(probs, np.array([0, 9, 1, 1, 1, 1, 1]))
    with pytest.raises(ValueError, match=r"integer array of shape \(7,\)"):
        backprop.backward(params, cache, y.astype(float))
