//! What every call shell shares, the caller's IVR (`call::ivr`) and the technician's page call
//! (`paging::phone`): the engine's stop signal and a polite hang-up. Both shells drive a
//! sans-I/O flow from the core crate (`IvrFlow`, `PageCallFlow`) with these; neither imports
//! the other.

use std::time::Duration;

use tokio::sync::{mpsc, watch};

use crate::sip::LegEvent;

/// Resolves once the engine is asked to stop; never if nobody can ask any more.
pub async fn stop_requested(stopping: &mut watch::Receiver<bool>) {
    if stopping.wait_for(|&stop| stop).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// Waits (2 s at most) for the answer to our BYE, so a stopping engine does not close the SIP
/// service under a call that is still hanging up.
pub async fn await_bye_answered(events: &mut mpsc::UnboundedReceiver<LegEvent>) {
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        while let Some(ev) = events.recv().await {
            if matches!(ev, LegEvent::Ended { .. }) {
                break;
            }
        }
    })
    .await;
}
