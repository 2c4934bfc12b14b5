//! A small hand-written SVG line chart: one curve per setting, log-scaled y axis.

use std::fmt::Write as _;

pub struct Series {
    pub label: String,
    /// (x, y) points, drawn in x order.
    pub points: Vec<(f64, f64)>,
}

const PALETTE: [&str; 12] = [
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
    "#bcbd22", "#17becf", "#393b79", "#b5cf6b",
];

/// Renders the chart; y is on a log10 scale (latencies span decades).
pub fn line_chart(title: &str, x_label: &str, y_label: &str, series: &[Series]) -> String {
    let (w, h) = (900.0, 560.0);
    let (left, right, top, bottom) = (70.0, 250.0, 40.0, 50.0);
    let (pw, ph) = (w - left - right, h - top - bottom);
    let all: Vec<(f64, f64)> = series
        .iter()
        .flat_map(|s| s.points.iter().copied())
        .filter(|(x, y)| x.is_finite() && y.is_finite() && *y > 0.0)
        .collect();
    let x_max = all.iter().map(|p| p.0).fold(0.0, f64::max).max(1e-9) * 1.05;
    let y_lo = all.iter().map(|p| p.1).fold(f64::MAX, f64::min).min(1e9);
    let y_hi = all.iter().map(|p| p.1).fold(0.0, f64::max);
    let (dec_lo, dec_hi) = if all.is_empty() {
        (0, 1)
    } else {
        (
            y_lo.log10().floor() as i32,
            (y_hi.log10().ceil() as i32).max(y_lo.log10().floor() as i32 + 1),
        )
    };
    let sx = |x: f64| left + x / x_max * pw;
    let sy = |y: f64| {
        let t = (y.max(1e-12).log10() - dec_lo as f64) / (dec_hi - dec_lo) as f64;
        top + ph - t * ph
    };
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(s, r#"<rect width="{w}" height="{h}" fill="white"/>"#);
    let _ = writeln!(
        s,
        r#"<text x="{}" y="22" font-size="15" text-anchor="middle">{}</text>"#,
        left + pw / 2.0,
        escape(title)
    );
    // Axes, decade grid lines and x ticks.
    let _ = writeln!(
        s,
        r#"<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="none" stroke="black"/>"#
    );
    // Faint lines at 2x and 5x of each decade, labelled, so values can be read off.
    for d in dec_lo..dec_hi {
        for m in [2.0, 5.0] {
            let v = m * 10f64.powi(d);
            let y = sy(v);
            let _ = writeln!(
                s,
                r##"<line x1="{left}" y1="{y:.1}" x2="{}" y2="{y:.1}" stroke="#f0f0f0"/><text x="{}" y="{:.1}" text-anchor="end" fill="#888">{}</text>"##,
                left + pw,
                left - 6.0,
                y + 4.0,
                fmt_num(v)
            );
        }
    }
    for d in dec_lo..=dec_hi {
        let y = sy(10f64.powi(d));
        let _ = writeln!(
            s,
            r##"<line x1="{left}" y1="{y:.1}" x2="{}" y2="{y:.1}" stroke="#ddd"/><text x="{}" y="{:.1}" text-anchor="end">{}</text>"##,
            left + pw,
            left - 6.0,
            y + 4.0,
            fmt_num(10f64.powi(d))
        );
    }
    for i in 0..=5 {
        let x = x_max * i as f64 / 5.0;
        let _ = writeln!(
            s,
            r#"<text x="{:.1}" y="{}" text-anchor="middle">{}</text>"#,
            sx(x),
            top + ph + 18.0,
            fmt_num(x)
        );
    }
    let _ = writeln!(
        s,
        r#"<text x="{}" y="{}" text-anchor="middle">{}</text>"#,
        left + pw / 2.0,
        h - 10.0,
        escape(x_label)
    );
    let _ = writeln!(
        s,
        r#"<text transform="translate(18,{}) rotate(-90)" text-anchor="middle">{}</text>"#,
        top + ph / 2.0,
        escape(y_label)
    );
    for (i, series) in series.iter().enumerate() {
        let color = PALETTE[i % PALETTE.len()];
        let mut pts: Vec<(f64, f64)> = series
            .points
            .iter()
            .copied()
            .filter(|(x, y)| x.is_finite() && y.is_finite() && *y > 0.0)
            .collect();
        pts.sort_by(|a, b| a.0.total_cmp(&b.0));
        let path: Vec<String> = pts
            .iter()
            .map(|&(x, y)| format!("{:.1},{:.1}", sx(x), sy(y)))
            .collect();
        let _ = writeln!(
            s,
            r#"<polyline points="{}" fill="none" stroke="{color}" stroke-width="2"/>"#,
            path.join(" ")
        );
        for &(x, y) in &pts {
            let _ = writeln!(
                s,
                r#"<circle cx="{:.1}" cy="{:.1}" r="3.5" fill="{color}"/>"#,
                sx(x),
                sy(y)
            );
        }
        let ly = top + 10.0 + i as f64 * 18.0;
        let lx = left + pw + 14.0;
        let _ = writeln!(
            s,
            r#"<line x1="{lx}" y1="{ly}" x2="{}" y2="{ly}" stroke="{color}" stroke-width="3"/><text x="{}" y="{}">{}</text>"#,
            lx + 18.0,
            lx + 24.0,
            ly + 4.0,
            escape(&series.label)
        );
    }
    s.push_str("</svg>\n");
    s
}

fn fmt_num(v: f64) -> String {
    if v >= 100.0 || v == 0.0 {
        format!("{v:.0}")
    } else if v >= 1.0 {
        format!("{v:.1}")
    } else {
        format!("{v}")
    }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_every_series() {
        let series = [
            Series {
                label: "a<b".into(),
                points: vec![(1.0, 0.5), (2.0, 5.0)],
            },
            Series {
                label: "c".into(),
                points: vec![(3.0, 50.0)],
            },
        ];
        let svg = line_chart("t", "x", "y", &series);
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>\n"));
        assert_eq!(svg.matches("<polyline").count(), 2);
        assert_eq!(svg.matches("<circle").count(), 3);
        assert!(svg.contains("a&lt;b"));
    }
}
