//! The service against two "nodes": two stores opened on one SQLite file, as two engines share
//! one PostgreSQL. A write through the other store is seen within one tick; a write through
//! this node's store at once.

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::*;
use crate::media::MediaConfig;
use crate::store::announcements::NewAnnouncement;
use crate::store::StoreConfig;

/// Well below a tick: what "at once" allows for the task to wake and look.
const AT_ONCE: Duration = Duration::from_millis(500);

async fn two_nodes() -> (Store, Store, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/astreinte.db", dir.path().display());
    let here = Store::connect(&StoreConfig::with_url(url.clone()))
        .await
        .unwrap();
    let there = Store::connect(&StoreConfig::with_url(url)).await.unwrap();
    (here, there, dir)
}

fn config_schedule() -> (ScheduleConfig, LiveSchedule) {
    let base = ScheduleConfig::default();
    let live = LiveSchedule::new(Schedule::from_config(&base).unwrap());
    (base, live)
}

/// Boxing Day 2030 at 10:00 in Montréal: a Thursday, open unless a holiday is added.
fn boxing_day() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2030-12-26T10:00:00-05:00")
        .unwrap()
        .to_utc()
}

async fn add_holiday(store: &Store) -> i64 {
    store
        .add_hours_change(
            "holiday_added",
            Some("2030-12-26"),
            None,
            None,
            "Boxing Day",
            "ada",
            Utc::now(),
        )
        .await
        .unwrap()
}

/// Waits up to `within` for `rx` to publish a value that `done` accepts.
async fn published<T>(rx: &mut watch::Receiver<T>, within: Duration, done: impl Fn(&T) -> bool) {
    tokio::time::timeout(within, rx.wait_for(|v| done(v)))
        .await
        .expect("not published in time")
        .unwrap();
}

#[tokio::test]
async fn another_nodes_hours_change_is_seen_within_one_tick() {
    let (here, there, _dir) = two_nodes().await;
    let (base, schedule) = config_schedule();
    let (live, poller) = LiveSettings::builder(here, base, schedule.clone())
        .start()
        .await;
    assert!(schedule.get().is_open(boxing_day()).open);
    let mut hours = live.hours();
    hours.mark_unchanged();

    let id = add_holiday(&there).await;
    published(&mut hours, POLL + AT_ONCE, |s| {
        !s.is_open(boxing_day()).open
    })
    .await;
    // The engine's schedule, read by calls and tickets, is the one published.
    assert!(!schedule.get().is_open(boxing_day()).open);

    // Undoing the last change puts the config's hours back.
    there.remove_hours_change(id).await.unwrap();
    published(&mut hours, POLL + AT_ONCE, |s| s.is_open(boxing_day()).open).await;
    assert!(schedule.get().is_open(boxing_day()).open);
    poller.abort();
}

#[tokio::test]
async fn this_nodes_hours_change_is_seen_at_once() {
    let (here, _there, _dir) = two_nodes().await;
    let (base, schedule) = config_schedule();
    let (live, poller) = LiveSettings::builder(here.clone(), base, schedule.clone())
        .start()
        .await;
    let mut hours = live.hours();
    hours.mark_unchanged();
    // Past the first tick, so that only the write's nudge can explain a quick look.
    tokio::time::sleep(Duration::from_millis(100)).await;

    add_holiday(&here).await;
    published(&mut hours, AT_ONCE, |s| !s.is_open(boxing_day()).open).await;
    assert!(!schedule.get().is_open(boxing_day()).open);
    poller.abort();
}

#[tokio::test]
async fn changes_stored_before_start_are_in_force_when_start_returns() {
    let (here, _there, _dir) = two_nodes().await;
    add_holiday(&here).await;
    let (base, schedule) = config_schedule();
    let (live, poller) = LiveSettings::builder(here, base, schedule.clone())
        .start()
        .await;
    assert!(!schedule.get().is_open(boxing_day()).open);
    assert!(!live.hours().borrow().is_open(boxing_day()).open);
    poller.abort();
}

#[tokio::test]
async fn refresh_applies_another_nodes_change_before_it_returns() {
    let (here, there, _dir) = two_nodes().await;
    let (base, schedule) = config_schedule();
    let (live, poller) = LiveSettings::builder(here, base, schedule.clone())
        .start()
        .await;
    add_holiday(&there).await;
    live.refresh().await;
    assert!(!schedule.get().is_open(boxing_day()).open);
    poller.abort();
}

fn media(ports: &str) -> MediaEngine {
    let cfg = MediaConfig {
        rtp_ports: ports.into(),
        prompts_dir: concat!(env!("CARGO_MANIFEST_DIR"), "/prompts").into(),
        threads: 1,
        realtime_priority: 0,
        ..MediaConfig::default()
    };
    MediaEngine::start(&cfg, "127.0.0.1".parse().unwrap()).unwrap()
}

fn announcement(samples: usize) -> NewAnnouncement {
    let pcm: Vec<i16> = (0..samples).map(|i| ((i % 40) as i16 - 20) * 500).collect();
    let wav = crate::media::convert::encode_wav(&pcm);
    NewAnnouncement {
        phase: "identified".into(),
        text_fr: "Panne".into(),
        text_en: "Outage".into(),
        audio_fr: wav.clone(),
        audio_en: wav,
        set_by: "ada".into(),
        at: Utc::now(),
    }
}

fn samples(media: &MediaEngine, name: &str) -> usize {
    let set = media.prompts();
    set.id(name)
        .and_then(|id| set.get(id))
        .map_or(0, |p| p.samples)
}

#[tokio::test]
async fn announcements_and_prompts_from_either_node_reach_the_ivr_and_the_engine() {
    let (here, there, _dir) = two_nodes().await;
    let media = media("37940-37959");
    let (base, schedule) = config_schedule();
    let (live, poller) = LiveSettings::builder(here.clone(), base, schedule)
        .media(media.clone())
        .start()
        .await;
    let mut phase = live.announcement();
    assert_eq!(*phase.borrow_and_update(), None);
    let mut prompts = live.prompts();
    assert_eq!(*prompts.borrow_and_update(), Some(0));

    // Another node announces: the IVR's phase and the audio follow within a tick.
    there.set_announcement(&announcement(3200)).await.unwrap();
    published(&mut phase, POLL + AT_ONCE, |p| {
        *p == Some(AnnouncementPhase::Identified)
    })
    .await;
    assert_eq!(samples(&media, "fr/announcement"), 3200);
    assert_eq!(samples(&media, "en/announcement"), 3200);

    // This node clears it: at once.
    here.clear_announcement(Utc::now()).await.unwrap();
    published(&mut phase, AT_ONCE, Option::is_none).await;

    // A prompt uploaded on this node: at once.
    let pcm: Vec<i16> = (0..4000).map(|i| ((i % 20) as i16 - 10) * 900).collect();
    here.add_prompt_version(&crate::store::prompts::NewPromptVersion {
        lang: "fr",
        name: "goodbye",
        wav: &crate::media::convert::encode_wav(&pcm),
        seconds: 0.5,
        uploaded_by: "ada",
        at: Utc::now(),
    })
    .await
    .unwrap();
    published(&mut prompts, AT_ONCE, |g| *g == Some(1)).await;
    assert_eq!(samples(&media, "fr/goodbye"), 4000);
    poller.abort();
    media.shutdown();
}
