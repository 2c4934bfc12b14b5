//! Broker sessions, kept by the active controller only (as KRaft's controller does): when
//! it last heard from each broker. Not replicated: a new controller starts every session
//! afresh, so a broker is fenced one session timeout after the last controller that could
//! hear it lost it, never sooner. Pure: the caller passes the time.

use super::image::{Command, Image};
use super::transport::Heartbeat;
use std::collections::BTreeMap;

#[derive(Debug, Default)]
pub struct Sessions {
    /// Milliseconds (of the caller's clock) of the last heartbeat of each broker.
    last: BTreeMap<i32, u64>,
    /// Commands proposed and not yet seen applied, so a broker is not fenced or registered
    /// twice while the first proposal is on its way: (broker, command, proposed at).
    pending: BTreeMap<i32, (Command, u64)>,
}

impl Sessions {
    /// This node became the controller: every registered broker gets a full session.
    pub fn start(&mut self, image: &Image, now: u64) {
        self.last = image.brokers.keys().map(|id| (*id, now)).collect();
        self.pending.clear();
    }

    /// A heartbeat arrived; returns the command to propose if the broker must be
    /// (re)registered: unknown, fenced, moved, or restarted.
    pub fn heard(&mut self, image: &Image, hb: &Heartbeat, now: u64) -> Option<Command> {
        self.last.insert(hb.id, now);
        if hb.shutting_down {
            return None;
        }
        let current = image.brokers.get(&hb.id).is_some_and(|b| {
            !b.fenced
                && b.incarnation == hb.incarnation
                && b.host == hb.host
                && b.port == hb.port
                && b.endpoints == hb.endpoints
        });
        if current {
            return None;
        }
        let cmd = Command::Register {
            id: hb.id,
            host: hb.host.clone(),
            port: hb.port,
            incarnation: hb.incarnation,
            endpoints: hb.endpoints.clone(),
        };
        self.propose_once(hb.id, cmd, now, 2_000)
    }

    /// Fence commands for the live brokers not heard from for `timeout` ms.
    pub fn expired(&mut self, image: &Image, now: u64, timeout: u64) -> Vec<Command> {
        let mut out = Vec::new();
        for id in image.live() {
            let last = *self.last.entry(id).or_insert(now);
            if now.saturating_sub(last) > timeout
                && let Some(cmd) = self.propose_once(id, Command::Fence { id }, now, timeout)
            {
                out.push(cmd);
            }
        }
        out
    }

    /// A command about `broker` was applied: the next one may be proposed.
    pub fn applied(&mut self, broker: i32) {
        self.pending.remove(&broker);
    }

    /// `cmd`, unless the same command for `id` was proposed less than `retry` ms ago.
    fn propose_once(&mut self, id: i32, cmd: Command, now: u64, retry: u64) -> Option<Command> {
        if let Some((c, at)) = self.pending.get(&id)
            && *c == cmd
            && now.saturating_sub(*at) < retry
        {
            return None;
        }
        self.pending.insert(id, (cmd.clone(), now));
        Some(cmd)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hb(id: i32, incarnation: u64) -> Heartbeat {
        Heartbeat {
            id,
            host: "h".into(),
            port: 1,
            incarnation,
            shutting_down: false,
            endpoints: Vec::new(),
        }
    }

    #[test]
    fn registration_once_per_incarnation_and_fencing_after_the_timeout() {
        let mut img = Image::default();
        let mut s = Sessions::default();
        s.start(&img, 0);
        let reg = s
            .heard(&img, &hb(1, 7), 0)
            .expect("an unknown broker registers");
        // Not again while the first proposal is on its way.
        assert!(s.heard(&img, &hb(1, 7), 100).is_none());
        img.apply(reg);
        s.applied(1);
        assert!(s.heard(&img, &hb(1, 7), 200).is_none());
        // A restart is a new incarnation.
        assert!(s.heard(&img, &hb(1, 8), 300).is_some());
        let mut img2 = img.clone();
        img2.apply(Command::Register {
            id: 1,
            host: "h".into(),
            port: 1,
            incarnation: 8,
            endpoints: Vec::new(),
        });
        s.applied(1);
        assert!(s.expired(&img2, 1_000, 3_000).is_empty());
        assert_eq!(
            s.expired(&img2, 3_301, 3_000),
            vec![Command::Fence { id: 1 }]
        );
        assert!(s.expired(&img2, 3_400, 3_000).is_empty(), "proposed once");
        // A stopping broker is not registered again.
        let mut stop = hb(1, 9);
        stop.shutting_down = true;
        assert!(s.heard(&img2, &stop, 4_000).is_none());
    }

    #[test]
    fn a_new_controller_gives_every_broker_a_full_session() {
        let mut img = Image::default();
        img.apply(Command::Register {
            id: 4,
            host: "h".into(),
            port: 1,
            incarnation: 1,
            endpoints: Vec::new(),
        });
        let mut s = Sessions::default();
        s.start(&img, 50_000);
        assert!(s.expired(&img, 52_000, 3_000).is_empty());
        assert_eq!(s.expired(&img, 53_001, 3_000).len(), 1);
    }
}
