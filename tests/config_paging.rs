//! The paging configuration's errors, through the whole configuration as an operator writes
//! it: each names the file, the line, the key and a fix. (The ladder and the roster are in the
//! core crate; reading a whole configuration is the engine's, so these tests live here.)

use std::path::Path;

use astreinte::config::Config;

mod ladder {
    use super::*;

    // ---- validation, through the whole configuration (file:line:key and fix) ----

    const PEOPLE: &str = r#"
[[paging.people]]
id = "tech1"
name = "Martin Roy"
phone = "sip:tech1@10.0.0.5:5060"
[[paging.people]]
id = "boss"
name = "Anne Roy"
email = "boss@example.net"
[[paging.rotations]]
id = "oncall"
people = ["tech1"]
"#;

    /// The rendered errors of a configuration, or "" when it is valid.
    fn errors(text: &str) -> String {
        match Config::parse(Path::new("x.toml"), text) {
            Ok(_) => String::new(),
            Err(e) => e.to_string(),
        }
    }

    /// Line (1-based) of the first line of `text` containing `needle`.
    fn line(text: &str, needle: &str) -> usize {
        text.lines().position(|l| l.contains(needle)).unwrap() + 1
    }

    fn assert_error(text: &str, needle_line: &str, key: &str, words: &[&str]) {
        let err = errors(text);
        let head = format!("x.toml:{}: {key}: ", line(text, needle_line));
        let entry = err
            .split("\nx.toml")
            .find(|e| e.contains(&format!("{key}: ")))
            .unwrap_or_else(|| panic!("no {key} in:\n{err}"));
        assert!(err.contains(&head), "want {head} in:\n{err}");
        for w in words {
            assert!(entry.contains(w), "want {w:?} in:\n{entry}");
        }
        assert!(entry.contains("fix: "), "{entry}");
    }

    #[test]
    fn default_and_people_configs_are_valid() {
        assert_eq!(errors(""), "");
        let ok = format!(
                "{PEOPLE}[paging.ladder]\nlevels = [[\"oncall\"], [\"boss\"]]\ns1 = [\"0s\", \"25m\"]\n[paging.in_hours]\nnotify = [\"boss\"]\n"
            );
        assert_eq!(errors(&ok), "");
    }

    #[test]
    fn unknown_slot_names_level_and_index_with_known_ids() {
        let text =
            format!("{PEOPLE}[paging.ladder]\nlevels = [\n  [\"oncall\"],\n  [\"director\"],\n]\n");
        assert_error(
            &text,
            "[\"director\"]",
            "paging.ladder.levels[1][0]",
            &["\"director\"", "\"boss\", \"oncall\", \"tech1\""],
        );
    }

    #[test]
    fn bad_offsets_are_located() {
        let text = format!(
                "{PEOPLE}[paging.ladder]\nlevels = [[\"oncall\"], [\"boss\"], [\"tech1\"]]\ns1 = [\n  \"0s\",\n  \"20m\",\n  \"10m\",\n]\n"
            );
        assert_error(
            &text,
            "\"10m\"",
            "paging.ladder.s1[2]",
            &["10m is not after 20m"],
        );

        let text = format!(
                "{PEOPLE}[paging.ladder]\nlevels = [[\"oncall\"], [\"boss\"]]\ns1 = [\"0s\", \"30m\"]\n"
            );
        assert_error(
            &text,
            "s1 =",
            "paging.ladder.s1[1]",
            &["after it happened", "below 30m"],
        );

        let text = format!(
                "{PEOPLE}[paging.ladder]\nlevels = [[\"oncall\"], [\"boss\"]]\ns2 = [\"1m\", \"50m\"]\n"
            );
        assert_error(&text, "s2 =", "paging.ladder.s2[0]", &["0s"]);

        let text = format!(
                "{PEOPLE}[paging.ladder]\nlevels = [[\"oncall\"], [\"boss\"]]\ns2 = [\"0s\", \"ten\"]\n"
            );
        assert_error(
            &text,
            "s2 =",
            "paging.ladder.s2[1]",
            &["\"ten\" is not a duration"],
        );

        let text = format!(
            "{PEOPLE}[paging.ladder]\nlevels = [[\"oncall\"], [\"boss\"]]\ns1 = [\"0s\"]\n"
        );
        assert_error(
            &text,
            "s1 =",
            "paging.ladder.s1",
            &["1 offsets for 2 levels"],
        );
    }

    #[test]
    fn bad_levels_durations_and_channels_are_located() {
        let text = format!("{PEOPLE}[paging.ladder]\nlevels = []\n");
        assert_error(&text, "levels =", "paging.ladder.levels", &["no level"]);
        let text = format!("{PEOPLE}[paging.ladder]\nlevels = [[\"oncall\"], []]\n");
        assert_error(
            &text,
            "levels =",
            "paging.ladder.levels[1]",
            &["level 2 names nobody"],
        );
        let text =
            format!("{PEOPLE}[paging.ladder]\nlevels = [[\"oncall\"]]\nrepeat_every = \"often\"\n");
        assert_error(
            &text,
            "repeat_every",
            "paging.ladder.repeat_every",
            &["\"often\""],
        );
        let text = format!(
                "{PEOPLE}[paging.ladder]\nlevels = [[\"oncall\"]]\nrepeat_channels = [\"phone\", \"sms\"]\n"
            );
        assert_error(
            &text,
            "repeat_channels",
            "paging.ladder.repeat_channels[1]",
            &["\"sms\" is not a channel", "webhook"],
        );
        let text = format!(
            "{PEOPLE}[paging.ladder]\nlevels = [[\"oncall\"]]\nreescalate_before = \"30m\"\n"
        );
        assert_error(
            &text,
            "reescalate_before",
            "paging.ladder.reescalate_before",
            &["below 30m"],
        );
        let text = format!(
                "{PEOPLE}[paging.ladder]\nlevels = [[\"oncall\"], [\"boss\"], [\"tech1\"], [\"boss\"]]\nreescalate_before = \"28m\"\n"
            );
        assert_error(
            &text,
            "[paging.ladder]",
            "paging.ladder",
            &["s1:", "cannot be spaced"],
        );
        let text = format!(
            "{PEOPLE}[paging.in_hours]\nnotify = [\"boss\", \"support\"]\nchannels = [\"fax\"]\n"
        );
        assert_error(
            &text,
            "notify",
            "paging.in_hours.notify[1]",
            &["\"support\""],
        );
        assert_error(
            &text,
            "channels",
            "paging.in_hours.channels[0]",
            &["\"fax\""],
        );
    }
}

mod roster {
    use super::*;

    // ---- validation, through the whole configuration (file:line:key and fix) ----

    fn errors(text: &str) -> String {
        match Config::parse(Path::new("x.toml"), text) {
            Ok(_) => String::new(),
            Err(e) => e.to_string(),
        }
    }

    /// The error for `key` is reported at the line containing `needle`, with `words` and a fix.
    fn assert_error(text: &str, needle: &str, key: &str, words: &[&str]) {
        let err = errors(text);
        let start = text.find(needle).unwrap();
        let line = text[..start].matches('\n').count() + 1;
        let head = format!("x.toml:{line}: {key}: ");
        let entry = err
            .split("\nx.toml")
            .find(|e| {
                e.contains(&format!(" {key}: "))
                    || e.starts_with(&format!("x.toml:{line}: {key}: "))
            })
            .unwrap_or_else(|| panic!("no {key} in:\n{err}"));
        assert!(err.contains(&head), "want {head} in:\n{err}");
        for w in words {
            assert!(entry.contains(w), "want {w:?} in:\n{entry}");
        }
        assert!(entry.contains("fix: "), "{entry}");
    }

    const GOOD: &str = r#"
[[paging.people]]
id = "tech1"
name = "Martin Roy"
phone = "sip:tech1@10.0.0.5:5060"
email = "tech1@example.net"
language = "fr"
[[paging.people]]
id = "tech2"
name = "Jane Doe"
phone = "+15145551234"
language = "en"
[[paging.rotations]]
id = "oncall"
people = ["tech1", "tech2"]
every = "1w"
handover = "mon 08:00"
start = "2026-01-05"
[paging.ladder]
levels = [["oncall"], ["tech1"]]
"#;

    #[test]
    fn a_good_roster_is_valid() {
        assert_eq!(errors(GOOD), "");
    }

    #[test]
    fn bad_people_are_located() {
        let t = GOOD.replace("phone = \"+15145551234\"", "phone = \"514-555-1234\"");
        assert_error(&t, "514-555", "paging.people[1].phone", &["+15145551234"]);
        let t = GOOD.replace("phone = \"+15145551234\"", "phone = \"+1514\"");
        assert_error(
            &t,
            "+1514",
            "paging.people[1].phone",
            &["E.164", "+15145551234"],
        );
        let t = GOOD.replace("tech1@example.net", "tech1@example.net\\r\\nBcc: x@y.z");
        assert_error(&t, "Bcc", "paging.people[0].email", &["control character"]);
        let t = GOOD.replace("tech1@example.net", "tech1.example.net");
        assert_error(
            &t,
            "tech1.example.net",
            "paging.people[0].email",
            &["no '@'"],
        );
        let t = GOOD.replace("language = \"en\"", "language = \"de\"");
        assert_error(
            &t,
            "\"de\"",
            "paging.people[1].language",
            &["\"fr\" or \"en\""],
        );
        let t = GOOD.replace("id = \"tech2\"", "id = \"Tech 2\"");
        assert_error(&t, "Tech 2", "paging.people[1].id", &["lowercase"]);
        let t = GOOD.replace("id = \"tech2\"", "id = \"tech1\"");
        assert_error(
            &t,
            "id = \"tech1\"\nname = \"Jane",
            "paging.people[1].id",
            &["twice"],
        );
        let t = GOOD.replace("name = \"Jane Doe\"", "name = \" \"");
        assert_error(&t, "name = \" \"", "paging.people[1].name", &["empty"]);
        let t = GOOD.replace("phone = \"+15145551234\"\n", "");
        assert_error(
            &t,
            "[[paging.people]]\nid = \"tech2\"",
            "paging.people[1]",
            &["neither a phone nor an e-mail"],
        );
    }

    #[test]
    fn max_cover_days_is_bounded() {
        assert_eq!(
            errors(&format!("[paging]\nmax_cover_days = 30\n{GOOD}")),
            ""
        );
        for bad in ["0", "400"] {
            let t = format!("[paging]\nmax_cover_days = {bad}\n{GOOD}");
            assert_error(
                &t,
                "max_cover_days",
                "paging.max_cover_days",
                &["out of range", "between 1 and 366"],
            );
        }
    }

    #[test]
    fn bad_rotations_are_located() {
        let t = GOOD.replace(
            "people = [\"tech1\", \"tech2\"]",
            "people = [\"tech1\", \"tech2\", \"tech9\"]",
        );
        assert_error(
            &t,
            "tech9",
            "paging.rotations[0].people[2]",
            &["\"tech9\" is not a person", "\"tech1\", \"tech2\""],
        );
        let t = GOOD.replace("people = [\"tech1\", \"tech2\"]", "people = []");
        assert_error(&t, "people = []", "paging.rotations[0].people", &["nobody"]);
        let t = GOOD.replace("id = \"oncall\"", "id = \"tech1\"");
        assert_error(
            &t,
            "id = \"tech1\"\npeople",
            "paging.rotations[0].id",
            &["both a person and a rotation"],
        );
        let t = GOOD.replace("every = \"1w\"", "every = \"1h\"");
        assert_error(
            &t,
            "every =",
            "paging.rotations[0].every",
            &["\"1h\"", "\"1w\""],
        );
        let t = GOOD.replace("every = \"1w\"", "every = \"2d\"");
        assert_error(
            &t,
            "handover =",
            "paging.rotations[0].handover",
            &["whole weeks"],
        );
        let t = GOOD.replace("handover = \"mon 08:00\"", "handover = \"monday 8h\"");
        assert_error(
            &t,
            "handover =",
            "paging.rotations[0].handover",
            &["\"monday 8h\""],
        );
        let t = GOOD.replace("start = \"2026-01-05\"", "start = \"2026-01-06\"");
        assert_error(
            &t,
            "start =",
            "paging.rotations[0].start",
            &["Tuesday", "Monday such as 2026-01-12"],
        );
        let t = GOOD.replace("start = \"2026-01-05\"", "start = \"5 jan\"");
        assert_error(&t, "start =", "paging.rotations[0].start", &["YYYY-MM-DD"]);
    }
}
