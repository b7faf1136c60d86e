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
