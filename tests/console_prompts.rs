//! The console's prompts: the API in-process (temp SQLite store, the prompts routes behind a
//! fixed `CurrentUser`, served on 127.0.0.1:0), `watch_prompts` with a real media engine, and
//! the store's prompt functions on SQLite and PostgreSQL (ASTREINTE_TEST_PG_URL; without it the
//! PostgreSQL half fails when CI is set and says it skipped otherwise).

use std::io::Cursor;
use std::sync::Arc;
use std::time::{Duration, Instant};

use astreinte::admin::auth::{CurrentUser, Role};
use astreinte::admin::{prompts, prompts_live, AdminState};
use astreinte::config::Config;
use astreinte::media::{MediaConfig, MediaEngine};
use astreinte::store::prompts::NewPromptVersion;
use astreinte::store::{Store, StoreConfig};
use chrono::Utc;
use serde_json::{json, Value};

#[path = "common/skip.rs"]
mod skip;
#[path = "common/wait.rs"]
mod wait;

const MP3: &[u8] = include_bytes!("fixtures/audio/tone-1k-44k1-stereo.mp3");
const OGG: &[u8] = include_bytes!("fixtures/audio/tone-1k-48k-mono.ogg");

async fn sqlite() -> (Store, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/astreinte.db", dir.path().display());
    let store = Store::connect(&StoreConfig::with_url(url)).await.unwrap();
    (store, dir)
}

/// The prompts routes as `role`, on a free port; the base URL.
async fn serve(store: Store, role: Role, media: Option<MediaEngine>) -> String {
    let state = AdminState {
        store,
        secure_cookies: false,
        login_limiter: Default::default(),
        media,
        config: Arc::new(Config::default()),
    };
    let app = prompts::routes()
        .layer(axum::Extension(CurrentUser::new("ada", role)))
        .with_state(state);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    format!("http://{addr}")
}

/// `seconds` of a sine at `amp` of full scale (0: silence), as a WAV of that format.
fn wav(rate: u32, channels: u16, bits: u16, seconds: f64, freq: f64, amp: f64) -> Vec<u8> {
    let spec = hound::WavSpec {
        channels,
        sample_rate: rate,
        bits_per_sample: bits,
        sample_format: hound::SampleFormat::Int,
    };
    let mut cursor = Cursor::new(Vec::new());
    let mut w = hound::WavWriter::new(&mut cursor, spec).unwrap();
    let full = ((1i64 << (bits - 1)) - 1) as f64;
    for i in 0..(seconds * rate as f64) as usize {
        let t = i as f64 / rate as f64;
        let x = (amp * (2.0 * std::f64::consts::PI * freq * t).sin()).clamp(-1.0, 1.0);
        for _ in 0..channels {
            w.write_sample((x * full).round() as i32).unwrap();
        }
    }
    w.finalize().unwrap();
    cursor.into_inner()
}

fn tone_44k1_stereo() -> Vec<u8> {
    wav(44100, 2, 16, 1.0, 1000.0, 0.5)
}

async fn put(base: &str, path: &str, body: Vec<u8>, ctype: Option<&str>) -> (u16, Value) {
    let mut req = reqwest::Client::new()
        .put(format!("{base}{path}"))
        .body(body);
    if let Some(t) = ctype {
        req = req.header("content-type", t);
    }
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn get_json(base: &str, path: &str) -> (u16, Value) {
    let r = reqwest::get(format!("{base}{path}")).await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn rollback(base: &str, path: &str, version: i64) -> (u16, Value) {
    let r = reqwest::Client::new()
        .post(format!("{base}{path}/rollback"))
        .json(&json!({ "version": version }))
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// The row of `lang/name` in `GET /api/prompts`.
async fn listed(base: &str, key: &str) -> Value {
    let (status, list) = get_json(base, "/api/prompts").await;
    assert_eq!(status, 200);
    list.as_array()
        .unwrap()
        .iter()
        .find(|p| {
            format!(
                "{}/{}",
                p["lang"].as_str().unwrap(),
                p["name"].as_str().unwrap()
            ) == key
        })
        .cloned()
        .unwrap_or_else(|| panic!("{key} not listed"))
}

/// (rate, channels, bits, samples) of a WAV.
fn wav_shape(bytes: &[u8]) -> (u32, u16, u16, usize) {
    let r = hound::WavReader::new(Cursor::new(bytes)).unwrap();
    let s = r.spec();
    (
        s.sample_rate,
        s.channels,
        s.bits_per_sample,
        r.len() as usize,
    )
}

#[tokio::test]
async fn every_manifest_prompt_is_listed_in_both_languages_sorted_and_default() {
    let (store, _dir) = sqlite().await;
    let base = serve(store, Role::Viewer, None).await;
    let (status, list) = get_json(&base, "/api/prompts").await;
    assert_eq!(status, 200);
    let list = list.as_array().unwrap();
    let names = prompts::manifest().len();
    assert!(names > 20, "{names} prompts in the manifest");
    assert_eq!(list.len(), 2 * names);
    let keys: Vec<(String, String)> = list
        .iter()
        .map(|p| {
            (
                p["lang"].as_str().unwrap().into(),
                p["name"].as_str().unwrap().into(),
            )
        })
        .collect();
    let mut sorted = keys.clone();
    sorted.sort();
    assert_eq!(keys, sorted);
    assert!(list
        .iter()
        .all(|p| p["version"] == 0 && p["is_default"] == true));
    let welcome = listed(&base, "fr/welcome").await;
    assert_eq!(
        welcome["text"],
        "Bonjour, vous êtes bien au service à la clientèle."
    );
    assert_eq!(
        listed(&base, "en/welcome").await["text"],
        "Hello, you have reached customer service."
    );
    // The default plays back as 8 kHz mono 16-bit.
    let r = reqwest::get(format!("{base}/api/prompts/en/welcome/audio"))
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "audio/wav");
    let (rate, ch, bits, n) = wav_shape(&r.bytes().await.unwrap());
    assert_eq!((rate, ch, bits), (8000, 1, 16));
    assert!(n > 8000, "{n} samples");
    // The page is there, with its script's hooks.
    let page = reqwest::get(format!("{base}/prompts"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("<h1>Prompts</h1>") && page.contains("data-prompt"));
    assert!(page.contains("rollback") && page.contains("upload"));
}

#[tokio::test]
async fn an_upload_becomes_the_active_version_and_plays_back_at_8k_mono() {
    let (store, _dir) = sqlite().await;
    let base = serve(store, Role::Admin, None).await;
    let (status, v) = put(
        &base,
        "/api/prompts/fr/welcome",
        tone_44k1_stereo(),
        Some("audio/wav"),
    )
    .await;
    assert_eq!(status, 201, "{v}");
    assert_eq!(v["version"], 1);
    assert_eq!(v["is_default"], false);
    assert_eq!(v["uploaded_by"], "ada");
    assert!((v["seconds"].as_f64().unwrap() - 1.0).abs() < 0.01, "{v}");
    let row = listed(&base, "fr/welcome").await;
    assert_eq!(
        (row["version"].clone(), row["is_default"].clone()),
        (json!(1), json!(false))
    );
    // The other language is untouched.
    assert_eq!(listed(&base, "en/welcome").await["is_default"], true);

    let audio = reqwest::get(format!("{base}/api/prompts/fr/welcome/audio"))
        .await
        .unwrap();
    assert_eq!(audio.headers()["content-type"], "audio/wav");
    let (rate, ch, bits, n) = wav_shape(&audio.bytes().await.unwrap());
    assert_eq!((rate, ch, bits), (8000, 1, 16));
    assert!((n as i64 - 8000).abs() <= 1, "{n} samples");
    let v1 = reqwest::get(format!("{base}/api/prompts/fr/welcome/audio?version=1"))
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(wav_shape(&v1).3, n);
    let default = reqwest::get(format!("{base}/api/prompts/fr/welcome/audio?version=0"))
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert!(
        wav_shape(&default).3 > 16000,
        "the bundled welcome is longer"
    );
    let (status, _) = get_json(&base, "/api/prompts/fr/welcome/audio?version=7").await;
    assert_eq!(status, 404);

    // A second upload (MP3, then Ogg): versions 2 and 3.
    let (status, v) = put(
        &base,
        "/api/prompts/fr/welcome",
        MP3.to_vec(),
        Some("audio/mpeg"),
    )
    .await;
    assert_eq!((status, v["version"].clone()), (201, json!(2)), "{v}");
    let (status, v) = put(
        &base,
        "/api/prompts/fr/welcome",
        OGG.to_vec(),
        Some("audio/ogg"),
    )
    .await;
    assert_eq!((status, v["version"].clone()), (201, json!(3)), "{v}");
    let (status, v) = put(
        &base,
        "/api/prompts/en/welcome",
        OGG.to_vec(),
        Some("application/octet-stream"),
    )
    .await;
    assert_eq!((status, v["version"].clone()), (201, json!(1)), "{v}");

    let (status, versions) = get_json(&base, "/api/prompts/fr/welcome/versions").await;
    assert_eq!(status, 200);
    let versions = versions.as_array().unwrap();
    let numbers: Vec<i64> = versions
        .iter()
        .map(|v| v["version"].as_i64().unwrap())
        .collect();
    assert_eq!(numbers, [3, 2, 1, 0]);
    let active: Vec<bool> = versions
        .iter()
        .map(|v| v["active"].as_bool().unwrap())
        .collect();
    assert_eq!(active, [true, false, false, false]);
    assert_eq!(versions[0]["uploaded_by"], "ada");
    assert!(versions[0]["uploaded_at"].is_string());
    assert!(versions[3]["uploaded_by"].is_null());
    assert!(versions[3]["seconds"].as_f64().unwrap() > 2.0);

    // Roll back to version 1, then to the bundled default.
    let (status, body) = rollback(&base, "/api/prompts/fr/welcome", 1).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(listed(&base, "fr/welcome").await["version"], 1);
    let (status, _) = rollback(&base, "/api/prompts/fr/welcome", 0).await;
    assert_eq!(status, 200);
    let row = listed(&base, "fr/welcome").await;
    assert_eq!(
        (row["version"].clone(), row["is_default"].clone()),
        (json!(0), json!(true))
    );
    let (_, versions) = get_json(&base, "/api/prompts/fr/welcome/versions").await;
    let active: Vec<bool> = versions
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["active"].as_bool().unwrap())
        .collect();
    assert_eq!(active, [false, false, false, true]);
    // An unknown version or a negative one changes nothing.
    let (status, body) = rollback(&base, "/api/prompts/fr/welcome", 9).await;
    assert_eq!(status, 404, "{body}");
    assert!(body["error"].as_str().unwrap().contains("no version 9"));
    let (status, _) = rollback(&base, "/api/prompts/fr/welcome", -1).await;
    assert_eq!(status, 400);
    let r = reqwest::Client::new()
        .post(format!("{base}/api/prompts/fr/welcome/rollback"))
        .header("content-type", "application/json")
        .body("{\"version\": \"two\"}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert!(listed(&base, "fr/welcome").await["is_default"] == true);
}

/// Each bad upload is refused with the converter's reason and changes nothing.
#[tokio::test]
async fn bad_uploads_are_refused_with_the_reason_and_change_nothing() {
    let (store, _dir) = sqlite().await;
    let base = serve(store.clone(), Role::Admin, None).await;
    let path = "/api/prompts/en/main-menu";
    let cases: Vec<(&str, Vec<u8>, &str, u16, &str)> = vec![
        (
            "silence",
            wav(16000, 1, 16, 2.0, 440.0, 0.0),
            "audio/wav",
            422,
            "silent",
        ),
        (
            "clipped",
            wav(44100, 2, 16, 2.0, 440.0, 4.0),
            "audio/x-wav",
            422,
            "clipped",
        ),
        (
            "70 s",
            wav(8000, 1, 16, 70.0, 440.0, 0.3),
            "audio/wave",
            422,
            "longer than 60 s",
        ),
        (
            "0.1 s",
            wav(8000, 1, 16, 0.1, 440.0, 0.3),
            "audio/wav",
            422,
            "at least 0.2 s",
        ),
        (
            "text",
            b"Bonjour, ceci n'est pas un son.\n".to_vec(),
            "audio/wav",
            422,
            "not an audio file",
        ),
        ("empty", Vec::new(), "audio/wav", 422, "empty"),
        (
            "wrong type",
            tone_44k1_stereo(),
            "text/plain",
            415,
            "Content-Type text/plain is not accepted",
        ),
        (
            "multipart",
            tone_44k1_stereo(),
            "multipart/form-data; boundary=x",
            415,
            "audio/wav",
        ),
        (
            "over 20 MB",
            vec![0u8; 20 * 1024 * 1024 + 1],
            "audio/wav",
            413,
            "larger than 20 MB",
        ),
    ];
    for (what, body, ctype, want, says) in cases {
        let (status, body) = put(&base, path, body, Some(ctype)).await;
        assert_eq!(status, want, "{what}: {body}");
        let msg = body["error"].as_str().unwrap_or_default();
        assert!(msg.contains(says), "{what}: {msg}");
    }
    let (status, body) = put(&base, path, tone_44k1_stereo(), None).await;
    assert_eq!(status, 415, "{body}");
    assert!(body["error"].as_str().unwrap().contains("no Content-Type"));
    // Nothing changed.
    assert_eq!(listed(&base, "en/main-menu").await["is_default"], true);
    let (_, versions) = get_json(&base, "/api/prompts/en/main-menu/versions").await;
    assert_eq!(versions.as_array().unwrap().len(), 1);
    assert_eq!(store.prompts_generation().await.unwrap(), 0);
}

#[tokio::test]
async fn unknown_or_malformed_prompt_names_are_refused() {
    let (store, _dir) = sqlite().await;
    let base = serve(store.clone(), Role::Admin, None).await;
    for (path, want) in [
        ("/api/prompts/fr/nope", 404),
        ("/api/prompts/de/welcome", 404),
        ("/api/prompts/fr/..%2Fx", 400),
        ("/api/prompts/fr/Welcome", 400),
        ("/api/prompts/fr/welcome.wav", 400),
        ("/api/prompts/fr/%2Fetc%2Fpasswd", 400),
    ] {
        let (status, body) = put(&base, path, tone_44k1_stereo(), Some("audio/wav")).await;
        assert_eq!(status, want, "PUT {path}: {body}");
        assert!(body["error"].is_string(), "{path}: {body}");
        let (status, _) = get_json(&base, &format!("{path}/versions")).await;
        assert_eq!(status, want, "GET {path}/versions");
        let (status, _) = get_json(&base, &format!("{path}/audio")).await;
        assert_eq!(status, want, "GET {path}/audio");
    }
    // A path that a client folds (`fr/../x`) reaches no prompt route at all.
    let (status, _) = put(
        &base,
        "/api/prompts/fr/../x",
        tone_44k1_stereo(),
        Some("audio/wav"),
    )
    .await;
    assert!(status == 404 || status == 405, "{status}");
    assert_eq!(store.prompts_generation().await.unwrap(), 0);
}

#[tokio::test]
async fn a_viewer_reads_but_may_not_change_prompts() {
    let (store, _dir) = sqlite().await;
    let base = serve(store.clone(), Role::Viewer, None).await;
    let (status, body) = put(
        &base,
        "/api/prompts/fr/welcome",
        tone_44k1_stereo(),
        Some("audio/wav"),
    )
    .await;
    assert_eq!(status, 403, "{body}");
    assert!(body["error"].as_str().unwrap().contains("Admin"));
    let (status, _) = rollback(&base, "/api/prompts/fr/welcome", 0).await;
    assert_eq!(status, 403);
    let (status, _) = get_json(&base, "/api/prompts/fr/welcome/versions").await;
    assert_eq!(status, 200);
    // A technician neither.
    let base = serve(store.clone(), Role::Technician, None).await;
    let (status, _) = put(
        &base,
        "/api/prompts/fr/welcome",
        tone_44k1_stereo(),
        Some("audio/wav"),
    )
    .await;
    assert_eq!(status, 403);
    assert_eq!(store.prompts_generation().await.unwrap(), 0);
}

#[tokio::test]
async fn without_a_user_everything_is_401_and_the_page_sends_to_the_login() {
    let (store, _dir) = sqlite().await;
    let state = AdminState {
        store,
        secure_cookies: false,
        login_limiter: Default::default(),
        media: None,
        config: Arc::new(Config::default()),
    };
    let app = prompts::routes().with_state(state);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let base = format!("http://{addr}");
    for path in [
        "/api/prompts",
        "/api/prompts/fr/welcome/audio",
        "/api/prompts/fr/welcome/versions",
    ] {
        assert_eq!(get_json(&base, path).await.0, 401, "{path}");
    }
    assert_eq!(
        put(
            &base,
            "/api/prompts/fr/welcome",
            tone_44k1_stereo(),
            Some("audio/wav")
        )
        .await
        .0,
        401
    );
    assert_eq!(rollback(&base, "/api/prompts/fr/welcome", 0).await.0, 401);
    let r = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(format!("{base}/prompts"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], "/login?next=/prompts");
}

fn engine(ports: &str) -> MediaEngine {
    let cfg = MediaConfig {
        rtp_ports: ports.into(),
        prompts_dir: concat!(env!("CARGO_MANIFEST_DIR"), "/prompts").into(),
        threads: 1,
        realtime_priority: 0,
        ..MediaConfig::default()
    };
    MediaEngine::start(&cfg, "127.0.0.1".parse().unwrap()).unwrap()
}

/// Samples of `name` in the engine's current prompt set.
fn samples(media: &MediaEngine, name: &str) -> usize {
    let set = media.prompts();
    set.id(name)
        .and_then(|id| set.get(id))
        .map_or(0, |p| p.samples)
}

async fn wait_for(media: &MediaEngine, name: &str, want: usize, within: Duration) -> Duration {
    let start = Instant::now();
    let there = wait::poll_for_async(within, || {
        std::future::ready((samples(media, name) == want).then_some(()))
    })
    .await;
    assert!(
        there.is_some(),
        "{name} has {} samples, not {want}, after {within:?}",
        samples(media, name)
    );
    start.elapsed()
}

/// Another node's upload (straight into the store) reaches this node's engine within 3 s, and
/// so does a rollback to the default.
#[tokio::test]
async fn watch_prompts_applies_changes_made_through_the_store_within_3_s() {
    let (store, _dir) = sqlite().await;
    let media = engine("36400-36419");
    let default_len = samples(&media, "en/goodbye");
    assert!(default_len > 4000);
    // One version already active before the watcher starts: applied on its first pass.
    let pcm: Vec<i16> = (0..4000).map(|i| ((i % 40) as i16 - 20) * 500).collect();
    let wav = astreinte::media::convert::encode_wav(&pcm);
    store
        .add_prompt_version(&NewPromptVersion {
            lang: "fr",
            name: "goodbye",
            wav: &wav,
            seconds: 0.5,
            uploaded_by: "ada",
            at: Utc::now(),
        })
        .await
        .unwrap();
    let watcher = prompts_live::watch_prompts(store.clone(), media.clone()).await;
    assert_eq!(samples(&media, "fr/goodbye"), 4000);

    let upload = astreinte::media::convert::convert(&tone_44k1_stereo()).unwrap();
    store
        .add_prompt_version(&NewPromptVersion {
            lang: "en",
            name: "goodbye",
            wav: &upload.wav(),
            seconds: upload.seconds(),
            uploaded_by: "ada",
            at: Utc::now(),
        })
        .await
        .unwrap();
    let took = wait_for(
        &media,
        "en/goodbye",
        upload.pcm.len(),
        Duration::from_secs(3),
    )
    .await;
    eprintln!("upload reached the engine in {took:?}");
    // The same audio, encoded for the wire.
    let set = media.prompts();
    let p = set.get(set.id("en/goodbye").unwrap()).unwrap();
    let mut expect = vec![0u8; upload.pcm.len()];
    astreinte::media::g711::encode(astreinte::media::Codec::Pcmu, &upload.pcm, &mut expect);
    assert_eq!(&p.pcmu[..upload.pcm.len()], &expect[..]);

    store
        .activate_prompt_version("en", "goodbye", None)
        .await
        .unwrap();
    wait_for(&media, "en/goodbye", default_len, Duration::from_secs(3)).await;
    // Back to the recording the engine started with: the same sound on PCMU (µ-law's two
    // codes for zero aside, the same bytes).
    let set = media.prompts();
    let back = set.get(set.id("en/goodbye").unwrap()).unwrap();
    let bundled = astreinte::media::prompts::PromptSet::bundled().unwrap();
    let orig = bundled.get(bundled.id("en/goodbye").unwrap()).unwrap();
    let linear = |codes: &[u8]| {
        let mut out = vec![0i16; codes.len()];
        astreinte::media::g711::decode(astreinte::media::Codec::Pcmu, codes, &mut out);
        out
    };
    assert!(
        linear(&back.pcmu) == linear(&orig.pcmu),
        "en/goodbye differs from its default"
    );
    watcher.abort();
    media.shutdown();
}

/// With the engine in the console's state, an upload and a rollback apply at once.
#[tokio::test]
async fn the_node_that_takes_an_upload_applies_it_at_once() {
    let (store, _dir) = sqlite().await;
    let media = engine("36420-36439");
    let default_len = samples(&media, "fr/transfer");
    let base = serve(store, Role::Admin, Some(media.clone())).await;
    let (status, v) = put(
        &base,
        "/api/prompts/fr/transfer",
        tone_44k1_stereo(),
        Some("audio/wav"),
    )
    .await;
    assert_eq!(status, 201, "{v}");
    assert_eq!(samples(&media, "fr/transfer"), 8000);
    let (status, _) = rollback(&base, "/api/prompts/fr/transfer", 0).await;
    assert_eq!(status, 200);
    assert_eq!(samples(&media, "fr/transfer"), default_len);
    let (status, _) = rollback(&base, "/api/prompts/fr/transfer", 1).await;
    assert_eq!(status, 200);
    assert_eq!(samples(&media, "fr/transfer"), 8000);
    media.shutdown();
}

// --- the store's prompt functions on both backends ---------------------------------------

async fn store_prompt_versions(store: &Store) {
    assert_eq!(store.prompts_generation().await.unwrap(), 0);
    assert!(store.active_prompts().await.unwrap().is_empty());
    let at = chrono::DateTime::parse_from_rfc3339("2025-03-04T05:06:07.123456Z")
        .unwrap()
        .with_timezone(&Utc);
    let mut new = NewPromptVersion {
        lang: "fr",
        name: "welcome",
        wav: b"RIFF-one",
        seconds: 1.25,
        uploaded_by: "ada",
        at,
    };
    let v1 = store.add_prompt_version(&new).await.unwrap();
    assert_eq!((v1.version, v1.active, v1.seconds), (1, true, 1.25));
    assert_eq!(v1.uploaded_at, at);
    new.wav = b"RIFF-two";
    new.uploaded_by = "bob";
    let v2 = store.add_prompt_version(&new).await.unwrap();
    assert_eq!((v2.version, v2.active), (2, true));
    new.lang = "en";
    new.wav = b"RIFF-en";
    assert_eq!(store.add_prompt_version(&new).await.unwrap().version, 1);
    assert_eq!(store.prompts_generation().await.unwrap(), 3);

    let versions = store.prompt_versions("fr", "welcome").await.unwrap();
    assert_eq!(versions.len(), 2);
    assert_eq!(
        (
            versions[0].version,
            versions[0].active,
            versions[0].uploaded_by.as_str()
        ),
        (2, true, "bob")
    );
    assert_eq!((versions[1].version, versions[1].active), (1, false));
    assert_eq!(versions[1].uploaded_at, at);
    assert!(store
        .prompt_versions("fr", "goodbye")
        .await
        .unwrap()
        .is_empty());

    let active = store.active_prompts().await.unwrap();
    let summary: Vec<(&str, &str, i64, &[u8])> = active
        .iter()
        .map(|a| {
            (
                a.lang.as_str(),
                a.name.as_str(),
                a.version,
                a.wav.as_slice(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("en", "welcome", 1, &b"RIFF-en"[..]),
            ("fr", "welcome", 2, &b"RIFF-two"[..])
        ]
    );
    assert_eq!(
        store.active_prompt_versions().await.unwrap(),
        [
            ("en".into(), "welcome".into(), 1),
            ("fr".into(), "welcome".into(), 2)
        ]
    );
    assert_eq!(
        store
            .prompt_audio("fr", "welcome", 1)
            .await
            .unwrap()
            .as_deref(),
        Some(&b"RIFF-one"[..])
    );
    assert_eq!(store.prompt_audio("fr", "welcome", 5).await.unwrap(), None);

    // Roll back to 1, to the default, and an unknown version changes nothing.
    assert_eq!(
        store
            .activate_prompt_version("fr", "welcome", Some(1))
            .await
            .unwrap(),
        Some(2)
    );
    assert_eq!(
        store
            .activate_prompt_version("fr", "welcome", None)
            .await
            .unwrap(),
        Some(1)
    );
    assert_eq!(
        store
            .activate_prompt_version("fr", "welcome", None)
            .await
            .unwrap(),
        None
    );
    let generation = store.prompts_generation().await.unwrap();
    assert_eq!(generation, 6);
    assert!(store
        .activate_prompt_version("fr", "welcome", Some(9))
        .await
        .is_err());
    assert_eq!(store.prompts_generation().await.unwrap(), generation);
    assert_eq!(
        store.active_prompt_versions().await.unwrap(),
        [("en".into(), "welcome".into(), 1)]
    );
    // An upload after a rollback takes the next number and is active.
    new.lang = "fr";
    assert_eq!(store.add_prompt_version(&new).await.unwrap().version, 3);
    let active: Vec<bool> = store
        .prompt_versions("fr", "welcome")
        .await
        .unwrap()
        .iter()
        .map(|v| v.active)
        .collect();
    assert_eq!(active, [true, false, false]);
    // Concurrent uploads never share a number.
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            store
                .add_prompt_version(&NewPromptVersion {
                    lang: "en",
                    name: "goodbye",
                    wav: b"RIFF",
                    seconds: 1.0,
                    uploaded_by: "ada",
                    at: Utc::now(),
                })
                .await
                .unwrap()
                .version
        }));
    }
    let mut numbers = Vec::new();
    for t in tasks {
        numbers.push(t.await.unwrap());
    }
    numbers.sort();
    assert_eq!(numbers, (1..=8).collect::<Vec<i64>>());
    let versions = store.prompt_versions("en", "goodbye").await.unwrap();
    assert_eq!(versions.iter().filter(|v| v.active).count(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prompt_versions_on_sqlite() {
    let (store, _dir) = sqlite().await;
    store_prompt_versions(&store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prompt_versions_on_postgres() {
    let Ok(url) = std::env::var("ASTREINTE_TEST_PG_URL") else {
        if std::env::var_os("CI").is_some() {
            panic!("CI is set but ASTREINTE_TEST_PG_URL is not: the PostgreSQL store tests cannot be skipped in CI");
        }
        skip::skip(
            "prompt_versions_on_postgres",
            "ASTREINTE_TEST_PG_URL is not set (scripts/test.sh sets it)",
        );
        return;
    };
    let admin = sqlx::PgPool::connect(&url)
        .await
        .expect("connect to ASTREINTE_TEST_PG_URL");
    let schema = format!(
        "t_prompts_{}_{}",
        std::process::id(),
        Utc::now().timestamp_micros()
    );
    sqlx::query(&format!("CREATE SCHEMA {schema}"))
        .execute(&admin)
        .await
        .unwrap();
    let sep = if url.contains('?') { '&' } else { '?' };
    let store_url = format!("{url}{sep}options=-c%20search_path%3D{schema}");
    let store = Store::connect(&StoreConfig::with_url(store_url))
        .await
        .unwrap();
    store_prompt_versions(&store).await;
    store.close().await;
    let _ = sqlx::query(&format!("DROP SCHEMA {schema} CASCADE"))
        .execute(&admin)
        .await;
    admin.close().await;
}
