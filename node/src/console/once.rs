//! A form sent twice acts once: each action form carries a key chosen when it was drawn, and
//! while one request with a key is being acted on, another with the same key waits for it and
//! then answers as it did. This covers the double click, whose two requests arrive together;
//! what lasts past a restart is each use case's own guard (a case message's id, the
//! lifecycle, a forward already in the timeline).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

/// How many finished keys are remembered; a key is only ever reused within seconds.
const REMEMBERED: usize = 1024;

/// The answer a keyed request gave: where it sent the browser.
type Answer = Arc<tokio::sync::Mutex<Option<String>>>;

/// The keys being acted on or recently acted on.
#[derive(Debug, Default)]
pub struct Once {
    /// Per key, the lock its first request holds while it acts, and then the place it
    /// redirected to on success.
    keys: Mutex<(HashMap<String, Answer>, VecDeque<String>)>,
}

/// The right to act on a key, held until the action is done.
pub struct Turn {
    /// The key's answer, locked.
    answer: tokio::sync::OwnedMutexGuard<Option<String>>,
}

impl Turn {
    /// Where an earlier request with the same key sent the browser, if it succeeded.
    pub fn earlier(&self) -> Option<&str> {
        self.answer.as_deref()
    }

    /// Records that the action succeeded and sent the browser to `location`.
    pub fn done(mut self, location: &str) {
        *self.answer = Some(location.to_owned());
    }
}

impl Once {
    /// Waits for any other request with `key` to finish, and takes the turn.
    pub async fn turn(&self, key: &str) -> Turn {
        let answer = {
            // A poisoned lock only means another request panicked while holding it; the map
            // itself is still whole.
            let mut guard = self.keys.lock().unwrap_or_else(|p| p.into_inner());
            let (map, order) = &mut *guard;
            let answer = map.entry(key.to_owned()).or_default().clone();
            if !order.contains(&key.to_owned()) {
                order.push_back(key.to_owned());
            }
            while order.len() > REMEMBERED {
                if let Some(old) = order.pop_front() {
                    map.remove(&old);
                }
            }
            answer
        };
        Turn {
            answer: answer.lock_owned().await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_second_request_with_the_key_waits_and_sees_the_first_answer() {
        let once = Arc::new(Once::default());
        let first = once.turn("k").await;
        assert_eq!(first.earlier(), None);
        let waiting = {
            let once = once.clone();
            tokio::spawn(async move { once.turn("k").await.earlier().map(str::to_owned) })
        };
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished(), "the second request did not wait");
        first.done("/referrals/x?done=asked");
        assert_eq!(
            waiting.await.unwrap().as_deref(),
            Some("/referrals/x?done=asked")
        );
        // A failed action leaves the key free to try again.
        let failed = once.turn("other").await;
        drop(failed);
        assert_eq!(once.turn("other").await.earlier(), None);
    }
}
