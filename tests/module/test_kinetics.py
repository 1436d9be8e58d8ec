"""The closed-form kinetics against a numerical ODE solver."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.integrate import solve_ivp

from revelo.module import induction, solve_kinetics, switch_trajectory, switch_trajectory_at
from revelo.module._kinetics import exp_difference_ratio


def _numerical(u0, s0, alpha, beta, gamma, t):
    def rhs(_, y):
        return [alpha - beta * y[0], beta * y[0] - gamma * y[1]]

    sol = solve_ivp(rhs, (0, t), [u0, s0], method="DOP853", rtol=1e-12, atol=1e-14)
    return sol.y[:, -1]


def _closed(u0, s0, alpha, beta, gamma, t):
    args = (torch.tensor(v, dtype=torch.float64) for v in (u0, s0, alpha, beta, gamma, t))
    u, s = solve_kinetics(*args)
    return np.array([u.item(), s.item()])


@pytest.mark.parametrize("seed", range(8))
def test_closed_form_matches_solve_ivp_on_random_rates(seed):
    rng = np.random.default_rng(seed)
    alpha, beta, gamma = rng.lognormal(0.0, 0.7, 3)
    u0, s0 = rng.uniform(0, 3, 2)
    for t in (0.0, 0.1, 1.0, 5.0, 15.0):
        for start in ((0.0, 0.0, alpha), (u0, s0, 0.0)):  # induction, repression
            expected = _numerical(start[0], start[1], start[2], beta, gamma, t)
            got = _closed(start[0], start[1], start[2], beta, gamma, t)
            np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-9)


@pytest.mark.parametrize("delta", [0.0, 1e-9, 1e-5, 1e-3, 1e-2])
def test_beta_equal_gamma_and_nearly_equal(delta):
    beta, gamma = 0.7, 0.7 + delta
    for t in (0.5, 3.0, 12.0):
        for u0, s0, alpha in ((0.0, 0.0, 1.3), (1.1, 0.4, 0.0)):
            expected = _numerical(u0, s0, alpha, beta, gamma, t)
            got = _closed(u0, s0, alpha, beta, gamma, t)
            np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-9)


def test_switch_trajectory_matches_solve_ivp_before_and_after_switch():
    alpha, beta, gamma, t_switch = 2.0, 1.0, 0.4, 4.0

    def rhs(t, y):
        a = alpha if t < t_switch else 0.0
        return [a - beta * y[0], beta * y[0] - gamma * y[1]]

    times = np.array([0.5, 2.0, 3.9, 4.1, 7.0, 15.0])
    sol = solve_ivp(rhs, (0, 16), [0, 0], t_eval=times, rtol=1e-12, atol=1e-14, max_step=0.01)
    a, b, g, ts = (torch.tensor(v, dtype=torch.float64) for v in (alpha, beta, gamma, t_switch))
    t = torch.tensor(times, dtype=torch.float64)
    point = switch_trajectory_at(a, b, g, ts, t)
    u, s = point.u.numpy(), point.s.numpy()
    np.testing.assert_allclose(u, sol.y[0], rtol=1e-5)
    np.testing.assert_allclose(s, sol.y[1], rtol=1e-5)
    # Velocities: the ODE's right-hand side at the numerical solution.
    expected = np.array([rhs(time, y) for time, y in zip(times, sol.y.T, strict=True)])
    np.testing.assert_allclose(point.velocity_u.numpy(), expected[:, 0], rtol=1e-5, atol=1e-9)
    np.testing.assert_allclose(point.velocity_s.numpy(), expected[:, 1], rtol=1e-5, atol=1e-9)


def test_switch_trajectory_phases_at_their_own_times():
    # Each phase is evaluated at its own time: induction t_induction after (0, 0), repression
    # t_repression after the switch point, which is where induction is at t_switch.
    rng = np.random.default_rng(4)
    alpha, beta, gamma = (torch.tensor(v) for v in rng.lognormal(0.0, 0.5, (3, 7)))
    t_switch = torch.tensor(rng.uniform(1.0, 8.0, 7))
    t_induction = t_switch * torch.tensor(rng.uniform(0, 1, 7))
    t_repression = torch.tensor(rng.uniform(0, 10, 7))
    path = switch_trajectory(alpha, beta, gamma, t_switch, t_induction, t_repression)
    for k in range(7):
        a, b, g, ts = (float(v[k]) for v in (alpha, beta, gamma, t_switch))
        u_ind, s_ind = _numerical(0.0, 0.0, a, b, g, float(t_induction[k]))
        u_sw, s_sw = _numerical(0.0, 0.0, a, b, g, ts)
        u_rep, s_rep = _numerical(u_sw, s_sw, 0.0, b, g, float(t_repression[k]))
        np.testing.assert_allclose(
            [path.induction.u[k], path.induction.s[k], path.u_switch[k], path.s_switch[k]],
            [u_ind, s_ind, u_sw, s_sw],
            rtol=1e-5,
        )
        np.testing.assert_allclose(
            [path.repression.u[k], path.repression.s[k]], [u_rep, s_rep], rtol=1e-5, atol=1e-9
        )
        np.testing.assert_allclose(
            [path.induction.velocity_u[k], path.induction.velocity_s[k]],
            [a - b * u_ind, b * u_ind - g * s_ind],
            rtol=1e-5,
            atol=1e-9,
        )
        np.testing.assert_allclose(
            [path.repression.velocity_u[k], path.repression.velocity_s[k]],
            [-b * u_rep, b * u_rep - g * s_rep],
            rtol=1e-5,
            atol=1e-9,
        )


def test_ratio_gradients_are_finite_at_equal_rates():
    beta = torch.tensor([0.5, 1.0], requires_grad=True)
    gamma = torch.tensor([0.5, 1.0 + 1e-6], requires_grad=True)
    ratio = exp_difference_ratio(beta, gamma, torch.tensor([2.0, 2.0]))
    ratio.sum().backward()
    assert torch.isfinite(beta.grad).all() and torch.isfinite(gamma.grad).all()
    # d/dβ of the limit −t·e^{−βt}, halved (β and γ enter symmetrically at equality).
    analytic = 0.5 * (2.0**2) * np.exp(-0.5 * 2.0)
    assert beta.grad[0].item() == pytest.approx(analytic, rel=1e-4)


def test_float32_is_accurate_enough_for_training():
    rng = np.random.default_rng(3)
    alpha, beta, gamma = rng.lognormal(0, 0.5, (3, 50))
    t = rng.uniform(0, 20, 50)
    u32, s32 = induction(*(torch.tensor(v, dtype=torch.float32) for v in (alpha, beta, gamma, t)))
    u64, s64 = induction(*(torch.tensor(v, dtype=torch.float64) for v in (alpha, beta, gamma, t)))
    np.testing.assert_allclose(u32.numpy(), u64.numpy(), rtol=1e-5)
    np.testing.assert_allclose(s32.numpy(), s64.numpy(), rtol=1e-4, atol=1e-6)
