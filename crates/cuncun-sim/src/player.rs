//! What a terminal's loudspeaker does with commands: a pure state machine over epoch milliseconds,
//! so its rules (preemption, cancel, expiry) are tested without sockets or clocks.

use cuncun_domain::protocol::{LogEntry, Play, Priority, Receipt, Stage, VERSION};

/// When a play of the same urgency as the current one arrives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EqualSeverity {
    /// The newer message replaces the current one (default: the latest warning is the one to hear).
    #[default]
    NewerWins,
    /// The current one plays on; the newer waits.
    KeepCurrent,
}

#[derive(Debug, Clone)]
pub struct PlayerConfig {
    /// Seconds per repeat; None estimates from the text (about 4 characters a second, as TTS reads Chinese).
    pub play_seconds: Option<f64>,
    pub equal_severity: EqualSeverity,
    pub volume: u8,
}

impl Default for PlayerConfig {
    fn default() -> Self {
        Self { play_seconds: None, equal_severity: EqualSeverity::NewerWins, volume: 80 }
    }
}

/// Something to send upward.
#[derive(Debug, Clone, PartialEq)]
pub enum Out {
    Receipt(Receipt),
    Log(LogEntry),
}

#[derive(Debug, Clone)]
struct Active {
    play: Play,
    start_at: i64,
    started_at: Option<i64>,
    ends_at: i64,
    preempted: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Player {
    cfg: PlayerConfig,
    current: Option<Active>,
    /// Received while something more urgent plays; started when it ends, unless expired by then.
    pending: Vec<Play>,
    volume: u8,
}

/// Lower is more urgent: every emergency before routine; among emergencies 1 (red) first.
fn rank(p: &Play) -> (u8, u8) {
    match p.priority {
        Priority::Emergency => (0, if p.severity == 0 { u8::MAX } else { p.severity }),
        Priority::Routine => (1, 0),
    }
}

fn receipt(id: &str, stage: Stage, ts: i64, reason: Option<&str>, preempted: Option<String>) -> Out {
    Out::Receipt(Receipt { v: VERSION, id: id.to_string(), stage, ts, reason: reason.map(str::to_string), preempted })
}

impl Player {
    pub fn new(cfg: PlayerConfig) -> Self {
        let volume = cfg.volume;
        Self { cfg, current: None, pending: Vec::new(), volume }
    }

    pub fn set_volume(&mut self, v: u8) {
        self.volume = v.min(100);
    }

    pub fn volume(&self) -> u8 {
        self.volume
    }

    /// The message audible now, if any.
    pub fn playing(&self) -> Option<&str> {
        self.current.as_ref().filter(|a| a.started_at.is_some()).map(|a| a.play.id.as_str())
    }

    /// Playing time of one message, in ms.
    pub fn duration_ms(&self, p: &Play) -> i64 {
        let repeat = f64::from(p.repeat.max(1));
        let secs = match self.cfg.play_seconds {
            Some(s) => s.max(0.0),
            None => (p.text.chars().count() as f64 / 4.0).max(2.0),
        };
        (secs * repeat * 1000.0).min(3_600_000.0) as i64
    }

    /// The next time `tick` has something to do.
    pub fn next_deadline(&self) -> Option<i64> {
        self.current.as_ref().map(|a| if a.started_at.is_some() { a.ends_at } else { a.start_at })
    }

    /// A new play (already deduplicated). `delay_ms` is this terminal's time to get ready.
    /// Returns nothing for a play whose end has passed.
    pub fn on_play(&mut self, p: Play, now: i64, delay_ms: i64) -> Vec<Out> {
        if now > p.end {
            return Vec::new();
        }
        let mut out = vec![receipt(&p.id, Stage::Received, now, None, None)];
        let preempts = match &self.current {
            None => {
                self.current = Some(Active::new(p, now + delay_ms.max(0), None));
                return out;
            }
            Some(cur) => {
                let (new, old) = (rank(&p), rank(&cur.play));
                // The platform's rule, when the play carries one, overrides this terminal's setting.
                let newer_wins = match p.equal_severity {
                    Some(cuncun_domain::eb::EqualSeverity::NewerWins) => true,
                    Some(cuncun_domain::eb::EqualSeverity::KeepCurrent) => false,
                    None => self.cfg.equal_severity == EqualSeverity::NewerWins,
                };
                new < old || (new == old && newer_wins)
            }
        };
        if preempts {
            let old_id = self.current.as_ref().map(|a| a.play.id.clone());
            self.end_current(now, "preempted", &mut out);
            self.current = Some(Active::new(p, now + delay_ms.max(0), old_id));
        } else {
            self.pending.push(p);
        }
        out
    }

    pub fn on_cancel(&mut self, id: &str, now: i64) -> Vec<Out> {
        let mut out = Vec::new();
        if self.current.as_ref().is_some_and(|a| a.play.id == id) {
            self.end_current(now, "cancelled", &mut out);
            self.start_next(now, &mut out);
        } else if let Some(i) = self.pending.iter().position(|p| p.id == id) {
            let p = self.pending.remove(i);
            out.push(receipt(&p.id, Stage::Finished, now, Some("cancelled"), None));
        }
        out
    }

    /// Stops everything, queued messages included.
    pub fn on_stop(&mut self, now: i64) -> Vec<Out> {
        let mut out = Vec::new();
        self.end_current(now, "stopped", &mut out);
        for p in self.pending.drain(..) {
            out.push(receipt(&p.id, Stage::Finished, now, Some("stopped"), None));
        }
        out
    }

    /// Advances starts and ends due by `now`.
    pub fn tick(&mut self, now: i64) -> Vec<Out> {
        let mut out = Vec::new();
        // Each pass either starts or ends the current message, so this ends.
        for _ in 0..1024 {
            let dur = match &self.current {
                Some(a) => self.duration_ms(&a.play),
                None => break,
            };
            let Some(a) = self.current.as_mut() else { break };
            match a.started_at {
                None if now >= a.start_at => {
                    if now > a.play.end {
                        out.push(receipt(&a.play.id, Stage::Failed, now, Some("expired"), None));
                        self.current = None;
                        self.start_next(now, &mut out);
                        continue;
                    }
                    a.started_at = Some(now);
                    a.ends_at = (now + dur).min(a.play.end.max(now));
                    out.push(receipt(&a.play.id, Stage::Started, now, None, a.preempted.clone()));
                }
                Some(_) if now >= a.ends_at => {
                    self.end_current(now, "finished", &mut out);
                    self.start_next(now, &mut out);
                }
                _ => break,
            }
        }
        out
    }

    fn end_current(&mut self, now: i64, why: &str, out: &mut Vec<Out>) {
        let Some(a) = self.current.take() else { return };
        let reason = (why != "finished").then_some(why);
        out.push(receipt(&a.play.id, Stage::Finished, now, reason, None));
        if let Some(started) = a.started_at {
            out.push(Out::Log(LogEntry {
                v: VERSION,
                id: a.play.id.clone(),
                source: match a.play.priority {
                    Priority::Emergency => "emergency",
                    Priority::Routine => "routine",
                }
                .to_string(),
                start: started,
                end: now,
                volume: a.play.volume.unwrap_or(self.volume),
                result: Some(why.to_string()),
            }));
        }
    }

    fn start_next(&mut self, now: i64, out: &mut Vec<Out>) {
        if self.current.is_some() {
            return;
        }
        let (expired, live): (Vec<Play>, Vec<Play>) = self.pending.drain(..).partition(|p| now > p.end);
        for p in expired {
            out.push(receipt(&p.id, Stage::Failed, now, Some("expired"), None));
        }
        self.pending = live;
        // Most urgent first; among equals the newest under NewerWins, else the oldest.
        let newer = self.cfg.equal_severity == EqualSeverity::NewerWins;
        let best = self
            .pending
            .iter()
            .enumerate()
            .min_by(|(i, a), (j, b)| rank(a).cmp(&rank(b)).then(if newer { j.cmp(i) } else { i.cmp(j) }))
            .map(|(i, _)| i);
        if let Some(i) = best {
            let p = self.pending.remove(i);
            self.current = Some(Active::new(p, now, None));
        }
    }
}

impl Active {
    fn new(play: Play, ready_at: i64, preempted: Option<String>) -> Self {
        let start_at = ready_at.max(play.start);
        Self { play, start_at, started_at: None, ends_at: i64::MAX, preempted }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn play(id: &str, priority: Priority, severity: u8, start: i64, end: i64) -> Play {
        Play {
            v: 1,
            id: id.into(),
            priority,
            severity,
            event: "flood".into(),
            title: "t".into(),
            text: "12345678".into(),
            audio: None,
            start,
            end,
            repeat: 1,
            volume: None,
            drill: false,
            equal_severity: None,
        }
    }

    fn stages(out: &[Out]) -> Vec<(String, Stage, Option<String>, Option<String>)> {
        out.iter()
            .filter_map(|o| match o {
                Out::Receipt(r) => Some((r.id.clone(), r.stage, r.reason.clone(), r.preempted.clone())),
                Out::Log(_) => None,
            })
            .collect()
    }

    fn cfg(equal: EqualSeverity) -> PlayerConfig {
        PlayerConfig { play_seconds: Some(10.0), equal_severity: equal, volume: 70 }
    }

    #[test]
    fn lifecycle_with_delay_and_log() {
        let mut p = Player::new(cfg(EqualSeverity::NewerWins));
        let out = p.on_play(play("a", Priority::Emergency, 2, 0, 100_000), 1_000, 300);
        assert_eq!(stages(&out), [("a".into(), Stage::Received, None, None)]);
        assert_eq!(p.next_deadline(), Some(1_300));
        assert!(p.tick(1_299).is_empty());
        let out = p.tick(1_300);
        assert_eq!(stages(&out), [("a".into(), Stage::Started, None, None)]);
        assert_eq!(p.playing(), Some("a"));
        assert_eq!(p.next_deadline(), Some(11_300));
        let out = p.tick(11_300);
        assert_eq!(stages(&out), [("a".into(), Stage::Finished, None, None)]);
        assert!(matches!(&out[1], Out::Log(l) if l.start == 1_300 && l.end == 11_300 && l.volume == 70 && l.source == "emergency"));
        assert_eq!(p.next_deadline(), None);
    }

    #[test]
    fn more_urgent_preempts_less_urgent_waits() {
        let mut p = Player::new(cfg(EqualSeverity::NewerWins));
        p.on_play(play("blue", Priority::Emergency, 4, 0, 1_000_000), 0, 0);
        p.tick(0);
        let out = p.on_play(play("red", Priority::Emergency, 1, 0, 1_000_000), 5, 0);
        assert_eq!(
            stages(&out),
            [("red".into(), Stage::Received, None, None), ("blue".into(), Stage::Finished, Some("preempted".into()), None)]
        );
        assert!(out.iter().any(|o| matches!(o, Out::Log(l) if l.result.as_deref() == Some("preempted"))));
        let out = p.tick(5);
        assert_eq!(stages(&out), [("red".into(), Stage::Started, None, Some("blue".into()))]);
        // A routine broadcast never interrupts an emergency; it waits and plays after.
        let out = p.on_play(play("routine", Priority::Routine, 0, 0, 1_000_000), 6, 0);
        assert_eq!(stages(&out).len(), 1);
        let out = p.tick(10_005);
        assert_eq!(
            stages(&out),
            [("red".into(), Stage::Finished, None, None), ("routine".into(), Stage::Started, None, None)]
        );
    }

    #[test]
    fn equal_severity_policy() {
        let mut newer = Player::new(cfg(EqualSeverity::NewerWins));
        newer.on_play(play("a", Priority::Emergency, 2, 0, 1_000_000), 0, 0);
        newer.tick(0);
        newer.on_play(play("b", Priority::Emergency, 2, 0, 1_000_000), 1, 0);
        assert_eq!(stages(&newer.tick(1)), [("b".into(), Stage::Started, None, Some("a".into()))]);

        let mut keep = Player::new(cfg(EqualSeverity::KeepCurrent));
        keep.on_play(play("a", Priority::Emergency, 2, 0, 1_000_000), 0, 0);
        keep.tick(0);
        let out = keep.on_play(play("b", Priority::Emergency, 2, 0, 1_000_000), 1, 0);
        assert_eq!(stages(&out), [("b".into(), Stage::Received, None, None)]);
        assert_eq!(keep.playing(), Some("a"));

        // The platform's rule in the play overrides the terminal's own setting.
        let mut t = Player::new(cfg(EqualSeverity::NewerWins));
        t.on_play(play("a", Priority::Emergency, 2, 0, 1_000_000), 0, 0);
        t.tick(0);
        let mut b = play("b", Priority::Emergency, 2, 0, 1_000_000);
        b.equal_severity = Some(cuncun_domain::eb::EqualSeverity::KeepCurrent);
        t.on_play(b, 1, 0);
        assert_eq!(t.playing(), Some("a"), "keep_current from the platform wins");
    }

    #[test]
    fn cancel_stop_and_expiry() {
        let mut p = Player::new(cfg(EqualSeverity::NewerWins));
        assert!(p.on_play(play("old", Priority::Emergency, 1, 0, 10), 11, 0).is_empty(), "expired: ignored");
        p.on_play(play("a", Priority::Emergency, 1, 0, 1_000_000), 0, 0);
        p.tick(0);
        p.on_play(play("q", Priority::Emergency, 3, 0, 1_000_000), 1, 0);
        let out = p.on_cancel("a", 2);
        assert_eq!(
            stages(&out),
            [("a".into(), Stage::Finished, Some("cancelled".into()), None)],
            "the queued one starts on the next tick"
        );
        assert!(out.iter().any(|o| matches!(o, Out::Log(l) if l.result.as_deref() == Some("cancelled"))));
        assert_eq!(stages(&p.tick(2)), [("q".into(), Stage::Started, None, None)]);
        let out = p.on_stop(3);
        assert_eq!(stages(&out), [("q".into(), Stage::Finished, Some("stopped".into()), None)]);
        // Queued past its end: fails as expired instead of starting.
        p.on_play(play("x", Priority::Emergency, 1, 0, 1_000_000), 10, 0);
        p.tick(10);
        p.on_play(play("short", Priority::Emergency, 4, 0, 100), 11, 0);
        let out = p.tick(10 + 10_000);
        assert_eq!(
            stages(&out),
            [("x".into(), Stage::Finished, None, None), ("short".into(), Stage::Failed, Some("expired".into()), None)]
        );
    }

    #[test]
    fn scheduled_start_and_end_cap() {
        let mut p = Player::new(PlayerConfig { play_seconds: None, ..cfg(EqualSeverity::NewerWins) });
        // 8 characters -> the 2 s minimum; capped by `end`.
        p.on_play(play("later", Priority::Routine, 0, 5_000, 6_000), 0, 100);
        assert_eq!(p.next_deadline(), Some(5_000));
        p.tick(5_000);
        assert_eq!(p.next_deadline(), Some(6_000));
        let mut z = Player::new(PlayerConfig { play_seconds: Some(0.0), ..cfg(EqualSeverity::NewerWins) });
        z.on_play(play("z", Priority::Emergency, 1, 0, 1_000), 0, 0);
        let s = stages(&z.tick(0));
        assert_eq!(s.len(), 2, "zero-length play starts and finishes at once: {s:?}");
    }
}
