from services.llm_gateway.failover import CLOSED, HALF_OPEN, OPEN, CircuitBreaker


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def test_opens_after_the_threshold_and_refuses_until_the_open_period_ends():
    clock = Clock()
    breaker = CircuitBreaker(failure_threshold=3, open_s=10, clock=clock)
    for _ in range(2):
        breaker.record_failure()
    assert breaker.state == CLOSED and breaker.allow()
    breaker.record_failure()
    assert breaker.state == OPEN and not breaker.allow()
    clock.now += 4
    assert breaker.retry_after_s() == 6
    clock.now += 6
    assert breaker.allow() and breaker.state == HALF_OPEN
    assert not breaker.allow()  # one trial at a time


def test_half_open_trial_closes_or_reopens():
    clock = Clock()
    breaker = CircuitBreaker(failure_threshold=1, open_s=5, clock=clock)
    breaker.record_failure()
    clock.now += 5
    assert breaker.allow()
    breaker.record_failure()
    assert breaker.state == OPEN and breaker.retry_after_s() == 5
    clock.now += 5
    assert breaker.allow()
    breaker.record_success()
    assert breaker.state == CLOSED and breaker.consecutive_failures == 0 and breaker.allow()


def test_a_success_resets_the_count():
    breaker = CircuitBreaker(failure_threshold=2, open_s=5, clock=Clock())
    breaker.record_failure()
    breaker.record_success()
    breaker.record_failure()
    assert breaker.state == CLOSED


def test_an_abandoned_trial_is_given_up_after_the_open_period():
    clock = Clock()
    breaker = CircuitBreaker(failure_threshold=1, open_s=5, clock=clock)
    breaker.record_failure()
    clock.now += 5
    assert breaker.allow()  # the trial never reports back
    clock.now += 4
    assert not breaker.allow()
    clock.now += 1
    assert breaker.allow()


def test_changes_of_state_are_kept_with_their_time_and_repeats_are_not():
    clock, wall = Clock(), Clock()
    wall.now = 1_800_000_000.0
    breaker = CircuitBreaker(failure_threshold=1, open_s=5, clock=clock, wall_clock=wall)
    breaker.record_success()  # closed already: no change
    breaker.record_failure()
    wall.now += 5
    clock.now += 5
    assert breaker.allow()
    breaker.record_success()
    assert list(breaker.changes) == [(1_800_000_000.0, OPEN), (1_800_000_005.0, HALF_OPEN), (1_800_000_005.0, CLOSED)]
    for _ in range(30):
        breaker.record_failure()
        breaker.record_success()
    assert len(breaker.changes) == 20 and breaker.changes[-1][1] == CLOSED
