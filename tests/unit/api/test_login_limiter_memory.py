"""The sign-in limiter forgets addresses and users whose window has passed (red team: a client cycling through
addresses grew its tables without bound)."""

from metrosight.api.security import LoginLimiter


def test_addresses_and_users_of_passed_windows_are_forgotten() -> None:
    lim = LoginLimiter(window=300.0)
    for i in range(30_000):  # one attempt, one failure and one wrong code each, from 30,000 addresses and users
        now = float(i)  # one a second: at most 300 of them inside any window
        lim.retry_after(f"user{i}", f"10.0.{i // 256}.{i % 256}", now)
        lim.failed(f"user{i}", f"10.0.{i // 256}.{i % 256}", now)
        lim.code_failed(f"user{i}", now)
    held = len(lim._failures) + len(lim._attempts) + len(lim._code_failures)
    assert held <= 20_001, held


def test_pruning_keeps_what_is_inside_the_window() -> None:
    lim = LoginLimiter(max_failures=2, window=300.0)
    lim.failed("ada", "1.2.3.4", 0.0)
    lim.failed("ada", "1.2.3.4", 1.0)
    for i in range(20_000):  # others' attempts fill the tables inside ada's window
        lim.retry_after(f"u{i}", f"10.{i // 65536}.{(i // 256) % 256}.{i % 256}", 2.0 + i * 1e-4)
    assert lim.retry_after("ada", "1.2.3.4", 5.0) > 0  # ada is still locked out
