//! The proxy bench's figures: percentiles of microsecond samples and the report's number formats.

pub fn percentile(values: &mut [u64], p: f64) -> u64 {
    if values.is_empty() {
        return 0;
    }
    values.sort_unstable();
    let rank = ((p / 100.0) * (values.len() - 1) as f64).round() as usize;
    values[rank]
}

pub fn ms(us: u64) -> String {
    format!("{:.2}", us as f64 / 1000.0)
}

pub fn ratio(server: f64, direct: f64) -> String {
    if direct <= 0.0 { "-".into() } else { format!("{:.2}×", server / direct) }
}
