//! Where a request's images come from. The server never fetches anything over the network (a
//! device on a LAN must not become a proxy, and the request would hang on a slow host): images
//! arrive inline as `data:` URIs, or, when the operator names a folder, as `file://` URLs inside
//! it. Either way they are decoded under the same limits as the CLI's `--image`.

use crate::error::ApiError;
use base64::Engine as _;
use sail::session::{Model, PreparedImage};
use sail::vision::decode::ImageLimits;
use std::path::{Path, PathBuf};

/// An image as a request names it.
#[derive(Debug, Clone)]
pub struct ImageRef {
    pub url: String,
    /// Where in the request (`messages[1].content[0]`), for error messages.
    pub at: String,
}

/// The bytes or file an image URL stands for.
#[derive(Debug)]
enum Source {
    Bytes(Vec<u8>),
    File(PathBuf),
}

fn resolve(r: &ImageRef, allowed: Option<&Path>) -> Result<Source, ApiError> {
    let at = &r.at;
    let scheme = r.url.split_once(':').map(|(s, _)| s.to_ascii_lowercase()).unwrap_or_default();
    match scheme.as_str() {
        "data" => {
            let rest = &r.url[5..];
            let (header, data) =
                rest.split_once(',').ok_or_else(|| ApiError::bad(at, format!("{at}: a data: URI needs a comma before its data")))?;
            let Some(media) = header.strip_suffix(";base64").or_else(|| header.strip_suffix(";BASE64")) else {
                return Err(ApiError::bad(at, format!("{at}: only base64 data: URIs are accepted (data:image/png;base64,...)")));
            };
            if !media.is_empty() && !media.to_ascii_lowercase().starts_with("image/") {
                return Err(ApiError::bad(at, format!("{at}: the data: URI's media type {media:?} is not an image")));
            }
            let clean: Vec<u8> = data.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(&clean)
                .map_err(|e| ApiError::bad(at, format!("{at}: the data: URI is not valid base64 ({e})")))?;
            Ok(Source::Bytes(bytes))
        }
        "file" => {
            let Some(root) = allowed else {
                return Err(ApiError::bad(at, format!("{at}: file:// image URLs are refused unless the server runs with --allow-local-files DIR")));
            };
            let path = url::Url::parse(&r.url)
                .ok()
                .and_then(|u| u.to_file_path().ok())
                .ok_or_else(|| ApiError::bad(at, format!("{at}: {:?} is not a valid file:// URL", r.url)))?;
            // canonical paths: `..`, symlinks and the like cannot lead outside the folder
            let real = path.canonicalize().map_err(|e| ApiError::bad(at, format!("{at}: {}: {e}", path.display())))?;
            if !real.starts_with(root) {
                return Err(ApiError::bad(at, format!("{at}: {} is outside the folder allowed by --allow-local-files", path.display())));
            }
            Ok(Source::File(real))
        }
        "http" | "https" => Err(ApiError::bad(
            at,
            format!("{at}: remote image URLs are not fetched (this server makes no network requests); send the image inline as a data: URI (data:image/jpeg;base64,...)"),
        )),
        _ => Err(ApiError::bad(at, format!("{at}: unsupported image URL; use a data: URI (base64){}", if allowed.is_some() { " or a file:// URL" } else { "" }))),
    }
}

/// Decodes and tiles every image of a request, in order (blocking: run off the async threads).
pub fn prepare(
    model: &Model,
    refs: &[ImageRef],
    allowed: Option<&Path>,
    max_tiles: Option<u32>,
    limits: ImageLimits,
) -> Result<Vec<PreparedImage>, ApiError> {
    if !refs.is_empty() && !model.has_vision() {
        return Err(ApiError::bad(&refs[0].at, format!("{}: this model has no vision file and can only take text", refs[0].at)));
    }
    refs.iter()
        .map(|r| {
            let prepared = match resolve(r, allowed)? {
                Source::Bytes(b) => model.prepare_image_bytes(&b, &r.at, max_tiles, limits),
                Source::File(p) => model.prepare_image_file(&p, max_tiles, limits),
            };
            prepared.map_err(|e| ApiError::from_sail(&e).at(&r.at))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(url: &str) -> ImageRef {
        ImageRef { url: url.into(), at: "messages[0].content[0]".into() }
    }

    fn err(url: &str, allowed: Option<&Path>) -> String {
        match resolve(&r(url), allowed) {
            Ok(s) => panic!("{url} accepted: {s:?}"),
            Err(e) => {
                assert_eq!(e.status, 400);
                e.message
            }
        }
    }

    #[test]
    fn data_uris() {
        match resolve(&r("data:image/png;base64,aGVs\nbG8="), None).unwrap() {
            Source::Bytes(b) => assert_eq!(b, b"hello"),
            s => panic!("{s:?}"),
        }
        assert!(err("data:image/png;base64,***", None).contains("not valid base64"));
        assert!(err("data:image/png,rawbytes", None).contains("only base64"));
        assert!(err("data:text/plain;base64,aGVsbG8=", None).contains("not an image"));
        assert!(err("data:image/png;base64", None).contains("comma"));
    }

    #[test]
    fn no_network_and_local_files_only_inside_the_folder() {
        assert!(err("https://example.com/cat.jpg", None).contains("not fetched"));
        assert!(err("http://127.0.0.1/cat.jpg", None).contains("not fetched"));
        assert!(err("ftp://x/y.png", None).contains("unsupported"));
        assert!(err("file:///etc/hostname", None).contains("--allow-local-files"));
        let dir = std::env::temp_dir().join(format!("sail-server-files-{}", std::process::id()));
        let inside = dir.join("ok");
        std::fs::create_dir_all(&inside).unwrap();
        std::fs::write(inside.join("a.png"), b"x").unwrap();
        std::fs::write(dir.join("secret.png"), b"x").unwrap();
        let root = inside.canonicalize().unwrap();
        match resolve(&r(&format!("file://{}/a.png", inside.display())), Some(&root)).unwrap() {
            Source::File(p) => assert_eq!(p, root.join("a.png")),
            s => panic!("{s:?}"),
        }
        assert!(err(&format!("file://{}/../secret.png", inside.display()), Some(&root)).contains("outside the folder"));
        assert!(err(&format!("file://{}/missing.png", inside.display()), Some(&root)).contains("missing.png"));
        #[cfg(unix)]
        {
            let link = inside.join("link.png");
            let _ = std::fs::remove_file(&link);
            std::os::unix::fs::symlink(dir.join("secret.png"), &link).unwrap();
            assert!(err(&format!("file://{}", link.display()), Some(&root)).contains("outside the folder"));
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
