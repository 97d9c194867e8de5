//! On-call paging as sans-I/O code: who is on call ([`roster`]), when each level of the
//! escalation ladder is paged ([`ladder`]: time is an input), what a page is about ([`facts`])
//! and what it says ([`wording`]). The engine's `paging` room sends the pages.

pub mod facts;
pub mod ladder;
pub mod page_call;
pub mod roster;
pub mod wording;
