"""tests/polling.py: wait_until returns as soon as the condition holds, and says what it waited for."""
import pytest

from tests.polling import wait_until


def test_returns_the_first_true_value_as_soon_as_it_comes():
    calls = []

    def third_time():
        calls.append(1)
        return len(calls) >= 3 and {"calls": len(calls)}
    assert wait_until(third_time, 30, interval=0.001) == {"calls": 3}
    assert len(calls) == 3


def test_on_timeout_returns_the_last_false_value_or_names_what_was_awaited():
    assert wait_until(lambda: [], 0.05, interval=0.01) == []
    with pytest.raises(AssertionError, match="timed out after 0.05s waiting for the moon"):
        wait_until(lambda: None, 0.05, interval=0.01, what="the moon")


def test_the_condition_is_checked_once_more_at_the_deadline():
    calls = []
    assert wait_until(lambda: calls.append(1) or len(calls) > 1, 0.02, interval=10)
    assert len(calls) == 2
