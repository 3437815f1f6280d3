"""The shared state-evolution machinery of the static package (``static.state_evolution``) on
known answers, and the rule that no module of dln_kernels reaches into another's private names."""

import ast
import pathlib

import numpy as np
import pytest

import dln_kernels
from dln_kernels.static import solver as S
from dln_kernels.static import state_evolution as SE

PKG = pathlib.Path(dln_kernels.__file__).parent


def _module_name(path):
    rel = path.relative_to(PKG.parent).with_suffix("")
    return ".".join(rel.parts[:-1] if rel.name == "__init__" else rel.parts)


def test_no_module_uses_another_modules_private_names():
    """`from dln_kernels.x import _name` and `mod._name` on an imported dln_kernels module are
    both refused (shared helpers get a public name in the module that owns them)."""
    bad = []
    for path in sorted(PKG.rglob("*.py")):
        tree = ast.parse(path.read_text())
        aliases = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("dln_kernels"):
                bad += [f"{path.name}: from {node.module} import {a.name}" for a in node.names
                        if a.name.startswith("_") and not a.name.startswith("__")]
                aliases |= {a.asname or a.name for a in node.names}
            elif isinstance(node, ast.Import):
                aliases |= {a.asname or a.name for a in node.names if a.name.startswith("dln_kernels")}
        for node in ast.walk(tree):
            if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in aliases
                    and node.attr.startswith("_") and not node.attr.startswith("__")):
                bad.append(f"{path.name}:{node.lineno}: {node.value.id}.{node.attr}")
    assert not bad, bad


def test_split_rule_integrates_gaussian_moments():
    mu, r = np.array([0.3, -2.0]), np.array([0.5, 1.5])
    z, w = SE.split_rule(mu, r, [np.array([0.1, 0.2]), np.array([1.0, 3.0])], (2,), 12)
    assert z.shape == w.shape == (2, (len(SE.BASE_BREAKS) - 1 + 4) * 12)
    x = mu[:, None] + r[:, None] * z
    np.testing.assert_allclose(w.sum(-1), 1.0, rtol=1e-13)
    np.testing.assert_allclose((w * x).sum(-1), mu, rtol=1e-13)
    np.testing.assert_allclose((w * x * x).sum(-1), mu**2 + r**2, rtol=1e-13)


def test_accumulate_moments_of_the_identity_prox():
    """p(x) = x: p' = 1 and E[(p − B)²] = E[(τZ)²] = τ², for every mixture (∂τM = 2τ, the rest 0)."""
    tau, gamma = np.array([1e-3, 0.2, 1.0, 3.0]), np.full(4, 0.5)
    comps = [(np.full(4, 0.5), 0.0, 0.0), (np.full(4, 0.3), 1.0, 0.25), (np.full(4, 0.2), -2.0, 1.0)]

    def point(mu, R, z, A, G, derivs):
        x = mu + R * z
        zero = np.zeros_like(x)
        e = (1.0 - A) * (x - mu)
        return SE.NodeValues(np.ones_like(x), e, *((zero, zero, zero) if derivs else ()))

    nodes = lambda mu, r: SE.split_rule(mu, r, [], r.shape, 12)  # noqa: E731
    m = SE.accumulate_moments(tau, gamma, comps, nodes, point, True, None)
    np.testing.assert_allclose(m.D, 1.0, rtol=1e-13)
    np.testing.assert_allclose(m.M, tau**2, rtol=1e-12)
    np.testing.assert_allclose(m.M_tau, 2 * tau, rtol=1e-12)
    assert np.all(m.D_tau == 0) and np.all(m.D_gamma == 0) and np.all(m.M_gamma == 0)
    plain = SE.accumulate_moments(tau, gamma, comps, nodes, point, False, None)
    np.testing.assert_array_equal(plain.M, m.M)
    assert np.all(plain.M_tau == 0)


def test_se_residual_and_its_norms():
    """F1 = log(s2p + M/δ) − 2 log τ, F2 = log D − log δ, with J from the moments' partials."""
    lt, lg = np.log(np.array([0.5, 2.0])), np.log(np.array([1.0, 3.0]))
    delta, s2p = np.array([0.5, 0.8]), np.array([0.0, 0.1])

    def moments(tau, gamma, derivs):  # M = τ², D = 1/(1 + γ)
        one = np.ones_like(tau)
        return SE.Moments(1 / (1 + gamma), tau**2, 0 * one, -1 / (1 + gamma) ** 2, 2 * tau, 0 * one)

    r = SE.se_residual(lt, lg, moments, s2p, delta)
    tau, gamma = np.exp(lt), np.exp(lg)
    np.testing.assert_allclose(r.F1, np.log(s2p + tau**2 / delta) - 2 * lt, rtol=1e-14)
    np.testing.assert_allclose(r.F2, -np.log(1 + gamma) - np.log(delta), rtol=1e-14)
    np.testing.assert_allclose(r.J[:, 1, 1], -gamma / (1 + gamma), rtol=1e-14)
    np.testing.assert_array_equal(r.max_abs(), np.maximum(np.abs(r.F1), np.abs(r.F2)))
    np.testing.assert_array_equal(r.hypot(), np.hypot(r.F1, r.F2))
    assert SE.se_residual(lt, lg, moments, s2p, delta, derivs=False).J is None


def test_bracketed_and_damped_newton_find_known_roots():
    c = np.array([0.5, 2.0, 7.0])
    fdf = lambda x, idx: (c[idx] - x**3, -3 * x**2)  # noqa: E731  (decreasing, root c^(1/3))
    x = SE.bracketed_newton(np.ones(3), np.zeros(3), np.full(3, 3.0), fdf, 1e-14, 1e-15, 60)
    np.testing.assert_allclose(x, np.cbrt(c), rtol=1e-13)

    a, b = np.array([0.3, -1.0]), np.array([2.0, 0.5])

    def resid(x, y, idx, derivs):  # x = a, y = b through a nonlinear map
        F1, F2 = np.sinh(x - a[idx]), (y - b[idx]) + 0.1 * (y - b[idx]) ** 3
        if not derivs:
            return F1, F2, None
        J = np.zeros(x.shape + (2, 2))
        J[:, 0, 0] = np.cosh(x - a[idx])
        J[:, 1, 1] = 1 + 0.3 * (y - b[idx]) ** 2
        return F1, F2, J

    x, y = np.full(2, 5.0), np.full(2, -4.0)
    SE.damped_newton(x, y, resid, 1e-14, 60)
    np.testing.assert_allclose(x, a, atol=1e-13)
    np.testing.assert_allclose(y, b, atol=1e-13)


def test_reduced_slope_is_the_derivative_along_f2_zero():
    J = np.array([[[1.0, 2.0], [3.0, 4.0]]])
    assert SE.reduced_slope(J)[0] == pytest.approx(1.0 - 2.0 * 3.0 / 4.0)


def test_take_components_and_abs_tail():
    comps = [(np.array([0.4, 0.6]), 0.0, 0.0), (0.5, 1.0, 0.0)]
    sub = SE.take_components(comps, np.array([1]))
    assert sub[0][0].tolist() == [0.6] and sub[1][0] == 0.5
    # B = 0 or 1 (no spread), τ = 0: P(|B| > 0.5) is the weight of the atom at 1
    assert SE.abs_tail(0.5, np.zeros(2), [(np.array([0.3, 0.7]), 0.0, 0.0), (np.array([0.7, 0.3]), 1.0, 0.0)]).tolist() == [0.7, 0.3]


def test_points_and_empty_result_match_solve_static():
    p = S.flat_points("caller", [0.1, 0.2], 0.5, 0.1, 0.0, [[0.0], [0.1]], depth=3)
    assert p.shape == (2, 2) and p.n == 4 and p.depth.tolist() == [3.0] * 4 and p.weight_decay.tolist() == [0, 0, 0.1, 0.1]
    with pytest.raises(ValueError, match="^caller: need alpha > 0"):
        S.flat_points("caller", -1.0, 0.5, 0.1, 0.0, 0.0)
    out = S.solve_static([0.1, 0.2], 2.0, 0.1, 0.1)
    assert set(S.empty_result(3)) == set(out)
    assert [c.tolist() for c in S.chunks_of(np.array([True, False, True, True]), 2)] == [[0, 2], [3]]
