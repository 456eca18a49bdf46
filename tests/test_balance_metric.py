"""The balance-efficiency formula (omview.core.balance_metric)."""

import math

import pytest

from omview.core.balance_metric import LOAD_FLOOR, balance_efficiency


def test_equal_loads_are_perfect() -> None:
    assert balance_efficiency([50, 50, 50]) == 100.0


def test_fewer_than_two_nodes_are_balanced() -> None:
    assert balance_efficiency([]) == 100.0
    assert balance_efficiency([97.0]) == 100.0


def test_one_busy_one_idle_is_zero() -> None:
    # mean 50, sigma 50 -> 1 - 1 = 0
    assert balance_efficiency([100, 0]) == 0.0


def test_coefficient_of_variation() -> None:
    # mean 50, sigma 10 -> 80 %
    assert balance_efficiency([40, 60]) == pytest.approx(80.0)


def test_near_idle_cluster_is_not_called_unbalanced() -> None:
    # mean 1, sigma 1: judged against the floor, not the mean
    assert balance_efficiency([0, 2]) == pytest.approx(100 * (1 - 1 / LOAD_FLOOR))


def test_clipped_at_zero_for_extreme_spread() -> None:
    assert balance_efficiency([0, 0, 0, 0, 400]) == 0.0


def test_ignores_nan_and_negative() -> None:
    assert balance_efficiency([50, math.nan, 50]) == 100.0
    assert balance_efficiency([-5, 0]) == 100.0


def test_more_even_is_higher() -> None:
    assert balance_efficiency([45, 55, 50]) > balance_efficiency([20, 80, 50])
