//! Counters for `GET /metrics`, in Prometheus' text format (version 0.0.4), which Prometheus,
//! VictoriaMetrics and Grafana Agent scrape as they are. Plain atomics: a scrape must never
//! wait for a generation.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;

#[derive(Debug, Default)]
pub struct Metrics {
    by_status: Mutex<BTreeMap<u16, u64>>,
    pub prompt_tokens: AtomicU64,
    pub cached_tokens: AtomicU64,
    pub completion_tokens: AtomicU64,
    pub images: AtomicU64,
    /// Microseconds, summed over requests.
    pub vision_us: AtomicU64,
    pub prefill_us: AtomicU64,
    pub decode_us: AtomicU64,
    pub cancelled: AtomicU64,
    pub timed_out: AtomicU64,
}

/// Gauges read at scrape time.
#[derive(Debug, Clone, Copy)]
pub struct Gauges {
    pub ready: bool,
    pub sessions: usize,
    pub running: usize,
    pub queued: usize,
    /// The model's image embedding cache counters (None while loading).
    pub image_cache: Option<sail::cache::CacheStats>,
}

impl Metrics {
    pub fn count_status(&self, status: u16) {
        *self.by_status.lock().unwrap_or_else(|e| e.into_inner()).entry(status).or_default() += 1;
    }

    pub fn add_ms(counter: &AtomicU64, ms: f64) {
        counter.fetch_add((ms * 1e3).max(0.0) as u64, Relaxed);
    }

    pub fn render(&self, g: Gauges) -> String {
        let mut s = String::new();
        let mut metric = |name: &str, kind: &str, help: &str, samples: &[(String, String)]| {
            let _ = writeln!(s, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for (labels, value) in samples {
                let _ = writeln!(s, "{name}{labels} {value}");
            }
        };
        let one = |v: u64| vec![(String::new(), v.to_string())];
        let ms = |c: &AtomicU64| vec![(String::new(), format!("{:.3}", c.load(Relaxed) as f64 / 1e3))];
        let statuses: Vec<(String, String)> = self
            .by_status
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(k, v)| (format!("{{status=\"{k}\"}}"), v.to_string()))
            .collect();
        metric("sail_requests_total", "counter", "Chat completion requests answered, by HTTP status.", &statuses);
        metric(
            "sail_requests_cancelled_total",
            "counter",
            "Generations stopped because the client went away.",
            &one(self.cancelled.load(Relaxed)),
        );
        metric(
            "sail_requests_timed_out_total",
            "counter",
            "Requests stopped by the per-request timeout.",
            &one(self.timed_out.load(Relaxed)),
        );
        metric(
            "sail_prompt_tokens_total",
            "counter",
            "Prompt tokens of finished generations (image tokens included).",
            &one(self.prompt_tokens.load(Relaxed)),
        );
        metric(
            "sail_prompt_tokens_cached_total",
            "counter",
            "Prompt tokens reused from a session's KV cache instead of computed.",
            &one(self.cached_tokens.load(Relaxed)),
        );
        metric("sail_completion_tokens_total", "counter", "Generated tokens.", &one(self.completion_tokens.load(Relaxed)));
        metric("sail_images_total", "counter", "Images received in requests.", &one(self.images.load(Relaxed)));
        metric("sail_vision_milliseconds_total", "counter", "Time spent encoding images.", &ms(&self.vision_us));
        metric("sail_prefill_milliseconds_total", "counter", "Time spent computing prompts.", &ms(&self.prefill_us));
        metric("sail_decode_milliseconds_total", "counter", "Time spent generating tokens.", &ms(&self.decode_us));
        if let Some(c) = g.image_cache {
            let hits =
                [("{where=\"memory\"}".to_string(), c.memory_hits.to_string()), ("{where=\"disk\"}".to_string(), c.disk_hits.to_string())];
            metric(
                "sail_image_cache_hits_total",
                "counter",
                "Images served from the embedding cache (no decoding, tiling or encoding).",
                &hits,
            );
            metric("sail_image_cache_misses_total", "counter", "Images that had to be encoded.", &one(c.misses));
        }
        metric("sail_model_ready", "gauge", "1 once the model is loaded.", &one(g.ready as u64));
        metric("sail_sessions", "gauge", "Sessions (--parallel): generations that can run at once.", &one(g.sessions as u64));
        metric("sail_requests_running", "gauge", "Requests generating now.", &one(g.running as u64));
        metric("sail_queue_length", "gauge", "Requests accepted and waiting for a session.", &one(g.queued as u64));
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prometheus_text_format() {
        let m = Metrics::default();
        m.count_status(200);
        m.count_status(200);
        m.count_status(400);
        Metrics::add_ms(&m.vision_us, 12.5);
        let cache = sail::cache::CacheStats { memory_hits: 4, disk_hits: 1, misses: 2, ..Default::default() };
        let t = m.render(Gauges { ready: true, sessions: 2, running: 1, queued: 3, image_cache: Some(cache) });
        assert!(t.contains("\nsail_image_cache_hits_total{where=\"memory\"} 4\nsail_image_cache_hits_total{where=\"disk\"} 1\n"), "{t}");
        assert!(t.contains("\nsail_image_cache_misses_total 2\n"), "{t}");
        assert!(
            t.contains(
                "# TYPE sail_requests_total counter\nsail_requests_total{status=\"200\"} 2\nsail_requests_total{status=\"400\"} 1\n"
            ),
            "{t}"
        );
        assert!(t.contains("\nsail_vision_milliseconds_total 12.500\n"), "{t}");
        assert!(t.contains("\nsail_queue_length 3\n"), "{t}");
        // every sample line is `name[{labels}] value`, every metric has HELP and TYPE
        for line in t.lines().filter(|l| !l.starts_with('#')) {
            let (name, value) = line.rsplit_once(' ').unwrap();
            assert!(value.parse::<f64>().is_ok(), "{line}");
            assert!(t.contains(&format!("# TYPE {} ", name.split('{').next().unwrap())), "{line}");
        }
    }
}
