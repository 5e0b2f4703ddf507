//! `sail_model_params.rpc_servers` / `tensor_split` through the C ABI: bad values come back as
//! status codes naming the problem, and a model whose layers and vision tower live on an RPC
//! server (ggml's server, run in this process on a free loopback port) answers with the same
//! tokens as the plain library. Its own test binary: RPC registration is process-wide.

mod common;

use common::*;
use sail_capi::*;
use std::ffi::{CStr, CString};
use std::ptr::{null, null_mut};

fn last_error() -> String {
    // SAFETY: the library returns a NUL-terminated per-thread string.
    unsafe { CStr::from_ptr(sail_last_error_message()) }.to_string_lossy().into_owned()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn try_load(mp: sail_model_params) -> (*mut sail_model, sail_status) {
    let p = CString::new(small_dense().gguf.to_str().unwrap()).unwrap();
    let mut st = -1;
    // SAFETY: valid strings, arrays of the stated lengths, and status pointer.
    let m = unsafe { sail_model_load(p.as_ptr(), mp, &mut st) };
    (m, st)
}

#[test]
fn rpc_params_are_checked_and_a_remote_model_answers_like_a_local_one() {
    let dead = CString::new(format!("127.0.0.1:{}", free_port())).unwrap();
    let bad = CString::new("127.0.0.1:0").unwrap();
    let split = [1.0f32, 1.0];
    let d = sail_model_default_params();
    for (mp, want, needle) in [
        (sail_model_params { rpc_servers: dead.as_ptr(), ..d }, SAIL_ERR_RPC, dead.to_str().unwrap()),
        (sail_model_params { rpc_servers: bad.as_ptr(), ..d }, SAIL_ERR_INVALID_ARGUMENT, "1..=65535"),
        (sail_model_params { tensor_split: null(), n_tensor_split: 2, ..d }, SAIL_ERR_INVALID_ARGUMENT, "tensor_split is NULL"),
        (sail_model_params { tensor_split: split.as_ptr(), n_tensor_split: 100, ..d }, SAIL_ERR_INVALID_ARGUMENT, "n_tensor_split 100"),
    ] {
        let (m, st) = try_load(mp);
        assert!(m.is_null());
        assert_eq!(st, want, "{}", last_error());
        assert!(last_error().contains(needle), "{needle}: {}", last_error());
    }

    // ggml's RPC server in a thread of this process, serving its CPU
    sail::ggml::llama_init(false);
    let port = free_port();
    let endpoint = sail::ggml::rpc::Endpoint { host: "127.0.0.1".into(), port };
    let params = sail::ggml::rpc::ServeParams { endpoint: endpoint.clone(), devices: vec!["CPU".into()], n_threads: 2, cache_dir: None };
    std::thread::spawn(move || sail::ggml::rpc::serve(&params));
    let t = std::time::Instant::now();
    while sail::ggml::rpc::probe(&endpoint).is_err() {
        assert!(t.elapsed().as_secs() < 20, "the in-process RPC server did not come up");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }

    let f = small_dense();
    let (want, _) = library_tokens(&f.gguf, &f.image, &f.prompt(), 6);
    let ep = CString::new(endpoint.to_string()).unwrap();
    let rpc0 = CString::new("RPC0").unwrap();
    let one = [1.0f32];
    let mp = sail_model_params {
        rpc_servers: ep.as_ptr(),
        vision_device: rpc0.as_ptr(),
        n_gpu_layers: -1,
        tensor_split: one.as_ptr(),
        n_tensor_split: 1,
        ..sail_model_default_params()
    };
    let (m, st) = try_load(mp);
    assert_eq!(st, SAIL_OK, "{}", last_error());
    let mut st = -1;
    // SAFETY: live model, valid status pointer.
    let s = unsafe { sail_session_new(m, sail_session_default_params(), &mut st) };
    assert_eq!(st, SAIL_OK, "{}", last_error());
    let img = CString::new(f.image.to_str().unwrap()).unwrap();
    // SAFETY: live session, valid C string.
    assert_eq!(unsafe { sail_session_add_image_file(s, img.as_ptr()) }, SAIL_OK, "{}", last_error());
    let prompt = CString::new(f.prompt()).unwrap();
    let gp = sail_generate_params { n_predict: 6, ignore_eos: true, ..sail_generate_default_params() };
    // SAFETY: live session, valid prompt and params, no callback.
    assert_eq!(unsafe { sail_session_generate(s, prompt.as_ptr(), &gp, None, null_mut()) }, SAIL_OK, "{}", last_error());
    let mut ids = vec![0i32; 16];
    // SAFETY: `ids` has room for 16.
    let n = unsafe { sail_session_last_tokens(s, ids.as_mut_ptr(), ids.len()) };
    ids.truncate(n);
    assert_eq!(ids, want, "tokens through the RPC server differ from the local library's");
    // SAFETY: handles made above, freed once, session first.
    unsafe {
        sail_session_free(s);
        sail_model_free(m);
    }
}
