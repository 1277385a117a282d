//! Where an edge at change sequence number `applied` starts following the stream: a binary
//! search over the stream's messages (by stream sequence) for the first one whose last change
//! is after `applied`, and the rule that says whether the stream provably continues the edge
//! there or the edge must load a snapshot. Pure: the stream is a lookup closure (async: on
//! the edge it asks the server; in tests it reads a map).

use std::future::Future;

/// What one stream message says about its place in the change sequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Probe {
    /// Changes `first..=last`.
    Changes { first: u64, last: u64 },
    /// The table starts over as of `seq`.
    Reset { seq: u64 },
    /// No message at that stream sequence (deleted, purged), or one that does not decode:
    /// it says nothing.
    Missing,
}

impl Probe {
    /// The last change sequence number it covers (`None`: it says nothing).
    fn last(self) -> Option<u64> {
        match self {
            Probe::Changes { last, .. } => Some(last),
            Probe::Reset { seq } => Some(seq),
            Probe::Missing => None,
        }
    }
}

/// Where to start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Start {
    /// Follow from this stream sequence: every change after `applied` is there (or a reset
    /// is, which loads a snapshot itself).
    From(u64),
    /// The stream holds no message after `applied`, and none at or before it either (empty,
    /// or only messages that say nothing): whether the edge is current depends on the
    /// snapshot; follow from `next` if it is.
    Nothing { next: u64 },
    /// The first message after `applied` (at this stream sequence) does not provably
    /// continue it: changes may have been purged.
    Bootstrap { at: u64, why: String },
}

/// Whether the message at `stream_seq` (`probe`) continues an edge at `applied`, given
/// whether the message just before it in the stream (`stream_seq - 1`) is held and ends at
/// or before `applied` (`prev_covers`): a reset always does (it brings its snapshot); a
/// change message does if the stream has nothing missing before it or its first change is
/// the one right after `applied`.
pub fn continues(applied: u64, prev_covers: bool, probe: Probe) -> bool {
    match probe {
        Probe::Reset { .. } | Probe::Missing => true,
        Probe::Changes { first, .. } => prev_covers || first <= applied.saturating_add(1),
    }
}

/// Finds where an edge at `applied` starts in a stream holding sequences `first..=last`
/// (`first > last`: empty). `lookup(s)` says what the message at stream sequence `s` is;
/// its errors (the stream cannot be read) end the search. Message change sequence numbers
/// must not decrease along the stream (what a relay publishes).
pub async fn find_start<E, F, Fut>(
    applied: u64,
    first: u64,
    last: u64,
    mut lookup: F,
) -> Result<Start, E>
where
    F: FnMut(u64) -> Fut,
    Fut: Future<Output = Result<Probe, E>>,
{
    // The first held message at or after `s` and at or before `hi`.
    async fn probe_from<E, F, Fut>(
        lookup: &mut F,
        s: u64,
        hi: u64,
    ) -> Result<Option<(u64, u64, Probe)>, E>
    where
        F: FnMut(u64) -> Fut,
        Fut: Future<Output = Result<Probe, E>>,
    {
        for at in s..=hi {
            let p = lookup(at).await?;
            if let Some(l) = p.last() {
                return Ok(Some((at, l, p)));
            }
        }
        Ok(None)
    }
    // Smallest stream sequence whose message ends after `applied` (holes count with the
    // message after them): in lo..=hi, hi = last + 1 meaning none.
    let (mut lo, mut hi) = (first, last.saturating_add(1));
    let mut any_held = false;
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        match probe_from(&mut lookup, mid, hi - 1).await? {
            Some((at, l, _)) if l <= applied => {
                any_held = true;
                lo = at + 1;
            }
            Some(_) => {
                any_held = true;
                hi = mid;
            }
            None => hi = mid,
        }
    }
    let Some((at, _, probe)) = probe_from(&mut lookup, lo, last).await? else {
        return Ok(if any_held {
            // The stream ends at or before `applied`: the edge is current.
            Start::From(last.saturating_add(1).max(first))
        } else {
            Start::Nothing {
                next: last.saturating_add(1).max(first),
            }
        });
    };
    // The message just before, exactly (a hole before `at` may have held changes).
    let prev_covers = at > first && lookup(at - 1).await?.last().is_some_and(|l| l <= applied);
    if continues(applied, prev_covers, probe) {
        return Ok(Start::From(at));
    }
    let why = match probe {
        Probe::Changes { first: f, .. } => format!(
            "the stream's first message after change {applied} (stream sequence {at}) starts at change {f}{}",
            if at <= first {
                ", and the stream begins there (its earlier messages are gone)"
            } else {
                ", and the message before it is gone"
            }
        ),
        _ => format!("stream sequence {at}"),
    };
    Ok(Start::Bootstrap { at, why })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn block_on<T>(f: impl Future<Output = T>) -> T {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(f)
    }

    /// A stream: stream sequence -> message; sequences absent are holes.
    struct Stream {
        msgs: BTreeMap<u64, Probe>,
        first: u64,
        last: u64,
    }

    impl Stream {
        /// Messages of `per` changes each, changes 1.., at stream sequences 1..=n.
        fn even(n: u64, per: u64) -> Stream {
            let msgs = (1..=n)
                .map(|s| {
                    (
                        s,
                        Probe::Changes {
                            first: (s - 1) * per + 1,
                            last: s * per,
                        },
                    )
                })
                .collect();
            Stream {
                msgs,
                first: 1,
                last: n,
            }
        }

        fn purge_to(mut self, first: u64) -> Stream {
            self.msgs.retain(|&s, _| s >= first);
            self.first = first;
            self
        }

        fn find(&self, applied: u64) -> (Start, usize) {
            let mut lookups = 0;
            let r = block_on(find_start::<(), _, _>(
                applied,
                self.first,
                self.last,
                |s| {
                    lookups += 1;
                    std::future::ready(Ok(*self.msgs.get(&s).unwrap_or(&Probe::Missing)))
                },
            ))
            .unwrap();
            (r, lookups)
        }
    }

    #[test]
    fn finds_the_message_after_the_checkpoint_in_few_lookups() {
        let s = Stream::even(1000, 10);
        // Change 5000 ends message 500: start at 501.
        assert_eq!(s.find(5000), (Start::From(501), s.find(5000).1));
        // Change 5003 is inside message 501: it starts there (the overlap is skipped later).
        assert_eq!(s.find(5003).0, Start::From(501));
        assert_eq!(s.find(0).0, Start::From(1));
        assert!(s.find(5000).1 <= 14, "{} lookups", s.find(5000).1);
        // At or after the stream's end: current, following from the next.
        assert_eq!(s.find(10_000).0, Start::From(1001));
        assert_eq!(s.find(20_000).0, Start::From(1001));
    }

    #[test]
    fn a_purged_prefix_is_fine_while_it_holds_the_next_change() {
        let s = Stream::even(1000, 10).purge_to(400);
        // 4000 ends message 400, the stream's first: 401 follows it provably.
        assert_eq!(s.find(4000).0, Start::From(401));
        // 3990 ends message 399, gone; message 400 starts at 3991: provably next.
        assert_eq!(s.find(3990).0, Start::From(400));
        // 3000: messages 301..=399 are gone.
        match s.find(3000).0 {
            Start::Bootstrap { at: 400, why } => assert!(why.contains("begins there"), "{why}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn sequence_gaps_are_fine_when_the_message_before_is_held() {
        // PostgreSQL's sequences skip: 1-10, 20-30, 31-40.
        let msgs = [
            (1, Probe::Changes { first: 1, last: 10 }),
            (
                2,
                Probe::Changes {
                    first: 20,
                    last: 30,
                },
            ),
            (
                3,
                Probe::Changes {
                    first: 31,
                    last: 40,
                },
            ),
        ];
        let s = Stream {
            msgs: msgs.into_iter().collect(),
            first: 1,
            last: 3,
        };
        assert_eq!(s.find(10).0, Start::From(2));
        // The same with message 1 purged: 20 after 10 cannot be proven.
        let s = s.purge_to(2);
        assert!(matches!(s.find(10).0, Start::Bootstrap { at: 2, .. }));
        // A hole in the middle (a deleted message) is not proof either.
        let mut s = Stream::even(10, 10);
        s.msgs.remove(&5);
        assert!(matches!(s.find(40).0, Start::Bootstrap { at: 6, .. }));
        assert_eq!(s.find(50).0, Start::From(6));
        assert_eq!(s.find(35).0, Start::From(4));
    }

    #[test]
    fn resets_and_undecodable_messages() {
        let msgs = [
            (1, Probe::Changes { first: 1, last: 10 }),
            (2, Probe::Reset { seq: 10 }),
            (3, Probe::Missing), // does not decode
            (
                4,
                Probe::Changes {
                    first: 11,
                    last: 20,
                },
            ),
            (5, Probe::Reset { seq: 25 }),
            (
                6,
                Probe::Changes {
                    first: 26,
                    last: 30,
                },
            ),
        ];
        let s = Stream {
            msgs: msgs.into_iter().collect(),
            first: 1,
            last: 6,
        };
        // An edge at 10 (bootstrapped from the reset's snapshot) does not reset again.
        assert_eq!(s.find(10).0, Start::From(4));
        // An edge at 5 is inside message 1 (then meets the reset).
        assert_eq!(s.find(5).0, Start::From(1));
        // An edge at 22 is before the reset at 25: it takes it, with its snapshot.
        assert_eq!(s.find(22).0, Start::From(5));
        // A reset first in a purged stream is where to start: it brings its snapshot.
        let s = s.purge_to(5);
        assert_eq!(s.find(3).0, Start::From(5));
    }

    #[test]
    fn an_empty_stream_says_nothing_unless_messages_were_seen() {
        let empty = Stream {
            msgs: BTreeMap::new(),
            first: 101,
            last: 100,
        };
        assert_eq!(empty.find(7).0, Start::Nothing { next: 101 });
        let fresh = Stream {
            msgs: BTreeMap::new(),
            first: 0,
            last: 0,
        };
        assert_eq!(fresh.find(0).0, Start::Nothing { next: 1 });
        // Only undecodable messages: nothing to go by.
        let bad = Stream {
            msgs: [(1, Probe::Missing), (2, Probe::Missing)]
                .into_iter()
                .collect(),
            first: 1,
            last: 2,
        };
        assert_eq!(bad.find(3).0, Start::Nothing { next: 3 });
    }

    #[test]
    fn continues_is_the_follow_rule_too() {
        let c = |first, last| Probe::Changes { first, last };
        assert!(continues(10, true, c(15, 20)));
        assert!(continues(10, false, c(11, 20)));
        assert!(
            continues(10, false, c(5, 20)),
            "an overlap is skipped, not lost"
        );
        assert!(!continues(10, false, c(12, 20)));
        assert!(continues(10, false, Probe::Reset { seq: 30 }));
    }

    #[test]
    fn lookup_errors_end_the_search() {
        let r = block_on(find_start(5, 1, 100, |s| {
            std::future::ready(if s > 40 {
                Err("down")
            } else {
                Ok(Probe::Changes { first: s, last: s })
            })
        }));
        assert_eq!(r, Err("down"));
    }
}
