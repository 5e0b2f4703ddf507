#[cfg(feature = "engine")]
pub mod encoder;
pub mod preprocess;
pub mod resize;
pub mod tiling;
