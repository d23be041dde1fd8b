//! The writer's memory of recently touched tasks' stored events, so that
//! folding a task again needs neither a SELECT nor parsing its events' JSON.
//!
//! An entry always holds exactly the events the database holds for its task
//! (the writer adds an event only when its INSERT stored it, and loads a
//! missing task from the database inside the same transaction). Whenever
//! that might not be true, after a failed batch or a commit by another
//! connection, the writer empties the cache, and it refills from SQLite.

use std::collections::{HashMap, hash_map};

use uuid::Uuid;

use crate::events::Event;

/// Events kept in memory at most (a few hundred bytes each): many times what
/// the tasks in progress at once hold, so only finished or idle tasks go.
pub const CAPACITY: usize = 100_000;

/// A bounded map from task to its stored events.
pub struct EventCache {
    tasks: HashMap<Uuid, Entry>,
    /// Events held, over all tasks.
    len: usize,
    capacity: usize,
    /// Advances with every use, for least-recently-used eviction.
    clock: u64,
}

struct Entry {
    events: Vec<Event>,
    last_used: u64,
    /// Whether the task's view was final (done or failed) when last folded:
    /// such tasks rarely hear more, so they are evicted first.
    is_final: bool,
}

impl EventCache {
    /// An empty cache holding at most `capacity` events (beyond the tasks
    /// of the batch in hand).
    pub fn new(capacity: usize) -> EventCache {
        EventCache {
            tasks: HashMap::new(),
            len: 0,
            capacity,
            clock: 0,
        }
    }

    /// A task's stored events once `fresh` (its events the batch in hand
    /// just stored) are in: the held ones plus `fresh`, or, for a task not
    /// held, what `load` reads from the database, which then holds them.
    pub fn events<E>(
        &mut self,
        task_id: Uuid,
        fresh: &[&Event],
        load: impl FnOnce() -> Result<Vec<Event>, E>,
    ) -> Result<&[Event], E> {
        self.clock += 1;
        let entry = match self.tasks.entry(task_id) {
            hash_map::Entry::Occupied(held) => {
                let entry = held.into_mut();
                entry.events.extend(fresh.iter().copied().cloned());
                self.len += fresh.len();
                entry
            }
            hash_map::Entry::Vacant(missing) => {
                let events = load()?;
                self.len += events.len();
                missing.insert(Entry {
                    events,
                    last_used: 0,
                    is_final: false,
                })
            }
        };
        entry.last_used = self.clock;
        Ok(&entry.events)
    }

    /// Records whether the task's view is final, for eviction.
    pub fn set_final(&mut self, task_id: Uuid, is_final: bool) {
        if let Some(entry) = self.tasks.get_mut(&task_id) {
            entry.is_final = is_final;
        }
    }

    /// Forgets everything.
    pub fn clear(&mut self) {
        self.tasks.clear();
        self.len = 0;
    }

    /// Events held.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no task is held.
    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.tasks.is_empty()
    }

    /// Whether the task is held.
    #[cfg(test)]
    pub fn contains(&self, task_id: Uuid) -> bool {
        self.tasks.contains_key(&task_id)
    }

    /// Brings the cache back within its capacity when it is over: final
    /// tasks go first, then the least recently used, down to nine tenths of
    /// the capacity so that the sorting is paid once per many batches.
    pub fn shrink(&mut self) {
        if self.len <= self.capacity {
            return;
        }
        let mut order: Vec<(bool, u64, Uuid)> = self
            .tasks
            .iter()
            .map(|(id, e)| (!e.is_final, e.last_used, *id))
            .collect();
        order.sort_unstable();
        let target = self.capacity / 10 * 9;
        for (_, _, task_id) in order {
            if self.len <= target {
                break;
            }
            if let Some(entry) = self.tasks.remove(&task_id) {
                self.len -= entry.events.len();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::EventKind;
    use crate::projector::db::tests::event;

    fn started(task_id: Uuid) -> Event {
        event(task_id, EventKind::Started)
    }

    fn held<'a>(cache: &'a mut EventCache, task: Uuid, fresh: &[&Event]) -> &'a [Event] {
        cache
            .events(task, fresh, || Err::<Vec<Event>, ()>(()))
            .expect("the task is held")
    }

    #[test]
    fn shrinking_drops_final_tasks_first_then_the_least_recently_used() {
        let mut cache = EventCache::new(10);
        let tasks: Vec<Uuid> = (0..4).map(|_| Uuid::now_v7()).collect();
        for task in &tasks {
            let stored: Vec<Event> = (0..3).map(|_| started(*task)).collect();
            let got = cache.events(*task, &[], || Ok::<_, ()>(stored.clone()));
            assert_eq!(got.unwrap(), stored);
        }
        cache.set_final(tasks[2], true);
        let more = started(tasks[0]);
        assert_eq!(held(&mut cache, tasks[0], &[&more]).len(), 4);
        assert_eq!(cache.len(), 13);
        cache.shrink();
        // Down to 9: the final task goes, then the oldest use (tasks[1]).
        assert!(!cache.contains(tasks[2]) && !cache.contains(tasks[1]));
        assert!(cache.contains(tasks[0]) && cache.contains(tasks[3]));
        assert_eq!(cache.len(), 7);
        assert_eq!(held(&mut cache, tasks[0], &[])[3], more);
        cache.clear();
        assert!(cache.is_empty());
        assert_eq!(cache.len(), 0);
    }
}
