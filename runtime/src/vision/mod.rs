pub mod preprocess;
pub mod resize;
pub mod tiling;
pub mod encoder;
