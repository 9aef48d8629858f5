//! The loss and accuracy plot: training and validation loss, and top-1 / top-5 error, by epoch,
//! as a PNG rewritten after each epoch.

use std::path::Path;

use plotters::prelude::*;

use crate::progress::EpochRecord;

/// Fonts tried for the labels; without any, the plot is drawn without text.
const FONTS: &[&str] = &[
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/System/Library/Fonts/Supplemental/Arial.ttf",
];

fn register_font() -> bool {
    static FONT: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *FONT.get_or_init(|| {
        for path in FONTS {
            if let Ok(bytes) = std::fs::read(path) {
                let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
                if plotters::style::register_font("sans-serif", FontStyle::Normal, bytes).is_ok() {
                    return true;
                }
            }
        }
        false
    })
}

/// Draws `records` into `path` (written atomically).
pub fn plot(records: &[EpochRecord], title: &str, path: &Path) -> Result<(), String> {
    if records.is_empty() {
        return Ok(());
    }
    let text = register_font();
    let tmp = path.with_extension("tmp.png");
    {
        let root = BitMapBackend::new(&tmp, (1000, 420)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let (left, right) = root.split_horizontally(500);
        let epochs = records.len() as f64;
        let x_max = epochs.max(2.0);
        let max_loss = records
            .iter()
            .flat_map(|r| [r.train.loss, r.val.loss])
            .filter(|v| v.is_finite())
            .fold(0.0, f64::max);
        type Series<'a> = (&'a str, RGBColor, Box<dyn Fn(&EpochRecord) -> f64>);
        let panels: [(&DrawingArea<BitMapBackend<'_>, _>, &str, f64, Vec<Series<'_>>); 2] = [
            (
                &left,
                "loss",
                max_loss * 1.1 + 1e-9,
                vec![
                    ("train loss", BLUE, Box::new(|r: &EpochRecord| r.train.loss)),
                    ("val loss", RED, Box::new(|r: &EpochRecord| r.val.loss)),
                ],
            ),
            (
                &right,
                "error (%)",
                100.0,
                vec![
                    ("train top-1", BLUE, Box::new(|r: &EpochRecord| 100.0 * (1.0 - r.train.top1))),
                    ("val top-1", RED, Box::new(|r: &EpochRecord| 100.0 * (1.0 - r.val.top1))),
                    ("val top-5", MAGENTA, Box::new(|r: &EpochRecord| 100.0 * (1.0 - r.val.top5))),
                ],
            ),
        ];
        for (area, what, y_max, series) in panels {
            let mut builder = ChartBuilder::on(area);
            builder.margin(12);
            if text {
                builder
                    .caption(format!("{title}: {what}"), ("sans-serif", 18))
                    .x_label_area_size(30)
                    .y_label_area_size(45);
            }
            let mut chart = builder.build_cartesian_2d(1.0..x_max, 0.0..y_max).map_err(|e| e.to_string())?;
            let mut mesh = chart.configure_mesh();
            if text {
                mesh.x_desc("epoch");
            } else {
                mesh.disable_x_axis().disable_y_axis();
            }
            mesh.draw().map_err(|e| e.to_string())?;
            for (label, color, f) in series {
                let points: Vec<(f64, f64)> = records.iter().map(|r| (r.epoch as f64, f(r))).collect();
                let line = chart
                    .draw_series(LineSeries::new(points.clone(), color.stroke_width(2)))
                    .map_err(|e| e.to_string())?;
                if text {
                    line.label(label)
                        .legend(move |(x, y)| PathElement::new([(x, y), (x + 18, y)], color.stroke_width(2)));
                }
                chart
                    .draw_series(points.iter().map(|p| Circle::new(*p, 3, color.filled())))
                    .map_err(|e| e.to_string())?;
            }
            if text {
                chart
                    .configure_series_labels()
                    .background_style(WHITE.mix(0.8))
                    .border_style(BLACK)
                    .label_font(("sans-serif", 14))
                    .draw()
                    .map_err(|e| e.to_string())?;
            }
        }
        root.present().map_err(|e| e.to_string())?;
    }
    std::fs::rename(&tmp, path).map_err(|e| format!("{}: {e}", path.display()))
}
