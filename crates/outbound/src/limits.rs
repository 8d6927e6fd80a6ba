//! Not hammering a receiver: a circuit breaker per channel, a pace (calls per second) per
//! channel, and the per-minute window of a group robot.

use std::collections::VecDeque;
use std::time::Duration;

use tokio::time::Instant;

/// Opens after `threshold` failed calls in a row: no calls while open; after `cooldown` one
/// trial call goes through, and its success closes the circuit again (its failure reopens it).
#[derive(Debug)]
pub struct Breaker {
    threshold: u32,
    cooldown: Duration,
    failures: u32,
    open_until: Option<Instant>,
    trial_in_flight: bool,
}

impl Breaker {
    pub fn new(threshold: u32, cooldown: Duration) -> Breaker {
        Breaker {
            threshold: threshold.max(1),
            cooldown,
            failures: 0,
            open_until: None,
            trial_in_flight: false,
        }
    }

    /// Whether a call may be made now (taking the trial slot when half open).
    pub fn allow(&mut self, now: Instant) -> bool {
        match self.open_until {
            None => true,
            Some(until) if now < until => false,
            Some(_) if self.trial_in_flight => false,
            Some(_) => {
                self.trial_in_flight = true;
                true
            }
        }
    }

    pub fn is_open(&self, now: Instant) -> bool {
        self.open_until.is_some_and(|until| now < until)
    }

    /// Records what a call came to: `true` when the receiver answered it (even with a refusal,
    /// which says the receiver is up), `false` when it failed.
    pub fn record(&mut self, answered: bool, now: Instant) {
        self.trial_in_flight = false;
        if answered {
            self.failures = 0;
            self.open_until = None;
            return;
        }
        self.failures = self.failures.saturating_add(1);
        if self.failures >= self.threshold || self.open_until.is_some() {
            self.open_until = Some(now + self.cooldown);
        }
    }
}

/// At most `per_second` calls a second, spaced evenly.
#[derive(Debug)]
pub struct Pace {
    interval: Duration,
    next: Instant,
}

impl Pace {
    pub fn new(per_second: u32) -> Pace {
        Pace {
            interval: Duration::from_secs(1) / per_second.max(1),
            next: Instant::now(),
        }
    }

    /// How long to wait before the next call, which is then booked.
    pub fn book(&mut self, now: Instant) -> Duration {
        let at = self.next.max(now);
        self.next = at + self.interval;
        at - now
    }
}

/// At most `limit` messages in any `period` (DingTalk and WeCom robots: 20 a minute).
#[derive(Debug)]
pub struct Window {
    limit: usize,
    period: Duration,
    sent: VecDeque<Instant>,
}

impl Window {
    pub fn new(limit: u32, period: Duration) -> Window {
        Window {
            limit: usize::try_from(limit.max(1)).unwrap_or(usize::MAX),
            period,
            sent: VecDeque::new(),
        }
    }

    /// How long until a message may be sent.
    pub fn wait(&mut self, now: Instant) -> Duration {
        while self
            .sent
            .front()
            .is_some_and(|first| now.duration_since(*first) >= self.period)
        {
            self.sent.pop_front();
        }
        if self.sent.len() < self.limit {
            return Duration::ZERO;
        }
        self.sent
            .front()
            .map_or(Duration::ZERO, |first| (*first + self.period) - now)
    }

    pub fn record(&mut self, now: Instant) {
        self.sent.push_back(now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn the_breaker_opens_stops_calls_and_closes_after_a_good_trial() {
        let mut breaker = Breaker::new(3, Duration::from_secs(30));
        let now = Instant::now();
        for _ in 0..3 {
            assert!(breaker.allow(now));
            breaker.record(false, now);
        }
        assert!(!breaker.allow(now), "open");
        let later = now + Duration::from_secs(31);
        assert!(breaker.allow(later), "one trial");
        assert!(!breaker.allow(later), "only one");
        breaker.record(false, later);
        assert!(!breaker.allow(later + Duration::from_secs(1)), "reopened");
        let after = later + Duration::from_secs(31);
        assert!(breaker.allow(after));
        breaker.record(true, after);
        assert!(breaker.allow(after) && breaker.allow(after), "closed");
    }

    #[tokio::test(start_paused = true)]
    async fn the_pace_spaces_calls() {
        let mut pace = Pace::new(10);
        let now = Instant::now();
        assert_eq!(pace.book(now), Duration::ZERO);
        assert_eq!(pace.book(now), Duration::from_millis(100));
        assert_eq!(pace.book(now), Duration::from_millis(200));
    }
}
