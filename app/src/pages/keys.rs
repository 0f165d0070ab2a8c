//! Keyboard triage on the messages list: j/k move, x selects, o opens,
//! r/d ask for a bulk replay/discard of the selection (always a dry run first).

use leptos::prelude::*;
use leptos_router::hooks::use_navigate;

use super::bulk::Selection;
use crate::model::JobAction;

/// The state the key bindings drive, shared with the table and the bulk bar.
#[derive(Clone, Copy)]
pub struct Keyboard {
    /// Index of the highlighted row.
    pub cursor: RwSignal<usize>,
    /// Message ids of the rows on screen, in order.
    pub rows: RwSignal<Vec<i64>>,
    pub bulk: RwSignal<Option<JobAction>>,
}

/// What a key does, given the row count; pure so it is testable.
#[derive(Debug, PartialEq, Eq)]
pub enum KeyAction {
    Move(usize),
    Toggle,
    Open,
    Bulk(JobAction),
}

pub fn action_for(key: &str, cursor: usize, rows: usize) -> Option<KeyAction> {
    if rows == 0 {
        return None;
    }
    Some(match key {
        "j" | "ArrowDown" => KeyAction::Move((cursor + 1).min(rows - 1)),
        "k" | "ArrowUp" => KeyAction::Move(cursor.saturating_sub(1)),
        "x" => KeyAction::Toggle,
        "o" | "Enter" => KeyAction::Open,
        "r" => KeyAction::Bulk(JobAction::Replay),
        "d" => KeyAction::Bulk(JobAction::Discard),
        _ => return None,
    })
}

impl Keyboard {
    pub fn install(selection: RwSignal<Selection>) -> Self {
        let keys = Keyboard {
            cursor: RwSignal::new(0),
            rows: RwSignal::new(Vec::new()),
            bulk: RwSignal::new(None),
        };
        let navigate = use_navigate();
        // Effects run only in the browser, so nothing is registered during SSR.
        Effect::new(move |_| {
            let navigate = navigate.clone();
            let handle = window_event_listener(leptos::ev::keydown, move |ev| {
                if ev.ctrl_key() || ev.meta_key() || ev.alt_key() || typing(&ev) {
                    return;
                }
                let rows = keys.rows.get_untracked();
                let cursor = keys.cursor.get_untracked().min(rows.len().saturating_sub(1));
                let current = rows.get(cursor).copied();
                match action_for(&ev.key(), cursor, rows.len()) {
                    Some(KeyAction::Move(to)) => keys.cursor.set(to),
                    Some(KeyAction::Toggle) => {
                        if let Some(id) = current {
                            selection.update(|s| {
                                let on = !s.contains(id);
                                s.toggle(id, on)
                            });
                        }
                    }
                    Some(KeyAction::Open) => {
                        if let Some(id) = current {
                            navigate(&format!("/messages/{id}"), Default::default());
                        }
                    }
                    Some(KeyAction::Bulk(action)) => {
                        if selection.with_untracked(Selection::is_empty) {
                            if let Some(id) = current {
                                selection.update(|s| s.toggle(id, true));
                            }
                        }
                        keys.bulk.set(Some(action));
                    }
                    None => return,
                }
                ev.prevent_default();
            });
            on_cleanup(move || handle.remove());
        });
        keys
    }
}

/// Keys typed into a field are text, not commands.
fn typing(ev: &leptos::ev::KeyboardEvent) -> bool {
    use leptos::wasm_bindgen::JsCast;
    ev.target()
        .and_then(|t| t.dyn_into::<leptos::web_sys::Element>().ok())
        .is_some_and(|el| matches!(el.tag_name().as_str(), "INPUT" | "TEXTAREA" | "SELECT"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_map_to_actions_within_bounds() {
        assert_eq!(action_for("j", 0, 3), Some(KeyAction::Move(1)));
        assert_eq!(action_for("j", 2, 3), Some(KeyAction::Move(2)));
        assert_eq!(action_for("k", 0, 3), Some(KeyAction::Move(0)));
        assert_eq!(action_for("r", 0, 3), Some(KeyAction::Bulk(JobAction::Replay)));
        assert_eq!(action_for("d", 0, 3), Some(KeyAction::Bulk(JobAction::Discard)));
        assert_eq!(action_for("x", 0, 0), None);
        assert_eq!(action_for("q", 0, 3), None);
    }
}
