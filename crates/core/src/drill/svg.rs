//! The night drawn as a standalone SVG: no script, no external reference, every text from the
//! traces escaped. The time axis is night time; one row per ticket from its voicemail's end,
//! its target, its pages (a shape per channel, a red outline when the page failed), the
//! acknowledgement and the callback. Rows shrink with the count so 200 tickets stay one page.

use std::fmt::Write as _;

use chrono::{DateTime, Utc};

use super::report::{NightReport, PageResult, PageTrace, Verdict};

const WIDTH: i64 = 1200;
const LEFT: i64 = 170;
const RIGHT: i64 = 20;
const TOP: i64 = 80;
const LEGEND: i64 = 70;

const MISSED: &str = "#c0392b";
const MET: &str = "#7f8c8d";
const NO_TARGET: &str = "#c8c8c8";
const REACHED: &str = "#1f5fa8";
const UNANSWERED: &str = "#9ecae1";
const FAILED: &str = "#d62728";
const ACK: &str = "#8e44ad";
const CALLBACK: &str = "#27ae60";

/// Text for an SVG element or attribute.
fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // XML 1.0 allows no other control character, escaped or not.
            c if c.is_control() && !matches!(c, '\t' | '\n' | '\r') => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    out
}

struct Axis {
    start: DateTime<Utc>,
    /// Night milliseconds the width stands for.
    length_ms: i64,
    scale: i64,
}

impl Axis {
    fn x(&self, t: DateTime<Utc>) -> f64 {
        let ms = (t - self.start)
            .num_milliseconds()
            .saturating_mul(self.scale);
        let f = (ms as f64 / self.length_ms as f64).clamp(0.0, 1.0);
        LEFT as f64 + f * (WIDTH - LEFT - RIGHT) as f64
    }
}

/// One page's mark, centred on (x, y), of half-size `r`.
fn page_mark(out: &mut String, p: &PageTrace, x: f64, y: f64, r: f64) {
    let (fill, stroke) = match p.result {
        PageResult::Answered | PageResult::Delivered => (REACHED, REACHED),
        PageResult::NotAnswered | PageResult::Busy => (UNANSWERED, REACHED),
        // Hollow: a failed page drawn over another at the same instant leaves it visible.
        PageResult::Failed(_) => ("none", FAILED),
    };
    let reason = match &p.result {
        PageResult::Failed(r) => format!(" failed: {r}"),
        PageResult::Answered => " answered".into(),
        PageResult::Delivered => " delivered".into(),
        PageResult::NotAnswered => " not answered".into(),
        PageResult::Busy => " busy".into(),
    };
    let title = esc(&format!(
        "{} to {} (level {}, round {}){reason}",
        p.channel, p.person, p.level, p.round
    ));
    let style = format!("fill=\"{fill}\" stroke=\"{stroke}\" stroke-width=\"1.2\"");
    match p.channel.as_str() {
        "phone" => {
            let _ = write!(
                out,
                "<circle cx=\"{x:.1}\" cy=\"{y:.1}\" r=\"{r:.1}\" {style}><title>{title}</title></circle>"
            );
        }
        "email" => {
            let _ = write!(
                out,
                "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\" {style}><title>{title}</title></rect>",
                x - r,
                y - r,
                2.0 * r,
                2.0 * r
            );
        }
        "webhook" => {
            let _ = write!(
                out,
                "<polygon points=\"{x:.1},{:.1} {:.1},{y:.1} {x:.1},{:.1} {:.1},{y:.1}\" {style}><title>{title}</title></polygon>",
                y - r * 1.3,
                x + r * 1.3,
                y + r * 1.3,
                x - r * 1.3
            );
        }
        _ => {
            let _ = write!(
                out,
                "<polygon points=\"{x:.1},{:.1} {:.1},{:.1} {:.1},{:.1}\" {style}><title>{title}</title></polygon>",
                y - r * 1.2,
                x + r * 1.2,
                y + r,
                x - r * 1.2,
                y + r
            );
        }
    }
}

fn bar(out: &mut String, x: f64, y: f64, half: f64, colour: &str, width: f64, title: &str) {
    let _ = write!(
        out,
        "<line x1=\"{x:.1}\" y1=\"{:.1}\" x2=\"{x:.1}\" y2=\"{:.1}\" stroke=\"{colour}\" stroke-width=\"{width}\"><title>{}</title></line>",
        y - half,
        y + half,
        esc(title)
    );
}

pub(crate) fn render(report: &NightReport) -> String {
    let night = &report.night;
    let scale = i64::from(night.time_scale.max(1));
    let length_ms = night
        .night_span(night.end - night.start)
        .num_milliseconds()
        .max(1);
    let axis = Axis {
        start: night.start,
        length_ms,
        scale,
    };
    let n = report.tickets.len() as i64;
    // About 1200 px of rows at most, but never rows thinner than 5 px or taller than 20.
    let row = (1200 / n.max(1)).clamp(5, 20);
    let font = (row - 2).clamp(5, 12);
    let height = TOP + n * row + 20 + LEGEND;
    let right = WIDTH - RIGHT;

    let mut out = String::new();
    let _ = writeln!(
        out,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" height=\"{height}\" viewBox=\"0 0 {WIDTH} {height}\" font-family=\"sans-serif\">"
    );
    let _ = writeln!(
        out,
        "<rect x=\"0\" y=\"0\" width=\"{WIDTH}\" height=\"{height}\" fill=\"#ffffff\"/>"
    );
    let scale_word = if scale > 1 {
        format!("DRILL ×{scale}")
    } else {
        "DRILL (real time)".into()
    };
    let _ = writeln!(
        out,
        "<text x=\"10\" y=\"24\" font-size=\"18\" font-weight=\"bold\">{} · {scale_word}</text>",
        esc(&night.name)
    );
    let count = |m: &std::collections::BTreeMap<_, usize>| m.values().sum::<usize>();
    let _ = writeln!(
        out,
        "<text x=\"10\" y=\"44\" font-size=\"12\">{} tickets: {} met, {} missed (S1/S2); {} duplicate pages; {} calls without ticket; times are night time</text>",
        n,
        count(&report.met),
        count(&report.missed),
        report.duplicate_pages,
        report.calls_without_ticket
    );

    // Hour ticks, in night time; every other label when the night is long.
    let hours = length_ms / 3_600_000;
    let every = if hours > 12 { 2 } else { 1 };
    let bottom = TOP + n * row;
    for h in 0..=hours {
        let x = LEFT as f64 + (h * 3_600_000) as f64 / length_ms as f64 * (right - LEFT) as f64;
        let _ = writeln!(
            out,
            "<line x1=\"{x:.1}\" y1=\"{}\" x2=\"{x:.1}\" y2=\"{bottom}\" stroke=\"#e4e4e4\"/>",
            TOP - 8
        );
        if h % every == 0 {
            let _ = writeln!(
                out,
                "<text x=\"{x:.1}\" y=\"{}\" font-size=\"11\" text-anchor=\"middle\">+{h}h</text>",
                TOP - 12
            );
        }
    }

    for (i, t) in report.tickets.iter().enumerate() {
        let y = (TOP + i as i64 * row) as f64 + row as f64 / 2.0;
        let colour = match t.verdict {
            Verdict::Missed { .. } => MISSED,
            Verdict::Met { .. } => MET,
            Verdict::NoTarget => NO_TARGET,
        };
        let _ = write!(out, "<g>");
        let _ = write!(
            out,
            "<text x=\"{}\" y=\"{:.1}\" font-size=\"{font}\" text-anchor=\"end\" fill=\"{}\">{} {}</text>",
            LEFT - 6,
            y + font as f64 / 3.0,
            if colour == MET { "#000000" } else { colour },
            esc(&t.number),
            t.severity
        );
        let last = t
            .pages
            .iter()
            .map(|p| p.at)
            .chain(t.callback_connected)
            .chain(t.acknowledged.as_ref().map(|a| a.at))
            .chain([t.callback_due])
            .max()
            .unwrap_or(t.callback_due);
        let _ = write!(
            out,
            "<line x1=\"{:.1}\" y1=\"{y:.1}\" x2=\"{:.1}\" y2=\"{y:.1}\" stroke=\"{colour}\" stroke-width=\"{:.1}\"/>",
            axis.x(t.voicemail_end),
            axis.x(last),
            (row as f64 / 5.0).max(1.0)
        );
        let half = row as f64 * 0.45;
        bar(
            &mut out,
            axis.x(t.callback_due),
            y,
            half,
            "#000000",
            2.0,
            "target",
        );
        let r = (row as f64 * 0.3).max(1.5);
        for p in &t.pages {
            page_mark(&mut out, p, axis.x(p.at), y, r);
        }
        if let Some(a) = &t.acknowledged {
            bar(
                &mut out,
                axis.x(a.at),
                y,
                half,
                ACK,
                2.0,
                &format!("acknowledged by {}", a.by),
            );
        }
        if let Some(c) = t.callback_connected {
            bar(&mut out, axis.x(c), y, half, CALLBACK, 3.0, "called back");
        }
        let _ = writeln!(out, "</g>");
    }

    // Legend.
    let ly = (bottom + 30) as f64;
    let mut x = 10.0;
    let label = |out: &mut String, x: &mut f64, text: &str| {
        let _ = write!(
            out,
            "<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"11\">{text}</text>",
            *x + 10.0,
            ly + 4.0
        );
        *x += 18.0 + 6.5 * text.chars().count() as f64;
    };
    let sample = |channel: &str, result: PageResult| PageTrace {
        at: night.start,
        channel: channel.into(),
        level: 0,
        round: 0,
        person: String::new(),
        result,
        phase: String::new(),
        carried: false,
    };
    for (channel, text) in [
        ("phone", "phone page"),
        ("email", "e-mail"),
        ("webhook", "webhook"),
        ("other", "other channel"),
    ] {
        page_mark(&mut out, &sample(channel, PageResult::Answered), x, ly, 5.0);
        label(&mut out, &mut x, text);
    }
    page_mark(
        &mut out,
        &sample("phone", PageResult::NotAnswered),
        x,
        ly,
        5.0,
    );
    label(&mut out, &mut x, "not answered / busy");
    page_mark(
        &mut out,
        &sample("phone", PageResult::Failed(String::new())),
        x,
        ly,
        5.0,
    );
    label(&mut out, &mut x, "failed");
    for (colour, width, text) in [
        ("#000000", 2.0, "target"),
        (ACK, 2.0, "acknowledged"),
        (CALLBACK, 3.0, "called back"),
    ] {
        bar(&mut out, x, ly, 7.0, colour, width, text);
        label(&mut out, &mut x, text);
    }
    let ly2 = ly + 22.0;
    for (i, (colour, text)) in [
        (MET, "met"),
        (MISSED, "missed"),
        (NO_TARGET, "S3: no target"),
    ]
    .into_iter()
    .enumerate()
    {
        let x = 10.0 + 120.0 * i as f64;
        let _ = write!(
            out,
            "<line x1=\"{x:.1}\" y1=\"{ly2:.1}\" x2=\"{:.1}\" y2=\"{ly2:.1}\" stroke=\"{colour}\" stroke-width=\"3\"/><text x=\"{:.1}\" y=\"{:.1}\" font-size=\"11\">{text}</text>",
            x + 24.0,
            x + 30.0,
            ly2 + 4.0
        );
    }
    out.push_str("\n</svg>\n");
    out
}

#[cfg(test)]
mod tests {
    use chrono::{Duration, TimeZone};

    use super::super::report::{Ack, Night, TicketTrace};
    use super::*;
    use crate::triage::Severity;

    fn t0() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 1, 10, 22, 0, 0).unwrap()
    }

    fn night() -> Night {
        Night {
            name: "storm <&>".into(),
            start: t0(),
            end: t0() + Duration::minutes(6),
            time_scale: 60,
            top_level: 4,
            margin_secs: 300,
            s1_target_secs: 1800,
            s2_target_secs: 3600,
        }
    }

    fn ticket(i: usize, person: &str) -> TicketTrace {
        let end = t0() + Duration::seconds(i as i64);
        let page = |channel: &str, s: i64, result| PageTrace {
            at: end + Duration::seconds(s),
            channel: channel.into(),
            level: 1,
            round: 0,
            person: person.into(),
            result,
            phase: "climb".into(),
            carried: false,
        };
        TicketTrace {
            number: format!("2026011{i:04}"),
            severity: if i % 3 == 0 {
                Severity::S2
            } else {
                Severity::S1
            },
            caller: "+33612345678".into(),
            voicemail_end: end,
            callback_due: end + Duration::seconds(30),
            pages: vec![
                page("phone", 1, PageResult::NotAnswered),
                page("email", 1, PageResult::Failed("smtp <down>".into())),
                page("webhook", 2, PageResult::Delivered),
                page("sms", 3, PageResult::Busy),
            ],
            acknowledged: (i % 2 == 0).then(|| Ack {
                at: end + Duration::seconds(5),
                by: person.into(),
            }),
            callback_connected: (i % 4 == 0).then(|| end + Duration::seconds(20)),
        }
    }

    /// Tags open and close in order; self-closing ones stand alone.
    fn balanced(svg: &str) -> bool {
        let mut stack: Vec<&str> = Vec::new();
        let mut rest = svg;
        while let Some(open) = rest.find('<') {
            let Some(close) = rest[open..].find('>') else {
                return false;
            };
            let tag = &rest[open + 1..open + close];
            rest = &rest[open + close + 1..];
            if let Some(name) = tag.strip_prefix('/') {
                if stack.pop() != Some(name.trim()) {
                    return false;
                }
            } else if !tag.ends_with('/') {
                stack.push(tag.split_whitespace().next().unwrap_or(""));
            }
        }
        stack.is_empty()
    }

    #[test]
    fn the_svg_is_standalone_balanced_escaped_and_names_every_ticket() {
        let tickets: Vec<TicketTrace> = (0..200).map(|i| ticket(i, "tech<a>&'b'")).collect();
        let report = NightReport::build(night(), &tickets, &[]);
        let svg = report.svg();
        assert!(svg.starts_with("<svg"), "{}", &svg[..40]);
        assert!(svg.trim_end().ends_with("</svg>"));
        assert!(balanced(&svg));
        for t in &tickets {
            assert!(svg.contains(&t.number), "{}", t.number);
        }
        assert!(svg.contains("tech&lt;a&gt;&amp;&apos;b&apos;"));
        assert!(!svg.contains("tech<a>"));
        assert!(svg.contains("smtp &lt;down&gt;"));
        assert!(svg.contains("storm &lt;&amp;&gt; · DRILL ×60"));
        for banned in ["<script", "href", "<image", "<foreignObject"] {
            assert!(!svg.contains(banned), "{banned}");
        }
        // Rows shrink: 200 tickets fit in a page of about 1300 px.
        let height: i64 = svg
            .split("height=\"")
            .nth(1)
            .and_then(|s| s.split('"').next())
            .and_then(|s| s.parse().ok())
            .unwrap();
        assert!((1000..=1500).contains(&height), "{height}");
        // Hour ticks of the six-hour night.
        assert!(svg.contains(">+6h<") && !svg.contains(">+7h<"));
    }

    #[test]
    fn missed_tickets_are_drawn_in_their_own_colour() {
        let mut t = ticket(1, "a");
        t.pages.clear();
        let report = NightReport::build(night(), &[t], &[]);
        let svg = report.svg();
        assert!(balanced(&svg));
        assert!(svg.contains(&format!("stroke=\"{MISSED}\" stroke-width")));
    }
}
