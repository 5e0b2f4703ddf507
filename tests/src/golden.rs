//! Golden cases: expected outputs of the independent Python reference, with the exact
//! generator arguments that recreate their inputs.

use anyhow::{Context, Result};
use serde_json::Value;
use std::path::PathBuf;

#[derive(Debug, Clone)]
pub struct Case {
    pub dir: PathBuf,
    pub json: Value,
}

impl Case {
    /// The case `tests/golden/NAME`.
    pub fn load(name: &str) -> Result<Case> {
        let root = sail_gen::workspace_root().context("the sail workspace (assets/SAIL-VL2-2B) was not found")?;
        let dir = root.join("tests").join("golden").join(name);
        let text = std::fs::read_to_string(dir.join("case.json")).with_context(|| format!("golden case {name}"))?;
        Ok(Case { dir, json: serde_json::from_str(&text)? })
    }

    pub fn generator_argv(&self) -> Vec<String> {
        self.json["generator"]["argv"].as_array().expect("generator.argv").iter().map(|v| v.as_str().unwrap().to_string()).collect()
    }

    pub fn expected(&self) -> &Value {
        &self.json["expected"]
    }

    pub fn input_ids(&self) -> Vec<i32> {
        self.expected()["input_ids"].as_array().expect("input_ids").iter().map(|v| v.as_i64().unwrap() as i32).collect()
    }

    pub fn last_logits(&self) -> Result<Vec<f32>> {
        Ok(crate::npy::read_f32(&self.dir.join("last_logits.npy"))?.data)
    }
}

impl Case {
    /// Writes the case's generated test image into the scratch folder and returns its path.
    pub fn image(&self) -> Option<PathBuf> {
        let im = self.json.get("image").filter(|v| !v.is_null())?;
        let (w, h, s) = (im["width"].as_u64()? as usize, im["height"].as_u64()? as usize, im["seed"].as_u64()?);
        let path = crate::scratch().join(format!("img-{w}x{h}-{s}.png"));
        if !path.exists() {
            static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
            let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let tmp = path.with_extension(format!("tmp{}-{n}", std::process::id()));
            sail_gen::image::write_png(&tmp, w, h, s).expect("write test image");
            std::fs::rename(&tmp, &path).expect("rename test image");
        }
        Some(path)
    }

    /// Tiles the reference used (from `expected.tiles`, or the preprocess record).
    pub fn tiles(&self) -> usize {
        self.expected()["tiles"].as_u64().or_else(|| self.json["preprocess"]["tiles"].as_u64()).unwrap_or(0) as usize
    }

    pub fn vision_embeds(&self) -> Result<crate::npy::Array> {
        crate::npy::read_f32(&self.dir.join("vision_embeds.npy"))
    }
}
